"""Tests for bench.db.server: DSNs parsed, redacted and rewritten for SQLAlchemy, the user's own server
(--dsn), and per-run databases, against the test session's real embedded PostgreSQL. The DSN forms --dsn
accepts and refuses are tests/test_dsn.py's table.
"""

from __future__ import annotations

import asyncio
import socket
import time

import asyncpg  # type: ignore[import-untyped]
import pytest
from sqlalchemy.ext.asyncio import create_async_engine
from sqlalchemy.pool import NullPool

from bench.db.server import (
    PostgresError,
    Server,
    connect_external,
    create_database,
    drop_database,
    parse_dsn,
    redact,
    sqlalchemy_url,
)
from tests.conftest import database_names


def test_create_and_drop_database_roundtrip(pg_server: Server) -> None:
    asyncio.run(create_database(pg_server, "scopebench_roundtrip"))
    assert "scopebench_roundtrip" in database_names(pg_server)
    asyncio.run(drop_database(pg_server, "scopebench_roundtrip"))
    asyncio.run(drop_database(pg_server, "scopebench_roundtrip"))  # IF EXISTS: a second drop is fine
    assert "scopebench_roundtrip" not in database_names(pg_server)


@pytest.mark.parametrize("name", ["Bad", "x;drop", "", "1abc", "a" * 64, 'q"uote'])
def test_unsafe_database_names_are_refused(pg_server: Server, name: str) -> None:
    with pytest.raises(PostgresError, match="invalid database name"):
        asyncio.run(create_database(pg_server, name))


def test_connect_external_refused_is_fast_and_names_the_address() -> None:
    began = time.monotonic()
    with pytest.raises(PostgresError) as caught:
        asyncio.run(connect_external("postgresql://bench:s3cr3t-pw@127.0.0.1:1/postgres"))
    assert time.monotonic() - began < 10
    message = str(caught.value)
    assert message == "cannot reach PostgreSQL at 127.0.0.1:1: connection refused; check --dsn / BENCH_DSN"
    assert "s3cr3t-pw" not in message and "\n" not in message


def test_connect_external_timeout_never_echoes_the_password() -> None:
    with socket.socket() as silent:  # accepts TCP but never speaks: the client must give up on its own
        silent.bind(("127.0.0.1", 0))
        silent.listen(1)
        port = silent.getsockname()[1]
        began = time.monotonic()
        with pytest.raises(PostgresError) as caught:
            asyncio.run(connect_external(f"postgresql://bench:s3cr3t-pw@127.0.0.1:{port}/db", timeout=1.0))
    assert time.monotonic() - began < 5
    assert f"127.0.0.1:{port}" in str(caught.value) and "timeout" in str(caught.value)
    assert "s3cr3t-pw" not in str(caught.value)


def test_connect_external_dns_failure_is_one_line() -> None:
    with pytest.raises(PostgresError, match=r"DNS lookup of 'no-such-host\.invalid' failed") as caught:
        asyncio.run(connect_external("postgresql://u:s3cr3t-pw@no-such-host.invalid:5432/db"))
    assert "s3cr3t-pw" not in str(caught.value)


def test_connect_external_accepts_a_superuser(pg_server: Server) -> None:
    server = asyncio.run(connect_external(pg_server.dsn("postgres")))
    assert (server.host, server.port, server.user) == ("127.0.0.1", pg_server.port, "postgres")
    assert not server.embedded and server.version.startswith("PostgreSQL 18")


def test_connect_external_refuses_a_user_without_createdb(pg_server: Server) -> None:
    async def make_role() -> None:
        conn = await asyncpg.connect(pg_server.dsn("postgres"))
        await conn.execute("DROP ROLE IF EXISTS limited; CREATE ROLE limited LOGIN")
        await conn.close()

    asyncio.run(make_role())
    with pytest.raises(PostgresError, match="user 'limited' .* may not create databases; run ALTER ROLE"):
        asyncio.run(connect_external(f"postgresql://limited:s3cr3t-pw@127.0.0.1:{pg_server.port}/postgres"))


