"""streaming-session: every user asks an assistant about an item and reads its whole token stream (server-sent events).

A plain locustfile: `locust -f scenarios/streaming_session.py --host http://127.0.0.1:8000` works without the harness.
"""

import random

from locust import FastHttpUser, constant, task

SEED_ITEMS = 1000
# The last event: the order the stream recorded. A stream cut short never sends it.
DONE = b"event: done\n"


class Chatter(FastHttpUser):
    # No think time: the next question as soon as the last answer has finished streaming (a closed model).
    wait_time = constant(0)

    @task
    def chat(self) -> None:
        item_id = random.randint(1, SEED_ITEMS)
        # The response time covers the whole stream: the client reads every event before it returns.
        with self.client.post(f"/orders/{item_id}/chat", name="POST /orders/{item_id}/chat",
                              catch_response=True) as response:
            if response.status_code == 200 and DONE not in (response.content or b""):
                response.failure("stream ended before its done event")
