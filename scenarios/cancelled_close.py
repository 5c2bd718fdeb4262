"""cancelled-close: every user starts a streamed CSV export, reads its first chunk and hangs up.

A plain locustfile: `locust -f scenarios/cancelled_close.py --host http://127.0.0.1:8000` works without the harness.
"""

import time
from http.client import HTTPConnection, HTTPException
from urllib.parse import urlsplit

from locust import User, constant, task

PATH = "/exports/items"


class ImpatientExporter(User):
    # A short pause, so connections churn at a steady rate rather than as fast as the CPU allows.
    wait_time = constant(0.05)

    @task
    def export_then_leave(self) -> None:
        started, clock = time.time(), time.perf_counter()
        length, error = 0, None
        try:
            length = self._first_chunk()
        except (OSError, HTTPException) as err:
            error = err
        self.environment.events.request.fire(
            request_type="GET", name=f"GET {PATH}", start_time=started,
            response_time=(time.perf_counter() - clock) * 1000, response_length=length,
            exception=error, context={},
        )

    def _first_chunk(self) -> int:
        # A raw connection rather than Locust's pooled clients: the point is to close the socket
        # mid-stream, which makes Starlette cancel the response while its session is open.
        url = urlsplit(self.host)
        conn = HTTPConnection(url.hostname or "127.0.0.1", url.port or 80, timeout=10)
        try:
            conn.request("GET", PATH)
            response = conn.getresponse()
            if response.status != 200:
                raise HTTPException(f"status {response.status}")
            chunk = response.read1()
            if not chunk:
                raise HTTPException("stream ended before its first chunk")
            return len(chunk)
        finally:
            conn.close()
