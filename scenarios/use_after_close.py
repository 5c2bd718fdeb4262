"""use-after-close: every user orders an item again and again, a route that reads after its session's block.

A plain locustfile: `locust -f scenarios/use_after_close.py --host http://127.0.0.1:8000` works without the harness.
"""

import random

from locust import FastHttpUser, constant, task

SEED_ITEMS = 1000


class Shopper(FastHttpUser):
    # No think time: the users press as hard as the app lets them (a closed model).
    wait_time = constant(0)

    @task
    def repeat(self) -> None:
        item_id = random.randint(1, SEED_ITEMS)
        self.client.post(f"/orders/{item_id}/repeat", name="POST /orders/{item_id}/repeat")
