"""Bind address parsing and per-slot listener sets."""

from __future__ import annotations

import socket

import pytest

from prefork.errors import BootError, ConfigError
from prefork.sockets import BindAddress, ListenerSet, parse_bind


@pytest.mark.parametrize("text, expected", [
    ("127.0.0.1:8000", BindAddress("tcp", host="127.0.0.1", port=8000)),
    (":9000", BindAddress("tcp", host="0.0.0.0", port=9000)),
    ("localhost", BindAddress("tcp", host="localhost", port=8000)),
    ("[::1]:0", BindAddress("tcp", host="::1", port=0)),
    ("unix:/tmp/x.sock", BindAddress("unix", path="/tmp/x.sock")),
    ("fd://3", BindAddress("fd", fd=3)),
])
def test_parse(text: str, expected: BindAddress) -> None:
    assert parse_bind(text) == expected


@pytest.mark.parametrize("text", ["1.2.3.4:http", "::1:80", "host:70000", "unix:", "fd://x"])
def test_parse_errors_name_bind(text: str) -> None:
    with pytest.raises(ConfigError, match="bind"):
        parse_bind(text)


def test_reuseport_slots_share_port_zero() -> None:
    listeners = ListenerSet(parse_bind("127.0.0.1:0"), 16, per_slot=True)
    try:
        first = listeners.for_slot(0)
        second = listeners.for_slot(1)
        assert first is not second
        assert first.getsockname()[1] == second.getsockname()[1] == listeners.port != 0
        listeners.release_slot(1)
        assert len(listeners.all_sockets()) == 1
    finally:
        listeners.close()


def test_port_in_use_is_a_boot_error() -> None:
    holder = socket.socket()
    holder.bind(("127.0.0.1", 0))
    holder.listen()
    try:
        with pytest.raises(BootError, match="Address already in use"):
            ListenerSet(parse_bind(f"127.0.0.1:{holder.getsockname()[1]}"), 16, per_slot=False)
    finally:
        holder.close()


def test_a_second_reuseport_server_cannot_join_the_port() -> None:
    first = ListenerSet(parse_bind("127.0.0.1:0"), 16, per_slot=True)
    try:
        first.ensure_slot(0)
        with pytest.raises(BootError, match="Address already in use"):
            ListenerSet(parse_bind(f"127.0.0.1:{first.port}"), 16, per_slot=True).ensure_slot(0)
    finally:
        first.close()
