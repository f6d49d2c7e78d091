"""The layout's rules, checked on the import graph read from the source with ``ast``.

Every ``import`` counts as an edge: at module level, inside a function (a lazy import still ties
the two modules), and under ``if TYPE_CHECKING:`` (a type named across two modules ties their
designs as much as a call does). The rules below are the design's, written as data:

* no import loops anywhere in ``prefork/``;
* the package face (``prefork/__init__`` and the entry points beside it) is imported by nothing
  below it;
* each module runs on one side: the arbiter's, the worker's request path, or shared; the arbiter
  side never imports the worker side nor the other way round, and shared modules import neither;
* the HTTP engine imports nothing of prefork but itself and plain helpers (its freedom from I/O
  is ``test_http_purity.py``'s);
* ASGI and WSGI never import each other nor the worker's connection (``workers/protocol``).
"""

from __future__ import annotations

import ast
from collections.abc import Iterable, Mapping
from pathlib import Path

import pytest

import prefork

pytestmark = pytest.mark.timeout(30)

ROOT = Path(prefork.__file__).parent

# What the users and the command line call; nothing below them imports them.
FACE = frozenset({
    "prefork", "prefork.__main__", "prefork.cli", "prefork.ctl", "prefork.docs",
    "prefork.server", "prefork.testing", "prefork.worker",
})

# Which process runs a module, by the longest matching prefix; what no prefix names is shared.
SIDES = {
    "prefork.arbiter": "arbiter",
    "prefork.metrics.collector": "arbiter",
    "prefork.metrics.endpoint": "arbiter",
    "prefork.workers": "worker",
    "prefork.asgi": "worker",
    "prefork.wsgi": "worker",
    "prefork.metrics.recorder": "worker",
}

# The engine may import only itself and these.
ENGINE = "prefork.http"
ENGINE_MAY_IMPORT = frozenset({"prefork.errors", "prefork.memo"})

# The HTTP/2 layer is sans-I/O too: it may import only itself, the engine and what the engine
# may (and the h2 library, which is no prefork module).
HTTP2 = "prefork.http2"
HTTP2_MAY_IMPORT = ENGINE_MAY_IMPORT | {ENGINE}

# Packages of one interface: neither imports the other, nor the connection they plug into.
INTERFACES = ("prefork.asgi", "prefork.wsgi")
CONNECTION = "prefork.workers.protocol"

# Edges allowed to break a rule, each with its reason: none. An entry whose edge is gone fails
# ``test_no_stale_exceptions``, so a list that grows again can only shrink.
KNOWN: Mapping[tuple[str, str], str] = {}


def module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT.parent).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def import_graph(sources: Mapping[str, tuple[str, bool]]) -> dict[str, set[str]]:
    """``{module: modules it imports}`` among ``sources`` (``{name: (text, is_package)}``)."""
    graph: dict[str, set[str]] = {name: set() for name in sources}
    for name, (text, is_package) in sources.items():
        package = name if is_package else name.rpartition(".")[0]
        for node in ast.walk(ast.parse(text, name)):
            for target in _targets(node, package, sources):
                if target != name:
                    graph[name].add(target)
    return graph


def _targets(node: ast.AST, package: str, sources: Mapping[str, object]) -> set[str]:
    if isinstance(node, ast.Import):
        names = (_enclosing(alias.name, sources) for alias in node.names)
        return {name for name in names if name is not None}
    if not isinstance(node, ast.ImportFrom):
        return set()
    if node.level:
        parts = package.split(".")
        base = ".".join(parts[: len(parts) - node.level + 1])
        base = f"{base}.{node.module}" if node.module else base
    else:
        base = node.module or ""
    # ``from a import b`` imports the module a.b when there is one, else takes a name of a.
    modules = {f"{base}.{alias.name}" for alias in node.names} & set(sources)
    enclosing = _enclosing(base, sources)
    if len(modules) < len(node.names) and enclosing is not None:
        modules.add(enclosing)
    return modules


def _enclosing(name: str, sources: Mapping[str, object]) -> str | None:
    while name and name not in sources:
        name = name.rpartition(".")[0]
    return name or None


def read_prefork() -> dict[str, set[str]]:
    sources = {module_name(path): (path.read_text(), path.name == "__init__.py")
               for path in ROOT.rglob("*.py")}
    return import_graph(sources)


def find_cycle(graph: Mapping[str, Iterable[str]]) -> list[str] | None:
    """One import loop as ``[a, b, ..., a]``, or None."""
    state: dict[str, int] = {}  # 1 on the current path, 2 done
    path: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node] = 1
        path.append(node)
        for nxt in sorted(graph.get(node, ())):
            if state.get(nxt) == 1:
                return [*path[path.index(nxt):], nxt]
            if nxt not in state:
                found = visit(nxt)
                if found:
                    return found
        path.pop()
        state[node] = 2
        return None

    for start in sorted(graph):
        if start not in state:
            found = visit(start)
            if found:
                return found
    return None


