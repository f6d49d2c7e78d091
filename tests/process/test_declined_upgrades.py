"""An Upgrade the server cannot switch to is an ordinary request, body included: ``curl
--http2`` on a cleartext URL asks for h2c with every request, and a WebSocket upgrade reaches a
WSGI app as a plain request. Served by real workers, asked by the real curl."""

from __future__ import annotations

import shutil
import subprocess

import pytest

from prefork.testing import running_server

BODY = "x" * 70_000 + "end"  # longer than one read, so the body arrives in pieces


@pytest.mark.timeout(60)
@pytest.mark.skipif(shutil.which("curl") is None, reason="curl is not installed")
@pytest.mark.parametrize("app", ["tests.integration.apps:echo",
                                 "tests.integration.wsgi_apps:echo"])
@pytest.mark.parametrize("parser", ["httptools", "h11"])
def test_curl_http2_upgrade_post_reaches_the_app_whole(app: str, parser: str) -> None:
    with running_server(app, workers=1, http=parser, lifespan="off") as server:
        for _ in range(3):
            done = subprocess.run(
                ["curl", "-sS", "--http2", "--max-time", "10", "-D", "-", "--data-binary", "@-",
                 f"http://127.0.0.1:{server.port}/echo"],
                input=BODY, capture_output=True, text=True, timeout=20, check=True)
            out = done.stdout
            while out.startswith("HTTP/1.1 100"):  # curl asks to continue for a large body
                out = out.partition("\n\n")[2]
            head, _, body = out.partition("\n\n")
            assert head.startswith("HTTP/1.1 200"), done.stdout[:300]
            assert "101" not in head.splitlines()[0]
            assert body == BODY
