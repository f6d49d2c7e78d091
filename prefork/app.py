"""Finding and loading the application: ``"module:attr"`` specs, factories, ASGI or WSGI.

Three steps, used by different processes:

* :func:`parse_app_spec` turns the command-line text into an :class:`AppSpec` (pure).
* :func:`check_app_spec` runs in the arbiter before any fork. The arbiter must not run app code, so
  it locates the module without importing it (not even its parent packages) and reads the source
  with :mod:`ast` to catch the common mistakes -- a misspelt module or attribute, an attribute bound
  to a literal -- with one clear line instead of N workers failing to boot. It is deliberately
  generous: whenever the source could bind the name some way it cannot see, it says nothing and
  leaves the final word to :func:`load_app`.
* :func:`load_app` runs in each worker (or in the arbiter with ``--preload``): imports the module,
  resolves the attribute, calls the factory; :func:`resolve_interface` then decides ASGI or WSGI.

Rule: every failure is an :class:`~prefork.errors.AppLoadError` whose message is one line and names
the spec; the original exception, if any, is its ``__cause__``. Only the ``chdir`` directory is
added to ``sys.path`` (as gunicorn does), by :func:`load_app`, for the worker's lifetime.

Size: past 600 lines because the import-free check needs its own reading of Python's binding
rules (``_TopLevelBindings``); it serves that check alone, so it lives with it.
"""

from __future__ import annotations

import ast
import contextlib
import functools
import importlib
import importlib.machinery
import importlib.util
import inspect
import os
import re
import sys
import tokenize
import traceback
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

from prefork.errors import AppLoadError, ConfigError

__all__ = [
    "DEFAULT_ATTRIBUTES",
    "INTERFACES",
    "AppSpec",
    "app_traceback",
    "asgi2_to_asgi3",
    "check_app_spec",
    "detect_interface",
    "load_app",
    "parse_app_spec",
    "resolve_interface",
]

# Looked up in this order when the spec names only a module (gunicorn and uvicorn use "app";
# Django's and Flask's generated WSGI modules use "application").
DEFAULT_ATTRIBUTES = ("app", "application")

INTERFACES = ("auto", "asgi", "asgi2", "wsgi")


@dataclass(frozen=True, slots=True)
class AppSpec:
    """A parsed application spec.

    ``attrs`` is the dotted attribute path (empty: try :data:`DEFAULT_ATTRIBUTES`); ``call`` is
    True when the spec ended in parentheses, and ``args``/``kwargs`` are the literal arguments.
    """

    module: str
    attrs: tuple[str, ...] = ()
    call: bool = False
    args: tuple[Any, ...] = ()
    kwargs: dict[str, Any] = field(default_factory=dict)

    @property
    def attr_text(self) -> str:
        """The attribute path as written, e.g. ``"obj.app"`` (``"app"`` when defaulted)."""
        return ".".join(self.attrs) if self.attrs else DEFAULT_ATTRIBUTES[0]

    def __str__(self) -> str:
        if not self.attrs:
            return self.module
        text = f"{self.module}:{'.'.join(self.attrs)}"
        if self.call:
            arguments = [repr(arg) for arg in self.args]
            arguments += [f"{key}={value!r}" for key, value in self.kwargs.items()]
            text += f"({', '.join(arguments)})"
        return text


# -- parsing -------------------------------------------------------------------------------------


