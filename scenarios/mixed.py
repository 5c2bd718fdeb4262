"""mixed: realistic traffic over the scenario routes, mostly innocent reads, for capacity planning.

A plain locustfile: `locust -f scenarios/mixed.py --host http://127.0.0.1:8000` works without the harness.
The read route is identical in both apps; in the bad app it slows down because the culprits hold the pool.
"""

import random

from locust import FastHttpUser, between, task

SEED_ITEMS = 1000


def _item() -> int:
    return random.randint(1, SEED_ITEMS)


class Shopper(FastHttpUser):
    # Think time between actions, as real users have: the offered load stays well under what the good
    # app serves on two cores, so whatever slows the bad app is its scoping, not the CPU.
    wait_time = between(0.1, 0.3)

    @task(12)
    def browse(self) -> None:
        self.client.get(f"/items/{_item()}", name="GET /items/{item_id}")

    @task(3)
    def checkout(self) -> None:  # long-session
        self.client.post(f"/orders/{_item()}/checkout", name="POST /orders/{item_id}/checkout")

    @task(2)
    def accept(self) -> None:  # background-task (only valid items: every write can succeed)
        self.client.post(f"/orders/{_item()}/accept", name="POST /orders/{item_id}/accept")

    @task(1)
    def price(self) -> None:  # unclosed-session
        self.client.get(f"/items/{_item()}/price", name="GET /items/{item_id}/price")

    @task(1)
    def repeat(self) -> None:  # use-after-close
        self.client.post(f"/orders/{_item()}/repeat", name="POST /orders/{item_id}/repeat")
