"""The DSN forms ``--dsn`` takes (``bench.db.server.parse_dsn``): the README's table, row by row, and real
connections through what the table promises (a Unix socket, a URL without user, another driver's scheme)
to the test session's embedded PostgreSQL.
"""

from __future__ import annotations

import asyncio
import re
from pathlib import Path

import asyncpg
import pytest
from sqlalchemy import text
from sqlalchemy.ext.asyncio import create_async_engine
from sqlalchemy.pool import NullPool

from bench.db.server import (
    DsnError,
    PostgresError,
    Server,
    connect_external,
    create_database,
    drop_database,
    parse_dsn,
    redact,
    sqlalchemy_url,
)
from bench.errors import EXIT_USAGE
from tests.conftest import database_names

README = Path(__file__).resolve().parents[1] / "README.md"
ACCEPTED, REFUSED = "accepted", "refused"
# (--dsn, accepted or refused, the URL the harness connects with (password masked) or why it refuses)
TABLE = [
    (
        "postgresql://app:secret@db.example:6543/appdb?sslmode=require",
        ACCEPTED,
        "postgresql://app:***@db.example:6543/appdb?sslmode=require",
    ),
    ("postgres://app@db.example/appdb", ACCEPTED, "postgresql://app@db.example:5432/appdb"),
    ("postgresql+psycopg://app:secret@db.example/appdb", ACCEPTED, "postgresql://app:***@db.example:5432/appdb"),
    ("postgresql+asyncpg://app@[::1]:5433/appdb", ACCEPTED, "postgresql://app@[::1]:5433/appdb"),
    ("postgresql:///appdb", ACCEPTED, "postgresql:///appdb?port=5432"),
    ("postgresql://app@/appdb", ACCEPTED, "postgresql://app@/appdb?port=5432"),
    (
        "postgresql://app@/appdb?host=/var/run/postgresql",
        ACCEPTED,
        "postgresql://app@/appdb?host=/var/run/postgresql&port=5432",
    ),
    ("postgresql:///appdb?host=/tmp&port=5433&user=app", ACCEPTED, "postgresql://app@/appdb?host=/tmp&port=5433"),
    ("postgresql://:secret@db.example/appdb", ACCEPTED, "postgresql://:***@db.example:5432/appdb"),
    ("postgresql://app@db.example/appdb?password=secret", ACCEPTED, "postgresql://app:***@db.example:5432/appdb"),
    ("postgresql://app:p%40ss@db.example", ACCEPTED, "postgresql://app:***@db.example:5432/postgres"),
    (
        "mysql://app:secret@db.example/appdb",
        REFUSED,
        "the scheme must be postgresql:// (or postgresql+driver://), not mysql",
    ),
    ("postgresql+odbc://app@db.example/appdb", REFUSED, "'odbc' is not a PostgreSQL driver SQLAlchemy knows"),
    ("db.example:5432/appdb", REFUSED, "no scheme: it must start with postgresql://"),
    (
        "host=db.example dbname=appdb",
        REFUSED,
        "keyword=value settings (libpq's other form): write them as one postgresql:// URL",
    ),
    (
        "postgresql://app:p@ss@db.example/appdb",
        REFUSED,
        "the user or password holds '@' or '/' unencoded, so URL readers disagree on the host",
    ),
    (
        "postgresql://app:pa/ss@db.example/appdb",
        REFUSED,
        "the user or password holds '@' or '/' unencoded, so URL readers disagree on the host",
    ),
    ("postgresql://app@db.example/app#db", REFUSED, "'#' starts a URL fragment: percent-encode it as %23"),
    (
        "postgresql://app@db1.example,db2.example/appdb",
        REFUSED,
        "several hosts: give one server, whose sessions the harness watches",
    ),
    ("postgresql://app@/appdb?host=/a&host=/b", REFUSED, "'host' is given 2 times in the query string; give it once"),
    ("postgresql://app:secret@db.example:0/appdb", REFUSED, "port 0 is not a server port"),
    (
        "postgresql://app:secret@db.example:99999/appdb",
        REFUSED,
        "the host or port cannot be parsed (port must be 1-65535)",
    ),
    (
        "postgresql://app:secret@db.example:abc/appdb",
        REFUSED,
        "the host or port cannot be parsed (port must be 1-65535)",
    ),
]
PASSWORDS = ("secret", "p@ss", "pa/ss", "p%40ss")


