"""The PostgreSQL a run talks to: DSNs (parsed, validated, redacted, as SQLAlchemy URLs), the user's own
server (--dsn) and the per-run databases on any server. ``bench.db.embedded`` starts the embedded one.
"""

from __future__ import annotations

import asyncio
import re
import socket
from dataclasses import dataclass, field
from urllib.parse import quote, unquote, urlsplit

import asyncpg
from sqlalchemy.engine import make_url

from bench.errors import EXIT_USAGE, InfraError

_SCHEMES = ("postgresql", "postgres", "postgresql+asyncpg")
_EXPECTED = "expected postgresql://user:password@host:port/database"
_IDENT = re.compile(r"[a-z_][a-z0-9_]{0,62}")
_URL_PASSWORD = re.compile(r"(?P<head>\bpostgres(?:ql)?(?:\+\w+)?://[^\s:/?#@]*:)[^\s/?#]*(?=@)", re.IGNORECASE)
_QUERY_PASSWORD = re.compile(r"(?P<head>[?&]password=)[^&\s#]*", re.IGNORECASE)
_MAY_CREATE_SQL = "SELECT rolcreatedb OR rolsuper FROM pg_roles WHERE rolname = current_user"


class PostgresError(InfraError):
    """One line naming the cause and the fix; passwords are masked even if a caller slips one in."""

    def __init__(self, message: str) -> None:
        super().__init__(" ".join(redact(message).split()))


class DsnError(PostgresError):
    """A --dsn the user typed cannot be parsed: bad usage, not broken infrastructure."""

    exit_code = EXIT_USAGE

    def __init__(self, dsn: str, why: str) -> None:
        # Malformed, so URL-shaped redaction may miss: mask all between "user:" and the last "@".
        shown = redact(re.sub(r"^((?:[^:/@\s]*://)?[^:@\s]*):.*@", r"\1:***@", dsn.strip(), flags=re.DOTALL))
        super().__init__(f"invalid --dsn '{shown}': {why}")
        # Appended after redaction, which would otherwise mask the template's own "password".
        self.args = (f"{self.args[0]}; {_EXPECTED}",)


@dataclass(frozen=True)
class Server:
    """A reachable PostgreSQL; `version` is "" until someone has talked to it (see parse_dsn)."""

    host: str
    port: int
    user: str
    password: str | None = field(repr=False)
    embedded: bool
    version: str
    params: str = ""  # query string of an external DSN (e.g. "sslmode=require"), kept for dsn()

    def dsn(self, database: str) -> str:
        secret = None if self.password is None else quote(self.password, safe="")
        return self._url(database, secret)

    def safe_dsn(self, database: str) -> str:
        return redact(self._url(database, None if self.password is None else "***"))

    @property
    def address(self) -> str:
        return f"[{self.host}]:{self.port}" if ":" in self.host else f"{self.host}:{self.port}"

    def _url(self, database: str, secret: str | None) -> str:
        userinfo = quote(self.user, safe="") + ("" if secret is None else f":{secret}")
        query = f"?{self.params}" if self.params else ""
        return f"postgresql://{userinfo}@{self.address}/{quote(database, safe='')}{query}"


@dataclass(frozen=True)
class ParsedDsn:
    """A validated --dsn: `server.version` is "" because nothing has connected yet."""

    server: Server
    database: str


def redact(text: str) -> str:
    """Mask the password of every postgres URL (and any password= parameter) inside `text`."""
    return _QUERY_PASSWORD.sub(r"\g<head>***", _URL_PASSWORD.sub(r"\g<head>***", text))


def sqlalchemy_url(dsn: str) -> str:
    """The same DSN for SQLAlchemy's async engine: driver asyncpg, password kept (this is for connecting)."""
    return make_url(dsn).set(drivername="postgresql+asyncpg").render_as_string(hide_password=False)


