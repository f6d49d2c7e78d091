"""The TLS facts a connection gives the ASGI ``tls`` extension: names, numbers, certificates.
The handshake itself is tested against a real TLS server in tests/integration."""

from __future__ import annotations

import ssl
from pathlib import Path

import pytest

from prefork.workers.tls_facts import cipher_ids, rfc4514_name, server_certificate, tls_facts

trustme = pytest.importorskip("trustme")
x509 = pytest.importorskip("cryptography.x509")


def test_cipher_ids_are_the_iana_numbers() -> None:
    ids = cipher_ids()
    assert ids["TLS_AES_128_GCM_SHA256"] == 0x1301  # RFC 8446 B.4
    assert ids["TLS_AES_256_GCM_SHA384"] == 0x1302
    assert ids["ECDHE-RSA-AES128-GCM-SHA256"] == 0xC02F  # RFC 5289
    assert ids["ECDHE-ECDSA-CHACHA20-POLY1305"] == 0xCCA9  # RFC 7905


def test_subject_as_rfc4514_matches_cryptography() -> None:
    ca = trustme.CA(organization_name="Ex, Ample+Co")
    cert = ca.issue_cert("client.example", common_name="#Jane \"J\" Doe ",
                         organization_name="Ex, Ample+Co", organization_unit_name="A;B<C>\\D")
    der = ssl.PEM_cert_to_DER_cert(cert.cert_chain_pems[0].bytes().decode())
    subject = x509.load_der_x509_certificate(der).subject
    # What ssl's getpeercert reports for it: RDNs in certificate order, long attribute names.
    long_names = {"CN": "commonName", "O": "organizationName", "OU": "organizationalUnitName"}
    reported = tuple(
        tuple((long_names[attribute.rfc4514_attribute_name], str(attribute.value))
              for attribute in rdn)
        for rdn in subject.rdns)
    assert rfc4514_name(reported) == subject.rfc4514_string()
    assert rfc4514_name(reported).startswith("CN=\\#Jane \\\"J\\\" Doe\\ ,")


def test_multi_valued_rdn_and_order() -> None:
    subject = ((("countryName", "GB"),), (("organizationName", "Org"),),
               (("commonName", "a"), ("userId", "u1")))
    assert rfc4514_name(subject) == "CN=a+UID=u1,O=Org,C=GB"


def test_server_certificate_is_the_first_of_the_chain(tmp_path: Path) -> None:
    ca = trustme.CA()
    intermediate = ca.create_child_ca()
    leaf = intermediate.issue_cert("localhost")
    chain = tmp_path / "chain.pem"
    leaf.private_key_and_cert_chain_pem.write_to_path(str(chain))
    pem = server_certificate(str(chain))
    assert pem is not None
    assert ssl.PEM_cert_to_DER_cert(pem) == \
        ssl.PEM_cert_to_DER_cert(leaf.cert_chain_pems[0].bytes().decode())
    assert server_certificate(str(tmp_path / "missing.pem")) is None
    assert server_certificate(None) is None


def test_facts_without_a_handshake_name_nothing() -> None:
    assert tls_facts(None, "PEM") == {
        "server_cert": "PEM", "client_cert_chain": [], "client_cert_name": None,
        "client_cert_error": None, "tls_version": None, "cipher_suite": None}