@pytest.fixture(autouse=True)
def no_libpq_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    """The table's defaults are libpq's without its environment variables."""
    for name in ("PGHOST", "PGPORT", "PGUSER", "PGDATABASE"):
        monkeypatch.delenv(name, raising=False)


def _masked(dsn: str) -> str:
    """The DSN as an error message must show it: the password, and only the password, masked."""
    for password in PASSWORDS:
        dsn = dsn.replace(f":{password}@", ":***@").replace(f"password={password}", "password=***")
    return dsn


def test_the_readme_table_is_this_table() -> None:
    lines = README.read_text(encoding="utf-8").split("| `--dsn` | | connects with, or refused because |\n", 1)[1]
    rows = []
    for line in lines.splitlines()[1:]:
        if not line.startswith("| "):
            break
        dsn, outcome, detail = (cell.strip() for cell in line.strip("|").split(" | "))
        rows.append((dsn.strip("`"), outcome, detail.strip("`")))
    assert rows == TABLE


@pytest.mark.parametrize(("dsn", "outcome", "detail"), TABLE, ids=[row[0] for row in TABLE])
def test_dsn_forms(dsn: str, outcome: str, detail: str) -> None:
    if outcome == ACCEPTED:
        parsed = parse_dsn(dsn)
        assert parsed.server.safe_dsn(parsed.database) == detail
        # What the app is given names asyncpg and reads back as the same connection.
        url = sqlalchemy_url(dsn)
        assert url.startswith("postgresql+asyncpg://")
        again = parse_dsn(url)
        assert again.server.dsn(again.database) == parsed.server.dsn(parsed.database)
        return
    with pytest.raises(DsnError) as caught:
        parse_dsn(dsn)
    message = str(caught.value)
    assert caught.value.exit_code == EXIT_USAGE and "\n" not in message
    assert message.startswith(f"invalid --dsn '{_masked(dsn)}': {detail}")
    assert not any(f":{p}@" in message for p in PASSWORDS)


def test_an_unmasked_url_is_shown_as_typed() -> None:
    """A URL without a password is shown whole (the scheme's ":" is no password's)."""
    with pytest.raises(DsnError, match=re.escape("invalid --dsn 'postgresql://app@/appdb?host=/a&host=/b'")):
        parse_dsn("postgresql://app@/appdb?host=/a&host=/b")


def test_the_expected_form_survives_the_masking_of_the_error_line() -> None:
    # The CLI masks every error line as it would a URL; the hint of what a DSN looks like must read whole after it.
    with pytest.raises(DsnError) as caught:
        parse_dsn("notaurl")
    assert redact(str(caught.value)) == str(caught.value)
    assert str(caught.value).endswith("; expected postgresql://[host][:port][/database][?host=/socket/dir], "
                                      "user@ or user:password@ before the host")