def parse_app_spec(spec: str) -> AppSpec:
    """Parse ``module``, ``module:attr``, ``module:obj.attr`` or ``module:factory(1, k="x")``."""
    text = spec.strip()
    if not text:
        raise AppLoadError("empty application spec; expected 'module:attribute'")
    module, colon, attr_part = text.partition(":")
    module = module.strip()
    if not _is_dotted_name(module):
        raise AppLoadError(
            f"bad application spec {spec!r}: {module!r} is not a module name; "
            "expected 'module:attribute'"
        )
    if not colon:
        return AppSpec(module=module)
    attr_part = attr_part.strip()
    if not attr_part:
        raise AppLoadError(f"bad application spec {spec!r}: no attribute after ':'")
    try:
        expression = ast.parse(attr_part, mode="eval").body
    except SyntaxError:
        raise AppLoadError(
            f"bad application spec {spec!r}: {attr_part!r} is not an attribute or a call"
        ) from None
    if isinstance(expression, ast.Call):
        attrs = _attribute_path(expression.func)
        if attrs is None:
            raise AppLoadError(f"bad application spec {spec!r}: can only call a named factory")
        args, kwargs = _literal_arguments(spec, expression)
        return AppSpec(module=module, attrs=attrs, call=True, args=args, kwargs=kwargs)
    attrs = _attribute_path(expression)
    if attrs is None:
        raise AppLoadError(
            f"bad application spec {spec!r}: {attr_part!r} is not an attribute or a call"
        )
    return AppSpec(module=module, attrs=attrs)


def _is_dotted_name(text: str) -> bool:
    return bool(text) and all(part.isidentifier() for part in text.split("."))


def _attribute_path(node: ast.expr) -> tuple[str, ...] | None:
    """``a.b.c`` as ``("a", "b", "c")``; None for anything but names and attribute access."""
    parts: list[str] = []
    while isinstance(node, ast.Attribute):
        parts.append(node.attr)
        node = node.value
    if not isinstance(node, ast.Name):
        return None
    parts.append(node.id)
    return tuple(reversed(parts))


def _literal_arguments(spec: str, call: ast.Call) -> tuple[tuple[Any, ...], dict[str, Any]]:
    def literal(node: ast.expr) -> Any:
        try:
            return ast.literal_eval(node)
        except ValueError:
            raise AppLoadError(
                f"bad application spec {spec!r}: factory arguments must be literals, "
                f"got {ast.unparse(node)!r}"
            ) from None

    args: list[Any] = []
    for node in call.args:
        if isinstance(node, ast.Starred):
            raise AppLoadError(f"bad application spec {spec!r}: '*' arguments are not allowed")
        args.append(literal(node))
    kwargs: dict[str, Any] = {}
    for keyword in call.keywords:
        if keyword.arg is None:
            raise AppLoadError(f"bad application spec {spec!r}: '**' arguments are not allowed")
        kwargs[keyword.arg] = literal(keyword.value)
    return tuple(args), kwargs


def _coerce(spec: AppSpec | str) -> AppSpec:
    return parse_app_spec(spec) if isinstance(spec, str) else spec


# -- checking without importing ------------------------------------------------------------------


def check_app_spec(spec: AppSpec | str, *, chdir: str | None = None) -> None:
    """Fail early, in the arbiter, when the spec surely cannot load; never run app code.

    The module is located the way ``import`` would (``chdir`` searched first) but no package
    ``__init__`` is executed. If its source is available and binds names only statically, a missing
    attribute or one bound only to a literal is reported. Anything unclear passes.
    """
    spec = _coerce(spec)
    module_spec = _find_module_spec(spec.module, chdir)
    source_path = module_spec.origin if module_spec.has_location else None
    if not source_path or not source_path.endswith(".py"):
        return  # extension module, namespace package, sourceless: nothing to read
    try:
        with tokenize.open(source_path) as stream:
            source = stream.read()
    except (OSError, SyntaxError, UnicodeDecodeError):
        return  # the import will report it, with the real reason
    where = f"module {spec.module!r} ({_display_path(source_path)})"
    try:
        tree = ast.parse(source, filename=source_path)
    except SyntaxError as exc:
        raise AppLoadError(f"syntax error in {where}, line {exc.lineno}: {exc.msg}") from exc
    bindings = _TopLevelBindings(tree)
    if bindings.dynamic:
        return
    is_package = module_spec.submodule_search_locations is not None
    if spec.attrs:
        candidates: tuple[str, ...] = spec.attrs[:1]
    else:
        candidates = DEFAULT_ATTRIBUTES
    bound = [name for name in candidates if name in bindings.names]
    if not bound:
        if is_package and _has_submodule(module_spec, candidates):
            return  # importing a submodule binds it on the package
        if spec.attrs:
            raise AppLoadError(f"attribute {spec.attrs[0]!r} not found in {where}")
        raise AppLoadError(f"attribute 'app' or 'application' not found in {where}")
    name = bound[0]
    # A literal at the end of the path is never callable; a literal in the middle might have a
    # callable attribute (a str's methods), which is too odd to judge: leave it to the import.
    if len(spec.attrs) <= 1 and name in bindings.literal_only:
        kind = bindings.literal_only[name]
        raise AppLoadError(
            f"attribute {name!r} in {where} is not callable (bound to a literal: {kind})"
        )


