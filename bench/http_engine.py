"""Microbenchmark of the HTTP engine's Python overhead per request/response cycle.

Run: ``python bench/http_engine.py``. One cycle = receive a typical browser-like GET with six
header fields, pull its events, send a 200 response with two fields and a 13-byte body, start the
next cycle. No sockets: this is the cost the engine adds on top of the event loop.
"""

from __future__ import annotations

import argparse
import time

import h11
import httptools

from prefork.http import Data, EndOfMessage, Response, ServerConnection

REQUEST = (
    b"GET /plaintext HTTP/1.1\r\n"
    b"Host: localhost:8000\r\n"
    b"User-Agent: Mozilla/5.0 (X11; Linux x86_64) Gecko/20100101 Firefox/120.0\r\n"
    b"Accept: text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8\r\n"
    b"Accept-Language: en-US,en;q=0.5\r\n"
    b"Accept-Encoding: gzip, deflate\r\n"
    b"Connection: keep-alive\r\n"
    b"\r\n"
)
RESPONSE = Response(200, [(b"content-type", b"text/plain"), (b"content-length", b"13")])
BODY = Data(b"Hello, world!")
END = EndOfMessage()


def cycles(parser: str, n: int) -> float:
    """Seconds per cycle over ``n`` cycles on one keep-alive connection."""
    conn = ServerConnection(parser=parser)
    receive, next_event, send = conn.receive_data, conn.next_event, conn.send
    start = time.perf_counter()
    for _ in range(n):
        receive(REQUEST)
        next_event()  # Request
        next_event()  # EndOfMessage
        send(RESPONSE)
        send(BODY)
        send(END)
        conn.start_next_cycle()
    return (time.perf_counter() - start) / n


class _Ignore:
    """httptools callbacks that keep nothing: the floor any httptools-based server pays."""

    def on_url(self, url: bytes) -> None:
        pass

    def on_header(self, name: bytes, value: bytes) -> None:
        pass

    def on_headers_complete(self) -> None:
        pass

    def on_message_complete(self) -> None:
        pass


def floor(n: int) -> float:
    """Reference: llhttp with empty callbacks plus one joined head; no validation, no state."""
    parser = httptools.HttpRequestParser(_Ignore())
    start = time.perf_counter()
    for _ in range(n):
        parser.feed_data(REQUEST)
        b"".join([b"HTTP/1.1 200 OK\r\n", b"content-type: text/plain\r\n", b"\r\n"])
    return (time.perf_counter() - start) / n


def h11_alone(n: int) -> float:
    """Reference: the same cycle through a bare h11.Connection (no prefork code at all)."""
    conn = h11.Connection(h11.SERVER)
    response = h11.Response(status_code=200, headers=RESPONSE.headers)
    body, end = h11.Data(data=BODY.data), h11.EndOfMessage()
    start = time.perf_counter()
    for _ in range(n):
        conn.receive_data(REQUEST)
        conn.next_event()
        conn.next_event()
        conn.send(response)
        conn.send(body)
        conn.send(end)
        conn.start_next_cycle()
    return (time.perf_counter() - start) / n


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("-n", type=int, default=100_000, help="cycles per run")
    ap.add_argument("--runs", type=int, default=5, help="runs per parser; the best is shown")
    args = ap.parse_args()
    small = max(args.n // 10, 1)
    rows = [
        ("prefork, httptools", lambda: cycles("httptools", args.n)),
        ("prefork, h11", lambda: cycles("h11", small)),
        ("reference: llhttp, empty callbacks", lambda: floor(args.n)),
        ("reference: bare h11.Connection", lambda: h11_alone(small)),
    ]
    for label, run in rows:
        best = min(run() for _ in range(args.runs))
        print(f"{label:>36}: {best * 1e6:7.2f} µs per request/response cycle")


if __name__ == "__main__":
    main()
