"""The PostgreSQL a run talks to: DSNs (parsed, validated, redacted, as SQLAlchemy URLs), the user's own
server (--dsn) and the per-run databases on any server. ``bench.db.embedded`` starts the embedded one.
"""

from __future__ import annotations

import asyncio
import os
import re
import socket
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any
from urllib.parse import quote, urlencode, urlsplit

import asyncpg

from bench.errors import EXIT_USAGE, InfraError

if TYPE_CHECKING:  # SQLAlchemy (90 ms) loads when a --dsn is read, not before a run on the embedded server starts
    from sqlalchemy.engine import URL

# The drivers SQLAlchemy has for PostgreSQL: whichever the DSN names, the harness connects with asyncpg
# (its own connections and the app's --serve {sqlalchemy_url}); the scheme says nothing about the server.
_DRIVERS = frozenset({"", "asyncpg", "psycopg", "psycopg_async", "psycopg2", "psycopg2cffi", "pg8000"})
_BACKENDS = frozenset({"postgresql", "postgres"})
# Connection keywords libpq also takes in the query string; lifted into the URL's own parts.
_LIFTED = ("host", "port", "user", "password", "dbname")
# Said without "user:password@" after the scheme: the error line is masked as a URL would be, and that part read
# as a password to hide.
_EXPECTED = "expected postgresql://[host][:port][/database][?host=/socket/dir], user@ or user:password@ before the host"
_IDENT = re.compile(r"[a-z_][a-z0-9_]{0,62}")
_URL_PASSWORD = re.compile(r"(?P<head>\bpostgres(?:ql)?(?:\+\w+)?://[^\s:/?#@]*:)[^\s/?#]*(?=@)", re.IGNORECASE)
_QUERY_PASSWORD = re.compile(r"(?P<head>[?&]password=)[^&\s#]*", re.IGNORECASE)
# A DSN too malformed for the patterns above: mask all between the user's ":" and the last "@". The user
# part stops at "/", so the scheme's own ":" in "postgresql://app@/db" is never taken for a password's.
_LOOSE_PASSWORD = re.compile(r"^([^:/@\s]*://[^:/@\s]*):.*@", re.DOTALL)
_LOOSE_NO_SCHEME = re.compile(r"^([^:@\s]*):.*@", re.DOTALL)
_MAY_CREATE_SQL = "SELECT rolcreatedb OR rolsuper, current_user FROM pg_roles WHERE rolname = current_user"


class PostgresError(InfraError):
    """One line naming the cause and the fix; passwords are masked even if a caller slips one in."""

    def __init__(self, message: str) -> None:
        super().__init__(" ".join(redact(message).split()))


class DsnError(PostgresError):
    """A --dsn the user typed cannot be parsed: bad usage, not broken infrastructure."""

    exit_code = EXIT_USAGE

    def __init__(self, dsn: str, why: str) -> None:
        text = dsn.strip()
        shown = (_LOOSE_PASSWORD if "://" in text else _LOOSE_NO_SCHEME).sub(r"\1:***@", text)
        super().__init__(f"invalid --dsn '{redact(shown)}': {why}")
        # Appended after redaction, which would otherwise mask the template's own "password".
        self.args = (f"{self.args[0]}; {_EXPECTED}",)


@dataclass(frozen=True)
class Server:
    """A reachable PostgreSQL; `version` is "" until someone has talked to it (see parse_dsn).

    ``host`` is a name or address, a Unix-socket directory (it starts with "/"), or "" for the driver's
    default (PGHOST, else its local sockets); ``user`` "" is the driver's default (PGUSER, else the OS user).
    """

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

    def sqlalchemy_url(self, database: str) -> str:
        """``dsn`` for SQLAlchemy's async engine: the same URL with the asyncpg driver (``sqlalchemy_url`` reads
        a DSN from outside; this one is the server's own)."""
        return "postgresql+asyncpg" + self.dsn(database).removeprefix("postgresql")

    def safe_dsn(self, database: str) -> str:
        return redact(self._url(database, None if self.password is None else "***"))

    def safe_server(self) -> str:
        """The server's URL without a database, password masked: where a run's databases live."""
        return self.safe_dsn("").removesuffix("/")

    @property
    def socket(self) -> bool:
        return self.host.startswith("/")

    @property
    def address(self) -> str:
        if self.socket:
            return f"{self.host.rstrip('/')}/.s.PGSQL.{self.port}"
        if not self.host:
            return f"the default host (PGHOST, else a local socket), port {self.port}"
        return f"[{self.host}]:{self.port}" if ":" in self.host else f"{self.host}:{self.port}"

    def _url(self, database: str, secret: str | None) -> str:
        userinfo = quote(self.user, safe="") + ("" if secret is None else f":{secret}")
        netloc = f"{userinfo}@" if userinfo else ""
        query = self.params
        if self.host and not self.socket:
            netloc += self.address
        else:  # a socket directory, or no host: libpq, asyncpg and SQLAlchemy all read host= and port= here
            where = (f"host={quote(self.host, safe='/')}" if self.host else "") + f"&port={self.port}"
            query = where.lstrip("&") + (f"&{query}" if query else "")
        return f"postgresql://{netloc}/{quote(database, safe='')}?{query}".removesuffix("?")


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
    from sqlalchemy.engine import make_url

    parsed = parse_dsn(dsn)
    url = make_url(parsed.server.dsn(parsed.database)).set(drivername="postgresql+asyncpg")
    return url.render_as_string(hide_password=False)


