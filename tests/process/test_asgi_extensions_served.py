"""The ASGI extensions through the real command's settings: a TLS server asking for client
certificates (--ca-certs, --cert-reqs 2) and offering early hints on HTTP/1.1
(--http1-early-hints), as curl sees it."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from pathlib import Path

import pytest

from prefork.testing import running_server
from prefork.workers.tls_facts import TLS_VERSIONS, cipher_ids

APP = "tests.apps.extensions:app"

pytestmark = [pytest.mark.process, pytest.mark.timeout(90)]


def test_tls_client_certificate_and_early_hints_through_curl(tmp_path: Path) -> None:
    trustme = pytest.importorskip("trustme")
    curl = shutil.which("curl")
    if curl is None:
        pytest.skip("curl is not installed")
    ca = trustme.CA()
    server_pem, ca_pem, client_pem = (str(tmp_path / name)
                                      for name in ("server.pem", "ca.pem", "client.pem"))
    ca.issue_cert("127.0.0.1").private_key_and_cert_chain_pem.write_to_path(server_pem)
    ca.cert_pem.write_to_path(ca_pem)
    ca.issue_cert("me@example.org", common_name="Me").private_key_and_cert_chain_pem \
        .write_to_path(client_pem)
    with running_server(APP, workers=1, certfile=server_pem, keyfile=server_pem,
                        ca_certs=ca_pem, cert_reqs=2, http1_early_hints=True) as server:
        url = f"https://127.0.0.1:{server.port}/"
        result = subprocess.run([curl, "-sv", "--cacert", ca_pem, "--cert", client_pem, url],
                                capture_output=True, timeout=20, check=True)
        log = result.stderr.decode()
        assert "< HTTP/1.1 103 Early Hints" in log
        assert "< link: </style.css>; rel=preload; as=style" in log
        assert log.index("< HTTP/1.1 103") < log.index("< HTTP/1.1 200 OK")
        answer = json.loads(result.stdout)
        assert "tls" in answer["offered"] and "http.response.zerocopysend" in answer["offered"]
        tls = answer["tls"]
        assert tls["server_cert"] is True
        assert tls["client_cert_name"].startswith("CN=Me,")
        assert len(tls["client_cert_chain"]) >= 1
        used = re.search(r"SSL connection using (TLSv[\d.]+) / (\S+)", log)
        assert used is not None
        assert tls["tls_version"] == TLS_VERSIONS[used.group(1)]
        assert tls["cipher_suite"] == cipher_ids()[used.group(2)]
        # Without a client certificate the handshake fails (--cert-reqs 2).
        refused = subprocess.run([curl, "-s", "--cacert", ca_pem, url], capture_output=True,
                                 timeout=20)
        assert refused.returncode != 0
