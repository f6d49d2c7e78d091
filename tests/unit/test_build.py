"""prefork.build(): the installed build of the request path, as the import system loads it."""

from __future__ import annotations

import importlib.machinery
import subprocess
import sys
from pathlib import Path

import pytest

import prefork
import prefork.http.connection

pytestmark = pytest.mark.timeout(10)


def test_build_names_what_was_imported() -> None:
    loaded = prefork.http.connection.__file__ or ""
    compiled = loaded.endswith(tuple(importlib.machinery.EXTENSION_SUFFIXES))
    assert prefork.build() == ("compiled" if compiled else "pure Python")


def test_the_installed_package_imports_from_anywhere(tmp_path: Path) -> None:
    # Away from the checkout, only the installed package is on the path: the compiled build's
    # shared library must be found through it too (it lives inside the package for that).
    result = subprocess.run([sys.executable, "-m", "prefork", "--version"], cwd=tmp_path,
                            capture_output=True, text=True, timeout=30, check=False)
    assert result.returncode == 0, result.stderr
    assert f"({prefork.build()})" in result.stdout
