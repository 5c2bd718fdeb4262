"""A keep-alive HTTP/1.1 reader of an app's pool endpoint, on the collector's own event loop.

At 10 Hz a new TCP connection and urllib opener per sample, in a worker thread, cost the collector more than
everything else it does (benchmarks/collector_cost.py); one connection kept open costs a write and a read.
"""

from __future__ import annotations

import asyncio
import ssl
from typing import Any
from urllib.parse import urlsplit

from bench.results import jsonlines


class PoolEndpointError(OSError):
    """The endpoint answered, but not with a JSON object (401 without the token, 503 before the pool is ready)."""


class PoolClient:
    """GETs ``url`` (plus a query) over one connection, reopened whenever the server closed it."""

    def __init__(self, url: str, token: str | None = None, timeout_s: float = 2.0) -> None:
        parts = urlsplit(url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError(f"pool URL must be http(s)://host[:port]/path, got {url!r}")
        self._host = parts.hostname
        self._tls = parts.scheme == "https"
        self._port = parts.port or (443 if self._tls else 80)
        self._target = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
        netloc = parts.netloc.rpartition("@")[2]
        auth = f"Authorization: Bearer {token}\r\n" if token else ""
        self._headers = f"Host: {netloc}\r\n{auth}Accept: application/json\r\n\r\n"
        self.timeout_s = timeout_s
        self._reader: asyncio.StreamReader | None = None
        self._writer: asyncio.StreamWriter | None = None

    async def get(self, query: str = "") -> dict[str, Any]:
        """The endpoint's JSON; ``query`` (``a=1&b=2``) is added to the URL's own."""
        target = self._target
        if query:
            target += ("&" if "?" in target else "?") + query
        request = f"GET {target} HTTP/1.1\r\n{self._headers}".encode("latin-1")
        reused = self._writer is not None
        try:
            return await asyncio.wait_for(self._exchange(request), self.timeout_s)
        except (OSError, asyncio.IncompleteReadError, TimeoutError, ValueError) as err:
            self.close()
            # A kept-alive connection the server closed while idle fails once: a fresh one answers or fails for real.
            if not reused or isinstance(err, (PoolEndpointError, TimeoutError)):
                raise
        return await asyncio.wait_for(self._exchange(request), self.timeout_s)

    async def _exchange(self, request: bytes) -> dict[str, Any]:
        if self._writer is None:
            context = ssl.create_default_context() if self._tls else None
            self._reader, self._writer = await asyncio.open_connection(self._host, self._port, ssl=context)
        assert self._reader is not None
        self._writer.write(request)
        status, headers = await self._head(self._reader)
        body = await self._body(self._reader, headers)
        if headers.get("connection", "").lower() == "close":
            self.close()
        if status != 200:
            raise PoolEndpointError(f"pool endpoint answered {status}: {body[:200]!r}")
        data = jsonlines.loads(body)
        if not isinstance(data, dict):
            raise PoolEndpointError("pool endpoint did not answer a JSON object")
        return data

    @staticmethod
    async def _head(reader: asyncio.StreamReader) -> tuple[int, dict[str, str]]:
        status_line = await reader.readuntil(b"\r\n")
        fields = status_line.split(None, 2)
        if len(fields) < 2 or not fields[0].startswith(b"HTTP/"):
            raise ValueError(f"not an HTTP answer: {status_line[:80]!r}")
        headers: dict[str, str] = {}
        while (line := await reader.readuntil(b"\r\n")) != b"\r\n":
            name, _, value = line.decode("latin-1").partition(":")
            headers[name.strip().lower()] = value.strip()
        return int(fields[1]), headers

    async def _body(self, reader: asyncio.StreamReader, headers: dict[str, str]) -> bytes:
        if "chunked" in headers.get("transfer-encoding", "").lower():
            chunks = []
            while size := int((await reader.readuntil(b"\r\n")).split(b";")[0], 16):
                chunks.append(await reader.readexactly(size + 2))
            while await reader.readuntil(b"\r\n") != b"\r\n":  # trailers
                pass
            return b"".join(chunk[:-2] for chunk in chunks)
        if "content-length" in headers:
            return await reader.readexactly(int(headers["content-length"]))
        body = await reader.read()  # neither: the body runs to the end of the connection
        self.close()
        return body

    def close(self) -> None:
        if self._writer is not None:
            self._writer.close()
        self._reader = self._writer = None
