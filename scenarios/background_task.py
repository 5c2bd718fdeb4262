"""background-task: every user accepts about an order a second; the order is priced and charged in a background task.

A plain locustfile: `locust -f scenarios/background_task.py --host http://127.0.0.1:8000` works without the harness.
"""

import itertools
import random

from locust import FastHttpUser, between, task

SEED_ITEMS = 1000
# Every fifth order sent (counted across all users) names an item no longer in the catalog (id > SEED_ITEMS):
# the write that must fail, in the same share of requests against either app.
UNKNOWN_EVERY = 5
_orders = itertools.count(1)


class Shopper(FastHttpUser):
    # About one order a second, not flat out: the bad app answers before its task has run, so an unpaced
    # user would pile up background tasks without bound. A random wait keeps users out of step.
    wait_time = between(0.5, 1.5)

    @task
    def accept(self) -> None:
        item_id = random.randint(1, SEED_ITEMS)
        if next(_orders) % UNKNOWN_EVERY == 0:
            item_id += SEED_ITEMS
        self.client.post(f"/orders/{item_id}/accept", name="POST /orders/{item_id}/accept")
