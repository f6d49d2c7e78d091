"""What a TLS connection tells the app about itself: the facts the ASGI ``tls`` extension names.

``tls_facts`` is made once per connection, when its handshake is done
(``prefork.workers.protocol``), and shared by every request the connection carries; the server's
own certificate is read once per worker (``server_certificate``). The shape is the ASGI TLS
extension's (asgiref ``specs/tls.rst``):

* ``server_cert``: the first certificate of ``--certfile`` as PEM (the ``ssl`` module has no
  way to ask a context for its own certificate, so the file is read);
* ``client_cert_chain``: PEM strings, the client's certificate first. On Python 3.13 and newer
  it is the chain the server verified (``SSLObject.get_verified_chain``: the client's
  certificate, the intermediates, the trust anchor from ``--ca-certs``); before 3.13 the
  ``ssl`` module gives the client's certificate alone, so the list holds that one;
* ``client_cert_name``: the certificate's subject as an RFC 4514 string, None without one;
* ``client_cert_error``: always None. OpenSSL ends the handshake on a certificate that fails
  verification (with ``--cert-reqs`` 1 as with 2), so no request ever arrives with one;
* ``tls_version`` and ``cipher_suite``: the IANA numbers (0x0304, 0x1301, ...).

``ssl`` is imported on the first TLS connection, not with this module: the arbiter imports
the protocol but serves no TLS itself.
"""

from __future__ import annotations

import functools
import re
from typing import TYPE_CHECKING, Any, Final

if TYPE_CHECKING:
    import ssl

# ssl.SSLObject.version() names -> the protocol version numbers TLS puts on the wire.
TLS_VERSIONS: Final = {"TLSv1.3": 0x0304, "TLSv1.2": 0x0303, "TLSv1.1": 0x0302,
                       "TLSv1": 0x0301, "SSLv3": 0x0300}

# The attribute types RFC 4514 §3 gives short names; Python's ssl module reports the long ones.
# Any other type keeps the name OpenSSL gave it (emailAddress, serialNumber, ...).
_SHORT_NAMES: Final = {
    "commonName": "CN", "localityName": "L", "stateOrProvinceName": "ST",
    "organizationName": "O", "organizationalUnitName": "OU", "countryName": "C",
    "streetAddress": "STREET", "domainComponent": "DC", "userId": "UID",
}
# RFC 4514 §2.4: characters escaped anywhere in a value.
_SPECIAL: Final = re.compile(r'([\\"+,;<>])')
_PEM_CERTIFICATE: Final = re.compile(
    r"-----BEGIN CERTIFICATE-----\s+.+?\s+-----END CERTIFICATE-----", re.DOTALL)


def server_certificate(certfile: str | None) -> str | None:
    """The first certificate in ``certfile`` as PEM, None when there is none to read."""
    if not certfile:
        return None
    import ssl

    try:
        with open(certfile, encoding="ascii", errors="replace") as file:
            match = _PEM_CERTIFICATE.search(file.read())
        if match is None:
            return None
        # Through DER and back: one canonical layout whatever the file's line lengths.
        return ssl.DER_cert_to_PEM_cert(ssl.PEM_cert_to_DER_cert(match.group(0)))
    except (OSError, ValueError):
        return None


def tls_facts(ssl_object: ssl.SSLObject | None, server_cert: str | None) -> dict[str, Any]:
    """The ASGI ``tls`` extension's dict for a connection whose handshake is done."""
    chain: list[str] = []
    name: str | None = None
    version: int | None = None
    suite: int | None = None
    if ssl_object is not None:
        chain = client_chain(ssl_object)
        if chain:
            name = rfc4514_name((ssl_object.getpeercert() or {}).get("subject", ()))
        version = TLS_VERSIONS.get(ssl_object.version() or "")
        cipher = ssl_object.cipher()
        if cipher is not None:
            suite = cipher_ids().get(cipher[0])
    return {
        "server_cert": server_cert,
        "client_cert_chain": chain,
        "client_cert_name": name,
        "client_cert_error": None,
        "tls_version": version,
        "cipher_suite": suite,
    }


def client_chain(ssl_object: ssl.SSLObject) -> list[str]:
    """The client's certificates as PEM, its own first; empty when it sent none."""
    import ssl

    verified_chain = getattr(ssl_object, "get_verified_chain", None)  # Python 3.13+
    if verified_chain is not None:
        chain = verified_chain()  # DER, as the SSLObject gives it (not _ssl's Certificate)
        if chain:
            return [ssl.DER_cert_to_PEM_cert(der) for der in chain]
    der = ssl_object.getpeercert(binary_form=True)
    return [ssl.DER_cert_to_PEM_cert(der)] if der else []


def rfc4514_name(subject: Any) -> str:
    """A subject as ``ssl`` reports it (a sequence of RDNs, each a sequence of (type, value)
    pairs, in certificate order) as an RFC 4514 string: the RDNs last first, ``+`` inside a
    multi-valued RDN, special characters escaped."""
    rdns = []
    for rdn in reversed(subject):
        rdns.append("+".join(f"{_SHORT_NAMES.get(kind, kind)}={_escape(value)}"
                             for kind, value in rdn))
    return ",".join(rdns)


def _escape(value: str) -> str:
    escaped = _SPECIAL.sub(r"\\\1", value).replace("\0", "\\00")
    if value[:1] in ("#", " "):
        escaped = "\\" + escaped
    if len(value) > 1 and value.endswith(" "):  # a lone space was escaped as the first
        escaped = escaped[:-1] + "\\ "
    return escaped


@functools.cache
def cipher_ids() -> dict[str, int]:
    """OpenSSL's cipher names -> their IANA numbers, for every suite this OpenSSL knows (read
    once per worker: a negotiated suite is always among them)."""
    import ssl

    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    context.set_ciphers("ALL:COMPLEMENTOFALL:@SECLEVEL=0")
    # The id is OpenSSL's: 0x0300 followed by the two bytes TLS puts on the wire.
    return {cipher["name"]: cipher["id"] & 0xFFFF for cipher in context.get_ciphers()}
