"""The HTTP engine is sans-I/O: no module under prefork/http imports I/O or threads.

``time`` is allowed only as the default value of an injected clock parameter.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

import prefork.http

BANNED = {"asyncio", "socket", "selectors", "threading", "os"}
PACKAGE = Path(prefork.http.__file__).parent
MODULES = sorted(PACKAGE.rglob("*.py"))


def _imports(tree: ast.AST) -> list[str]:
    names: list[str] = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names += [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.append(node.module)
    return names


def _time_uses_outside_defaults(tree: ast.AST) -> list[int]:
    allowed: set[int] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.Lambda):
            for default in [*node.args.defaults, *node.args.kw_defaults]:
                if default is not None:
                    allowed.update(id(n) for n in ast.walk(default))
    return [
        node.lineno
        for node in ast.walk(tree)
        if isinstance(node, ast.Name) and node.id == "time" and id(node) not in allowed
    ]


def test_modules_found() -> None:
    names = {path.name for path in MODULES}
    assert {"connection.py", "framing.py", "headers.py", "httptools.py", "h11.py"} <= names


@pytest.mark.parametrize("path", MODULES, ids=lambda p: str(p.relative_to(PACKAGE)))
def test_no_io_imports(path: Path) -> None:
    tree = ast.parse(path.read_text(), str(path))
    for name in _imports(tree):
        assert name.split(".")[0] not in BANNED, f"{path.name} imports {name}"
        assert not name.startswith("time."), f"{path.name} imports {name}"
    froms = [n for n in ast.walk(tree) if isinstance(n, ast.ImportFrom) and n.module == "time"]
    assert not froms, f"{path.name}: use an injected clock, not 'from time import'"
    lines = _time_uses_outside_defaults(tree)
    assert not lines, f"{path.name} uses time outside a clock default on lines {lines}"


def test_checker_catches_violations() -> None:
    bad = ast.parse("import os\nimport time\nx = time.time()\n")
    assert "os" in _imports(bad)
    assert _time_uses_outside_defaults(bad) == [3]
    good = ast.parse("import time\ndef f(clock=time.time):\n    return clock()\n")
    assert _time_uses_outside_defaults(good) == []