def parse_dsn(dsn: str) -> ParsedDsn:
    """Validate a postgresql:// URL; the database defaults to "postgres", the port to 5432."""
    try:
        parts = urlsplit(dsn.strip())
        port = 5432 if parts.port is None else parts.port
    except ValueError:
        raise DsnError(dsn, "the host or port cannot be parsed (port must be 1-65535)") from None
    if parts.scheme.lower() not in _SCHEMES:
        raise DsnError(dsn, f"the scheme must be postgresql://, not {parts.scheme or 'missing'}")
    if not parts.hostname:
        raise DsnError(dsn, "no host")
    if port == 0:
        raise DsnError(dsn, "port 0 is not a server port")
    if not parts.username:
        raise DsnError(dsn, "no user name")
    database = unquote(parts.path[1:]) if parts.path.startswith("/") else parts.path
    if "/" in database or parts.fragment:
        raise DsnError(dsn, "the database name must be a single path segment")
    password = None if parts.password is None else unquote(parts.password)
    server = Server(parts.hostname, port, unquote(parts.username), password, False, "", parts.query)
    return ParsedDsn(server, database or "postgres")


async def connect_external(dsn: str, timeout: float = 10.0, need_createdb: bool = True) -> Server:
    """Check the user's server is reachable and (unless told otherwise) lets this user CREATE DATABASE;
    fails within `timeout`. Target mode only observes an existing database and needs no CREATEDB."""
    parsed = parse_dsn(dsn)
    server = parsed.server
    try:
        async with asyncio.timeout(timeout):
            conn = await asyncpg.connect(server.dsn(parsed.database), timeout=timeout)
            try:
                version = await conn.fetchval("SHOW server_version")
                may_create = await conn.fetchval(_MAY_CREATE_SQL)
            finally:
                await conn.close()
    except Exception as exc:  # noqa: BLE001 - every failure becomes one line; the chain may hold the DSN
        raise PostgresError(_connect_failure(server, parsed.database, exc, timeout)) from None
    if need_createdb and not may_create:
        raise PostgresError(
            f"user '{server.user}' on {server.address} may not create databases; "
            f'run ALTER ROLE "{server.user}" CREATEDB or use a DSN with a user that may'
        )
    return Server(server.host, server.port, server.user, server.password, False, version_label(version), server.params)


def _connect_failure(server: Server, database: str, exc: BaseException, timeout: float) -> str:
    where, fix = server.address, "check --dsn / BENCH_DSN"
    if isinstance(exc, TimeoutError):  # before OSError: TimeoutError is one
        return f"cannot reach PostgreSQL at {where}: no answer within {timeout:g} s (timeout); {fix}"
    if isinstance(exc, socket.gaierror):
        return f"cannot reach PostgreSQL at {where}: DNS lookup of '{server.host}' failed; {fix}"
    if isinstance(exc, ConnectionRefusedError):
        return f"cannot reach PostgreSQL at {where}: connection refused; {fix}"
    if isinstance(exc, asyncpg.InvalidPasswordError):
        return f"cannot log in to PostgreSQL at {where}: authentication failed for user '{server.user}'; {fix}"
    if isinstance(exc, asyncpg.InvalidCatalogNameError):
        return f"cannot use PostgreSQL at {where}: database '{database}' does not exist; {fix}"
    if isinstance(exc, asyncpg.PostgresError):
        return f"cannot log in to PostgreSQL at {where} as '{server.user}': {exc}; {fix}"
    cause = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc) or type(exc).__name__
    return f"cannot reach PostgreSQL at {where}: {cause}; {fix}"


def version_label(server_version: str) -> str:
    """"PostgreSQL 18.1" from what ``SHOW server_version`` says."""
    return f"PostgreSQL {server_version.split()[0]}"


async def create_database(server: Server, name: str) -> None:
    await _maintenance(server, f'CREATE DATABASE "{_check_name(name)}"', f"create database '{name}'")


async def drop_database(server: Server, name: str) -> None:
    sql = f'DROP DATABASE IF EXISTS "{_check_name(name)}" WITH (FORCE)'
    await _maintenance(server, sql, f"drop database '{name}'")


def _check_name(name: str) -> str:
    if not _IDENT.fullmatch(name):
        raise PostgresError(f"invalid database name '{name}': use 1-63 lower-case letters, digits and _")
    return name


async def _maintenance(server: Server, sql: str, what: str) -> None:
    try:
        conn = await asyncpg.connect(server.dsn("postgres"), timeout=10.0)
    except Exception as exc:  # noqa: BLE001
        raise PostgresError(_connect_failure(server, "postgres", exc, 10.0)) from None
    try:
        await conn.execute(sql)
    except asyncpg.PostgresError as exc:
        raise PostgresError(f"cannot {what} on {server.address}: {exc}") from None
    finally:
        await conn.close()
