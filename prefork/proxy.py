"""Trusting a reverse proxy: who the client is, which scheme and host it asked for.

``X-Forwarded-For``/``-Proto``/``-Host`` and RFC 7239 ``Forwarded`` are honoured only when the
connection's peer is in ``--forwarded-allow-ips`` (by default loopback only), so a client that
talks to prefork directly cannot claim another address. With a chain of proxies the client is
the right-most address that is not itself a trusted proxy (each proxy appends the address it
saw; everything left of the first untrusted hop may be forged). ``Forwarded`` wins over the
``X-Forwarded-*`` family when both are present.

Rule: pure functions over header lists and addresses; no I/O.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

from prefork.errors import ConfigError
from prefork.memo import remember

Network = ipaddress.IPv4Network | ipaddress.IPv6Network

_ANSWERS_MAX = 4096
PROXY_SCHEMES = {"http": "http", "https": "https", "ws": "http", "wss": "https"}


# setting text -> its parsed value; as many entries as distinct settings ever given
_PARSED: dict[str, TrustedProxies] = {}


@dataclass(frozen=True, slots=True)
class TrustedProxies:
    """The peers whose forwarding headers are believed; ``everyone`` for ``*``."""

    networks: tuple[Network, ...]
    everyone: bool = False
    # host -> answer: every connection asks once, and parsing an address with ipaddress costs
    # more than the rest of setting up the connection (bench/http_engine.py). Pure, bounded.
    _answers: dict[str, bool] = field(default_factory=dict, compare=False, repr=False)

    @classmethod
    def parse(cls, text: str) -> TrustedProxies:
        """``"127.0.0.1,::1"``, CIDR ranges, or ``*``; raises ConfigError naming the setting.

        The same text gives the same value: the settings' check parses it in the arbiter, and
        its workers find it parsed instead of each running ``ipaddress`` over it after the fork,
        which copied about 0.2 MB of the pages a worker shares with the arbiter."""
        parsed = _PARSED.get(text)
        if parsed is None:
            parsed = _PARSED[text] = cls._parse(text)
        return parsed

    @classmethod
    def _parse(cls, text: str) -> TrustedProxies:
        items = [item.strip() for item in text.split(",") if item.strip()]
        if "*" in items:
            return cls((), everyone=True)
        networks = []
        for item in items:
            try:
                networks.append(ipaddress.ip_network(item, strict=False))
            except ValueError:
                raise ConfigError(
                    f"forwarded_allow_ips: {item!r} is not an IP address or network") from None
        return cls(tuple(networks))

    def trusts(self, host: str | None) -> bool:
        if self.everyone:
            return True
        if not host:
            return False
        answers = self._answers
        answer = answers.get(host)
        if answer is None:
            answer = remember(answers, host, self._trusts(host), _ANSWERS_MAX)
        return answer

    def _trusts(self, host: str) -> bool:
        try:
            address = ipaddress.ip_address(host.split("%", 1)[0])
        except ValueError:
            return False  # a unix socket path or a name: never a trusted hop
        if address.version == 6 and address.ipv4_mapped is not None:
            address = address.ipv4_mapped
        return any(address in network for network in self.networks)


@dataclass(frozen=True, slots=True)
class Forwarded:
    """What the trusted proxy chain says of the original request (None: not said)."""

    client: tuple[str, int] | None = None
    scheme: str | None = None
    host: bytes | None = None


NOTHING = Forwarded()


def resolve(headers: Sequence[tuple[bytes, bytes]], peer: str | None,
            trusted: TrustedProxies) -> Forwarded:
    """The forwarded client, scheme and host, if ``peer`` is trusted and the headers say so."""
    if not trusted.trusts(peer):
        return NOTHING
    forwarded: list[bytes] = []
    x_for: list[bytes] = []
    x_proto = x_host = None
    for name, value in headers:
        if name == b"forwarded":
            forwarded.append(value)
        elif name == b"x-forwarded-for":
            x_for.append(value)
        elif name == b"x-forwarded-proto":
            x_proto = value
        elif name == b"x-forwarded-host":
            x_host = value
    if forwarded:
        return _from_forwarded(b",".join(forwarded), trusted)
    if not (x_for or x_proto or x_host):
        return NOTHING
    client = _pick_client(_split_list(b",".join(x_for)), trusted) if x_for else None
    scheme = _scheme(_split_list(x_proto)[-1]) if x_proto else None
    host = _split_list(x_host)[0].encode("latin-1") if x_host else None
    return Forwarded(client=client, scheme=scheme, host=host or None)


def _split_list(value: bytes) -> list[str]:
    return [item.strip() for item in value.decode("latin-1").split(",") if item.strip()]


def _scheme(value: str) -> str | None:
    return PROXY_SCHEMES.get(value.strip().strip('"').lower())


def _pick_client(hops: list[str], trusted: TrustedProxies) -> tuple[str, int] | None:
    """The right-most hop that is not a trusted proxy (the left-most if all are)."""
    addresses = [address for address in (_parse_node(hop) for hop in hops) if address]
    if not addresses:
        return None
    for host, port in reversed(addresses):
        if not trusted.trusts(host):
            return host, port
    return addresses[0]


def _parse_node(node: str) -> tuple[str, int] | None:
    """``1.2.3.4``, ``1.2.3.4:80``, ``[2001:db8::1]:4711``, ``2001:db8::1``; None for
    ``unknown`` and obfuscated identifiers (RFC 7239 §6)."""
    node = node.strip().strip('"')
    port = 0
    if node.startswith("["):
        host, _, rest = node[1:].partition("]")
        if rest.startswith(":") and rest[1:].isdigit():
            port = int(rest[1:])
    elif node.count(":") == 1:
        host, _, port_text = node.partition(":")
        port = int(port_text) if port_text.isdigit() else 0
    else:
        host = node
    try:
        ipaddress.ip_address(host)
    except ValueError:
        return None
    return host, port


def _from_forwarded(value: bytes, trusted: TrustedProxies) -> Forwarded:
    elements = [_parse_element(element) for element in _split_elements(value)]
    hops = [element["for"] for element in elements if "for" in element]
    client = _pick_client(hops, trusted) if hops else None
    # proto and host belong to the element the nearest untrusted hop added, or the first one
    chosen = elements[0] if elements else {}
    for element in reversed(elements):
        node = _parse_node(element.get("for", ""))
        if node is None or not trusted.trusts(node[0]):
            chosen = element
            break
    scheme = _scheme(chosen["proto"]) if "proto" in chosen else None
    host = chosen.get("host")
    return Forwarded(client=client, scheme=scheme,
                     host=host.encode("latin-1") if host else None)


def _split_elements(value: bytes) -> Iterable[str]:
    """Split on commas outside quoted strings."""
    text = value.decode("latin-1")
    start, quoted = 0, False
    for index, char in enumerate(text):
        if char == '"':
            quoted = not quoted
        elif char == "," and not quoted:
            yield text[start:index]
            start = index + 1
    yield text[start:]


def _parse_element(element: str) -> dict[str, str]:
    pairs: dict[str, str] = {}
    for pair in element.split(";"):
        name, sep, value = pair.partition("=")
        if sep:
            pairs[name.strip().lower()] = value.strip().strip('"')
    return pairs
