"""HTTP/2 from one worker's protocol on a real loop: h2c by prior knowledge and by Upgrade, ASGI
and WSGI apps unchanged, flow control both ways, trailers, resets, drain and the bounds.

The client is ``h2``'s own client side over a raw socket (``h2client``).
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import socket
import threading
import time
from typing import Any

import pytest
from h2.errors import ErrorCodes
from h2.settings import SettingCodes

from tests.integration.conftest import Client
from tests.integration.h2client import PREFACE, H2Client

pytestmark = pytest.mark.timeout(30)


async def echo_app(scope: dict[str, Any], receive: Any, send: Any) -> None:
    if scope["type"] != "http":
        return
    body = b""
    while True:
        message = await receive()
        body += message.get("body", b"")
        if not message.get("more_body"):
            break
    host = dict(scope["headers"]).get(b"host", b"")
    await send({"type": "http.response.start", "status": 200,
                "headers": [(b"content-type", b"text/plain")]})
    await send({"type": "http.response.body",
                "body": b"%s %s %s %d" % (scope["http_version"].encode(), scope["method"].encode(),
                                          host, len(body))})


def wsgi_app(environ: dict[str, Any], start_response: Any) -> list[bytes]:
    body = environ["wsgi.input"].read()
    start_response("200 OK", [("Content-Type", "text/plain")])
    return [f"{environ['SERVER_PROTOCOL']} {environ['HTTP_HOST']} {len(body)}".encode()]


def test_asgi_over_prior_knowledge(serve: Any) -> None:
    server = serve(echo_app, http2=True)
    with H2Client(server.port) as client:
        reply = client.get("/", authority="example.org")
        assert reply.status == 200
        assert reply.body == b"2 GET example.org 0"
        assert reply.header(b"server") == b"prefork" and reply.header(b"date")
        sid = client.request("POST", "/", body=b"x" * 300_000)  # beyond the initial window
        assert client.wait(sid).body == b"2 POST test 300000"


def test_wsgi_over_prior_knowledge(serve: Any) -> None:
    server = serve(wsgi_app, wsgi=True, http2=True)
    with H2Client(server.port) as client:
        assert client.get("/").body == b"HTTP/2 test 0"
        sid = client.request("PUT", "/", body=b"y" * 100_000)
        assert client.wait(sid).body == b"HTTP/2 test 100000"


def _upgrade(port: int, head_fields: str = "") -> H2Client:
    sock = socket.create_connection(("127.0.0.1", port), timeout=5)
    client = H2Client(sock=sock, upgrade=True)
    settings = client.settings_header.decode()
    sock.sendall(("GET /up HTTP/1.1\r\nHost: test\r\nConnection: Upgrade, HTTP2-Settings\r\n"
                  f"Upgrade: h2c\r\nHTTP2-Settings: {settings}\r\n{head_fields}\r\n").encode())
    head = b""
    while b"\r\n\r\n" not in head:
        head += sock.recv(1)
    assert head.startswith(b"HTTP/1.1 101 "), head
    client.flush()  # the preface and SETTINGS, as the upgraded client's first bytes
    return client


def test_asgi_over_upgrade(serve: Any) -> None:
    server = serve(echo_app, http2=True)
    client = _upgrade(server.port)
    with client:
        assert client.wait(1).body == b"2 GET test 0"
        assert client.get("/next").body == b"2 GET test 0"


def test_wsgi_over_upgrade(serve: Any) -> None:
    server = serve(wsgi_app, wsgi=True, http2=True)
    client = _upgrade(server.port)
    with client:
        assert client.wait(1).body == b"HTTP/2 test 0"


def test_upgrade_with_a_body_is_served_as_http11(serve: Any) -> None:
    server = serve(echo_app, http2=True)
    with Client(server.port) as client:
        reply = client.request("POST", "/", body=b"abc", headers=[
            ("Connection", "Upgrade, HTTP2-Settings"), ("Upgrade", "h2c"),
            ("HTTP2-Settings", base64.urlsafe_b64encode(b"").decode() or "AAMAAABkAAQAAP__")])
        assert reply.status == 200 and reply.body == b"1.1 POST test 3"


def test_http2_off_serves_h2c_upgrade_as_http11(serve: Any) -> None:
    server = serve(echo_app)
    with Client(server.port) as client:
        reply = client.request(headers=[("Connection", "Upgrade, HTTP2-Settings"),
                                        ("Upgrade", "h2c"), ("HTTP2-Settings", "AAMAAABkAAQAAP__")])
        assert reply.status == 200 and reply.body == b"1.1 GET test 0"


def test_http2_off_answers_the_preface_and_closes(serve: Any) -> None:
    server = serve(echo_app)
    with socket.create_connection(("127.0.0.1", server.port), timeout=5) as sock:
        sock.sendall(PREFACE)
        data = b""
        while chunk := sock.recv(65536):
            data += chunk
        status = int(data.split(b" ", 2)[1])
        assert data.startswith(b"HTTP/1.1 ") and 400 <= status <= 505


def test_http11_still_served_with_http2_on(serve: Any) -> None:
    server = serve(echo_app, http2=True)
    with Client(server.port) as client:
        assert client.request().body == b"1.1 GET test 0"
        assert client.request().body == b"1.1 GET test 0"  # kept alive
    with Client(server.port) as client:
        client.send(b"P")  # could begin the preface: held until it cannot
        time.sleep(0.05)
        client.send(b"OST / HTTP/1.1\r\nHost: test\r\nContent-Length: 1\r\n\r\nx")
        assert client.response("POST").body == b"1.1 POST test 1"


def test_request_body_is_acknowledged_as_the_app_reads(serve: Any) -> None:
    release = asyncio.Event()

    async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
        await release.wait()
        size = 0
        while True:
            message = await receive()
            size += len(message.get("body", b""))
            if not message.get("more_body"):
                break
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b"%d" % size})

    server = serve(app, http2=True, http2_initial_window_size=65535)
    with H2Client(server.port) as client:
        sid = client.request("POST", "/", end=False)
        sent = 0
        deadline = time.monotonic() + 2
        while time.monotonic() < deadline:  # send what the windows allow, read the updates
            window = min(client.h2.local_flow_control_window(sid),
                         client.h2.max_outbound_frame_size)
            if window:
                client.send_body(sid, b"z" * window)
                sent += window
                continue
            client.sock.settimeout(0.2)
            with contextlib.suppress(TimeoutError):
                client.read()
        # the app took nothing: at most max_buffer acknowledged plus one window outstanding
        assert 65535 <= sent <= 65536 + 65535 + 16384
        client.sock.settimeout(5)
        server.loop.call_soon_threadsafe(release.set)
        client.send_all(sid, b"z" * 200_000, end=True)
        assert client.wait(sid).body == b"%d" % (sent + 200_000)


def test_slow_reader_on_one_stream_does_not_stall_another(serve: Any) -> None:
    big = b"b" * 1_000_000

    async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
        body = big if scope["path"] == "/big" else b"small"
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": body})

    server = serve(app, http2=True)
    with H2Client(server.port, auto_ack=False) as client:
        client.h2.increment_flow_control_window(2**30)  # the connection's window is not the limit
        client.flush()
        slow = client.request("GET", "/big")
        fast = client.request("GET", "/small")
        assert client.wait(fast).body == b"small"
        assert not client.replies[slow].ended
        assert len(client.replies[slow].body) <= 65535


def test_many_concurrent_streams(serve: Any) -> None:
    async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
        await asyncio.sleep(0.2)
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": scope["path"].encode()})

    server = serve(app, http2=True)
    with H2Client(server.port) as client:
        started = time.monotonic()
        ids = [client.request("GET", f"/{n}") for n in range(80)]
        for n, sid in enumerate(ids):
            assert client.wait(sid).body == f"/{n}".encode()
        assert time.monotonic() - started < 3  # concurrently, not 80 x 0.2 s


def test_concurrent_stream_limit_is_announced_and_enforced(serve: Any) -> None:
    async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
        await asyncio.sleep(0.3)
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b"ok"})

    server = serve(app, http2=True, http2_max_concurrent_streams=2)
    with H2Client(server.port) as client:
        # opened before the server's SETTINGS are read: the client does not know the limit yet
        ids = [client.request("GET", "/") for _ in range(3)]
        replies = [client.wait(sid) for sid in ids]
        assert client.h2.remote_settings[SettingCodes.MAX_CONCURRENT_STREAMS] == 2
        assert [r.status for r in replies[:2]] == [200, 200]
        assert replies[2].reset == ErrorCodes.REFUSED_STREAM


def test_trailers(serve: Any) -> None:
    async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
        await send({"type": "http.response.start", "status": 200, "trailers": True,
                    "headers": [(b"content-type", b"application/grpc")]})
        await send({"type": "http.response.body", "body": b"data", "more_body": False})
        await send({"type": "http.response.trailers", "headers": [(b"grpc-status", b"0")]})

    server = serve(app, http2=True)
    with H2Client(server.port) as client:
        reply = client.get("/")
        assert reply.body == b"data" and reply.trailers == [(b"grpc-status", b"0")]


def test_reset_stream_is_http_disconnect(serve: Any) -> None:
    seen: list[str] = []
    done = threading.Event()

    async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["path"] == "/other":
            await send({"type": "http.response.start", "status": 200, "headers": []})
            await send({"type": "http.response.body", "body": b"ok"})
            return
        while True:
            message = await receive()
            if message["type"] == "http.disconnect":
                seen.append("disconnect")
                done.set()
                return

    server = serve(app, http2=True)
    with H2Client(server.port) as client:
        sid = client.request("GET", "/")
        client.reset(sid)
        assert done.wait(5)
        assert seen == ["disconnect"]
        assert client.get("/other").body == b"ok"  # the connection stays usable


def test_app_error_before_the_head_is_500_and_after_is_a_reset(serve: Any) -> None:
    async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["path"] == "/late":
            await send({"type": "http.response.start", "status": 200, "headers": []})
            await send({"type": "http.response.body", "body": b"part", "more_body": True})
        raise RuntimeError("boom")

    server = serve(app, http2=True)
    with H2Client(server.port) as client:
        assert client.get("/early").status == 500
        assert client.get("/late").reset == ErrorCodes.INTERNAL_ERROR
        assert client.get("/early").status == 500  # other streams go on


def test_drain_sends_goaway_and_finishes_the_stream_in_flight(serve: Any) -> None:
    async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
        await asyncio.sleep(0.5)
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b"finished"})

    server = serve(app, http2=True)
    with H2Client(server.port) as client:
        sid = client.request("GET", "/")
        time.sleep(0.1)

        def drain() -> None:
            for protocol in list(server.state.connections):
                protocol.shutdown()

        server.loop.call_soon_threadsafe(drain)
        reply = client.wait(sid)
        assert reply.body == b"finished"
        while client.read():
            pass
        assert client.goaway is not None and client.goaway.last_stream_id == sid


def test_health_path_and_limits(serve: Any) -> None:
    server = serve(echo_app, http2=True, health_path="/_health", limit_request_fields=5,
                   limit_request_body=10)
    with H2Client(server.port) as client:
        assert client.get("/_health").body == b"ok\n"
        many = [(f"x-{n}", "v") for n in range(10)]
        assert client.get("/", headers=many).status == 431
        sid = client.request("POST", "/", body=b"a" * 20, headers=[("content-length", "20")])
        assert client.wait(sid).status == 413
        sid = client.request("POST", "/", body=b"a" * 20)  # no length: counted as it comes
        assert client.wait(sid).status == 413


def test_rapid_reset_ends_the_connection(serve: Any) -> None:
    async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
        await asyncio.sleep(10)

    server = serve(app, http2=True, http2_max_concurrent_streams=10)
    with H2Client(server.port) as client:
        for _ in range(400):
            sid = client.h2.get_next_available_stream_id()
            client.h2.send_headers(sid, [(b":method", b"GET"), (b":path", b"/"),
                                         (b":scheme", b"http"), (b":authority", b"t")])
            client.h2.reset_stream(sid, ErrorCodes.CANCEL)
        client.flush()
        while client.goaway is None and client.read():
            pass
        assert client.goaway is not None
        assert client.goaway.error_code == ErrorCodes.ENHANCE_YOUR_CALM


def test_idle_connection_closes_after_keep_alive(serve: Any) -> None:
    server = serve(echo_app, http2=True, keepalive=0.3)
    with H2Client(server.port) as client:
        assert client.get("/").status == 200
        started = time.monotonic()
        while client.read():
            pass
        assert 0.2 < time.monotonic() - started < 3
        # said with GOAWAY NO_ERROR, naming the last stream taken, before the close
        assert [(g.last_stream_id, g.error_code) for g in client.goaways] == [(1, 0)]


def test_a_window_the_client_never_opens_resets_the_stream(serve: Any) -> None:
    async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
        await send({"type": "http.response.start", "status": 200, "headers": []})
        for _ in range(10):
            await send({"type": "http.response.body", "body": b"w" * 65536, "more_body": True})
        await send({"type": "http.response.body", "body": b""})

    server = serve(app, http2=True, send_timeout=0.5)
    with H2Client(server.port, auto_ack=False) as client:
        started = time.monotonic()
        reply = client.wait(client.request("GET", "/"))
        assert reply.reset == ErrorCodes.CANCEL
        assert len(reply.body) == 65535  # the first window, then nothing more was sent
        assert 0.4 < time.monotonic() - started < 3


def test_forwarded_fields_head_and_no_body_statuses(serve: Any) -> None:
    async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
        status = 204 if scope["path"] == "/none" else 200
        body = f"{scope['client'][0]} {scope['scheme']}".encode()
        await send({"type": "http.response.start", "status": status,
                    "headers": [(b"content-length", b"%d" % len(body)),
                                (b"connection", b"keep-alive")]})  # dropped over HTTP/2
        await send({"type": "http.response.body", "body": b"" if status == 204 else body})

    server = serve(app, http2=True)
    with H2Client(server.port) as client:
        reply = client.get("/", headers=[("x-forwarded-for", "203.0.113.9"),
                                         ("x-forwarded-proto", "https")])
        assert reply.body == b"203.0.113.9 https"
        assert reply.header(b"connection") is None
        head = client.wait(client.request("HEAD", "/"))
        assert head.status == 200 and head.body == b"" and head.header(b"content-length")
        assert client.get("/none").status == 204


def _send_while_open(client: H2Client, sid: int, seconds: float) -> int:
    """Send body bytes on ``sid`` as long as its windows allow, for ``seconds``."""
    sent = 0
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        window = min(client.h2.local_flow_control_window(sid), client.h2.max_outbound_frame_size)
        if window and client.replies[sid].reset is None and not client.replies[sid].ended:
            client.send_body(sid, b"z" * window)
            sent += window
            continue
        client.sock.settimeout(0.05)
        with contextlib.suppress(TimeoutError):
            client.read()
    client.sock.settimeout(5)
    return sent


def test_bodies_the_app_never_reads_give_the_connection_window_back(serve: Any) -> None:
    async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
        await asyncio.sleep(0.2)  # the client fills the stream's window meanwhile
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b"ignored"})

    # each stream's window held full by an app that answers without reading: a few of them
    # would use up a connection window of two streams' worth if their bytes were never given
    # back to the connection
    server = serve(app, http2=True, http2_max_concurrent_streams=2)
    with H2Client(server.port) as client:
        for _ in range(6):
            sid = client.request("POST", "/", end=False)
            assert _send_while_open(client, sid, 0.15) > 65536
            assert client.wait(sid).body == b"ignored"


def test_a_body_that_stops_coming_is_answered_408(serve: Any) -> None:
    server = serve(echo_app, http2=True, body_timeout=0.3)
    with H2Client(server.port) as client:
        sid = client.request("POST", "/", end=False)
        client.send_body(sid, b"part")
        started = time.monotonic()
        assert client.wait(sid).status == 408
        assert 0.2 < time.monotonic() - started < 3
        assert client.get("/").status == 200  # the other streams go on


def test_pathsend_and_100_continue(serve: Any, tmp_path: Any) -> None:
    path = tmp_path / "file.bin"
    path.write_bytes(bytes(range(256)) * 1000)

    async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["path"] == "/file":
            await send({"type": "http.response.start", "status": 200, "headers": []})
            await send({"type": "http.response.pathsend", "path": str(path)})
            return
        await echo_app(scope, receive, send)

    server = serve(app, http2=True)
    with H2Client(server.port) as client:
        reply = client.get("/file")
        assert reply.body == path.read_bytes() and reply.header(b"content-length") == b"256000"
        sid = client.request("POST", "/", end=False, headers=[("expect", "100-continue")])
        while not client.replies[sid].informational:
            client.read()
        assert client.replies[sid].informational == [100]
        client.send_all(sid, b"b" * 1000)
        assert client.wait(sid).body == b"2 POST test 1000"


def test_a_header_block_is_refused_as_its_continuations_pass_the_limit(serve: Any) -> None:
    from hyperframe.frame import ContinuationFrame, HeadersFrame

    server = serve(echo_app, http2=True, http2_max_header_list_size=4096)
    with H2Client(server.port) as client:
        client.read()  # the server's SETTINGS
        headers = HeadersFrame(1)
        headers.data = client.h2.encoder.encode([(b":method", b"GET"), (b":path", b"/"),
                                                 (b":scheme", b"http"), (b":authority", b"t")])
        client.sock.sendall(headers.serialize())
        sent = 0
        while client.goaway is None and sent < 64:  # each frame under h2's own 64-frame cap
            continuation = ContinuationFrame(1)
            continuation.data = b"\x00" * 1000  # never ends: no END_HEADERS
            client.sock.sendall(continuation.serialize())
            sent += 1
            client.sock.settimeout(0.02)
            with contextlib.suppress(TimeoutError):
                client.read()
        client.sock.settimeout(5)
        while client.goaway is None and client.read():
            pass
        assert client.goaway is not None
        assert client.goaway.error_code == ErrorCodes.ENHANCE_YOUR_CALM
        assert sent <= 10  # refused past twice the header list size, not after 64 frames


@pytest.mark.parametrize(("cleartext", "preface", "upgrade"), [
    ("off", False, False), ("prior-knowledge", True, False), ("upgrade", False, True),
])
def test_cleartext_mechanisms_are_separate(serve: Any, cleartext: str, preface: bool,
                                           upgrade: bool) -> None:
    server = serve(echo_app, http2=True, http2_cleartext=cleartext)
    with socket.create_connection(("127.0.0.1", server.port), timeout=5) as sock:
        sock.sendall(PREFACE)
        answer = sock.recv(65536)
        # HTTP/2 answers with its SETTINGS frame (type 4), HTTP/1.1 with 400 (505 from h11)
        assert (answer[3:4] == b"\x04") is preface
        assert answer.startswith((b"HTTP/1.1 400", b"HTTP/1.1 505")) is not preface
    with Client(server.port) as client:
        client.send(b"GET / HTTP/1.1\r\nHost: test\r\nConnection: Upgrade, HTTP2-Settings\r\n"
                    b"Upgrade: h2c\r\nHTTP2-Settings: AAMAAABkAAQAAP__\r\n\r\n")
        head = b""
        while b"\r\n\r\n" not in head:
            head += client.sock.recv(1)
        assert head.startswith(b"HTTP/1.1 101 ") is upgrade


def test_a_client_goaway_lets_its_open_streams_be_answered(serve: Any) -> None:
    from hyperframe.frame import GoAwayFrame

    async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
        await asyncio.sleep(0.3)
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b"late"})

    server = serve(app, http2=True)
    with H2Client(server.port) as client:
        sid = client.request("GET", "/")
        time.sleep(0.05)
        client.sock.sendall(GoAwayFrame(0, last_stream_id=0, error_code=0).serialize())
        assert client.wait(sid).body == b"late"
        while client.read():  # then the server closes
            pass
        assert client.goaway is not None and client.goaway.last_stream_id == sid


def test_httpx_over_prior_knowledge(serve: Any) -> None:
    httpx = pytest.importorskip("httpx")
    server = serve(echo_app, http2=True)
    with httpx.Client(http1=False, http2=True, timeout=5) as client:
        replies = [client.post(f"http://127.0.0.1:{server.port}/", content=b"x" * n)
                   for n in (0, 100_000)]
    assert [r.http_version for r in replies] == ["HTTP/2", "HTTP/2"]
    host = f"127.0.0.1:{server.port}"
    assert [r.text for r in replies] == [f"2 POST {host} 0", f"2 POST {host} 100000"]