def _find_module_spec(name: str, chdir: str | None) -> importlib.machinery.ModuleSpec:
    """Locate ``name`` like the import system does, without executing any parent package."""
    directory = os.path.abspath(chdir) if chdir else None
    with _search_path(directory):
        search_locations: list[str] | None = None
        found: importlib.machinery.ModuleSpec | None = None
        parts = name.split(".")
        for index in range(len(parts)):
            prefix = ".".join(parts[: index + 1])
            if index > 0 and search_locations is None:
                parent = ".".join(parts[:index])
                raise AppLoadError(f"module {name!r} not found: {parent!r} is not a package")
            found = _find_one(prefix, search_locations)
            if found is None:
                if prefix == name:
                    raise AppLoadError(f"module {name!r} not found{_looked_in(directory)}")
                raise AppLoadError(f"module {name!r} not found: no module {prefix!r}")
            locations = found.submodule_search_locations
            search_locations = list(locations) if locations is not None else None
    assert found is not None  # the loop ran at least once: a module name is never empty
    return found


def _find_one(
    name: str, path: list[str] | None
) -> importlib.machinery.ModuleSpec | None:
    """One step of the import system's search: an imported module's spec, else the finders'."""
    module = sys.modules.get(name)
    if module is not None:
        module_spec: importlib.machinery.ModuleSpec | None = getattr(module, "__spec__", None)
        if module_spec is not None:
            return module_spec
    if path is None:
        try:
            return importlib.util.find_spec(name)  # top level: imports nothing
        except (ImportError, ValueError):
            return None
    for finder in sys.meta_path:
        find_spec = getattr(finder, "find_spec", None)
        if find_spec is None:
            continue
        try:
            result = find_spec(name, path)
        except (ImportError, ValueError):
            return None
        if result is not None:
            return result  # type: ignore[no-any-return]  # finders are untyped objects
    return None


@contextlib.contextmanager
def _search_path(directory: str | None) -> Iterator[None]:
    """Put ``directory`` first on ``sys.path`` for the duration of a lookup, then take it out."""
    if directory is None or directory in sys.path:
        yield
        return
    sys.path.insert(0, directory)
    try:
        yield
    finally:
        with contextlib.suppress(ValueError):
            sys.path.remove(directory)


def _looked_in(directory: str | None) -> str:
    return f" (searched {directory} and sys.path)" if directory else ""


def _has_submodule(module_spec: importlib.machinery.ModuleSpec, names: tuple[str, ...]) -> bool:
    locations = list(module_spec.submodule_search_locations or ())
    return any(_find_one(f"{module_spec.name}.{name}", locations) for name in names)


def _display_path(path: str) -> str:
    try:
        relative = os.path.relpath(path)
    except ValueError:  # another drive on Windows
        return path
    return path if relative.startswith("..") else relative


# Calls and names through which a module can bind globals that static reading cannot see.
_DYNAMIC_NAMES = frozenset({"globals", "locals", "vars", "exec", "eval", "__import__", "setattr"})
# Attributes that reach a module's namespace from elsewhere: sys.modules[__name__], m.__dict__.
_DYNAMIC_ATTRIBUTES = frozenset({"modules", "__dict__"})


