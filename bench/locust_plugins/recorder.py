"""Runs inside the Locust process (never imported by the harness): logs every request to a CSV file.

The harness adds this file to ``locust -f`` and reads ``BENCH_REQUEST_LOG`` afterwards, so latency
percentiles are exact (Locust's own stats round to 10 ms above 100 ms).
"""

import os
import resource
import sys
import time

import gevent
from locust import events

HEADER = "start_epoch_s,request_type,name,response_time_ms,response_length,failed,error\n"

_path = os.environ.get("BENCH_REQUEST_LOG")
# A worker process's own log: the harness (bench.results.layout) names it, with "{pid}" to fill in.
_worker_path = os.environ.get("BENCH_WORKER_REQUEST_LOG")
_go_file = os.environ.get("BENCH_GO_FILE")
_file = None


def _wait_for_go() -> None:
    # The harness starts Locust while the app is still starting (Locust's import time then overlaps
    # the app's); load begins only once the harness has seen the app healthy and the collector running.
    deadline = time.monotonic() + float(os.environ.get("BENCH_GO_TIMEOUT", "60"))
    while not os.path.exists(_go_file):
        if time.monotonic() > deadline:
            sys.stderr.write("scopebench: the harness never said go; exiting\n")
            sys.exit(3)
        gevent.sleep(0.01)


def _raise_fd_limit() -> None:
    # Websocket users hold several descriptors each; the default soft limit of 1024 runs out first.
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < hard:
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))


def _flush_forever() -> None:
    while _file is not None and not _file.closed:
        _file.flush()
        gevent.sleep(0.5)


@events.init.add_listener
def _on_init(environment, **_kwargs):
    global _file
    _raise_fd_limit()
    if _go_file:
        _wait_for_go()
    role = type(environment.runner).__name__ if environment.runner is not None else ""
    path = _path if role != "WorkerRunner" else _worker_path and _worker_path.replace("{pid}", str(os.getpid()))
    if path and role != "MasterRunner":  # a master sends no requests; its workers log their own
        _file = open(path, "w", buffering=1 << 16, encoding="utf-8")
        _file.write(HEADER)
        gevent.spawn(_flush_forever)


@events.request.add_listener
def _on_request(request_type, name, response_time, response_length, exception=None, start_time=None, **_kwargs):
    if _file is None or _file.closed:
        return
    error = "" if exception is None else type(exception).__name__ + ": " + str(exception).replace("\n", " ")[:200]
    error = error.replace('"', "'")
    _file.write(
        f'{start_time or 0:.6f},{request_type},"{name}",{response_time or 0:.3f},'
        f'{response_length or 0},{0 if exception is None else 1},"{error}"\n'
    )


@events.quitting.add_listener
def _on_quitting(environment, **_kwargs):
    if _file is not None and not _file.closed:
        _file.flush()
        _file.close()
