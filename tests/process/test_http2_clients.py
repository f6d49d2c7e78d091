"""Real HTTP/2 clients against a real worker: curl, nghttp, h2load and httpx with h2.

Cleartext by prior knowledge and by ``Upgrade: h2c``, TLS with ALPN, ASGI and WSGI apps,
bodies streamed both ways and many streams on one connection. curl is part of the base system;
nghttp and h2load come from Debian's nghttp2-client (``make nghttp2``, which ``make test`` runs):
without them their tests skip, and fail under CI=true.
"""

from __future__ import annotations

import asyncio
import json
import os
import re
import shutil
import ssl
import subprocess
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from prefork.server import Server
from prefork.testing import running_server
from tests.apps.h2apps import HELLO, MB
from tests.process.h2wire import DATA, END_STREAM, RawConnection, Response, frame, request_headers

pytestmark = pytest.mark.process

ASGI = "tests.apps.h2apps:asgi"
WSGI = "tests.apps.h2apps:wsgi"


def _tool(name: str) -> str:
    path = shutil.which(name)
    if path is None:
        reason = f"{name} is not installed (make nghttp2 installs it with apt-get)"
        if os.environ.get("CI") == "true":
            pytest.fail(reason)
        pytest.skip(reason)
    return path


def _run(*command: str, stdin: bytes | None = None) -> subprocess.CompletedProcess[bytes]:
    return subprocess.run(command, input=stdin, capture_output=True, timeout=60, check=False)


