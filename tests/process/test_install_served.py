"""A request served end to end by the installed package (arbiter, worker, parser, app): the
one process test that ``make test`` also runs on every other Python, pure and compiled."""

from __future__ import annotations

import pytest

import prefork
from prefork.testing import http_request, running_server

pytestmark = [pytest.mark.process, pytest.mark.timeout(60)]


def test_the_demo_app_answers() -> None:
    with running_server("examples.hello:app", workers=1) as server:
        status, _, body = http_request(server.port, "/")
    assert status == 200
    assert body.startswith(b"Hello from prefork worker"), (prefork.build(), body)
