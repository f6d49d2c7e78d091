"""``--threads 4``: four slow requests at once take about one sleep, on four threads; and
``--root-path`` becomes SCRIPT_NAME."""

from __future__ import annotations

import json
import threading
import time

import pytest

from prefork.testing import http_request, running_server

APP = "tests.integration.wsgi_apps:app"
pytestmark = pytest.mark.timeout(30)


@pytest.mark.parametrize("parser", ["httptools", "h11"])
def test_four_slow_requests_run_at_once(parser: str) -> None:
    with running_server(APP, workers=1, http=parser, threads=4) as server:
        results: list[tuple[int, bytes]] = []

        def fetch() -> None:
            status, _, body = http_request(server.port, "/sleep?s=0.5")
            results.append((status, body))

        started = time.monotonic()
        clients = [threading.Thread(target=fetch) for _ in range(4)]
        for client in clients:
            client.start()
        for client in clients:
            client.join(10)
        elapsed = time.monotonic() - started
    assert [status for status, _ in results] == [200] * 4
    assert len({body for _, body in results}) == 4  # four different threads
    assert elapsed < 1.2  # one sleep, not four (2 s)


def test_inline_serves_one_at_a_time() -> None:
    with running_server(APP, workers=1, threads=1) as server:
        started = time.monotonic()
        clients = [threading.Thread(target=http_request, args=(server.port, "/sleep?s=0.2"))
                   for _ in range(3)]
        for client in clients:
            client.start()
        for client in clients:
            client.join(10)
        assert time.monotonic() - started >= 0.55  # gunicorn's sync worker model


def test_root_path_is_script_name() -> None:
    with running_server(APP, workers=1, root_path="/mount") as server:
        status, _, body = http_request(server.port, "/mount/environ")
        environ = json.loads(body)
        assert status == 200
        assert (environ["SCRIPT_NAME"], environ["PATH_INFO"]) == ("/mount", "/environ")
        status, _, body = http_request(server.port, "/mount/flask/url")
        assert json.loads(body)["url"].endswith("/mount/flask/url")