def test_the_environment_fills_what_the_url_leaves_out(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PGPORT", "6000")
    parsed = parse_dsn("postgresql://app@/appdb")
    assert (parsed.server.host, parsed.server.port, parsed.server.user) == ("", 6000, "app")
    assert parse_dsn("postgresql://app@h:7000/appdb").server.port == 7000  # the URL's own port wins


async def _who(url: str) -> tuple[str, str, str | None]:
    """current_user, current_database() and the server address the session came in on (None: a socket)."""
    engine = create_async_engine(url, poolclass=NullPool)
    try:
        async with engine.connect() as conn:
            row = (await conn.execute(text("SELECT current_user, current_database(), inet_server_addr()"))).one()
            return str(row[0]), str(row[1]), None if row[2] is None else str(row[2])
    finally:
        await engine.dispose()


@pytest.fixture(scope="module")
def socket_dir(pg_server: Server) -> str:
    """The embedded server's Unix-socket directory. The test session's home is short on purpose, so the
    server always listens on one: an empty answer here is a failure, not a reason to skip."""

    async def ask() -> str:
        conn = await asyncpg.connect(pg_server.dsn("postgres"))
        try:
            return str(await conn.fetchval("SHOW unix_socket_directories"))
        finally:
            await conn.close()

    directory = asyncio.run(ask()).split(",")[0].strip()
    assert directory.startswith("/"), f"the embedded server listens on no Unix socket ({directory!r})"
    return directory


def test_a_unix_socket_dsn_connects_and_runs_databases(pg_server: Server, socket_dir: str) -> None:
    dsn = f"postgresql://postgres@/postgres?host={socket_dir}&port={pg_server.port}"
    server = asyncio.run(connect_external(dsn))
    assert server.socket and server.host == socket_dir and server.version.startswith("PostgreSQL 18")
    assert server.address == f"{socket_dir}/.s.PGSQL.{pg_server.port}"
    # A per-run database made and dropped through the socket, as a run does on a --dsn server.
    asyncio.run(create_database(server, "scopebench_socket"))
    try:
        assert "scopebench_socket" in database_names(pg_server)
        # The app's URL (SQLAlchemy, asyncpg) also comes in through the socket: no server address.
        assert asyncio.run(_who(sqlalchemy_url(server.dsn("scopebench_socket")))) == (
            "postgres",
            "scopebench_socket",
            None,
        )
    finally:
        asyncio.run(drop_database(server, "scopebench_socket"))
    assert "scopebench_socket" not in database_names(pg_server)


def test_a_dsn_without_user_or_host_takes_the_drivers_defaults(
    pg_server: Server, socket_dir: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PGUSER", "postgres")
    monkeypatch.setenv("PGHOST", socket_dir)
    monkeypatch.setenv("PGPORT", str(pg_server.port))
    server = asyncio.run(connect_external("postgresql:///postgres"))
    assert (server.host, server.user) == ("", "")  # left to the driver, as libpq leaves them
    assert asyncio.run(_who(sqlalchemy_url(server.dsn("postgres")))) == ("postgres", "postgres", None)


def test_another_drivers_scheme_connects_with_asyncpg(pg_server: Server) -> None:
    dsn = f"postgresql+psycopg://postgres@127.0.0.1:{pg_server.port}/postgres"
    server = asyncio.run(connect_external(dsn))
    assert (server.host, server.port) == ("127.0.0.1", pg_server.port)
    assert asyncio.run(_who(sqlalchemy_url(dsn))) == ("postgres", "postgres", "127.0.0.1")


@pytest.mark.parametrize("dsn", [
    "postgresql://postgres@127.0.0.1:5432/scopebench_x_good_1",
    "postgresql://app%20user:p%40ss%2Fw%3Ard%20%25x@db.example:6543/orders?sslmode=require",
    "postgresql://u:pw@/orders?host=/tmp/sock&port=5433",
    "postgresql:///orders?port=5432",
    "postgresql://u@[::1]:5432/orders?application_name=x%20y",
])
def test_a_servers_own_sqlalchemy_url_reads_as_the_parsed_one(dsn: str) -> None:
    # The paired apps get the server's own (no SQLAlchemy import before the run's first request); SQLAlchemy must
    # read it as it reads the URL made by parsing the DSN.
    from sqlalchemy.engine import make_url

    parsed = parse_dsn(dsn)
    own, read = make_url(parsed.server.sqlalchemy_url(parsed.database)), make_url(sqlalchemy_url(dsn))
    assert own.drivername == "postgresql+asyncpg"
    assert (own.username, own.password, own.host, own.port, own.database, dict(own.query)) == (
        read.username, read.password, read.host, read.port, read.database, dict(read.query))


def test_a_missing_socket_names_its_path(tmp_path: Path) -> None:
    with pytest.raises(PostgresError) as caught:
        asyncio.run(connect_external(f"postgresql://app:s3cr3t-pw@/db?host={tmp_path}&port=5432"))
    message = str(caught.value)
    assert message.startswith(f"cannot reach PostgreSQL at {tmp_path}/.s.PGSQL.5432: ")
    assert "s3cr3t-pw" not in message and message.endswith("check --dsn / BENCH_DSN")
