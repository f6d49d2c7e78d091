"""Real nginx in front of prefork: forwarded client, upstream keep-alive, a large upload, a
client that aborts mid-response, and nginx's stream module sending the PROXY protocol.

``make test`` installs nginx and its stream module (``make nginx``); where either is missing
the tests fail and say so, rather than pass by being skipped.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import http.client
import json
import os
import shutil
import signal
import socket
import struct
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from prefork.testing import running_server, wait_until

NGINX = shutil.which("nginx")
STREAM_MODULE = Path("/usr/lib/nginx/modules/ngx_stream_module.so")
CLIENT = "127.0.0.2"  # connect to nginx from here: distinct from nginx's own 127.0.0.1
UPLOAD_SIZE = 20 * 1024 * 1024


async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
    if scope["type"] != "http":
        return
    path = scope["path"]
    if path == "/stream":
        await stream(send)
        return
    if path == "/upload":
        digest, size = hashlib.sha256(), 0
        while True:
            message = await receive()
            chunk = message.get("body", b"")
            digest.update(chunk)
            size += len(chunk)
            if not message.get("more_body"):
                break
        payload: dict[str, Any] = {"size": size, "sha256": digest.hexdigest()}
    else:
        payload = {"client": scope["client"], "pid": os.getpid()}
    await send({"type": "http.response.start", "status": 200,
                "headers": [(b"content-type", b"application/json")]})
    await send({"type": "http.response.body", "body": json.dumps(payload).encode()})


async def stream(send: Any) -> None:
    """64 KiB chunks for up to 20 s, or until the client is gone."""
    await send({"type": "http.response.start", "status": 200, "headers": []})
    chunk = b"x" * 65536
    deadline = time.monotonic() + 20
    with contextlib.suppress(OSError):  # the ASGI spec's "client went away"
        while time.monotonic() < deadline:
            await send({"type": "http.response.body", "body": chunk, "more_body": True})
            await asyncio.sleep(0)
        await send({"type": "http.response.body", "body": b""})


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@contextlib.contextmanager
def nginx(tmp_path: Path, http_block: str, stream_block: str = "") -> Iterator[list[int]]:
    """Run nginx with ``http_block`` (and ``stream_block``), each formatted with ``{port0}``,
    ``{port1}``: the ports it listens on, which it yields once it accepts connections.

    nginx cannot listen on port 0 and report the port it got, so, as the one exception to the
    suite's "never reuse a closed port's number" rule, the ports come from binding port 0 and
    closing: another process may take one in between, so start-up is retried on EADDRINUSE."""
    assert NGINX is not None, "nginx is not installed: `make nginx` installs it"
    for _attempt in range(5):
        ports = [free_port(), free_port()]
        conf = tmp_path / "nginx.conf"
        error_log = tmp_path / "error.log"
        error_log.write_text("")
        user = "user root;\n" if os.geteuid() == 0 else ""  # else workers run as nobody
        load = f"load_module {STREAM_MODULE};\n" if stream_block else ""
        stream = f"stream {{\n{stream_block}\n}}\n" if stream_block else ""
        text = (f"{load}{user}daemon off;\nworker_processes 1;\npid {tmp_path}/nginx.pid;\n"
                f"error_log {error_log} warn;\nevents {{ worker_connections 256; }}\n"
                f"http {{\n  access_log off;\n  client_body_temp_path {tmp_path}/body;\n"
                f"  proxy_temp_path {tmp_path}/proxy;\n{http_block}\n}}\n{stream}")
        conf.write_text(text.replace("{port0}", str(ports[0])).replace("{port1}", str(ports[1])))
        process = subprocess.Popen([NGINX, "-c", str(conf), "-p", str(tmp_path)],
                                   start_new_session=True, stdout=subprocess.DEVNULL,
                                   stderr=subprocess.DEVNULL)
        try:
            wait_until(lambda: _started(process, ports[0]), timeout=10)  # noqa: B023
            if process.poll() is not None:
                log = error_log.read_text()
                if "Address already in use" in log:
                    continue
                raise RuntimeError(f"nginx exited: {log}")
            yield ports
            return
        finally:
            if process.poll() is None:
                os.killpg(process.pid, signal.SIGKILL)
            process.wait(10)
    raise RuntimeError("nginx found no free port in 5 attempts")


def proxy_block(upstream: str) -> str:
    return f"""
  client_max_body_size 0;
  upstream backend {{ server {upstream}; keepalive 8; }}
  server {{
    listen 127.0.0.1:{{port0}};
    proxy_http_version 1.1;
    proxy_set_header Connection "";
    proxy_set_header Host $host;
    proxy_set_header X-Forwarded-For $remote_addr;
    proxy_set_header X-Forwarded-Proto $scheme;
    location / {{ proxy_pass http://backend; }}
    location /stream {{ proxy_pass http://backend; proxy_buffering off; }}
    # no forwarding fields here: the app sees nginx's own upstream connection
    location /peer {{ proxy_pass http://backend; proxy_set_header Connection ""; }}
  }}"""


def get(port: int, path: str = "/", body: bytes | None = None) -> tuple[int, Any]:
    client = http.client.HTTPConnection("127.0.0.1", port, timeout=30,
                                        source_address=(CLIENT, 0))
    try:
        client.request("POST" if body is not None else "GET", path, body=body)
        response = client.getresponse()
        return response.status, json.loads(response.read())
    finally:
        client.close()


@pytest.mark.timeout(120)
@pytest.mark.parametrize("transport", ["tcp", "unix"])
def test_behind_nginx(tmp_path: Path, transport: str) -> None:
    settings: dict[str, Any] = {"workers": 1}
    if transport == "unix":
        sock_path = tmp_path / "prefork.sock"
        # a unix peer has no address to trust by: trust it (nginx overwrites the field)
        settings.update(bind=f"unix:{sock_path}", forwarded_allow_ips="*")
    with running_server(app, **settings) as server:
        upstream = f"unix:{sock_path}" if transport == "unix" else f"127.0.0.1:{server.port}"
        with nginx(tmp_path, proxy_block(upstream)) as (port, _):
            status, seen = get(port)
            assert status == 200 and seen["client"][0] == CLIENT  # X-Forwarded-For trusted
            pid = seen["pid"]

            data = os.urandom(UPLOAD_SIZE)
            status, seen = get(port, "/upload", data)
            assert status == 200
            assert seen == {"size": UPLOAD_SIZE, "sha256": hashlib.sha256(data).hexdigest()}

            with socket.create_connection(("127.0.0.1", port), timeout=10,
                                          source_address=(CLIENT, 0)) as sock:
                sock.sendall(b"GET /stream HTTP/1.1\r\nHost: x\r\n\r\n")
                received = 0
                while received < 1024 * 1024:
                    received += len(sock.recv(65536))
                # RST rather than FIN: the client is gone for good
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            status, seen = get(port)
            assert status == 200 and seen["pid"] == pid  # the same worker, still serving

            if transport == "tcp":
                ports = set()
                for _ in range(20):
                    status, seen = get(port, "/peer")
                    assert status == 200 and seen["client"][0] == "127.0.0.1"
                    ports.add(seen["client"][1])
                assert len(ports) < 20  # nginx's upstream keep-alive reused connections


@pytest.mark.timeout(120)
def test_nginx_proxy_protocol(tmp_path: Path) -> None:
    assert STREAM_MODULE.exists(), \
        f"nginx's stream module is not installed ({STREAM_MODULE}): `make nginx` installs it"
    with running_server(app, workers=1, proxy_protocol=True) as server:
        stream_block = f"""
  server {{ listen 127.0.0.1:{{port1}}; proxy_pass 127.0.0.1:{server.port};
           proxy_protocol on; }}"""
        http_block = "  server { listen 127.0.0.1:{port0}; return 204; }"
        with nginx(tmp_path, http_block, stream_block) as (_, port):
            wait_until(lambda: _connects(port), timeout=10)
            for _ in range(3):
                status, seen = get(port)
                assert status == 200
                assert seen["client"][0] == CLIENT and seen["client"][1] != 0


def _started(process: subprocess.Popen[bytes], port: int) -> bool:
    """nginx accepts on ``port``, or has exited."""
    return process.poll() is not None or _connects(port)


def _connects(port: int) -> bool:
    with socket.socket() as probe:
        return probe.connect_ex(("127.0.0.1", port)) == 0
