"""Checks for the whole suite before it starts."""

from __future__ import annotations

from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


def stale_compiled_modules(root: Path = ROOT) -> tuple[Path, Path] | None:
    """(the oldest compiled module, the newest source) when a source changed after the request
    path was compiled in place (``make compile``), else None. The import system prefers the
    compiled modules, so the suite would test the old code."""
    compiled = list(root.glob("prefork/**/*.so"))
    if not compiled:
        return None
    oldest = min(compiled, key=lambda path: path.stat().st_mtime)
    newest = max(root.glob("prefork/**/*.py"), key=lambda path: path.stat().st_mtime)
    if newest.stat().st_mtime > oldest.stat().st_mtime:
        return oldest, newest
    return None


def pytest_sessionstart(session: pytest.Session) -> None:
    stale = stale_compiled_modules()
    if stale is not None:
        oldest, newest = stale
        pytest.exit(f"{newest.relative_to(ROOT)} changed after {oldest.relative_to(ROOT)} was "
                    "compiled: run `make compile` (or `make pure` for the interpreted package)",
                    returncode=2)