def side(module: str) -> str:
    best = max((prefix for prefix in SIDES if _within(module, prefix)), key=len, default=None)
    return SIDES[best] if best else "shared"


def _within(module: str, prefix: str) -> bool:
    return module == prefix or module.startswith(prefix + ".")


def broken_rules(graph: Mapping[str, Iterable[str]]) -> dict[tuple[str, str], str]:
    """Every edge that breaks a rule, with the rule's words."""
    broken: dict[tuple[str, str], str] = {}
    for source, targets in graph.items():
        for target in targets:
            edge = (source, target)
            if target in FACE and source not in FACE:
                broken[edge] = "imports the package face"
            elif source not in FACE and {side(source), side(target)} == {"arbiter", "worker"}:
                broken[edge] = f"{side(source)} side imports the {side(target)} side"
            elif side(source) == "shared" and source not in FACE and side(target) != "shared":
                broken[edge] = f"a shared module imports the {side(target)} side"
            elif (_within(source, ENGINE) and not _within(target, ENGINE)
                  and target not in ENGINE_MAY_IMPORT):
                broken[edge] = "the engine imports outside itself"
            elif (_within(source, HTTP2) and not _within(target, HTTP2)
                  and not any(_within(target, allowed) for allowed in HTTP2_MAY_IMPORT)):
                broken[edge] = "the HTTP/2 layer imports outside itself and the engine"
            elif any(_within(source, i) for i in INTERFACES) and (
                    _within(target, CONNECTION)
                    or any(_within(target, i) for i in INTERFACES if not _within(source, i))):
                broken[edge] = "an interface imports the connection or the other interface"
    return broken


GRAPH = read_prefork()


def test_the_graph_is_read() -> None:
    assert "prefork.arbiter.supervision" in GRAPH["prefork.arbiter.arbiter"]
    assert "prefork.system.capacity" in GRAPH["prefork.config"]  # imported inside a function
    assert "prefork.config" in GRAPH["prefork.logs.error_log"]  # imported for type checking
    assert "prefork.messages" in GRAPH["prefork.worker"]  # ``from prefork import messages``
    assert "prefork" not in GRAPH["prefork.worker"]


def test_no_import_loops() -> None:
    allowed = {edge for edge in KNOWN if edge[1] == CONNECTION}
    graph = {source: {t for t in targets if (source, t) not in allowed}
             for source, targets in GRAPH.items()}
    loop = find_cycle(graph)
    assert loop is None, "import loop: " + " -> ".join(loop or [])


def test_dependency_rules() -> None:
    broken = {edge: rule for edge, rule in broken_rules(GRAPH).items() if edge not in KNOWN}
    assert not broken, "\n".join(f"{a} -> {b}: {rule}" for (a, b), rule in sorted(broken.items()))


def test_no_stale_exceptions() -> None:
    gone = [edge for edge in KNOWN if edge[1] not in GRAPH.get(edge[0], set())]
    assert not gone, f"these edges are gone; remove them from KNOWN: {gone}"


def test_every_module_has_a_side_it_can_keep() -> None:
    # A prefix that names no module is a rule that checks nothing.
    for prefix in [*SIDES, ENGINE, *INTERFACES, CONNECTION, *FACE]:
        assert any(_within(module, prefix) for module in GRAPH), prefix


def _graph_of(**modules: str) -> dict[str, set[str]]:
    sources = {name.replace("_", "."): (text, False) for name, text in modules.items()}
    return import_graph(sources)


def test_the_checks_catch_what_they_are_for() -> None:
    graph = _graph_of(
        prefork_a="def f():\n    from prefork.b import x\n",
        prefork_b="from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    import prefork.a\n",
    )
    assert find_cycle(graph) == ["prefork.a", "prefork.b", "prefork.a"]
    assert find_cycle({"a": {"b"}, "b": set()}) is None
    assert broken_rules({"prefork.arbiter.x": {"prefork.workers.y"}})
    assert broken_rules({"prefork.workers.y": {"prefork.arbiter.x"}})
    assert broken_rules({"prefork.config": {"prefork.arbiter.x"}})
    assert broken_rules({"prefork.asgi.x": {"prefork.wsgi.y"}})
    assert broken_rules({"prefork.wsgi.x": {CONNECTION}})
    assert broken_rules({"prefork.http.x": {"prefork.config"}})
    assert broken_rules({"prefork.http2.x": {"prefork.workers.y"}})
    assert broken_rules({"prefork.http2.x": {"prefork.config"}})
    assert not broken_rules({"prefork.http2.x": {"prefork.http.y", "prefork.http2.z",
                                                 "prefork.errors"}})
    assert broken_rules({"prefork.logs.x": {"prefork"}})
    assert not broken_rules({"prefork.server": {"prefork.arbiter.x", "prefork.workers.y"}})
    assert not broken_rules({"prefork.asgi.x": {"prefork.asgi.y", "prefork.http.z"}})
