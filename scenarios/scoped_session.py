"""scoped-session: every user places orders on two routes served by an ``async_scoped_session`` middleware.

A plain locustfile: `locust -f scenarios/scoped_session.py --host http://127.0.0.1:8000` works without the harness.
"""

import random

from locust import FastHttpUser, constant_pacing, task

SEED_ITEMS = 1000


class Shopper(FastHttpUser):
    # Paced, not flat out: the bad app fails some requests in a millisecond, and unpaced users would
    # turn those into thousands of logged tracebacks a second instead of a steady, comparable load.
    wait_time = constant_pacing(0.1)

    @task
    def order(self) -> None:
        item_id = random.randint(1, SEED_ITEMS)
        self.client.post(f"/scoped/orders/{item_id}", name="POST /scoped/orders/{item_id}")

    @task
    def shared_order(self) -> None:
        item_id = random.randint(1, SEED_ITEMS)
        self.client.post(f"/scoped/shared/orders/{item_id}", name="POST /scoped/shared/orders/{item_id}")