def parse_dsn(dsn: str) -> ParsedDsn:
    """Read a --dsn as SQLAlchemy's ``make_url`` does, refusing what another URL reader (libpq, asyncpg)
    would read differently. Without a database: "postgres"; without a port: PGPORT, else 5432; without a
    user or host: the driver's default, as libpq has it. Any PostgreSQL driver's scheme is accepted."""
    text = dsn.strip()
    url = _read_url(dsn, text)
    query: dict[str, Any] = dict(url.query)
    lifted = {key: query.pop(key) for key in _LIFTED if key in query}
    for key, value in lifted.items():
        if not isinstance(value, str):
            raise DsnError(dsn, f"'{key}' is given {len(value)} times in the query string; give it once")
    host = lifted.get("host", url.host or "")
    if "," in host:
        raise DsnError(dsn, "several hosts: give one server, whose sessions the harness watches")
    port = _port(dsn, lifted.get("port"), url.port)
    user = lifted.get("user", url.username or "")
    password = lifted.get("password", url.password)
    database = lifted.get("dbname", url.database or "") or "postgres"
    # %20, not "+": libpq decodes only percent signs.
    params = urlencode(query, doseq=True, safe="/,", quote_via=quote)
    return ParsedDsn(Server(host, port, user, password, False, "", params), database)


def _read_url(dsn: str, text: str) -> URL:
    if "://" not in text:
        if re.match(r"\s*\w+\s*=", text):
            raise DsnError(dsn, "keyword=value settings (libpq's other form): write them as one postgresql:// URL")
        raise DsnError(dsn, "no scheme: it must start with postgresql://")
    scheme, rest = text.split("://", 1)
    scheme = scheme.lower()
    backend, _, driver = scheme.partition("+")
    if backend not in _BACKENDS:
        raise DsnError(dsn, f"the scheme must be postgresql:// (or postgresql+driver://), not {scheme or 'missing'}")
    if driver not in _DRIVERS:
        raise DsnError(
            dsn, f"'{driver}' is not a PostgreSQL driver SQLAlchemy knows ({', '.join(sorted(_DRIVERS)[1:])})"
        )
    if "," in re.split(r"[/?#]", rest, maxsplit=1)[0].rpartition("@")[2]:
        raise DsnError(dsn, "several hosts: give one server, whose sessions the harness watches")
    from sqlalchemy.engine import make_url

    try:
        url = make_url(text)
    except ValueError:  # SQLAlchemy's ArgumentError is one; so is int() of a port that is no number
        raise DsnError(dsn, "the host or port cannot be parsed (port must be 1-65535)") from None
    _same_reading(dsn, text, url)
    return url


def _same_reading(dsn: str, text: str, url: URL) -> None:
    """SQLAlchemy ends the password at the first "@" and reads it across a "/"; Python's URL parser (asyncpg's)
    ends the user part at the last "@", and it and libpq end it at the first "/"; they take "#" for a fragment.
    Where the readers disagree, whatever the harness chose might not be what the user meant."""
    try:
        split = urlsplit(text)
        host = split.hostname
    except ValueError:
        raise DsnError(dsn, "the host or port cannot be parsed (port must be 1-65535)") from None
    if split.fragment or "#" in text:
        raise DsnError(dsn, "'#' starts a URL fragment: percent-encode it as %23")
    if (host or None) != (url.host.lower() if url.host else None):
        raise DsnError(
            dsn,
            "the user or password holds '@' or '/' unencoded, so URL readers disagree on the host: "
            "percent-encode them (%40, %2F)",
        )


def _port(dsn: str, lifted: str | None, given: int | None) -> int:
    env = os.environ.get("PGPORT", "")
    raw = lifted if lifted is not None else given if given is not None else env if env.isdigit() else 5432
    try:
        port = int(raw)
    except ValueError:
        raise DsnError(dsn, f"the port must be a number 1-65535, not '{raw}'") from None
    if port == 0:
        raise DsnError(dsn, "port 0 is not a server port")
    if not 0 < port < 65536:
        raise DsnError(dsn, "the host or port cannot be parsed (port must be 1-65535)")
    return port


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
                may_create, role = await conn.fetchrow(_MAY_CREATE_SQL)
            finally:
                await conn.close()
    except Exception as exc:  # noqa: BLE001 - every failure becomes one line; the chain may hold the DSN
        raise PostgresError(_connect_failure(server, parsed.database, exc, timeout)) from None
    if need_createdb and not may_create:
        # The role the server says it is: a DSN without a user logs in as the driver's default.
        raise PostgresError(
            f"user '{role}' on {server.address} may not create databases; "
            f'run ALTER ROLE "{role}" CREATEDB or use a DSN with a user that may'
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
        return f"cannot log in to PostgreSQL at {where}: authentication failed for {_quoted(server)}; {fix}"
    if isinstance(exc, asyncpg.InvalidCatalogNameError):
        return f"cannot use PostgreSQL at {where}: database '{database}' does not exist; {fix}"
    if isinstance(exc, asyncpg.PostgresError):
        return f"cannot log in to PostgreSQL at {where} as {_quoted(server)}: {exc}; {fix}"
    cause = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc) or type(exc).__name__
    return f"cannot reach PostgreSQL at {where}: {cause}; {fix}"


def _quoted(server: Server) -> str:
    return f"user '{server.user}'" if server.user else "the default user (PGUSER, else the OS user)"


def version_label(server_version: str) -> str:
    """ "PostgreSQL 18.1" from what ``SHOW server_version`` says."""
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
