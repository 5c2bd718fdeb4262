"""`bench run streaming-session` for real, and FastAPI's teardown of a ``yield`` dependency around one stream.

Bad's request session stays checked out, idle in transaction, until the last token has been sent, so its pool
caps the streams in flight; good's stream holds no connection between tokens.
"""

# What we measured (FastAPI 0.165, Starlette 1.10, SQLAlchemy 2.1.9, asyncpg 0.32, PostgreSQL 18.6, 2 cores):
# a request-scoped yield dependency exits after the response's last chunk, so a session the endpoint used
# before returning its StreamingResponse holds the connection for the whole stream (FastAPI's own
# EventSourceResponse too); scope="function" exits before the stream. 17 runs of 8 s at the catalog's load
# (30 users, 1 s streams, pool 5) on 2 cores shared with other work, 7 of them with a core kept busy:
# bad 30-35 streams (3.8-4.4/s, 83-99% of the pool's ceiling), connection time per stream 1025-1143 ms,
# pool wait p95 5.2-8.0 s, idle in tx past 50 ms 36-38 conn-s, oldest 1.01-1.24 s; good 173-210 streams
# (22-26/s), connection time per stream 16-57 ms, hold p95 21-66 ms, wait p95 28-300 ms, idle in tx past
# 50 ms 0-0.5 conn-s, oldest at most 0.07 s; no failures, timeouts or lost writes in either.

from __future__ import annotations

import asyncio
import json
import time
from pathlib import Path
from typing import Any

import asyncpg
import pytest

from bench.db import server as postgres
from target_apps.bad.streaming_session import TOKENS
from tests.conftest import run_bench, seed, start_app

pytestmark = pytest.mark.e2e

ROUTE = "POST /orders/{item_id}/chat"


@pytest.fixture(scope="module")
def summary(tmp_path_factory: pytest.TempPathFactory, pg_home: Path) -> dict[str, Any]:
    out = tmp_path_factory.mktemp("run") / "streaming-session"
    result, summary = run_bench("streaming-session", out, pg_home, duration_s="8s", cooldown_s="2s")
    assert result.exit_code == 0, (result.error, [c for c in summary["checks"] if not c["passed"]])
    return summary


def _stream_ms(summary: dict[str, Any]) -> float:
    return float(TOKENS * summary["config"]["upstream_latency_ms"])


def test_bad_holds_a_connection_for_each_whole_stream(summary: dict[str, Any]) -> None:
    stream_ms = _stream_ms(summary)
    good, bad = (summary["apps"][app]["pool"] for app in ("good", "bad"))
    # Connection time per answered stream: from the read before the first token to the dependency's close
    # after the last one. Not the hold's median: the users still queued when Locust stops are served after
    # it, and their streams, cut at once by the hang-up, add about as many short holds as an 8 s run has
    # whole ones.
    assert bad["hold_ms_per_request"] >= 0.95 * stream_ms
    assert summary["apps"]["bad"]["endpoints"][ROUTE]["pool_hold_ms"]["p95"] >= stream_ms
    # Good: a read before the stream and a write after it, a few ms each however long the stream.
    assert good["hold_ms"]["p95"] <= 0.2 * stream_ms
    assert bad["hold_ms_per_request"] >= 10 * good["hold_ms_per_request"]


def test_bad_caps_the_streams_at_the_pool_size(summary: dict[str, Any]) -> None:
    good, bad = (summary["apps"][app] for app in ("good", "bad"))
    stream_ms = _stream_ms(summary)
    # Little's law: 5 connections, each held for a whole stream, serve at most 5 streams per stream length,
    # and bad is held at that ceiling.
    assert bad["throughput_rps"] <= bad["pool"]["capacity"] * 1000 / stream_ms
    assert bad["pool"]["ceiling_utilisation"] >= 0.75
    # The other users queue for a connection behind whole streams; good's barely queue.
    assert bad["pool"]["wait_ms"]["p95"] >= 2 * stream_ms
    assert good["pool"]["wait_ms"]["p95"] < stream_ms
    assert good["throughput_rps"] >= 0.5 * summary["config"]["users"] * 1000 / stream_ms
    assert good["throughput_rps"] >= 3 * bad["throughput_rps"]
    for figures in (good, bad):
        # Slow, not broken: no checkout waits past the 30 s timeout, every stream ends with its order written.
        assert figures["failures"] == 0 and figures["pool"]["timeouts"] == 0
        assert figures["integrity"]["lost_writes"] == 0 and figures["integrity"]["acknowledged_writes"] > 0


