"""The HTTP/2 engines' own cost of a hello request: the floor of prefork's HTTP/2 rate.

No socket, no event loop, no app: a server-side connection takes the bytes of pre-encoded
batches of requests (h2load's five fields, 100 streams a batch, encoded by an ``h2`` client)
and answers each with the hello app's head and 13-byte body, as the session does. Both engines
are measured: the ``h2`` library configured as prefork's ``--http2-engine h2`` configures it,
and prefork's own ``prefork.http2.engine.ServerConnection`` (compiled when the build is). What
each spends per request, in CPU time of this process, is what prefork cannot go below while
that engine frames, decodes and encodes its HTTP/2; the suite's ``h2-*`` scenarios give what
prefork spends in all.

    bench/venv/bin/python -m bench.h2_floor [--requests 20000]
"""

from __future__ import annotations

import argparse
import time

import h2.config
import h2.connection
import h2.events
import h2.settings

from prefork.http2.engine import ServerConnection
from prefork.http2.events import RequestReceived
from prefork.http2.limits import Http2Limits

REQUEST = [(":method", "GET"), (":scheme", "http"), (":path", "/"),
           (":authority", "127.0.0.1:8000"), ("user-agent", "h2load nghttp2/1.52.0")]
RESPONSE = [(b":status", b"200"), (b"content-type", b"text/plain"),
            (b"content-length", b"13"), (b"date", b"Sun, 06 Dec 2026 08:00:00 GMT"),
            (b"server", b"prefork")]
BODY = b"Hello, world!"
BATCH = 100


def _server() -> h2.connection.H2Connection:
    """A server connection as ``prefork.http2`` makes it (the fields checked by prefork)."""
    config = h2.config.H2Configuration(
        client_side=False, header_encoding=None, validate_inbound_headers=False,
        normalize_inbound_headers=False, validate_outbound_headers=False,
        normalize_outbound_headers=False)
    server = h2.connection.H2Connection(config)
    server.local_settings = h2.settings.Settings(
        client=False, initial_values={h2.settings.SettingCodes.MAX_CONCURRENT_STREAMS: 1 << 20})
    server.initiate_connection()
    return server


def _batches(server_preface: bytes, requests: int) -> list[bytes]:
    """The client's bytes: its preface, then ``BATCH`` requests and the window they use."""
    client = h2.connection.H2Connection(h2.config.H2Configuration(client_side=True))
    client.initiate_connection()
    client.receive_data(server_preface)
    batches = []
    for _ in range(0, requests, BATCH):
        for _ in range(BATCH):
            client.send_headers(client.get_next_available_stream_id(), REQUEST,
                                end_stream=True)
        client.increment_flow_control_window(BATCH * len(BODY))
        batches.append(client.data_to_send())
    return batches


def cost_per_request(requests: int) -> float:
    """Microseconds of CPU per request with ``h2``, the encoding of the requests left out."""
    server = _server()
    batches = _batches(server.data_to_send(), requests)
    began = time.process_time()
    for batch in batches:
        for event in server.receive_data(batch):
            if isinstance(event, h2.events.RequestReceived):
                server.send_headers(event.stream_id, RESPONSE)
                server.send_data(event.stream_id, BODY, end_stream=True)
        server.data_to_send()
    return (time.process_time() - began) / (len(batches) * BATCH) * 1e6


def engine_cost_per_request(requests: int) -> float:
    """Microseconds of CPU per request with prefork's engine, the same way."""
    server = ServerConnection(Http2Limits(max_concurrent_streams=1 << 20))
    server.initiate_connection()
    batches = _batches(server.data_to_send(), requests)
    began = time.process_time()
    for batch in batches:
        for event in server.receive_data(batch):
            if isinstance(event, RequestReceived):
                server.send_headers(event.stream_id, RESPONSE)
                server.send_data(event.stream_id, BODY, end_stream=True)
        server.data_to_send()
    return (time.process_time() - began) / (len(batches) * BATCH) * 1e6


def _median(costs: list[float]) -> tuple[float, float, float]:
    costs = sorted(costs)
    return costs[len(costs) // 2], costs[0], costs[-1]


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.h2_floor",
                                     description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=20000)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    import prefork.http2.engine as engine_module

    build = "compiled" if not engine_module.__file__.endswith(".py") else "pure Python"
    for name, measure in ((f"h2 {h2.__version__}", cost_per_request),
                          (f"prefork's engine ({build})", engine_cost_per_request)):
        median, low, high = _median([measure(args.requests) for _ in range(args.rounds)])
        print(f"{name}: {median:.2f} µs of CPU per hello request (median of {args.rounds}; "
              f"{low:.2f}-{high:.2f}), at most {1e6 / median:,.0f} requests/s on one core")


if __name__ == "__main__":
    main()
