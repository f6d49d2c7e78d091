"""What a new connection, or a keep-alive request, costs the server on a real socket.

The server side runs prefork's protocol (``--server prefork``, the hello app: ASGI, or WSGI with
``--app wsgi``, called inline as a worker with one thread does) or the floor
(``--server floor``, ``bench/floor.py``'s protocol) on a uvloop loop and a loopback listener; a
child process makes ``--connections`` connections one after another, each sending one
``Connection: close`` GET and reading the answer to the end. Nothing else runs in the serving
process, so its instruction count under cachegrind, taken at two connection counts, gives the
instructions per connection by difference (start-up cancels out)::

    for n in 200 1200; do
        valgrind --tool=cachegrind --cache-sim=no --cachegrind-out-file=/dev/null \\
            bench/venv/bin/python bench/connection_cost.py --server prefork --connections $n
    done   # (I(1200) - I(200)) / 1000

With ``--keep-alive`` the child makes one connection and sends its requests one after another on
it, each read to its end before the next: the same difference then gives the instructions per
keep-alive request (``--connections`` counts requests there).

Unlike ``bench/http_engine.py``'s "a connection each" row, which feeds a fake transport, this
includes uvloop's accept, transport and close. Without valgrind it prints the wall time per
connection (or request), which includes the client's share of the machine.
"""

from __future__ import annotations

import argparse
import asyncio
import functools
import socket
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import uvloop

HERE = Path(__file__).resolve().parent
REQUEST = b"GET / HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n"
KEEP_ALIVE_REQUEST = b"GET / HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n"


def connect_many(port: int, count: int) -> None:
    """The client: ``count`` connections, one request each, read until the server closes."""
    for _ in range(count):
        with socket.create_connection(("127.0.0.1", port)) as sock:
            sock.sendall(REQUEST)
            while sock.recv(65536):
                pass


def request_many(port: int, count: int) -> None:
    """The keep-alive client: ``count`` requests on one connection, each answer read whole (its
    length is the first one's: the hello answer does not change size) before the next."""
    with socket.create_connection(("127.0.0.1", port)) as sock:
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        sock.sendall(KEEP_ALIVE_REQUEST)
        received = b""
        while b"\r\n\r\n" not in received:
            received += sock.recv(65536)
        head, _, body = received.partition(b"\r\n\r\n")
        length = next(int(line.split(b":")[1]) for line in head.split(b"\r\n")
                      if line.lower().startswith(b"content-length:"))
        while len(body) < length:
            body += sock.recv(65536)
        answer = len(head) + 4 + length
        for _ in range(count - 1):
            sock.sendall(KEEP_ALIVE_REQUEST)
            got = 0
            while got < answer:
                got += len(sock.recv(65536))


def _protocol_factory(server: str, interface: str,
                      listener: socket.socket) -> Callable[[], asyncio.Protocol]:
    if server == "floor":
        from bench.floor import FloorProtocol

        return FloorProtocol
    from bench.http_engine import HELLO_BODY, asgi_app, wsgi_app
    from prefork.config import Config
    from prefork.workers.contract import Serving
    from prefork.workers.protocol import HttpProtocol
    from prefork.workers.serving import ServingState, listener_address

    config = Config.from_mapping({})
    serving: Serving
    if interface == "wsgi":
        from prefork.http.limits import Limits
        from prefork.wsgi.cycle import WsgiRunner
        from prefork.wsgi.environ import base_environ

        app = wsgi_app(HELLO_BODY)
        # as a worker with --threads 1 makes it (prefork.workers.base): the app runs inline
        serving = WsgiRunner(base_environ(root_path="", errors=None, multithread=False,
                                          multiprocess=False, file_wrapper=None),
                             None, Limits().max_buffer)
    else:
        from prefork.asgi.cycle import AsgiServing

        app = asgi_app(HELLO_BODY)
        serving = AsgiServing(config, {}, asyncio.get_running_loop())
    state = ServingState(config, app, serving, lambda count: None)
    # as a worker makes its connections (prefork.workers.base)
    return functools.partial(HttpProtocol, state, listener_address(listener))


async def serve(server: str, interface: str, count: int, keep_alive: bool) -> float:
    listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    listener.bind(("127.0.0.1", 0))
    listener.listen(1024)
    port = listener.getsockname()[1]
    await asyncio.get_running_loop().create_server(
        _protocol_factory(server, interface, listener), sock=listener)
    started = time.perf_counter()
    client = await asyncio.create_subprocess_exec(
        sys.executable, __file__, "--client", str(port), "--connections", str(count),
        *(["--keep-alive"] if keep_alive else []), stdin=subprocess.DEVNULL)
    await client.wait()
    return (time.perf_counter() - started) / count


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--server", choices=("prefork", "floor"), default="prefork")
    parser.add_argument("--app", choices=("asgi", "wsgi"), default="asgi",
                        help="prefork's interface for the hello app")
    parser.add_argument("--connections", type=int, default=1000,
                        help="connections made (requests sent, with --keep-alive)")
    parser.add_argument("--keep-alive", action="store_true",
                        help="one connection, its requests one after another")
    parser.add_argument("--client", type=int, metavar="PORT", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.client is not None:
        (request_many if args.keep_alive else connect_many)(args.client, args.connections)
        return
    sys.path.insert(0, str(HERE.parent))
    seconds = uvloop.run(serve(args.server, args.app, args.connections, args.keep_alive))
    unit = "request" if args.keep_alive else "connection"
    name = args.server if args.server == "floor" else f"{args.server} {args.app.upper()}"
    print(f"{name}: {seconds * 1e6:.1f} µs per {unit} (wall, client included)")


if __name__ == "__main__":
    main()
