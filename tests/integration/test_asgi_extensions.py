"""The ASGI extensions a worker serves beside pathsend and trailers: ``tls`` (against a real TLS
handshake, with and without a client certificate), ``http.response.zerocopysend`` (in cleartext
and over TLS, chunked and with a Content-Length) and ``http.response.early_hint`` (a ``103`` as a
raw client and curl see it). Both parsers, uvloop and plain asyncio."""

from __future__ import annotations

import json
import shutil
import socket
import ssl
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from prefork.workers.tls_facts import TLS_VERSIONS

trustme = pytest.importorskip("trustme")
x509 = pytest.importorskip("cryptography.x509")

pytestmark = pytest.mark.timeout(30)

CONTENT = bytes(range(256)) * 2000  # 512,000 bytes, each offset recognisable


@dataclass
class Pki:
    """A CA, the server's certificate files and a client certificate, all from trustme."""

    ca: Any
    certfile: str
    keyfile: str
    ca_file: str
    server_pem: str
    client: Any


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> Pki:
    folder = tmp_path_factory.mktemp("pki")
    ca = trustme.CA()
    server = ca.issue_cert("localhost", "127.0.0.1")
    certfile, keyfile, ca_file = (str(folder / name) for name in ("cert.pem", "key.pem",
                                                                  "ca.pem"))
    server.cert_chain_pems[0].write_to_path(certfile)
    server.private_key_pem.write_to_path(keyfile)
    ca.cert_pem.write_to_path(ca_file)
    client = ca.issue_cert("client@example.org", common_name="Jane Client",
                           organization_name="Example, Inc.", organization_unit_name="QA")
    return Pki(ca, certfile, keyfile, ca_file, server.cert_chain_pems[0].bytes().decode(),
               client)


def client_context(pki: Pki, *, with_cert: bool = False,
                   max_version: ssl.TLSVersion | None = None) -> ssl.SSLContext:
    context = ssl.create_default_context()
    pki.ca.configure_trust(context)
    if with_cert:
        pki.client.configure_cert(context)
    if max_version is not None:
        context.maximum_version = max_version
    return context


def der(pem: str) -> bytes:
    return ssl.PEM_cert_to_DER_cert(pem)


def iana_cipher(context: ssl.SSLContext, name: str) -> int:
    """The IANA number of cipher ``name``, as the client's own context lists it."""
    for cipher in context.get_ciphers():
        if cipher["name"] == name:
            return int(cipher["id"]) & 0xFFFF
    raise LookupError(name)


async def scope_extensions_app(scope: dict[str, Any], receive: Any, send: Any) -> None:
    body = json.dumps({"scheme": scope["scheme"], "extensions": scope["extensions"]}).encode()
    await send({"type": "http.response.start", "status": 200,
                "headers": [(b"content-type", b"application/json")]})
    await send({"type": "http.response.body", "body": body})


# -- tls --------------------------------------------------------------------------------------

def test_no_tls_extension_in_cleartext(serve: Any, client_factory: Any) -> None:
    server = serve(scope_extensions_app)
    seen = json.loads(client_factory(server.port).request().body)
    assert seen["scheme"] == "http"
    assert "tls" not in seen["extensions"]


@pytest.mark.parametrize("max_version", [None, ssl.TLSVersion.TLSv1_2],
                         ids=["tls1.3", "tls1.2"])
def test_tls_without_client_certificate(serve: Any, client_factory: Any, pki: Pki,
                                        max_version: ssl.TLSVersion | None) -> None:
    server = serve(scope_extensions_app, certfile=pki.certfile, keyfile=pki.keyfile)
    context = client_context(pki, max_version=max_version)
    client = client_factory(server.port, tls=context)
    seen = json.loads(client.request().body)
    tls = seen["extensions"]["tls"]
    assert seen["scheme"] == "https"
    assert set(tls) == {"server_cert", "client_cert_chain", "client_cert_name",
                        "client_cert_error", "tls_version", "cipher_suite"}
    assert der(tls["server_cert"]) == client.sock.getpeercert(binary_form=True)
    assert der(tls["server_cert"]) == der(pki.server_pem)
    assert tls["client_cert_chain"] == []
    assert tls["client_cert_name"] is None
    assert tls["client_cert_error"] is None
    version = client.sock.version()
    assert tls["tls_version"] == TLS_VERSIONS[version]
    assert tls["tls_version"] == (0x0303 if max_version else 0x0304)
    assert tls["cipher_suite"] == iana_cipher(context, client.sock.cipher()[0])
    if max_version is None:
        assert tls["cipher_suite"] >> 8 == 0x13  # the TLS 1.3 suites are 0x13xx
    # The next request on the connection sees the same facts.
    assert json.loads(client.request().body)["extensions"]["tls"] == tls


