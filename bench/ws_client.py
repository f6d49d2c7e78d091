"""WebSocket echo load: N connections, one message in flight on each, for a fixed time.

Run: ``python -m bench.ws_client --url ws://127.0.0.1:8000/ --connections 16 --duration 10``
(the suite runs it under ``taskset`` on the load core). wrk cannot speak WebSocket, so this is
the load generator for the echo scenario. All connections open first; the clock starts once
they all have, so the handshakes are not in the rate. Each connection sends a text message,
waits for its echo and checks it, and sends the next until the time is up.

Prints one JSON line: messages (echoes received), seconds, errors (connections that failed and
echoes that differed), p50/p99 round-trip latency in µs, and ``client_cpu``: this process's CPU
time over the wall time. Near 1.0 the client, not the server, is the bottleneck, and the rate
is only a lower bound for the server.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import time
from dataclasses import dataclass, field

from websockets.asyncio.client import ClientConnection, connect


@dataclass
class Tally:
    """What the connections measured together."""

    messages: int = 0
    errors: int = 0
    latencies_us: list[float] = field(default_factory=list)


async def echo_until(connection: ClientConnection, payload: str, stop_at: float,
                     tally: Tally) -> None:
    """Send ``payload`` and wait for its echo, over and over, until ``stop_at``."""
    clock = time.perf_counter
    while (sent_at := clock()) < stop_at:
        await connection.send(payload)
        reply = await connection.recv()
        tally.latencies_us.append((clock() - sent_at) * 1e6)
        if reply == payload:
            tally.messages += 1
        else:
            tally.errors += 1


async def run(url: str, connections: int, duration: float, size: int) -> dict[str, float]:
    """Open the connections, load them for ``duration`` seconds, close them; the figures."""
    payload = "m" * size
    tally = Tally()
    opened = await asyncio.gather(
        *(connect(url, compression=None, ping_interval=None, max_size=None)
          for _ in range(connections)),
        return_exceptions=True)
    live = [connection for connection in opened if isinstance(connection, ClientConnection)]
    tally.errors += len(opened) - len(live)
    cpu_start, started = time.process_time(), time.perf_counter()
    outcomes = await asyncio.gather(
        *(echo_until(connection, payload, started + duration, tally) for connection in live),
        return_exceptions=True)
    elapsed = time.perf_counter() - started
    cpu = time.process_time() - cpu_start
    tally.errors += sum(isinstance(outcome, BaseException) for outcome in outcomes)
    await asyncio.gather(*(connection.close() for connection in live), return_exceptions=True)
    latencies = sorted(tally.latencies_us)
    return {
        "messages": tally.messages,
        "seconds": elapsed,
        "errors": tally.errors,
        "p50_us": statistics.median(latencies) if latencies else 0.0,
        "p99_us": latencies[int(len(latencies) * 0.99)] if latencies else 0.0,
        "client_cpu": cpu / elapsed if elapsed else 0.0,
    }


def main() -> None:
    """Parse the options, run the load on uvloop (the fastest client loop there is), print."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--url", required=True)
    parser.add_argument("--connections", type=int, default=16)
    parser.add_argument("--duration", type=float, default=10.0)
    parser.add_argument("--size", type=int, default=64, help="message length in characters")
    args = parser.parse_args()
    try:
        import uvloop
    except ImportError:
        runner = asyncio.run
    else:
        runner = uvloop.run
    figures = runner(run(args.url, args.connections, args.duration, args.size))
    print(json.dumps(figures), flush=True)


if __name__ == "__main__":
    main()
