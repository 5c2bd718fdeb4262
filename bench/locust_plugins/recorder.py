"""Runs inside the Locust process (never imported by the harness): logs every request to a CSV file.

The harness adds this file to ``locust -f`` and reads the logs afterwards (bench.results.requestlog), so latency
percentiles are exact (Locust's own stats round to 10 ms above 100 ms). Requests still waiting for their
response when the load stops are logged too, as UNFINISHED rows with their age.

One process writes ``BENCH_REQUEST_LOG`` itself. A master with workers, on this machine or on others, gathers:
each worker sends its rows over Locust's own connection to the master (custom messages, in batches), and the
master writes one log per worker (``BENCH_WORKER_REQUEST_LOG``, ``{worker}`` being Locust's worker index) and
``BENCH_WORKERS_JSON``, which names each worker and says whether its last rows arrived. A remote worker needs
nothing but this file (``locust --worker -f -`` fetches it from the master): no shared disk, no environment.
"""

import functools
import itertools
import json
import os
import resource
import socket
import sys
import time
import urllib.parse

import gevent
from locust import events
from locust.clients import HttpSession
from locust.contrib.fasthttp import FastHttpSession
from locust.runners import STATE_MISSING, MasterRunner, WorkerRunner

HEADER = "start_epoch_s,request_type,name,response_time_ms,response_length,failed,error\n"
# request_type of a request that never got its response (bench/locust_plugins/pacer.py writes the same type).
UNFINISHED = "UNFINISHED"
# Worker to master: {"rows": CSV lines, "last": no more will come, "host", "pid"}. Master to workers: stop your
# users and send the rest (at the master's stop, before it tells them to quit, so that it can wait for them).
ROWS_MESSAGE = "scopebench_rows"
LAST_CALL_MESSAGE = "scopebench_last_call"
_BATCH_S = 0.5  # a worker sends what it logged this often: one message per batch, not per request

_path = os.environ.get("BENCH_REQUEST_LOG")
# The master's log per worker: the harness (bench.results.layout) names it, with "{worker}" to fill in.
_worker_path = os.environ.get("BENCH_WORKER_REQUEST_LOG")
_workers_json = os.environ.get("BENCH_WORKERS_JSON")
_go_file = os.environ.get("BENCH_GO_FILE")
# Workers the master waits for before the go (--processes N plus those on other hosts), then says so in a file.
_expect_workers = int(os.environ.get("BENCH_EXPECT_WORKERS") or 0)
_workers_ready = os.environ.get("BENCH_WORKERS_READY_FILE")
_join_timeout_s = float(os.environ.get("BENCH_WORKERS_TIMEOUT") or 120)
_last_timeout_s = float(os.environ.get("BENCH_LAST_ROWS_TIMEOUT") or 20)
# bench capacity's pacer accounts for the arrivals it scheduled (dropped, unfinished) itself.
_paced = bool(os.environ.get("BENCH_LOAD_STEPS"))
_file = None  # one process: its own log
_outbox = None  # a worker: rows on their way to the master
_gatherer = None  # a master: its workers' logs
_emit = None  # where a row goes: the log file's write, or the outbox's add
_in_flight = {}  # request id -> (start epoch s, method, name): requests sent and not yet answered
_ids = itertools.count()


class _Outbox:
    """A worker's rows not yet sent: a request costs a list append here, a batch one message to the master."""

    def __init__(self, runner):
        self.runner = runner
        self.rows = []
        self.closed = False  # the last batch went: the master has closed this worker's log
        self.identity = {"host": socket.gethostname(), "pid": os.getpid()}

    def add(self, row):
        if not self.closed:
            self.rows.append(row)

    def send(self, last=False):
        if self.closed or not (self.rows or last):
            return
        batch, self.rows = self.rows, []  # swapped first: a send may yield, and rows logged meanwhile stay
        try:
            self.runner.send_message(ROWS_MESSAGE, {"rows": "".join(batch), "last": last, **self.identity})
        except Exception as err:  # noqa: BLE001 - Locust's RPCError: the connection is down, kept for the next try
            self.rows[:0] = batch
            sys.stderr.write(f"scopebench: could not send {len(batch)} request rows to the master: {err}\n")
            return
        self.closed = last

    def forever(self):
        while not self.closed:
            gevent.sleep(_BATCH_S)
            self.send()