@pytest.mark.parametrize("cert_reqs", [1, 2])
def test_tls_with_client_certificate(serve: Any, client_factory: Any, pki: Pki,
                                     cert_reqs: int) -> None:
    server = serve(scope_extensions_app, certfile=pki.certfile, keyfile=pki.keyfile,
                   ca_certs=pki.ca_file, cert_reqs=cert_reqs)
    context = client_context(pki, with_cert=True)
    client = client_factory(server.port, tls=context)
    tls = json.loads(client.request().body)["extensions"]["tls"]
    client_pem = pki.client.cert_chain_pems[0].bytes().decode()
    chain = tls["client_cert_chain"]
    assert der(chain[0]) == der(client_pem)
    if sys.version_info >= (3, 13):  # the verified chain: the client's, then the CA's
        assert [der(pem) for pem in chain] == [der(client_pem),
                                               der(pki.ca.cert_pem.bytes().decode())]
    else:
        assert len(chain) == 1
    subject = x509.load_der_x509_certificate(der(client_pem)).subject
    assert tls["client_cert_name"] == subject.rfc4514_string()
    assert "CN=Jane Client" in tls["client_cert_name"]
    assert "O=Example\\, Inc." in tls["client_cert_name"]
    assert tls["client_cert_error"] is None
    assert tls["tls_version"] == TLS_VERSIONS[client.sock.version()]
    assert tls["cipher_suite"] == iana_cipher(context, client.sock.cipher()[0])


def test_optional_client_certificate_not_sent(serve: Any, client_factory: Any,
                                              pki: Pki) -> None:
    server = serve(scope_extensions_app, certfile=pki.certfile, keyfile=pki.keyfile,
                   ca_certs=pki.ca_file, cert_reqs=1)
    tls = json.loads(client_factory(server.port, tls=client_context(pki)).request().body)[
        "extensions"]["tls"]
    assert tls["client_cert_chain"] == []
    assert tls["client_cert_name"] is None


def test_tls_extension_in_websocket_scope(serve: Any, client_factory: Any, pki: Pki) -> None:
    seen: list[dict[str, Any]] = []

    async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] == "websocket":
            seen.append(scope)
            await receive()  # websocket.connect
            await send({"type": "websocket.close"})  # refused: 403

    server = serve(app, certfile=pki.certfile, keyfile=pki.keyfile)
    client = client_factory(server.port, tls=client_context(pki))
    client.send(b"GET /ws HTTP/1.1\r\nHost: localhost\r\nUpgrade: websocket\r\n"
                b"Connection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
                b"Sec-WebSocket-Version: 13\r\n\r\n")
    assert client.recv_all().startswith(b"HTTP/1.1 403")
    scope = seen[0]
    assert scope["scheme"] == "wss"
    tls = scope["extensions"]["tls"]
    assert tls["tls_version"] == TLS_VERSIONS[client.sock.version()]
    assert der(tls["server_cert"]) == der(pki.server_pem)


# -- zerocopysend -----------------------------------------------------------------------------

@pytest.fixture
def content_file(tmp_path: Path) -> Path:
    path = tmp_path / "content.bin"
    path.write_bytes(CONTENT)
    return path


def zerocopy_app(path: Path) -> Any:
    """Answers with parts of ``path``: ``/length`` announces a Content-Length, anything else
    is chunked; bytes and zero-copy pieces are mixed."""

    async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
        assert "http.response.zerocopysend" in scope["extensions"]
        headers = [(b"content-length", b"%d" % (1 + 1000 + 1 + 300_000 + 11_990))] \
            if scope["path"] == "/length" else []
        await send({"type": "http.response.start", "status": 200, "headers": headers})
        with open(path, "rb") as file:
            await send({"type": "http.response.body", "body": b"<", "more_body": True})
            await send({"type": "http.response.zerocopysend", "file": file, "offset": 10,
                        "count": 1000, "more_body": True})
            await send({"type": "http.response.body", "body": b">", "more_body": True})
            # From the file's position, then on from where that left it, to the end.
            file.seek(200_000)
            await send({"type": "http.response.zerocopysend", "file": file, "count": 300_000,
                        "more_body": True})
            assert file.tell() == 500_000
            await send({"type": "http.response.zerocopysend", "file": file, "offset": 500_010,
                        "count": 50_000})  # past the end: what there is (11,990 bytes)
        assert (await receive())["type"] in ("http.request", "http.disconnect")

    return app


