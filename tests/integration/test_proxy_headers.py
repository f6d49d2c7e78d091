"""Proxy headers on a real server: trusted only from --forwarded-allow-ips."""

from __future__ import annotations

import http.client
import json

import pytest

from prefork.testing import http_request, running_server


async def origin_app(scope, receive, send):
    if scope["type"] != "http":
        return
    host = dict(scope["headers"]).get(b"host", b"").decode()
    body = json.dumps({"client": scope["client"], "scheme": scope["scheme"], "host": host})
    await send({"type": "http.response.start", "status": 200,
                "headers": [(b"content-type", b"application/json")]})
    await send({"type": "http.response.body", "body": body.encode()})


FORWARDED = {"X-Forwarded-For": "203.0.113.9", "X-Forwarded-Proto": "https",
             "X-Forwarded-Host": "shop.example"}


@pytest.mark.timeout(60)
@pytest.mark.parametrize("parser", ["httptools", "h11"])
def test_loopback_proxy_is_trusted_by_default(parser: str) -> None:
    with running_server(origin_app, workers=1, http=parser) as server:
        seen = json.loads(http_request(server.port, "/", headers=FORWARDED)[2])
        assert seen == {"client": ["203.0.113.9", 0], "scheme": "https", "host": "shop.example"}
        plain = json.loads(http_request(server.port, "/")[2])
        assert plain["client"][0] == "127.0.0.1" and plain["scheme"] == "http"
        forwarded = {"Forwarded": 'for="[2001:db8::1]:1234";proto=https'}
        seen = json.loads(http_request(server.port, "/", headers=forwarded)[2])
        assert seen["client"] == ["2001:db8::1", 1234] and seen["scheme"] == "https"


@pytest.mark.timeout(60)
def test_untrusted_peer_cannot_claim_an_address() -> None:
    with running_server(origin_app, workers=1, forwarded_allow_ips="10.0.0.1") as server:
        seen = json.loads(http_request(server.port, "/", headers=FORWARDED)[2])
        assert seen["client"][0] == "127.0.0.1" and seen["scheme"] == "http"
        assert seen["host"].startswith("127.0.0.1:")


@pytest.mark.timeout(60)
def test_proxy_headers_can_be_turned_off() -> None:
    with running_server(origin_app, workers=1, proxy_headers=False) as server:
        seen = json.loads(http_request(server.port, "/", headers=FORWARDED)[2])
        assert seen["client"][0] == "127.0.0.1" and seen["scheme"] == "http"


@pytest.mark.timeout(60)
@pytest.mark.parametrize(("field", "value", "key", "expected"), [
    ("X-Forwarded-For", "203.0.113.9", "client", ["203.0.113.9", 0]),
    ("X-Forwarded-Proto", "https", "scheme", "https"),
    ("X-Forwarded-Host", "shop.example", "host", "shop.example"),
    ("Forwarded", "for=203.0.113.9", "client", ["203.0.113.9", 0]),
])
def test_each_forwarding_field_alone_is_honoured(field: str, value: str, key: str,
                                                 expected: object) -> None:
    """Each field on its own, then a plain request on the same connection: the protocol skips
    the proxy resolution for requests that carry none of them, and must not keep the last
    request's answer."""
    with running_server(origin_app, workers=1) as server:
        client = http.client.HTTPConnection("127.0.0.1", server.port, timeout=10)
        try:
            client.request("GET", "/", headers={field: value})
            seen = json.loads(client.getresponse().read())
            client.request("GET", "/")
            plain = json.loads(client.getresponse().read())
        finally:
            client.close()
        assert seen[key] == expected
        assert plain["client"][0] == "127.0.0.1" and plain["scheme"] == "http"
        assert plain["host"].startswith("127.0.0.1:")