def test_connect_external_unknown_role_names_it(pg_server: Server) -> None:
    with pytest.raises(PostgresError, match="nosuchrole") as caught:
        asyncio.run(connect_external(f"postgresql://nosuchrole:s3cr3t-pw@127.0.0.1:{pg_server.port}/postgres"))
    assert "s3cr3t-pw" not in str(caught.value)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("postgresql://u:pw@h:5432/db", "postgresql://u:***@h:5432/db"),
        ("postgres://u:pw@h/db", "postgres://u:***@h/db"),
        ("postgresql+asyncpg://u:pw@h/db", "postgresql+asyncpg://u:***@h/db"),
        ("a postgresql://a:x@h/1 and postgres://b:y@h/2.", "a postgresql://a:***@h/1 and postgres://b:***@h/2."),
        ("postgresql://u:p@ss@h/db", "postgresql://u:***@h/db"),
        ("postgresql://u@h/db?password=pw&sslmode=require", "postgresql://u@h/db?password=***&sslmode=require"),
        ("postgresql://u@h:5432/db", "postgresql://u@h:5432/db"),
        ("postgresql://h:5432/db", "postgresql://h:5432/db"),
        ("no url here: a:b@c", "no url here: a:b@c"),
    ],
)
def test_redact(text: str, expected: str) -> None:
    assert redact(text) == expected


def test_parse_dsn_full_and_defaults(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("PGPORT", raising=False)
    parsed = parse_dsn("postgresql+asyncpg://bob:p%40ss%2Fw@db.example:6543/shop?sslmode=require")
    server = parsed.server
    assert (server.host, server.port, server.user, server.password) == ("db.example", 6543, "bob", "p@ss/w")
    assert (parsed.database, server.version, server.embedded) == ("shop", "", False)
    assert server.dsn("run1") == "postgresql://bob:p%40ss%2Fw@db.example:6543/run1?sslmode=require"
    assert server.safe_dsn("run1") == "postgresql://bob:***@db.example:6543/run1?sslmode=require"
    assert "p@ss" not in repr(server)

    bare = parse_dsn("postgres://alice@[::1]")
    assert (bare.server.port, bare.database, bare.server.password) == (5432, "postgres", None)
    assert bare.server.dsn("x") == bare.server.safe_dsn("x") == "postgresql://alice@[::1]:5432/x"


@pytest.mark.parametrize(
    ("dsn", "expected"),
    [
        (
            "postgresql://bob:p%40ss%2Fw@db.example:6543/shop?sslmode=require",
            "postgresql+asyncpg://bob:p%40ss%2Fw@db.example:6543/shop?sslmode=require",
        ),
        ("postgres://alice@[::1]:5432/x", "postgresql+asyncpg://alice@[::1]:5432/x"),
        ("postgresql+asyncpg://u:pw@h/db", "postgresql+asyncpg://u:pw@h:5432/db"),
        ("postgresql+psycopg://u:pw@h:6000/db", "postgresql+asyncpg://u:pw@h:6000/db"),
        # SQLAlchemy's own rendering of the query string, which its asyncpg dialect reads back.
        ("postgresql://u@/db?host=/run/pg", "postgresql+asyncpg://u@/db?host=%2Frun%2Fpg&port=5432"),
    ],
)
def test_sqlalchemy_url_switches_the_driver_and_keeps_the_rest(
    dsn: str, expected: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("PGPORT", raising=False)
    assert sqlalchemy_url(dsn) == expected


def test_sqlalchemy_url_connects_with_an_awkward_password(pg_server: Server) -> None:
    # The embedded server trusts loopback, so the password is not checked: what matters is that the URL
    # survives quoting (":@/?#%" inside it) and reaches the right database as the right user.
    awkward = Server(pg_server.host, pg_server.port, pg_server.user, "p w:@/?#%", False, "")

    async def who() -> tuple[str, str]:
        engine = create_async_engine(sqlalchemy_url(awkward.dsn("postgres")), poolclass=NullPool)
        try:
            async with engine.connect() as conn:
                row = (await conn.exec_driver_sql("SELECT current_user, current_database()")).one()
                return str(row[0]), str(row[1])
        finally:
            await engine.dispose()

    assert asyncio.run(who()) == ("postgres", "postgres")