EXPECTED = b"<" + CONTENT[10:1010] + b">" + CONTENT[200_000:500_000] + CONTENT[500_010:]


@pytest.mark.parametrize("framing", ["chunked", "length"])
@pytest.mark.parametrize("over", ["cleartext", "tls"])
def test_zerocopysend(serve: Any, client_factory: Any, pki: Pki, content_file: Path,
                      framing: str, over: str) -> None:
    settings = {"certfile": pki.certfile, "keyfile": pki.keyfile} if over == "tls" else {}
    server = serve(zerocopy_app(content_file), **settings)
    client = client_factory(server.port,
                            tls=client_context(pki) if over == "tls" else None)
    path = "/length" if framing == "length" else "/chunked"
    for _ in range(2):  # the connection stays in step
        reply = client.request("GET", path)
        assert reply.status == 200
        if framing == "length":
            assert reply.headers[b"content-length"] == b"%d" % len(EXPECTED)
        else:
            assert reply.headers[b"transfer-encoding"] == b"chunked"
        assert reply.body == EXPECTED
    head = client.request("HEAD", path)
    assert head.body == b""
    assert client.request("GET", path).body == EXPECTED


def test_zerocopysend_then_trailers(serve: Any, client_factory: Any,
                                    content_file: Path) -> None:
    async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
        await send({"type": "http.response.start", "status": 200, "trailers": True,
                    "headers": [(b"trailer", b"x-sum")]})
        with open(content_file, "rb") as file:
            await send({"type": "http.response.zerocopysend", "file": file, "count": 70_000})
        await send({"type": "http.response.trailers", "headers": [(b"x-sum", b"42")]})

    server = serve(app)
    reply = client_factory(server.port).request(headers=[("TE", "trailers")])
    assert reply.body == CONTENT[:70_000]
    assert reply.trailers == {b"x-sum": b"42"}


