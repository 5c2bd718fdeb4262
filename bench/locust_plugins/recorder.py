"""Runs inside the Locust process (never imported by the harness): logs every request to a CSV file.

The harness adds this file to ``locust -f`` and reads ``BENCH_REQUEST_LOG`` afterwards (bench.results.requestlog),
so latency percentiles are exact (Locust's own stats round to 10 ms above 100 ms). Requests still waiting for
their response when the load stops are logged too, as UNFINISHED rows with their age.
"""

import functools
import itertools
import os
import resource
import sys
import time
import urllib.parse

import gevent
from locust import events
from locust.clients import HttpSession
from locust.contrib.fasthttp import FastHttpSession

HEADER = "start_epoch_s,request_type,name,response_time_ms,response_length,failed,error\n"
# request_type of a request that never got its response (bench/locust_plugins/pacer.py writes the same type).
UNFINISHED = "UNFINISHED"

_path = os.environ.get("BENCH_REQUEST_LOG")
# A worker process's own log: the harness (bench.results.layout) names it, with "{pid}" to fill in.
_worker_path = os.environ.get("BENCH_WORKER_REQUEST_LOG")
_go_file = os.environ.get("BENCH_GO_FILE")
# bench capacity's pacer accounts for the arrivals it scheduled (dropped, unfinished) itself.
_paced = bool(os.environ.get("BENCH_LOAD_STEPS"))
_file = None
_in_flight = {}  # request id -> (start epoch s, method, name): requests sent and not yet answered
_ids = itertools.count()


def _wait_for_go():
    # The harness starts Locust while the app is still starting (Locust's import time then overlaps
    # the app's); load begins only once the harness has seen the app healthy and the collector running.
    deadline = time.monotonic() + float(os.environ.get("BENCH_GO_TIMEOUT", "60"))
    while not os.path.exists(_go_file):
        if time.monotonic() > deadline:
            sys.stderr.write("scopebench: the harness never said go; exiting\n")
            sys.exit(3)
        gevent.sleep(0.01)


def _raise_fd_limit():
    # Websocket users hold several descriptors each; the default soft limit of 1024 runs out first.
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < hard:
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))


def _flush_forever():
    while _file is not None and not _file.closed:
        _file.flush()
        gevent.sleep(0.5)


def _text(value):
    # RFC 4180 quoting, so a quote or a comma in a name stays inside its field; no line breaks, so every row
    # is one line (the reader cuts a torn last line off, the harness's live tail counts lines).
    return '"' + str(value).replace("\r", " ").replace("\n", " ").replace('"', '""') + '"'


def _write(start, request_type, name, response_time_ms, length, failed, error):
    if _file is None or _file.closed:
        return
    _file.write(f"{start:.6f},{_text(request_type)},{_text(name)},{response_time_ms:.3f},"
                f"{length},{failed},{_text(error)}\n")


def _request_name(session, url, name):
    if name or getattr(session, "request_name", None):
        return name or session.request_name
    parts = urllib.parse.urlsplit(str(url))  # Locust names an unnamed request by its path and query
    return (parts.path or "/") + (f"?{parts.query}" if parts.query else "") if parts.scheme else str(url)


def _unfinished(key, now):
    # Popped once: the quitting handler and the killed user's own handler may both reach the same request,
    # and a KeyError raised inside a dying greenlet would leave Locust unable to stop.
    entry = _in_flight.pop(key, None)
    if entry is None:
        return
    start, method, name = entry
    _write(start, UNFINISHED, name, (now - start) * 1000, 0, 1,
           f"Unfinished: {method} still waiting for its response when the load stopped")


def _tracked(request):
    """Wraps a Locust HTTP client's ``request``: Locust stops a user by killing its greenlet, and a request
    killed while it waits never reports; this logs it as UNFINISHED instead of losing it."""

    @functools.wraps(request)
    def tracked(session, method, url, name=None, *args, **kwargs):
        key = next(_ids)
        _in_flight[key] = (time.time(), str(method).upper(), _request_name(session, url, name))
        try:
            return request(session, method, url, name, *args, **kwargs)
        except gevent.GreenletExit:
            _unfinished(key, time.time())
            raise
        finally:
            _in_flight.pop(key, None)

    return tracked


@events.init.add_listener
def _on_init(environment, **_kwargs):
    global _file
    _raise_fd_limit()
    if _go_file:
        _wait_for_go()
    role = type(environment.runner).__name__ if environment.runner is not None else ""
    path = _path if role != "WorkerRunner" else _worker_path and _worker_path.replace("{pid}", str(os.getpid()))
    if path and role != "MasterRunner":  # a master sends no requests; its workers log their own
        _file = open(path, "w", buffering=1 << 16, encoding="utf-8")  # noqa: SIM115 - closed at quitting
        _file.write(HEADER)
        gevent.spawn(_flush_forever)
        if not _paced:
            HttpSession.request = _tracked(HttpSession.request)
            FastHttpSession.request = _tracked(FastHttpSession.request)


@events.request.add_listener
def _on_request(request_type, name, response_time, response_length, exception=None, start_time=None, **_kwargs):
    response_time = float(response_time or 0)
    if start_time is None:  # a custom client that does not say: it fires when the response is in
        start_time = time.time() - response_time / 1000
    error = "" if exception is None else type(exception).__name__ + ": " + str(exception)[:200]
    _write(float(start_time), request_type, name, response_time, int(response_length or 0),
           0 if exception is None else 1, error)


@events.quitting.add_listener
def _on_quitting(environment, **_kwargs):
    # The stop killed every user (each logged its waiting request); what is left waits for a response that
    # can no longer come. Not at test_stop: with a --stop-timeout a request may still end, and be logged twice.
    now = time.time()
    for key in list(_in_flight):
        _unfinished(key, now)
    if _file is not None and not _file.closed:
        _file.flush()
        _file.close()
