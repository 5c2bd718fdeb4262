"""scoped-session: shoppers place orders on two routes whose sessions come from an ``async_scoped_session``.

A plain locustfile: `locust -f scenarios/scoped_session.py --host http://127.0.0.1:8000` works without the harness.
"""

import random

from locust import FastHttpUser, constant_pacing, task

SEED_ITEMS = 1000


def _item() -> int:
    return random.randint(1, SEED_ITEMS)


class Shopper(FastHttpUser):
    """Most of the load: orders on the route whose registry the bad app shares between requests."""

    # Paced, not flat out: the bad app fails most requests in a millisecond, and unpaced users would turn
    # them into thousands of logged tracebacks a second. About 90 req/s also leaves the good app CPU to
    # spare on 2 cores: a saturated app queues at the pool and nears the 2 s checkout timeout for no fault
    # of its scoping.
    wait_time = constant_pacing(0.2)

    @task
    def shared_order(self) -> None:
        self.client.post(f"/scoped/shared/orders/{_item()}", name="POST /scoped/shared/orders/{item_id}")


class SlowShopper(FastHttpUser):
    """Two users, four orders a second: the bad app's forgotten remove() leaks a pool of 5 dry in about
    a second, after the shared session has had connections to fight over, and then everything waits."""

    fixed_count = 2
    wait_time = constant_pacing(0.5)

    @task
    def order(self) -> None:
        self.client.post(f"/scoped/orders/{_item()}", name="POST /scoped/orders/{item_id}")
