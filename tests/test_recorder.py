"""The Locust recorder plugin for real: Locust as a subprocess writing requests.csv, read back by bench.results.

Names with quotes and commas survive, a custom client without start_time gets a real start, requests still
waiting when the load stops are logged as UNFINISHED (not failures), and unreadable rows reach the summary.
"""

from __future__ import annotations

import json
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from bench.analysis.loadperiod import LoadPeriod
from bench.analysis.summary import summarize_app
from bench.render.terminal import render_summary
from bench.results.layout import AppFiles
from bench.results.locustfiles import read_locust_json
from bench.results.records import DbFigures
from bench.results.requestlog import UNFINISHED, read_requests
from bench.run.loadgen import LoadPlan, go_file, locust_child
from bench.run.processes import Child, wait_for_http

QUOTED = 'say "hi", twice'

CUSTOM_CLIENT = f"""
from locust import User, constant, task


class Custom(User):
    wait_time = constant(0.05)

    @task
    def fire(self):
        # A custom client that reports no start_time, as Locust allows.
        self.environment.events.request.fire(request_type="CUSTOM", name={QUOTED!r}, response_time=5.0,
                                             response_length=3, exception=None, context={{}})
        self.environment.events.request.fire(request_type='CUSTOM "x"', name="two\\nlines", response_time=1.0,
                                             response_length=0, exception=ValueError('bad "value",\\nnext'),
                                             context={{}})
"""

# An app that answers /ok and never answers anything else: every user's request is in flight at the stop.
HANGING_APP = """
import asyncio


async def app(scope, receive, send):
    if scope["path"] != "/ok":
        await asyncio.sleep(3600)
    await send({"type": "http.response.start", "status": 200, "headers": [(b"content-length", b"2")]})
    await send({"type": "http.response.body", "body": b"ok"})
"""

HANGING_USERS = """
from locust import FastHttpUser, HttpUser, constant, task


class Named(HttpUser):
    wait_time = constant(0)

    @task
    def hang(self):
        self.client.get("/ok")
        self.client.get("/hang/1", name="GET /hang/{id}")


class Unnamed(FastHttpUser):
    wait_time = constant(0)

    @task
    def hang(self):
        self.client.get("/hang?x=1")
"""


def _run_locust(folder: Path, locustfile: Path, host: str, users: int, duration_s: float, workers: int = 0) -> None:
    plan = LoadPlan(
        locustfile=locustfile, host=host, users=users, spawn_rate=100, duration_s=duration_s, workers=workers
    )
    locust = locust_child(plan, folder).start()
    go_file(folder).touch()
    deadline = time.monotonic() + 30 + duration_s
    try:
        while locust.exit_code() is None and time.monotonic() < deadline:
            time.sleep(0.1)
    finally:
        locust.stop(timeout=5)
    assert locust.exit_code() == 0, locust.log_tail(10)


def test_custom_client_names_and_missing_start_time_are_recorded_exactly(tmp_path: Path) -> None:
    locustfile = tmp_path / "custom.py"
    locustfile.write_text(CUSTOM_CLIENT)
    before = time.time()
    _run_locust(tmp_path / "app", locustfile, "http://127.0.0.1:9", users=1, duration_s=1)
    log = read_requests(tmp_path / "app")
    frame = log.frame
    assert log.unreadable == 0 and len(frame) >= 4
    assert set(frame["name"]) == {QUOTED, "two lines"}  # one row per line: a line break becomes a space
    assert set(frame["request_type"]) == {"CUSTOM", 'CUSTOM "x"'}
    assert set(frame.loc[frame["failed"] == 1, "error"]) == {'ValueError: bad "value", next'}
    # No start_time: the start is the response's arrival minus its response time, not the epoch.
    assert frame["start_epoch_s"].between(before, time.time()).all()
    figures = summarize_app(requests=frame, pool=None, db=DbFigures(), integrity=None, pool_capacity=5)
    assert 0 < figures["load_window_s"] < 30


