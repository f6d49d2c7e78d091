"""prefork.build(): the installed build of the request path, as the import system loads it."""

from __future__ import annotations

import importlib.machinery

import pytest

import prefork
import prefork.http.connection

pytestmark = pytest.mark.timeout(10)


def test_build_names_what_was_imported() -> None:
    loaded = prefork.http.connection.__file__ or ""
    compiled = loaded.endswith(tuple(importlib.machinery.EXTENSION_SUFFIXES))
    assert prefork.build() == ("compiled" if compiled else "pure Python")
