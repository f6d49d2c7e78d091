"""The listener objects hooks see as ``server.LISTENERS``: gunicorn's str() and socket methods."""

from __future__ import annotations

from pathlib import Path

import pytest

from prefork.hooks import ListenerView
from prefork.sockets import ListenerSet, parse_bind

pytestmark = pytest.mark.timeout(10)


def test_tcp_listener_is_an_http_url_with_the_bound_port() -> None:
    listener = ListenerSet(parse_bind("127.0.0.1:0"), backlog=8, per_slot=False)
    try:
        view = ListenerView(listener)
        port = listener.port
        assert port and str(view) == f"http://127.0.0.1:{port}"
        assert view.getsockname() == ("127.0.0.1", port)
        assert view.fileno() == listener.all_sockets()[0].fileno()
        assert str(ListenerView(listener, tls=True)) == f"https://127.0.0.1:{port}"
    finally:
        listener.close()


def test_ipv6_listener_has_brackets() -> None:
    try:
        listener = ListenerSet(parse_bind("[::1]:0"), backlog=8, per_slot=False)
    except OSError:
        pytest.skip("no IPv6 loopback here")
    try:
        assert str(ListenerView(listener)) == f"http://[::1]:{listener.port}"
    finally:
        listener.close()


def test_unix_listener_is_unix_path(tmp_path: Path) -> None:
    path = tmp_path / "app.sock"
    listener = ListenerSet(parse_bind(f"unix:{path}"), backlog=8, per_slot=False)
    try:
        assert str(ListenerView(listener)) == f"unix:{path}"
    finally:
        listener.close()


def test_reuseport_listener_before_its_first_slot_names_the_address() -> None:
    listener = ListenerSet(parse_bind("127.0.0.1:0"), backlog=8, per_slot=True)
    try:
        view = ListenerView(listener)
        assert view.sock is None and str(view) == "http://127.0.0.1:0"
        with pytest.raises(AttributeError):
            view.getsockname()
    finally:
        listener.close()