class _TopLevelBindings:
    """The names a module binds at top level, read from its AST.

    ``names`` holds every name some top-level statement may bind; ``literal_only`` maps a name to
    the kind of literal when every binding of it is a literal; ``dynamic`` is True when the module
    may bind names in ways not visible here (star import, module ``__getattr__``, ``globals()``).
    """

    def __init__(self, tree: ast.Module) -> None:
        self.names: set[str] = set()
        self.dynamic = False
        self._kinds: dict[str, set[str | None]] = {}
        for statement in tree.body:
            self._statement(statement)
        self._scan_for_dynamic(tree)
        if "__getattr__" in self.names:
            self.dynamic = True
        self.literal_only: dict[str, str] = {}
        for name, kinds in self._kinds.items():
            (kind, *others) = kinds
            if kind is not None and not others:
                self.literal_only[name] = kind

    def _bind(self, name: str, kind: str | None = None) -> None:
        """Record a binding; ``kind`` names the literal bound, None for anything else."""
        self.names.add(name)
        self._kinds.setdefault(name, set()).add(kind)

    def _statement(self, node: ast.stmt) -> None:
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            self._bind(node.name)
            for decorator in node.decorator_list:
                self._expression(decorator)
            return
        if isinstance(node, ast.Assign):
            kind = _literal_kind(node.value)
            for target in node.targets:
                self._target(target, kind if isinstance(target, ast.Name) else None)
            self._expression(node.value)
        elif isinstance(node, ast.AnnAssign):
            if node.value is not None:
                self._target(node.target, _literal_kind(node.value))
                self._expression(node.value)
        elif isinstance(node, ast.AugAssign):
            self._target(node.target)
            self._expression(node.value)
        elif isinstance(node, ast.Import):
            for alias in node.names:
                self._bind(alias.asname or alias.name.split(".")[0])
        elif isinstance(node, ast.ImportFrom):
            for alias in node.names:
                if alias.name == "*":
                    self.dynamic = True
                else:
                    self._bind(alias.asname or alias.name)
        elif isinstance(node, (ast.For, ast.AsyncFor)):
            self._target(node.target)
            self._expression(node.iter)
        elif isinstance(node, (ast.With, ast.AsyncWith)):
            for item in node.items:
                self._expression(item.context_expr)
                if item.optional_vars is not None:
                    self._target(item.optional_vars)
        elif isinstance(node, ast.Try) or type(node).__name__ == "TryStar":
            for handler in getattr(node, "handlers", ()):
                if handler.name:
                    self._bind(handler.name)
        elif isinstance(node, ast.Match):
            self._expression(node.subject)
            for case in node.cases:
                for pattern_node in ast.walk(case.pattern):
                    captured = getattr(pattern_node, "name", None) or getattr(
                        pattern_node, "rest", None
                    )
                    if isinstance(captured, str):
                        self._bind(captured)
        elif type(node).__name__ == "TypeAlias":
            alias_name = getattr(node, "name", None)
            if isinstance(alias_name, ast.Name):
                self._bind(alias_name.id)
        elif isinstance(node, (ast.Expr, ast.Return)) and node.value is not None:
            self._expression(node.value)
        elif isinstance(node, (ast.If, ast.While)):
            self._expression(node.test)
        # Nested statement bodies (if/else, loops, try, with, match) run at import time too.
        for body_name in ("body", "orelse", "finalbody", "handlers", "cases"):
            for child in getattr(node, body_name, ()):
                if isinstance(child, ast.stmt):
                    self._statement(child)
                else:  # an except handler or a match case: their bodies
                    for statement in getattr(child, "body", ()):
                        self._statement(statement)

    def _target(self, node: ast.expr, kind: str | None = None) -> None:
        if isinstance(node, ast.Name):
            self._bind(node.id, kind)
        elif isinstance(node, (ast.Tuple, ast.List)):
            for element in node.elts:
                self._target(element)
        elif isinstance(node, ast.Starred):
            self._target(node.value)

    def _expression(self, node: ast.expr) -> None:
        """Walrus targets inside a top-level expression (not inside lambdas) bind module names."""
        for child in _walk_outside_scopes(node):
            if isinstance(child, ast.NamedExpr) and isinstance(child.target, ast.Name):
                self._bind(child.target.id)

    def _scan_for_dynamic(self, tree: ast.Module) -> None:
        for node in ast.walk(tree):
            if isinstance(node, ast.Global):
                # A function declaring ``global x`` binds x when called, maybe at import time.
                for name in node.names:
                    self._bind(name)
            elif _is_dynamic_reference(node):
                self.dynamic = True


