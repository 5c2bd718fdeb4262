"""long-session: every user checks out an order, a route that calls a slow upstream between a read and a write.

A plain locustfile: `locust -f scenarios/long_session.py --host http://127.0.0.1:8000` works without the harness.
"""

import random

from locust import FastHttpUser, constant, task

SEED_ITEMS = 1000


class Shopper(FastHttpUser):
    # No think time: the users press as hard as the app lets them (a closed model).
    wait_time = constant(0)

    @task
    def checkout(self) -> None:
        item_id = random.randint(1, SEED_ITEMS)
        self.client.post(f"/orders/{item_id}/checkout", name="POST /orders/{item_id}/checkout")
