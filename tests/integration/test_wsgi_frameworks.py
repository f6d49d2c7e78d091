"""A real Flask app and a minimal Django project (tests/integration/wsgi_apps.py) served end to
end, inline and threaded, with both parsers."""

from __future__ import annotations

import os
import zlib
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests

from prefork.server import Server
from prefork.testing import running_server

APP = "tests.integration.wsgi_apps:app"
pytestmark = pytest.mark.timeout(30)


@pytest.fixture(scope="module", params=[("httptools", 1), ("h11", 4)],
                ids=lambda p: f"{p[0]}-threads{p[1]}")
def base(request: pytest.FixtureRequest) -> Iterator[str]:
    parser, threads = request.param
    server: Server
    with running_server(APP, workers=1, http=parser, threads=threads) as server:
        yield f"http://127.0.0.1:{server.port}"


@pytest.fixture
def session() -> Iterator[requests.Session]:
    with requests.Session() as started:
        yield started


def test_flask_form_post(base: str, session: requests.Session) -> None:
    response = session.post(f"{base}/flask/form", data={"name": "Zoë", "t": ["a", "b"]})
    assert response.status_code == 200 and response.json() == {"name": "Zoë", "tags": ["a", "b"]}


def test_flask_file_upload(base: str, session: requests.Session) -> None:
    data = os.urandom(3 << 20)  # past the 1 MiB spill
    response = session.post(f"{base}/flask/upload", files={"file": ("blob.bin", data)})
    assert response.json() == {"filename": "blob.bin", "size": len(data),
                               "crc": zlib.crc32(data)}


def test_flask_streaming_response(base: str, session: requests.Session) -> None:
    response = session.get(f"{base}/flask/stream")
    assert response.headers["transfer-encoding"] == "chunked"
    assert response.text == "".join(f"line {n}\n" for n in range(5))


def test_flask_send_file(base: str, session: requests.Session, tmp_path: Path) -> None:
    path = tmp_path / "download.bin"
    path.write_bytes(os.urandom(1 << 20))
    response = session.get(f"{base}/flask/file", params={"path": str(path)})
    assert response.status_code == 200 and response.content == path.read_bytes()
    ranged = session.get(f"{base}/flask/file", params={"path": str(path)},
                         headers={"Range": "bytes=10-19"})
    assert ranged.status_code == 206 and ranged.content == path.read_bytes()[10:20]


def test_django_views(base: str, session: requests.Session) -> None:
    hello = session.get(f"{base}/django/hello")
    assert hello.status_code == 200 and hello.text == "django GET /django/hello"
    posted = session.post(f"{base}/django/post", data={"a": "1"})
    assert posted.json() == {"a": "1", "body_size": 3}
    streamed = session.get(f"{base}/django/stream")
    assert streamed.text == "part 0\npart 1\npart 2\n"
    assert session.get(f"{base}/django/missing").status_code == 404