@pytest.fixture
def hanging_app(tmp_path: Path) -> Iterator[str]:
    from bench.db.ports import free_port

    (tmp_path / "hangapp.py").write_text(HANGING_APP)
    port = free_port()
    child = Child(
        name="hanging app",
        log_path=tmp_path / "hangapp.log",
        argv=[
            sys.executable,
            "-m",
            "uvicorn",
            "hangapp:app",
            "--app-dir",
            str(tmp_path),
            "--lifespan",
            "off",
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
            "--log-level",
            "warning",
        ],
    ).start()
    base = f"http://127.0.0.1:{port}"
    try:
        wait_for_http(base + "/ok", child)
        yield base
    finally:
        child.stop()


@pytest.mark.parametrize("workers", [0, 2])
def test_requests_in_flight_at_the_stop_are_unfinished_with_their_age(
    tmp_path: Path, hanging_app: str, workers: int
) -> None:
    """One process, and a master with two workers: there the rows of the users the stop kills reach the master."""
    locustfile = tmp_path / "hanging.py"
    locustfile.write_text(HANGING_USERS)
    folder = tmp_path / "app"
    _run_locust(folder, locustfile, hanging_app, users=4, duration_s=2, workers=workers)
    exited = time.time()
    log = read_requests(folder)
    frame = log.frame
    assert len(log.files) == max(1, workers)
    waiting = frame[frame["request_type"] == UNFINISHED]
    # Every user was waiting when Locust stopped it: one row each, named as Locust would name the request.
    assert sorted(waiting["name"]) == ["/hang?x=1", "/hang?x=1", "GET /hang/{id}", "GET /hang/{id}"]
    # Each age runs from its request's start to the stop: all end together (one pass kills the users, far
    # quicker than any of them waited), after every answered request started and before Locust exited.
    ends = waiting["start_epoch_s"] + waiting["response_time_ms"] / 1000
    assert (waiting["response_time_ms"] > 0).all() and ends.max() <= exited
    assert ends.max() - ends.min() < waiting["response_time_ms"].min() / 1000
    assert ends.min() >= frame.loc[frame["request_type"] != UNFINISHED, "start_epoch_s"].max()
    assert waiting["error"].str.startswith("Unfinished: GET still waiting").all()
    stats = list(read_locust_json(folder).entries)
    assert sum(e["num_failures"] for e in stats) == 0  # Locust never saw them: not failures
    started = float(frame["start_epoch_s"].min())
    figures = summarize_app(
        requests=frame,
        pool=None,
        db=DbFigures(),
        integrity=None,
        pool_capacity=5,
        locust_stats=stats,
        period=LoadPeriod(started, started + 2),
    )
    assert figures["requests_unfinished"] == 4 and figures["failures"] == 0
    assert figures["requests_recorded"] == len(frame) - 4 == figures["endpoints"]["/ok"]["requests"]
    assert set(figures["endpoints"]) == {"/ok"}
    assert figures["throughput_rps"] == pytest.approx(figures["requests_recorded"] / 2, rel=1e-3)


def test_unreadable_rows_are_counted_in_the_summary_and_shown(tmp_path: Path) -> None:
    files = AppFiles(tmp_path / "bad")
    files.root.mkdir()
    files.request_log.write_text(
        "start_epoch_s,request_type,name,response_time_ms,response_length,failed,error\n"
        '100.0,"GET","GET /x",5.000,2,0,""\n'
        '100.1,"GET","GET /x",not-a-number,2,0,""\n'  # garbled
        '100.2,"GET","GET /x",6.000,2,0,""\n'
        '100.3,"GET","GET /x'  # torn: Locust killed mid-write
    )
    log = read_requests(files.root)
    assert log.unreadable == 2
    figures = summarize_app(
        requests=log.frame,
        pool=None,
        db=DbFigures(),
        integrity=None,
        pool_capacity=5,
        period=LoadPeriod(100.0, 101.0),
        unreadable=log.unreadable,
    )
    assert figures["requests_unreadable"] == 2 and figures["requests_recorded"] == 2
    text = render_summary({"apps": {"bad": figures}, "events": [], "checks": []}, tmp_path)
    assert any(line.split() == ["request", "log", "rows", "unreadable", "2"] for line in text.splitlines()), text
    json.dumps(figures)  # summary.json material
