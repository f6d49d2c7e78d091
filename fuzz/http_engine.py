"""Coverage-guided fuzzing of the HTTP engine with atheris (not run in CI).

Each input is split by its first byte into a parser choice, a split size and the request bytes.
The bytes go into a ``ServerConnection`` in pieces of that size; complete requests are answered
and the next cycle started, as the worker's protocol does. Anything other than events or
``RemoteProtocolError`` with a 4xx/5xx hint is a finding, and so is a request whose body
disagrees with its own ``Content-Length``.

    .venv/bin/python fuzz/http_engine.py -max_len=4096 -timeout=5 fuzz/corpus tests/corpus

See fuzz/README.md.
"""

from __future__ import annotations

import sys

import atheris

with atheris.instrument_imports():
    from prefork.errors import RemoteProtocolError
    from prefork.http import (
        NEED_DATA,
        PAUSED,
        ConnectionClosed,
        Data,
        EndOfMessage,
        Limits,
        Request,
        Response,
        ServerConnection,
    )

PARSERS = ("httptools", "h11")
LIMITS = Limits(max_request_line=1024, max_headers=20, max_header_size=1024, max_body_size=4096)


def serve(parser: str, data: bytes, step: int) -> None:
    conn = ServerConnection(LIMITS, parser=parser, clock=lambda: 0.0)
    request: Request | None = None
    body = b""
    pieces = [data[i:i + step] for i in range(0, len(data), step)] + [b""]
    try:
        for piece in pieces:
            conn.receive_data(piece)
            while True:
                event = conn.next_event()
                if event is NEED_DATA or isinstance(event, ConnectionClosed):
                    break
                if event is PAUSED:
                    raise AssertionError("PAUSED while every request is answered at once")
                if isinstance(event, Request):
                    request, body = event, b""
                elif isinstance(event, Data):
                    body += event.data
                elif isinstance(event, EndOfMessage):
                    assert request is not None
                    lengths = [v for n, v in request.headers if n == b"content-length"]
                    if lengths and request.upgrade is None and request.method != b"CONNECT":
                        assert len(body) == int(lengths[0]), (request, len(body))
                    conn.send_whole(Response(200, []), b"")
                    if not conn.keep_alive:
                        return
                    conn.start_next_cycle()
            if conn.their_state == "CLOSED":
                return
    except RemoteProtocolError as exc:
        if not 400 <= exc.status_hint <= 599:
            raise AssertionError(f"status hint {exc.status_hint}") from exc
        out = conn.error_response(exc)
        assert not out or out.startswith(b"HTTP/1.1 %d " % exc.status_hint), out[:40]


def test_one_input(data: bytes) -> None:
    if not data:
        return
    control, data = data[0], data[1:]
    serve(PARSERS[control & 1], data, (control >> 1) + 1)


def main() -> None:
    atheris.Setup(sys.argv, test_one_input)
    atheris.Fuzz()


if __name__ == "__main__":
    main()