def test_zerocopysend_longer_than_content_length_cuts_the_connection(
        serve: Any, client_factory: Any, content_file: Path) -> None:
    failures: list[BaseException] = []

    async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
        await send({"type": "http.response.start", "status": 200,
                    "headers": [(b"content-length", b"10")]})
        with open(content_file, "rb") as file:
            try:
                await send({"type": "http.response.zerocopysend", "file": file, "count": 11})
            except Exception as exc:
                failures.append(exc)

    server = serve(app)
    client = client_factory(server.port)
    client.send(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
    assert client.recv_all() == b""  # cut before the head went out
    assert failures and "longer than its Content-Length" in str(failures[0])


# -- early hints ------------------------------------------------------------------------------

LINKS = [b"</style.css>; rel=preload; as=style", b"</app.js>; rel=preload; as=script"]


async def hinting_app(scope: dict[str, Any], receive: Any, send: Any) -> None:
    """A hint before the final head, one after http.response.start (still before it is
    written), and one once the body started, which comes too late."""
    offered = "http.response.early_hint" in scope["extensions"]
    await send({"type": "http.response.early_hint", "links": LINKS[:1]})
    await send({"type": "http.response.start", "status": 200,
                "headers": [(b"content-type", b"text/plain")]})
    await send({"type": "http.response.early_hint", "links": LINKS[1:]})
    await send({"type": "http.response.body", "body": b"offered " if offered else b"not ",
                "more_body": True})
    await send({"type": "http.response.early_hint", "links": [b"</late.css>; rel=preload"]})
    await send({"type": "http.response.body", "body": b"done"})


def raw_exchange(port: int, request: bytes) -> bytes:
    with socket.create_connection(("127.0.0.1", port), timeout=5) as sock:
        sock.sendall(request)
        chunks = []
        while data := sock.recv(65536):
            chunks.append(data)
        return b"".join(chunks)


def test_early_hints_on_http11_when_enabled(serve: Any) -> None:
    server = serve(hinting_app, http1_early_hints=True)
    raw = raw_exchange(server.port, b"GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
    first, second, rest = raw.split(b"\r\n\r\n", 2)
    assert first == b"HTTP/1.1 103 Early Hints\r\nlink: " + LINKS[0]
    assert second == b"HTTP/1.1 103 Early Hints\r\nlink: " + LINKS[1]
    assert rest.startswith(b"HTTP/1.1 200 OK\r\n")
    assert b"late.css" not in raw
    assert raw.count(b" 103 ") == 2
    assert rest.endswith(b"\r\n\r\n8\r\noffered \r\n4\r\ndone\r\n0\r\n\r\n")


def test_early_hints_several_links_in_one(serve: Any, client_factory: Any) -> None:
    async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
        await send({"type": "http.response.early_hint", "links": LINKS})
        await send({"type": "http.response.start", "status": 204, "headers": []})
        await send({"type": "http.response.body"})

    server = serve(app, http1_early_hints=True)
    raw = raw_exchange(server.port, b"GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
    assert raw.startswith(b"HTTP/1.1 103 Early Hints\r\nlink: " + LINKS[0] + b"\r\nlink: "
                          + LINKS[1] + b"\r\n\r\nHTTP/1.1 204 No Content\r\n")
    # An h11 client reads the 103 as informational and the 204 as the response.
    reply = client_factory(server.port).request()
    assert (reply.informational, reply.status) == ([103], 204)


def test_no_early_hints_to_http10(serve: Any) -> None:
    server = serve(hinting_app, http1_early_hints=True)
    raw = raw_exchange(server.port, b"GET / HTTP/1.0\r\nHost: x\r\n\r\n")
    assert raw.startswith(b"HTTP/1.1 200 OK\r\n")
    assert b"103" not in raw and b"link" not in raw
    assert raw.endswith(b"\r\n\r\nnot done")


def test_no_early_hints_on_http11_by_default(serve: Any) -> None:
    server = serve(hinting_app)
    raw = raw_exchange(server.port, b"GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
    assert raw.startswith(b"HTTP/1.1 200 OK\r\n")
    assert b"103" not in raw
    assert raw.endswith(b"\r\n\r\n4\r\nnot \r\n4\r\ndone\r\n0\r\n\r\n")


def test_early_hint_before_100_continue(serve: Any) -> None:
    async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
        await send({"type": "http.response.early_hint", "links": LINKS[:1]})
        body = (await receive())["body"]
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": body})

    server = serve(app, http1_early_hints=True)
    with socket.create_connection(("127.0.0.1", server.port), timeout=5) as sock:
        sock.sendall(b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\n"
                     b"Expect: 100-continue\r\nConnection: close\r\n\r\n")
        seen = b""
        while b"100 Continue\r\n\r\n" not in seen:
            data = sock.recv(65536)
            assert data, seen
            seen += data
        sock.sendall(b"abc")
        while data := sock.recv(65536):
            seen += data
    hint, cont, final = seen.split(b"\r\n\r\n", 2)
    assert hint.startswith(b"HTTP/1.1 103 Early Hints\r\n")
    assert cont == b"HTTP/1.1 100 Continue"
    assert final.startswith(b"HTTP/1.1 200 OK\r\n") and final.endswith(b"abc\r\n0\r\n\r\n")


def test_malformed_link_is_refused_to_the_app(serve: Any, client_factory: Any) -> None:
    async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
        try:
            await send({"type": "http.response.early_hint",
                        "links": [b"</a.css>\r\nset-cookie: x=1"]})
            answer = b"sent"
        except Exception as exc:
            answer = type(exc).__name__.encode()
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": answer})

    server = serve(app, http1_early_hints=True)
    reply = client_factory(server.port).request()
    assert (reply.informational, reply.body) == ([], b"LocalProtocolError")


@pytest.fixture
def curl() -> Iterator[str]:
    path = shutil.which("curl")
    if path is None:
        pytest.skip("curl is not installed")
    yield path


def test_curl_sees_the_early_hints(serve: Any, curl: str) -> None:
    server = serve(hinting_app, http1_early_hints=True)
    result = subprocess.run([curl, "-sv", f"http://127.0.0.1:{server.port}/"],
                            capture_output=True, timeout=10, check=True)
    lines = [line.strip() for line in result.stderr.decode().splitlines()]
    assert "< HTTP/1.1 103 Early Hints" in lines
    assert "< link: " + LINKS[0].decode() in lines
    assert "< link: " + LINKS[1].decode() in lines
    assert lines.index("< HTTP/1.1 103 Early Hints") < lines.index("< HTTP/1.1 200 OK")
    assert result.stdout == b"offered done"
