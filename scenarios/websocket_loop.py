"""websocket-loop: every user keeps one websocket open and asks it for an item, pausing between messages.

A plain locustfile: `locust -f scenarios/websocket_loop.py --host http://127.0.0.1:8000` works without the harness.
"""

import random

from locust import constant, task
from ws_user import WebSocketUser

SEED_ITEMS = 1000


class ItemWatcher(WebSocketUser):
    path = "/ws/items"
    # Think time between messages: a socket that holds its session sits idle in transaction through it.
    wait_time = constant(0.5)

    @task
    def ask_for_item(self) -> None:
        self.round_trip(str(random.randint(1, SEED_ITEMS)))