@pytest.fixture(scope="module")
def certificates(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    import trustme

    folder = tmp_path_factory.mktemp("tls")
    ca = trustme.CA()
    cert = ca.issue_cert("127.0.0.1", "localhost")
    paths = {name: folder / f"{name}.pem" for name in ("cert", "key", "ca")}
    cert.cert_chain_pems[0].write_to_path(str(paths["cert"]))
    cert.private_key_pem.write_to_path(str(paths["key"]))
    ca.cert_pem.write_to_path(str(paths["ca"]))
    return paths


@pytest.fixture(scope="module", params=["asgi", "wsgi"])
def server(request: pytest.FixtureRequest) -> Iterator[Server]:
    """A one-worker server of each interface with HTTP/2 on, cleartext."""
    with running_server(ASGI if request.param == "asgi" else WSGI, workers=1,
                        http2=True) as started:
        yield started


@pytest.fixture(scope="module")
def asgi_server() -> Iterator[Server]:
    with running_server(ASGI, workers=1, http2=True) as started:
        yield started


@pytest.fixture(scope="module")
def tls_server(certificates: dict[str, Path]) -> Iterator[Server]:
    with running_server(ASGI, workers=1, http2=True, certfile=str(certificates["cert"]),
                        keyfile=str(certificates["key"])) as started:
        yield started


def _url(server: Server, path: str = "/", scheme: str = "http") -> str:
    return f"{scheme}://127.0.0.1:{server.port}{path}"


def _curl(*args: str, stdin: bytes | None = None) -> tuple[str, bytes]:
    """curl's output and the HTTP version it reports (``%{http_version}`` on stderr)."""
    finished = _run("curl", "-sS", "--max-time", "30", "-w", "%{stderr}%{http_version}", *args,
                    stdin=stdin)
    assert finished.returncode == 0, finished.stderr
    return finished.stderr.decode().strip().splitlines()[-1], finished.stdout


# -- curl ----------------------------------------------------------------------------------------

@pytest.mark.timeout(60)
def test_curl_prior_knowledge(server: Server) -> None:
    version, body = _curl("--http2-prior-knowledge", _url(server))
    assert (version, body) == ("2", HELLO)
    version, body = _curl("--http2-prior-knowledge", _url(server, "/big?3"))
    assert version == "2" and body == b"x" * (3 * MB)


@pytest.mark.timeout(60)
def test_curl_upgrades_cleartext_with_h2c(server: Server) -> None:
    """``curl --http2`` on http:// sends ``Upgrade: h2c``; the answer comes on stream 1."""
    version, body = _curl("--http2", _url(server))
    assert (version, body) == ("2", HELLO)


@pytest.mark.timeout(60)
def test_curl_streams_a_large_upload_and_gets_it_back(server: Server) -> None:
    payload = os.urandom(2 * MB)
    version, body = _curl("--http2-prior-knowledge", "--data-binary", "@-",
                          "-H", "Content-Type: application/octet-stream",
                          _url(server, "/echo"), stdin=payload)
    assert version == "2" and body == payload


@pytest.mark.timeout(60)
def test_curl_over_tls_picks_h2_by_alpn(tls_server: Server,
                                         certificates: dict[str, Path]) -> None:
    version, body = _curl("--http2", "--cacert", str(certificates["ca"]),
                          _url(tls_server, "/scope", "https"))
    scope = json.loads(body)
    assert version == "2"
    assert (scope["http_version"], scope["scheme"]) == ("2", "https")
    # a client that offers only http/1.1 by ALPN is served HTTP/1.1 on the same port
    version, body = _curl("--http1.1", "--cacert", str(certificates["ca"]),
                          _url(tls_server, "/scope", "https"))
    assert version == "1.1" and json.loads(body)["http_version"] == "1.1"


@pytest.mark.timeout(60)
def test_curl_sees_the_asgi_scope_as_http2(asgi_server: Server) -> None:
    version, body = _curl("--http2-prior-knowledge", "-H", "X-Probe: yes",
                          _url(asgi_server, "/scope?x=1"))
    scope = json.loads(body)
    assert version == "2"
    assert scope["http_version"] == "2" and scope["method"] == "GET"
    assert ["x-probe", "yes"] in scope["headers"]
    # the :authority pseudo-header reaches the app as its Host header
    assert any(name == "host" for name, _ in scope["headers"])


# -- nghttp --------------------------------------------------------------------------------------

@pytest.mark.timeout(60)
def test_nghttp_prior_knowledge_many_requests_on_one_connection(server: Server) -> None:
    nghttp = _tool("nghttp")
    finished = _run(nghttp, "-v", "-m", "20", _url(server))
    output = finished.stdout.decode(errors="replace")
    assert finished.returncode == 0, output[-2000:]
    assert output.count(":status: 200") == 20
    assert output.count(HELLO.decode()) == 20
    # one connection: one preface, the 20 requests on streams 1, 3, ..., 39
    assert output.count("PRI * HTTP/2.0") <= 1 and "stream_id=39" in output


@pytest.mark.timeout(60)
def test_nghttp_upgrade_and_upload(asgi_server: Server, tmp_path: Path) -> None:
    nghttp = _tool("nghttp")
    finished = _run(nghttp, "-u", "-v", _url(asgi_server))
    output = finished.stdout.decode(errors="replace")
    assert finished.returncode == 0, output[-2000:]
    assert "HTTP Upgrade success" in output and HELLO.decode() in output
    payload = tmp_path / "payload"
    payload.write_bytes(os.urandom(300_000))
    finished = _run(nghttp, "-d", str(payload), _url(asgi_server, "/echo"))
    assert finished.returncode == 0, finished.stderr
    assert finished.stdout == payload.read_bytes()


@pytest.mark.timeout(60)
def test_nghttp_receives_trailers(asgi_server: Server) -> None:
    nghttp = _tool("nghttp")
    finished = _run(nghttp, "-v", _url(asgi_server, "/trailers"))
    output = finished.stdout.decode(errors="replace")
    assert finished.returncode == 0, output[-2000:]
    assert "with trailers" in output
    assert re.search(r"x-checksum: 42", output), output[-2000:]


@pytest.mark.timeout(60)
def test_nghttp_over_tls(tls_server: Server) -> None:
    nghttp = _tool("nghttp")
    finished = _run(nghttp, "-v", _url(tls_server, "/", "https"))
    output = finished.stdout.decode(errors="replace")
    assert finished.returncode == 0, output[-2000:]
    assert "h2 is negotiated" in output.lower() or "negotiated protocol: h2" in output.lower()
    assert HELLO.decode() in output


# -- h2load --------------------------------------------------------------------------------------

def _h2load(*args: str) -> str:
    finished = _run(_tool("h2load"), *args)
    output = finished.stdout.decode(errors="replace")
    assert finished.returncode == 0, output[-2000:] + finished.stderr.decode(errors="replace")
    return output


@pytest.mark.timeout(120)
def test_h2load_many_streams_per_connection(server: Server) -> None:
    output = _h2load("-n", "2000", "-c", "4", "-m", "50", _url(server))
    assert "Application protocol: h2c" in output
    assert "2000 succeeded, 0 failed" in output, output
    assert "status codes: 2000 2xx" in output


@pytest.mark.timeout(120)
def test_h2load_over_tls(tls_server: Server) -> None:
    output = _h2load("-n", "500", "-c", "2", "-m", "20", _url(tls_server, "/", "https"))
    assert "Application protocol: h2\n" in output
    assert "500 succeeded, 0 failed" in output, output


@pytest.mark.timeout(120)
def test_h2load_uploads(asgi_server: Server, tmp_path: Path) -> None:
    payload = tmp_path / "payload"
    payload.write_bytes(b"z" * 100_000)
    output = _h2load("-n", "200", "-c", "2", "-m", "10", "-d", str(payload),
                     _url(asgi_server, "/echo"))
    assert "200 succeeded, 0 failed" in output, output
    # 200 answers of 100,000 bytes each came back ("... 19.07MB (20000000) data")
    data = re.search(r"traffic: .*\((\d+)\) data", output)
    assert data is not None and int(data.group(1)) == 200 * 100_000, output


# -- httpx ---------------------------------------------------------------------------------------

@pytest.mark.timeout(60)
def test_httpx_prior_knowledge(server: Server) -> None:
    with httpx.Client(http1=False, http2=True, timeout=30) as client:
        response = client.get(_url(server))
        assert (response.http_version, response.status_code) == ("HTTP/2", 200)
        assert response.content == HELLO
        response = client.post(_url(server, "/echo"), content=b"a" * 200_000)
        assert response.content == b"a" * 200_000


@pytest.mark.timeout(60)
def test_httpx_over_tls(tls_server: Server, certificates: dict[str, Path]) -> None:
    context = ssl.create_default_context(cafile=str(certificates["ca"]))
    with httpx.Client(http2=True, verify=context, timeout=30) as client:
        response = client.get(_url(tls_server, "/scope", "https"))
        assert response.http_version == "HTTP/2"
        assert response.json()["http_version"] == "2"


@pytest.mark.timeout(60)
def test_httpx_streams_an_upload_and_a_download(asgi_server: Server) -> None:
    pieces = [bytes([65 + index]) * 10_000 for index in range(20)]
    with httpx.Client(http1=False, http2=True, timeout=30) as client, \
            client.stream("POST", _url(asgi_server, "/relay"), content=iter(pieces)) as response:
        assert response.http_version == "HTTP/2"
        received = b"".join(response.iter_bytes())
    assert received == b"".join(pieces)


@pytest.mark.timeout(60)
def test_a_body_streams_both_ways_piece_by_piece(asgi_server: Server) -> None:
    """Each piece of the request body comes back before the next is sent: neither side waits
    for the other's end."""
    with RawConnection(asgi_server.port) as client:
        client.handshake()
        client.send(client.headers_frame(1, request_headers("/relay", "POST"),
                                         end_stream=False))
        sent = b""
        for index in range(10):
            piece = bytes([65 + index]) * 1000
            client.send(frame(DATA, 0, 1, piece))
            sent += piece
            assert client.read_until(
                lambda connection: connection.responses.get(1, Response()).body == sent,  # noqa: B023 - used at once
                timeout=10), f"piece {index} did not come back before the next was sent"
        client.send(frame(DATA, END_STREAM, 1))
        response = client.response(1)
        assert (response.status, response.ended, response.body) == (200, True, sent)


@pytest.mark.timeout(60)
def test_httpx_many_concurrent_streams_on_one_connection(server: Server) -> None:
    async def main() -> list[httpx.Response]:
        async with httpx.AsyncClient(http1=False, http2=True, timeout=30) as client:
            return await asyncio.gather(*(client.get(_url(server, f"/?n={index}"))
                                          for index in range(100)))

    responses = asyncio.run(main())
    assert [response.status_code for response in responses] == [200] * 100
    assert {response.content for response in responses} == {HELLO}
    assert {response.http_version for response in responses} == {"HTTP/2"}