class _WorkerLog:
    """One worker's rows as the master writes them, and who sent them."""

    def __init__(self, index, node_id, data):
        self.index, self.node_id = index, node_id
        self.host, self.pid = data.get("host"), data.get("pid")
        path = _worker_path.replace("{worker}", str(index))
        self.name = os.path.basename(path)
        self.file = open(path, "w", buffering=1 << 16, encoding="utf-8")  # noqa: SIM115 - closed at quitting
        self.file.write(HEADER)
        self.rows = 0
        self.last = False

    def to_json(self):
        return {
            "index": self.index,
            "id": self.node_id,
            "host": self.host,
            "pid": self.pid,
            "log": self.name,
            "rows": self.rows,
            "complete": self.last,
        }


class _Gatherer:
    """The master's side: each worker's rows go to that worker's own log as its batches arrive."""

    def __init__(self, runner):
        self.runner = runner
        self.logs = {}  # node id -> _WorkerLog
        self.asked = []  # node ids of the workers asked for their last rows
        self.closed = False

    def on_rows(self, environment, msg, **_kwargs):
        log = self.logs.get(msg.node_id)
        if log is None:
            log = self.logs[msg.node_id] = _WorkerLog(self.runner.get_worker_index(msg.node_id), msg.node_id, msg.data)
        if log.file.closed:
            return
        rows = msg.data["rows"]
        log.file.write(rows)
        log.rows += rows.count("\n")
        log.last = log.last or bool(msg.data.get("last"))

    def last_call(self, environment, **_kwargs):
        """At the master's test_stop: Locust tells its workers to quit next and gives them half a second for
        their final stats; the rows of a busy worker, or of one far away, can take longer. They are waited for.
        Not after a SIGTERM: Locust then fires quitting (the logs are closed) before it stops the test."""
        if self.closed:
            return
        self.asked = [c.id for c in self.runner.clients.all if c.state != STATE_MISSING]
        if not self.asked:
            return
        self.runner.send_message(LAST_CALL_MESSAGE)
        deadline = time.monotonic() + _last_timeout_s
        while not all(self._done(node) for node in self.asked) and time.monotonic() < deadline:
            gevent.sleep(0.02)

    def _done(self, node_id):
        log = self.logs.get(node_id)
        return log is not None and log.last

    def flush_forever(self):
        while True:
            gevent.sleep(0.5)
            for log in list(self.logs.values()):
                if not log.file.closed:
                    log.file.flush()

    def close(self):
        self.closed = True
        for log in self.logs.values():
            if not log.file.closed:
                log.file.close()
        workers = [log.to_json() for log in sorted(self.logs.values(), key=lambda log: log.index)]
        for node_id in self.asked:
            if node_id not in self.logs:  # joined, was asked, never answered: nothing of it is in any log
                workers.append(
                    {
                        "index": self.runner.get_worker_index(node_id),
                        "id": node_id,
                        "host": node_id.rsplit("_", 1)[0],
                        "pid": None,
                        "log": None,
                        "rows": 0,
                        "complete": False,
                    }
                )
        for worker in workers:
            if not worker["complete"]:
                sys.stderr.write(
                    f"scopebench: Locust worker {worker['id']} sent no last rows within "
                    f"{_last_timeout_s:g}s; its requests at the end of the load are missing\n"
                )
        if _workers_json:
            with open(_workers_json, "w", encoding="utf-8") as handle:
                json.dump({"workers": workers}, handle, indent=1)


def _wait_for_go():
    # The harness starts Locust while the app is still starting (Locust's import time then overlaps
    # the app's); load begins only once the harness has seen the app healthy and the collector running.
    deadline = time.monotonic() + float(os.environ.get("BENCH_GO_TIMEOUT", "60"))
    while not os.path.exists(_go_file):
        if time.monotonic() > deadline:
            sys.stderr.write("scopebench: the harness never said go; exiting\n")
            sys.exit(3)
        gevent.sleep(0.01)


