"""A minimal keep-alive HTTP/1.1 responder on raw asyncio (uvloop when installed): the fastest route there is.

``harness_perf`` runs it as a child process so that load generators, not the server, hit their limit first.
"""

from __future__ import annotations

import argparse
import asyncio
from typing import cast

_OK = b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: 2\r\n\r\nok"
_END = b"\r\n\r\n"


class Responder(asyncio.Protocol):
    # A class attribute shared by every connection: the count the benchmark reads over GET /_count.
    served = 0

    def __init__(self) -> None:
        self.transport: asyncio.Transport | None = None
        self.buffer = b""

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # uvloop's transports implement asyncio.Transport without subclassing it.
        self.transport = cast(asyncio.Transport, transport)

    def data_received(self, data: bytes) -> None:
        assert self.transport is not None
        self.buffer += data
        # GET requests carry no body, so every header terminator ends one request.
        while (end := self.buffer.find(_END)) >= 0:
            head, self.buffer = self.buffer[:end], self.buffer[end + 4:]
            if head.startswith(b"GET /_count "):
                body = str(Responder.served).encode()
                self.transport.write(b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n%s" % (len(body), body))
            else:
                Responder.served += 1
                self.transport.write(_OK)


async def serve(port: int) -> None:
    loop = asyncio.get_running_loop()
    server = await loop.create_server(Responder, "127.0.0.1", port, backlog=1024)
    async with server:
        await server.serve_forever()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--loop", choices=("uvloop", "asyncio"), default="uvloop")
    args = parser.parse_args()
    if args.loop == "uvloop":
        try:
            import uvloop
        except ImportError:
            args.loop = "asyncio"
        else:
            uvloop.run(serve(args.port))
            return
    asyncio.run(serve(args.port))


if __name__ == "__main__":
    main()
