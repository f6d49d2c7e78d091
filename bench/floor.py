"""The floor: what uvloop and httptools alone cost per request, as a reference row.

Not a server anyone should run: it speaks no ASGI and no WSGI, checks nothing, and answers every
request with the hello scenario's 13 bytes from a constant. It is the same event loop and the
same parser that prefork (and uvicorn) use, with nothing of a server's own on top, so its rate is
the most any Python server built on them can reach on this machine; the gap between it and
prefork is what prefork itself costs. Run by the bench as ``uvloop-floor`` in the hello
scenarios only.

Usage: ``python -m bench.floor --port N`` (listens on 127.0.0.1).
"""

from __future__ import annotations

import argparse
import asyncio
import socket
from typing import cast

import httptools
import uvloop

ANSWER = (b"HTTP/1.1 200 OK\r\ncontent-type: text/plain\r\ncontent-length: 13\r\n\r\n"
          b"Hello, world!")
CLOSING_ANSWER = ANSWER.replace(b"\r\n\r\n", b"\r\nconnection: close\r\n\r\n", 1)


class FloorProtocol(asyncio.Protocol):
    """One connection: parse, answer at the end of each request, close when asked to."""

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # uvloop's transports implement asyncio.Transport without subclassing it
        self.transport = cast(asyncio.Transport, transport)
        self.parser = httptools.HttpRequestParser(self)

    def data_received(self, data: bytes) -> None:
        try:
            self.parser.feed_data(data)
        except httptools.HttpParserError:
            self.transport.close()

    def on_message_complete(self) -> None:
        if self.parser.should_keep_alive():
            self.transport.write(ANSWER)
        else:
            self.transport.write(CLOSING_ANSWER)
            self.transport.close()


async def serve(port: int) -> None:
    listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    listener.bind(("127.0.0.1", port))
    listener.listen(2048)
    server = await asyncio.get_running_loop().create_server(FloorProtocol, sock=listener)
    await server.serve_forever()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--port", type=int, required=True)
    uvloop.run(serve(parser.parse_args().port))


if __name__ == "__main__":
    main()
