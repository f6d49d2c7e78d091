"""The connection knows no app interface: ``prefork.workers.protocol`` (and the contract, the
response writer and the health answer it uses) import nothing of ``prefork.asgi`` or
``prefork.wsgi``, even under ``TYPE_CHECKING`` or inside a function; the interfaces plug in
through ``prefork.workers.contract.Serving``. And the interfaces reach the connection only
through the contract: they never import the protocol."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

import prefork

ROOT = Path(prefork.__file__).parent
CONNECTION_SIDE = ["workers/protocol.py", "workers/contract.py", "workers/response.py",
                   "workers/health.py"]
INTERFACES = sorted(str(path.relative_to(ROOT)) for folder in ("asgi", "wsgi")
                    for path in (ROOT / folder).glob("*.py"))


def _imports(path: Path) -> list[str]:
    names: list[str] = []
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            names += [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names += [node.module, *(f"{node.module}.{alias.name}" for alias in node.names)]
    return names


@pytest.mark.parametrize("module", CONNECTION_SIDE)
def test_the_connection_side_imports_no_app_interface(module: str) -> None:
    found = [name for name in _imports(ROOT / module)
             if name.startswith(("prefork.asgi", "prefork.wsgi"))]
    assert not found, f"{module} imports {found}"


@pytest.mark.parametrize("module", INTERFACES)
def test_an_interface_reaches_the_connection_only_through_the_contract(module: str) -> None:
    found = [name for name in _imports(ROOT / module)
             if name.startswith("prefork.workers.protocol")]
    assert not found, f"{module} imports {found}"


def test_the_checks_see_imports_inside_functions_and_type_checking_blocks(tmp_path: Path) -> None:
    source = tmp_path / "sample.py"
    source.write_text("from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n"
                      "    from prefork.asgi.cycle import HttpCycle\n"
                      "def f():\n    import prefork.wsgi.cycle\n", encoding="utf-8")
    assert {"prefork.asgi.cycle", "prefork.wsgi.cycle"} <= set(_imports(source))
