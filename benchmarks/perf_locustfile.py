"""Locust users for ``harness_perf``: a trivial route with each client, and the target app's read route.

Runs only inside Locust (``locust -f benchmarks/perf_locustfile.py TrivialFastUser ...``); never imported.
"""

import random

from locust import FastHttpUser, HttpUser, constant, task

SEED_ITEMS = 1000


class TrivialHttpUser(HttpUser):
    # No think time, like the scenarios: a closed model pressing as hard as the client allows.
    wait_time = constant(0)

    @task
    def index(self) -> None:
        self.client.get("/", name="/")


class TrivialFastUser(FastHttpUser):
    wait_time = constant(0)

    @task
    def index(self) -> None:
        self.client.get("/", name="/")


class ItemsFastUser(FastHttpUser):
    wait_time = constant(0)

    @task
    def read_item(self) -> None:
        self.client.get(f"/items/{random.randint(1, SEED_ITEMS)}", name="/items/{item_id}")
