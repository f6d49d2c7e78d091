"""make compile where the compile fails: prefork stays pure Python, the failure shows at once
(the end of its log, printed) and stays readable (build/compile-failed.log), and nothing says
the compiled build is done, so the next make tries again."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.process.test_docker_image import clean_checkout

pytestmark = [pytest.mark.process, pytest.mark.timeout(120)]


def test_a_failed_compile_is_shown_kept_and_not_stamped(tmp_path: Path) -> None:
    checkout = clean_checkout(tmp_path / "checkout")
    venv = Path(sys.prefix)
    # this test's venv stands in for the checkout's own (-o: make must not remake it)
    result = subprocess.run(
        ["make", "-o", f"{venv}/.installed", "compile", f"VENV={venv}"], cwd=checkout,
        env={**os.environ, "CC": "/nonexistent/cc"}, capture_output=True, text=True,
        timeout=100, check=False)
    output = result.stdout + result.stderr
    assert result.returncode == 0, output  # make run goes on, serving the pure build
    assert "compiling the request path failed" in output
    assert "PREFORK_COMPILE=1 but no C compiler (/nonexistent/cc not found" in output
    assert "no C compiler" in (checkout / "build" / "compile-failed.log").read_text()
    assert not (checkout / "build" / ".compiled").exists()
    assert not list((checkout / "prefork").rglob("*.so"))
