"""Forwarding headers are believed only from trusted proxies, right-most untrusted hop wins."""

from __future__ import annotations

import pytest

from prefork.errors import ConfigError
from prefork.proxy import Forwarded, TrustedProxies, resolve

LOOPBACK = TrustedProxies.parse("127.0.0.1,::1")


def headers(**values: str) -> list[tuple[bytes, bytes]]:
    return [(name.replace("_", "-").encode(), value.encode()) for name, value in values.items()]


def test_untrusted_peer_is_ignored() -> None:
    assert resolve(headers(x_forwarded_for="1.2.3.4"), "10.0.0.9", LOOPBACK) == Forwarded()


def test_x_forwarded_family() -> None:
    result = resolve(headers(x_forwarded_for="203.0.113.7", x_forwarded_proto="https",
                             x_forwarded_host="example.com"), "127.0.0.1", LOOPBACK)
    assert result == Forwarded(client=("203.0.113.7", 0), scheme="https", host=b"example.com")


def test_chain_picks_rightmost_untrusted_hop() -> None:
    trusted = TrustedProxies.parse("127.0.0.1, 10.0.0.0/8")
    value = "6.6.6.6, 203.0.113.7, 10.1.2.3"  # the client forged 6.6.6.6
    result = resolve(headers(x_forwarded_for=value), "127.0.0.1", trusted)
    assert result.client == ("203.0.113.7", 0)


def test_all_hops_trusted_takes_the_leftmost() -> None:
    trusted = TrustedProxies.parse("*")
    assert resolve(headers(x_forwarded_for="10.0.0.1, 10.0.0.2"), "10.9.9.9",
                   trusted).client == ("10.0.0.1", 0)


def test_rfc7239_forwarded_wins_and_parses_ipv6() -> None:
    value = 'for="[2001:db8::17]:4711";proto=https;host=shop.example, for=127.0.0.1'
    result = resolve(headers(forwarded=value, x_forwarded_for="9.9.9.9"), "::1", LOOPBACK)
    assert result == Forwarded(client=("2001:db8::17", 4711), scheme="https",
                               host=b"shop.example")


def test_unknown_and_garbage_are_not_clients() -> None:
    assert resolve(headers(forwarded="for=unknown"), "127.0.0.1", LOOPBACK).client is None
    assert resolve(headers(x_forwarded_for="not-an-ip"), "127.0.0.1", LOOPBACK).client is None
    assert resolve(headers(x_forwarded_proto="gopher"), "127.0.0.1", LOOPBACK).scheme is None


def test_ipv4_mapped_peer_and_unix_peer() -> None:
    assert LOOPBACK.trusts("::ffff:127.0.0.1")
    assert not LOOPBACK.trusts("/run/app.sock")
    assert not LOOPBACK.trusts(None)


def test_bad_setting_names_it() -> None:
    with pytest.raises(ConfigError, match="forwarded_allow_ips"):
        TrustedProxies.parse("127.0.0.1, nonsense")
