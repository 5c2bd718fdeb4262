"""unclosed-session: every user reads item prices back to back, a route whose session is (or is not) closed.

A plain locustfile: `locust -f scenarios/unclosed_session.py --host http://127.0.0.1:8000` works without the harness.
"""

import random

from locust import FastHttpUser, constant, task

SEED_ITEMS = 1000


class Shopper(FastHttpUser):
    # No think time: the users press as hard as the app lets them (a closed model).
    wait_time = constant(0)

    @task
    def price(self) -> None:
        item_id = random.randint(1, SEED_ITEMS)
        self.client.get(f"/items/{item_id}/price", name="GET /items/{item_id}/price")