def test_bad_sits_idle_in_transaction_between_tokens(summary: dict[str, Any]) -> None:
    stream_s = _stream_ms(summary) / 1000
    good, bad = (summary["apps"][app]["db"] for app in ("good", "bad"))
    assert bad["idle_in_tx_oldest_s"] >= 0.9 * stream_s
    assert good["idle_in_tx_oldest_s"] < 0.5 * stream_s
    # The whole pool, idle in transaction for most of the load.
    pool_size, duration_s = summary["config"]["pool_size"], summary["config"]["duration_s"]
    assert bad["idle_in_tx_long_seconds"] >= 0.6 * pool_size * duration_s
    assert bad["idle_in_tx_long_seconds"] >= 10 * max(good["idle_in_tx_long_seconds"], 0.1)


@pytest.mark.parametrize("variant", ["bad", "good"])
def test_the_request_session_closes_after_the_last_chunk(pg_server: postgres.Server, database: str,
                                                         tmp_path: Path, variant: str) -> None:
    # One stream of 20 tokens 100 ms apart, watched from the database halfway through and after it ends.
    seed(pg_server, database)
    child, base = start_app(pg_server, database, tmp_path, variant=variant, BENCH_APP_UPSTREAM_MS="100")
    try:
        body, mid, after = asyncio.run(_watch_one_stream(pg_server.dsn(database), int(base.rsplit(":", 1)[1]),
                                                         f"scopebench-{variant}"))
    finally:
        child.stop()
    events = body.split("\n\n")
    assert len([e for e in events if e.startswith("data: ")]) == TOKENS
    assert json.loads(events[TOKENS].removeprefix("event: done\ndata: "))["order_id"] > 0
    if variant == "bad":
        # Still in the transaction the read began, a token's worth of sleeps after it at the least.
        assert [state for state, _ in mid] == ["idle in transaction"] and mid[0][1] >= 0.4
    else:
        assert [state for state, _ in mid if state != "idle"] == []
    assert [state for state, _ in after if state != "idle"] == []


async def _watch_one_stream(dsn: str, port: int, app_name: str) -> tuple[str, list[Any], list[Any]]:
    probe = await asyncpg.connect(dsn)
    query = ("SELECT state, extract(epoch FROM now() - xact_start) FROM pg_stat_activity "
             "WHERE application_name = $1")
    try:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        writer.write(b"POST /orders/1/chat HTTP/1.1\r\nHost: t\r\nContent-Length: 0\r\nConnection: close\r\n\r\n")
        raw, mid = b"", None
        while piece := await reader.read(65536):
            raw += piece
            if mid is None and raw.count(b"data: ") >= 5:
                mid = [(r[0], float(r[1] or 0)) for r in await probe.fetch(query, app_name)]
        writer.close()
        # The teardown runs after the last chunk is sent: give it a moment to finish its close.
        deadline = time.monotonic() + 5
        while True:
            after = [(r[0], float(r[1] or 0)) for r in await probe.fetch(query, app_name)]
            if all(state == "idle" for state, _ in after) or time.monotonic() > deadline:
                break
            await asyncio.sleep(0.05)
    finally:
        await probe.close()
    head, _, chunked = raw.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 200"), head
    return _unchunk(chunked).decode(), mid or [], after


def _unchunk(data: bytes) -> bytes:
    body = b""
    while data:
        size_line, _, data = data.partition(b"\r\n")
        size = int(size_line, 16)
        if size == 0:
            break
        body, data = body + data[:size], data[size + 2:]
    return body