def _is_dynamic_reference(node: ast.AST) -> bool:
    if isinstance(node, ast.Name):
        return node.id in _DYNAMIC_NAMES
    return isinstance(node, ast.Attribute) and node.attr in _DYNAMIC_ATTRIBUTES


def _walk_outside_scopes(node: ast.AST) -> Iterator[ast.AST]:
    yield node
    if isinstance(node, ast.Lambda):
        return
    for child in ast.iter_child_nodes(node):
        yield from _walk_outside_scopes(child)


_LITERAL_NODES: dict[type[ast.AST], str] = {
    ast.List: "list",
    ast.Dict: "dict",
    ast.Tuple: "tuple",
    ast.Set: "set",
    ast.JoinedStr: "str",
    ast.ListComp: "list",
    ast.DictComp: "dict",
    ast.SetComp: "set",
}


def _literal_kind(node: ast.expr) -> str | None:
    """The kind of literal ``node`` evaluates to (``"int"``, ``"None"`` ...), or None."""
    if isinstance(node, ast.UnaryOp) and isinstance(node.op, (ast.USub, ast.UAdd)):
        node = node.operand
    if isinstance(node, ast.Constant):
        if node.value is None:
            return "None"
        if node.value is Ellipsis:
            return "Ellipsis"
        return type(node.value).__name__
    return _LITERAL_NODES.get(type(node))


# -- loading -------------------------------------------------------------------------------------


def load_app(
    spec: AppSpec | str, *, factory: bool = False, chdir: str | None = None
) -> Callable[..., Any]:
    """Import the module, resolve the attribute, call the factory; return the callable app.

    ``factory=True`` calls the attribute with no arguments even without parentheses in the spec.
    ``chdir`` is put first on ``sys.path`` and stays there: the app may import siblings later.
    """
    spec = _coerce(spec)
    if chdir:
        directory = os.path.abspath(chdir)
        if directory not in sys.path:
            sys.path.insert(0, directory)
    module = _import(spec.module)
    where = f"module {spec.module!r}"
    source = getattr(module, "__file__", None)
    if isinstance(source, str):
        where += f" ({_display_path(source)})"
    target: Any = module
    if spec.attrs:
        for index in range(len(spec.attrs)):
            path = ".".join(spec.attrs[: index + 1])
            try:
                target = getattr(target, spec.attrs[index])
            except AttributeError:
                raise AppLoadError(f"attribute {path!r} not found in {where}") from None
            except Exception as exc:
                raise AppLoadError(
                    f"error while reading attribute {path!r} of {where}: {_one_line(exc)}"
                    f"{_at(exc)}"
                ) from exc
    else:
        for name in DEFAULT_ATTRIBUTES:
            if hasattr(module, name):
                target = getattr(module, name)
                break
        else:
            raise AppLoadError(f"attribute 'app' or 'application' not found in {where}")
    label = f"{spec.module}:{spec.attr_text}"
    if spec.call or factory:
        if not callable(target):
            raise AppLoadError(f"factory {label!r} is not callable ({_type_name(target)})")
        try:
            target = target(*spec.args, **spec.kwargs)
        except Exception as exc:
            raise AppLoadError(
                f"error while calling factory {label!r}: {_one_line(exc)}{_at(exc)}"
            ) from exc
        if target is None:
            raise AppLoadError(f"factory {label!r} returned None instead of an application")
    if not callable(target):
        raise AppLoadError(f"application {label!r} is not callable ({_type_name(target)})")
    return target  # type: ignore[no-any-return]  # an arbitrary callable from user code