def _wait_for_workers(runner):
    # Locust's own --expect-workers is --processes when both are given: workers from other hosts are counted here.
    deadline = time.monotonic() + _join_timeout_s
    while len(runner.clients.ready) < _expect_workers:
        if time.monotonic() > deadline:
            sys.stderr.write(
                f"scopebench: {len(runner.clients.ready)} of {_expect_workers} Locust workers joined "
                f"within {_join_timeout_s:g}s; exiting\n"
            )
            sys.exit(3)
        gevent.sleep(0.05)
    if _workers_ready:
        with open(_workers_ready, "w", encoding="utf-8") as handle:
            handle.write(f"{len(runner.clients.ready)}\n")


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
    if _emit is None:
        return
    _emit(f"{start:.6f},{_text(request_type)},{_text(name)},{response_time_ms:.3f},{length},{failed},{_text(error)}\n")


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
    _write(
        start,
        UNFINISHED,
        name,
        (now - start) * 1000,
        0,
        1,
        f"Unfinished: {method} still waiting for its response when the load stopped",
    )


def _all_unfinished():
    now = time.time()
    for key in list(_in_flight):
        _unfinished(key, now)


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


def _track_requests():
    if not _paced:
        HttpSession.request = _tracked(HttpSession.request)
        FastHttpSession.request = _tracked(FastHttpSession.request)


def _on_last_call(environment, **_kwargs):
    # As Locust's own "stop" message does: the users are killed (each logs the request it waited for), then
    # what is still waiting can no longer be answered by a user, and the rest goes to the master as the last.
    environment.runner.stop()
    _all_unfinished()
    _outbox.send(last=True)


def _start_master(environment):
    global _gatherer
    if not _worker_path:  # a master of the user's own, outside the harness: workers' rows have nowhere to go
        environment.runner.register_message(ROWS_MESSAGE, lambda **_kwargs: None)
        return
    _gatherer = _Gatherer(environment.runner)
    environment.runner.register_message(ROWS_MESSAGE, _gatherer.on_rows)
    environment.events.test_stop.add_listener(_gatherer.last_call)
    gevent.spawn(_gatherer.flush_forever)


def _start_worker(environment):
    # No wait for the go here: the master holds the load until then, and rows must have somewhere to go as
    # soon as it sends users.
    global _outbox, _emit
    _outbox = _Outbox(environment.runner)
    _emit = _outbox.add
    environment.runner.register_message(LAST_CALL_MESSAGE, _on_last_call)
    environment.events.test_stop.add_listener(lambda **_kwargs: _outbox.send())
    gevent.spawn(_outbox.forever)
    _track_requests()


@events.init.add_listener
def _on_init(environment, **_kwargs):
    global _file, _emit
    _raise_fd_limit()
    runner = environment.runner
    if isinstance(runner, WorkerRunner):
        _start_worker(environment)
        return
    if isinstance(runner, MasterRunner):  # a master sends no requests; it gathers its workers'
        _start_master(environment)
        _wait_for_workers(runner)
    if _go_file:
        _wait_for_go()
    if _path and not isinstance(runner, MasterRunner):
        _file = open(_path, "w", buffering=1 << 16, encoding="utf-8")  # noqa: SIM115 - closed at quitting
        _file.write(HEADER)
        _emit = _file.write
        gevent.spawn(_flush_forever)
        _track_requests()


@events.request.add_listener
def _on_request(request_type, name, response_time, response_length, exception=None, start_time=None, **_kwargs):
    response_time = float(response_time or 0)
    if start_time is None:  # a custom client that does not say: it fires when the response is in
        start_time = time.time() - response_time / 1000
    error = "" if exception is None else type(exception).__name__ + ": " + str(exception)[:200]
    _write(
        float(start_time),
        request_type,
        name,
        response_time,
        int(response_length or 0),
        0 if exception is None else 1,
        error,
    )


@events.quitting.add_listener
def _on_quitting(environment, **_kwargs):
    # The stop killed every user (each logged its waiting request); what is left waits for a response that
    # can no longer come. Not at test_stop: with a --stop-timeout a request may still end, and be logged twice.
    global _emit
    _all_unfinished()
    if _outbox is not None:
        _outbox.send(last=True)  # a worker quit without the master's last call: what it has, if it can
    if _gatherer is not None:
        _gatherer.close()
    if _file is not None and not _file.closed:
        _emit = None
        _file.flush()
        _file.close()