def _import(name: str) -> Any:
    try:
        return importlib.import_module(name)
    except ModuleNotFoundError as exc:
        missing = exc.name or ""
        if missing == name or name.startswith(f"{missing}."):
            raise AppLoadError(f"module {name!r} not found") from exc
        raise AppLoadError(f"error while importing {name!r}: {_one_line(exc)}{_at(exc)}") from exc
    except (Exception, SystemExit) as exc:
        raise AppLoadError(f"error while importing {name!r}: {_one_line(exc)}{_at(exc)}") from exc


def _one_line(exc: BaseException) -> str:
    message = re.sub(r"\s*\n\s*", " ", str(exc)).strip()
    name = type(exc).__name__
    return f"{name}: {message}" if message else name


def app_traceback(error: BaseException) -> str:
    """The traceback of what the app raised under ``error`` (the cause of an AppLoadError, or
    of a lifespan BootError), from the app's first frame on; "" when the app raised nothing (a
    misspelt attribute, say).

    The frames of the import machinery and of prefork above the app's, and the AppLoadError
    chained on the cause, only repeat what the one-line message says."""
    cause = error.__cause__
    if cause is None:
        return ""
    tb = cause.__traceback__
    while tb is not None and _is_loader_frame(tb.tb_frame.f_code.co_filename):
        tb = tb.tb_next
    if tb is None and not isinstance(cause, SyntaxError):  # SyntaxError shows its own line
        return ""
    return "".join(traceback.format_exception(type(cause), cause, tb)).rstrip("\n")


def _at(exc: BaseException) -> str:
    """`` at FILE:LINE`` for where the app raised ``exc``: the innermost frame of the app's own
    code (not the standard library's, an installed package's or the loader's), else the
    innermost frame at all outside the loader; "" when there is none."""
    if isinstance(exc, SyntaxError) and exc.filename and exc.lineno:
        return f" at {_display_path(exc.filename)}:{exc.lineno}"
    frames = [(frame.f_code.co_filename, line) for frame, line in traceback.walk_tb(
        exc.__traceback__) if not _is_loader_frame(frame.f_code.co_filename)]
    if not frames:
        return ""
    libraries = _library_directories()
    own = [(name, line) for name, line in frames
           if not any(name.startswith(directory) for directory in libraries)]
    name, line = (own or frames)[-1]
    return f" at {_display_path(name)}:{line}"


_PREFORK_DIRECTORY = os.path.dirname(os.path.abspath(__file__)) + os.sep


def _is_loader_frame(filename: str) -> bool:
    """A frame of the import machinery or of prefork itself."""
    return (filename.startswith("<") or filename.startswith(_PREFORK_DIRECTORY)
            or filename == importlib.__file__)


def _library_directories() -> tuple[str, ...]:
    import sysconfig  # only on the way to an error message

    paths = sysconfig.get_paths()
    return tuple({os.path.join(paths[key], "") for key in ("stdlib", "platstdlib", "purelib",
                                                            "platlib") if key in paths})


def _type_name(value: object) -> str:
    return f"got {type(value).__name__}"


# -- ASGI or WSGI --------------------------------------------------------------------------------

_ASGI3 = "asgi3"
_ASGI2 = "asgi2"
_WSGI = "wsgi"


def detect_interface(app: object) -> str:
    """``"asgi"`` or ``"wsgi"`` for ``app``; ASGI 2 apps count as ``"asgi"`` (see resolve)."""
    return "wsgi" if _classify(app) == _WSGI else "asgi"


def resolve_interface(app: Callable[..., Any], requested: str) -> tuple[str, Callable[..., Any]]:
    """The interface (``"asgi"`` or ``"wsgi"``) and the app ready to call with it.

    ``requested`` is ``"auto"`` (detect), ``"asgi"`` (ASGI 3, used as is), ``"asgi2"`` (wrapped
    into ASGI 3) or ``"wsgi"``.
    """
    if requested == "auto":
        kind = _classify(app)
    elif requested == "asgi":
        kind = _ASGI3
    elif requested in (_ASGI2, _WSGI):
        kind = requested
    else:
        raise ConfigError(
            f"interface must be one of {', '.join(INTERFACES)}, got {requested!r}"
        )
    if kind == _WSGI:
        return "wsgi", app
    if kind == _ASGI2:
        return "asgi", asgi2_to_asgi3(app)
    return "asgi", app


def asgi2_to_asgi3(app: Callable[..., Any]) -> Callable[..., Awaitable[None]]:
    """Wrap an ASGI 2 app (``app(scope)`` returns ``instance(receive, send)``) as ASGI 3."""

    async def asgi3(scope: Any, receive: Any, send: Any) -> None:
        instance = app(scope)
        await instance(receive, send)

    asgi3.__qualname__ = f"asgi2_to_asgi3({_describe(app)})"
    return asgi3


def _classify(app: object) -> str:
    """``"asgi3"``, ``"asgi2"`` or ``"wsgi"``; AppLoadError when the shape says neither."""
    if not callable(app):
        raise AppLoadError(f"application {_describe(app)} is not callable")
    if inspect.isclass(app):
        # Calling an ASGI 3 class yields an awaitable instance; calling an ASGI 2 class with the
        # scope yields the instance that takes (receive, send); a WSGI class takes two arguments.
        if hasattr(app, "__await__"):
            return _ASGI3
        arity = _positional_arity(app)
        if arity == 1:
            return _ASGI2
        if arity == 2:
            return _WSGI
        raise _ambiguous(app)
    if _is_coroutine_callable(app):
        return _ASGI3
    arity = _positional_arity(app)
    if arity == 3:
        return _ASGI3  # a plain function returning an awaitable
    if arity == 2:
        return _WSGI
    if arity == 1:
        return _ASGI2
    raise _ambiguous(app)


def _is_coroutine_callable(app: object) -> bool:
    candidates: list[object] = [app]
    if not inspect.isroutine(app) and not isinstance(app, functools.partial):
        candidates.append(type(app).__call__)  # a callable instance
    for candidate in list(candidates):
        while isinstance(candidate, functools.partial):
            candidate = candidate.func
            candidates.append(candidate)
        with contextlib.suppress(ValueError):  # a __wrapped__ cycle
            candidates.append(inspect.unwrap(candidate))  # type: ignore[arg-type]  # any object
    return any(inspect.iscoroutinefunction(candidate) for candidate in candidates)


def _positional_arity(app: object) -> int | None:
    """How many positional arguments ``app`` takes, or None when the signature cannot tell."""
    try:
        signature = inspect.signature(app)  # type: ignore[arg-type]  # checked callable
    except (TypeError, ValueError):
        return None
    required = total = 0
    variadic = False
    for parameter in signature.parameters.values():
        if parameter.kind is inspect.Parameter.VAR_POSITIONAL:
            variadic = True
        elif parameter.kind in (
            inspect.Parameter.POSITIONAL_ONLY,
            inspect.Parameter.POSITIONAL_OR_KEYWORD,
        ):
            total += 1
            if parameter.default is inspect.Parameter.empty:
                required += 1
    if required:
        return required
    if total and not variadic:
        return total
    return None


def _ambiguous(app: object) -> AppLoadError:
    return AppLoadError(
        f"cannot tell whether {_describe(app)} is an ASGI or a WSGI application from its "
        "signature; set the interface explicitly (asgi, asgi2 or wsgi)"
    )


def _describe(app: object) -> str:
    name = getattr(app, "__qualname__", None) or type(app).__qualname__
    module = getattr(app, "__module__", None) or type(app).__module__
    return f"'{module}.{name}'" if module else f"'{name}'"
