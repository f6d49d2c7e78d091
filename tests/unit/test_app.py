"""Unit tests for prefork.app: spec parsing, the arbiter's import-free check, loading, detection."""

from __future__ import annotations

import asyncio
import functools
import importlib
import os
import sys
import textwrap
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from prefork.app import (
    AppSpec,
    app_traceback,
    asgi2_to_asgi3,
    check_app_spec,
    detect_interface,
    load_app,
    parse_app_spec,
    resolve_interface,
)
from prefork.errors import AppLoadError, ConfigError

pytestmark = pytest.mark.timeout(10)

APPS_DIR = Path(__file__).parent / "apps"
SAMPLE_PREFIXES = ("sample_", "tmpmod_")


@pytest.fixture(autouse=True)
def clean_imports(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """Each test sees a fresh sys.path and forgets the sample modules it imported."""
    monkeypatch.setattr(sys, "path", list(sys.path))
    yield
    for name in list(sys.modules):
        if name.startswith(SAMPLE_PREFIXES):
            del sys.modules[name]


@pytest.fixture
def apps() -> Path:
    """The sample apps folder, first on sys.path."""
    sys.path.insert(0, str(APPS_DIR))
    importlib.invalidate_caches()
    return APPS_DIR


ModuleMaker = Callable[[str], str]


@pytest.fixture
def make_module(tmp_path: Path) -> ModuleMaker:
    """Write a module with the given source into a folder on sys.path; returns its name."""
    sys.path.insert(0, str(tmp_path))
    counter = iter(range(1_000_000))

    def make(source: str) -> str:
        name = f"tmpmod_{next(counter)}"
        (tmp_path / f"{name}.py").write_text(textwrap.dedent(source), encoding="utf-8")
        importlib.invalidate_caches()
        return name

    return make


# -- parse_app_spec ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("myapp:app", AppSpec("myapp", ("app",))),
        ("myapp", AppSpec("myapp")),
        ("pkg.sub.mod:app", AppSpec("pkg.sub.mod", ("app",))),
        ("myapp:obj.app", AppSpec("myapp", ("obj", "app"))),
        ("  myapp : app  ", AppSpec("myapp", ("app",))),
        ("myapp:create_app()", AppSpec("myapp", ("create_app",), call=True)),
        (
            "myapp:create_app('x', 2, k=1, flags=[1, None])",
            AppSpec("myapp", ("create_app",), True, ("x", 2), {"k": 1, "flags": [1, None]}),
        ),
        (
            "myapp:obj.factory(debug=True)",
            AppSpec("myapp", ("obj", "factory"), True, (), {"debug": True}),
        ),
    ],
)
def test_parse_valid_specs(text: str, expected: AppSpec) -> None:
    assert parse_app_spec(text) == expected


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("", "empty application spec"),
        ("   ", "empty application spec"),
        (":app", "'' is not a module name"),
        ("1myapp:app", "'1myapp' is not a module name"),
        ("my-app:app", "'my-app' is not a module name"),
        ("myapp.:app", "is not a module name"),
        ("myapp:", "no attribute after ':'"),
        ("myapp:app(", "is not an attribute or a call"),
        ("myapp:app[0]", "is not an attribute or a call"),
        ("myapp:a b", "is not an attribute or a call"),
        ("myapp:1", "is not an attribute or a call"),
        ("myapp:make(x)", "factory arguments must be literals, got 'x'"),
        ("myapp:make(k=os.environ)", "factory arguments must be literals"),
        ("myapp:make(*args)", r"'\*' arguments are not allowed"),
        ("myapp:make(**kw)", r"'\*\*' arguments are not allowed"),
        ("myapp:make()()", "can only call a named factory"),
    ],
)
def test_parse_invalid_specs(text: str, message: str) -> None:
    with pytest.raises(AppLoadError, match=message) as info:
        parse_app_spec(text)
    assert "\n" not in str(info.value)


@pytest.mark.parametrize(
    "text", ["myapp", "myapp:app", "a.b:c.d", "myapp:make()", "myapp:make('x', k=1)"]
)
def test_spec_prints_back_as_written(text: str) -> None:
    assert str(parse_app_spec(text)) == text


# -- check_app_spec: the arbiter's check, which imports nothing -----------------------------------


@pytest.mark.parametrize(
    "text",
    [
        "sample_asgi:app",
        "sample_asgi",
        "sample_wsgi",
        "sample_asgi:create_app()",
        "sample_asgi:holder.app",
        "sample_asgi:instance",
        "sample_asgi2:App",
        "sample_package.web:app",
        "sample_package:web",  # a submodule is an attribute once imported
        "sample_broken:app",  # fails at import, which the check cannot see
    ],
)
def test_check_accepts_loadable_specs(apps: Path, text: str) -> None:
    check_app_spec(parse_app_spec(text))
    assert not [name for name in sys.modules if name.startswith("sample_")]


def test_check_does_not_import_parent_packages(apps: Path) -> None:
    check_app_spec("sample_package_unimportable.web:app")
    assert "sample_package_unimportable" not in sys.modules
    with pytest.raises(AppLoadError, match="RuntimeError: sample_package_unimportable must not"):
        load_app("sample_package_unimportable.web:app")


def test_check_searches_chdir_and_restores_sys_path() -> None:
    before = list(sys.path)
    check_app_spec("sample_asgi:app", chdir=str(APPS_DIR))
    assert sys.path == before
    with pytest.raises(AppLoadError, match="module 'sample_asgi' not found"):
        check_app_spec("sample_asgi:app")


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("sample_nope:app", "^module 'sample_nope' not found$"),
        ("sample_nope.web:app", r"^module 'sample_nope\.web' not found: no module 'sample_nope'$"),
        ("sample_package.nope:app", "^module 'sample_package.nope' not found"),
        ("sample_package.web.deeper:app", "'sample_package.web' is not a package"),
        (
            "sample_asgi.web:app",
            r"^module 'sample_asgi\.web' not found: 'sample_asgi' is not a package$",
        ),
        (
            "sample_asgi:apq",
            r"^attribute 'apq' not found in module 'sample_asgi' \(.*sample_asgi\.py\)$",
        ),
        ("sample_asgi:apq.inner", "^attribute 'apq' not found in module 'sample_asgi'"),
        ("sample_wsgi:app", "^attribute 'app' not found in module 'sample_wsgi'"),
        (
            "sample_asgi:NOT_AN_APP",
            r"^attribute 'NOT_AN_APP' in module 'sample_asgi' .* is not callable "
            r"\(bound to a literal: int\)$",
        ),
        ("sample_package:nope", "^attribute 'nope' not found in module 'sample_package'"),
    ],
)
def test_check_rejects_what_surely_fails(apps: Path, text: str, message: str) -> None:
    with pytest.raises(AppLoadError, match=message) as info:
        check_app_spec(text)
    assert "\n" not in str(info.value)
    assert not [name for name in sys.modules if name.startswith("sample_")]


def test_check_names_both_default_attributes(make_module: ModuleMaker) -> None:
    name = make_module("handler = print\n")
    with pytest.raises(AppLoadError, match="attribute 'app' or 'application' not found"):
        check_app_spec(name)


def test_check_reports_syntax_errors(make_module: ModuleMaker) -> None:
    name = make_module("app = (\n")
    with pytest.raises(AppLoadError, match=f"syntax error in module '{name}' .*line 1"):
        check_app_spec(f"{name}:app")


def test_check_skips_modules_without_source() -> None:
    check_app_spec("math:no_such_function")  # built in or compiled: nothing to read


@pytest.mark.parametrize(
    "source",
    [
        "def app(environ, start_response): pass",
        "async def app(scope, receive, send): pass",
        "class app: pass",
        "import app",
        "import app.sub",
        "from somewhere import thing as app",
        "from . import app",
        "app: object = make()",
        "app = application = make()",
        "x, app = 1, 2",
        "[x, *app] = make()",
        "app = 1\napp = make()",
        "app += 1",
        "if True:\n    app = make()\nelse:\n    pass",
        "try:\n    from x import app\nexcept ImportError:\n    app = None",
        "try:\n    pass\nexcept Exception as app:\n    pass",
        "try:\n    pass\nfinally:\n    app = make()",
        "for app in handlers: pass",
        "while True:\n    app = make()\n    break",
        "with make() as app: pass",
        "with make() as (x, app): pass",
        "print(app := make())",
        "handlers = [app := h for h in make()]",
        "match make():\n    case [app]: pass",
        "match make():\n    case {**app}: pass",
        "def setup():\n    global app\n    app = make()\nsetup()",
        "@decorate(app := make())\ndef other(): pass",
        # Names bound where a static reading cannot see: the check stays silent.
        "from os.path import *",
        "def __getattr__(name): return make()",
        "globals()['app'] = make()",
        "import sys\nsetattr(sys.modules[__name__], 'app', make())",
        "exec('app = make()')",
        "vars()['app'] = make()",
    ],
)
def test_check_is_generous_about_bindings(make_module: ModuleMaker, source: str) -> None:
    check_app_spec(f"{make_module(source)}:app")


@pytest.mark.parametrize(
    "source",
    [
        "application = make()",
        "app: object",
        "def handler():\n    app = make()\n    return app",
        "class Holder:\n    app = make()",
        "lambda: (app := 1)",
        "del app_factory",
    ],
)
def test_check_rejects_names_never_bound_at_top_level(
    make_module: ModuleMaker, source: str
) -> None:
    with pytest.raises(AppLoadError, match="attribute 'app' not found"):
        check_app_spec(f"{make_module(source)}:app")


@pytest.mark.parametrize(
    ("source", "kind"),
    [
        ("app = 42", "int"),
        ("app = -1.5", "float"),
        ("app = 'hello'", "str"),
        ("app = f'{x}'", "str"),
        ("app = b'x'", "bytes"),
        ("app = None", "None"),
        ("app = True", "bool"),
        ("app = [make]", "list"),
        ("app = {'a': make}", "dict"),
        ("app = (make,)", "tuple"),
        ("app = {make}", "set"),
        ("app: int = 1", "int"),
        ("app = 1\nif x:\n    app = 2", "int"),
    ],
)
def test_check_rejects_literals(make_module: ModuleMaker, source: str, kind: str) -> None:
    name = make_module(source)
    with pytest.raises(AppLoadError, match=rf"'app' in module '{name}' .* is not callable") as info:
        check_app_spec(f"{name}:app")
    assert kind in str(info.value)


def test_check_rejects_literal_factory(make_module: ModuleMaker) -> None:
    with pytest.raises(AppLoadError, match="is not callable"):
        check_app_spec(f"{make_module('create = None')}:create()")


def test_check_default_attribute_literal(make_module: ModuleMaker) -> None:
    with pytest.raises(AppLoadError, match=r"'application' .* is not callable"):
        check_app_spec(make_module("application = 'nope'"))


def test_check_does_not_judge_literals_inside_dotted_paths(make_module: ModuleMaker) -> None:
    name = make_module("greeting = 'hi'")
    check_app_spec(f"{name}:greeting.upper")


# -- load_app ------------------------------------------------------------------------------------


def test_load_function(apps: Path) -> None:
    app = load_app("sample_asgi:app")
    assert app is sys.modules["sample_asgi"].app


def test_load_defaults_to_app_then_application(apps: Path) -> None:
    assert load_app("sample_asgi") is sys.modules["sample_asgi"].app
    assert load_app(parse_app_spec("sample_wsgi")) is sys.modules["sample_wsgi"].application


def test_load_dotted_attribute(apps: Path) -> None:
    assert load_app("sample_asgi:holder.app") is sys.modules["sample_asgi"].app


def test_load_submodule(apps: Path) -> None:
    assert load_app("sample_package.web:app") is sys.modules["sample_asgi"].app


async def _http_body(app: Callable[..., Any]) -> bytes:
    sent: list[dict[str, Any]] = []

    async def receive() -> dict[str, Any]:
        return {"type": "http.request", "body": b"", "more_body": False}

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    await app({"type": "http", "method": "GET", "path": "/"}, receive, send)
    assert sent[0]["status"] == 200
    return b"".join(message.get("body", b"") for message in sent[1:])


def test_load_factory_with_arguments(apps: Path) -> None:
    app = load_app("sample_asgi:create_app('hi')")
    assert asyncio.run(_http_body(app)) == b"hi"
    app = load_app("sample_asgi:create_app(greeting='hey')")
    assert asyncio.run(_http_body(app)) == b"hey"


def test_load_factory_flag(apps: Path) -> None:
    app = load_app("sample_asgi:create_app", factory=True)
    assert asyncio.run(_http_body(app)) == b"hello"


def test_load_with_chdir_puts_it_on_sys_path() -> None:
    app = load_app("sample_asgi:app", chdir=str(APPS_DIR))
    assert callable(app)
    assert sys.path[0] == str(APPS_DIR)


def test_import_error_is_one_line_with_cause(apps: Path) -> None:
    with pytest.raises(AppLoadError) as info:
        load_app("sample_broken:app")
    # the app's file and line: relative to the working directory when it is below it
    where = os.path.relpath(APPS_DIR / "sample_broken.py")
    expected = (f"error while importing 'sample_broken': ZeroDivisionError: division by zero "
                f"at {where}:5")
    assert str(info.value) == expected
    assert isinstance(info.value.__cause__, ZeroDivisionError)


def test_app_traceback_starts_at_the_apps_frame(apps: Path) -> None:
    with pytest.raises(AppLoadError) as info:
        load_app("sample_broken:app")
    text = app_traceback(info.value)
    assert text.startswith("Traceback (most recent call last):\n  File ")
    assert text.splitlines()[1].endswith('sample_broken.py", line 5, in <module>')
    assert text.endswith("ZeroDivisionError: division by zero")
    assert "importlib" not in text and "AppLoadError" not in text and "direct cause" not in text


def test_app_traceback_is_empty_when_the_app_raised_nothing(apps: Path) -> None:
    with pytest.raises(AppLoadError) as info:
        load_app("sample_nope:app")
    assert app_traceback(info.value) == ""


def test_the_location_is_the_apps_line_not_the_librarys(make_module: ModuleMaker) -> None:
    name = make_module("import json\nsettings = json.loads('{not json')\n")
    with pytest.raises(AppLoadError, match=rf" at .*{name}\.py:2$"):
        load_app(f"{name}:app")


def test_missing_module(apps: Path) -> None:
    with pytest.raises(AppLoadError, match=r"^module 'sample_nope' not found$"):
        load_app("sample_nope:app")
    with pytest.raises(AppLoadError, match=r"^module 'sample_package\.nope' not found$"):
        load_app("sample_package.nope:app")


def test_missing_dependency_is_an_import_error(make_module: ModuleMaker) -> None:
    name = make_module("import sample_dependency_that_does_not_exist\napp = print")
    with pytest.raises(AppLoadError) as info:
        load_app(f"{name}:app")
    assert str(info.value).startswith(
        f"error while importing '{name}': ModuleNotFoundError: "
        "No module named 'sample_dependency_that_does_not_exist' at "
    )
    assert str(info.value).endswith(f"{name}.py:1")


def test_syntax_error_is_one_line(make_module: ModuleMaker) -> None:
    name = make_module("app = (\n\n")
    expected = rf"^error while importing '{name}': SyntaxError: "
    with pytest.raises(AppLoadError, match=expected) as info:
        load_app(f"{name}:app")
    assert "\n" not in str(info.value)


def test_sys_exit_at_import_is_wrapped(make_module: ModuleMaker) -> None:
    name = make_module("import sys\nsys.exit('no config')")
    with pytest.raises(AppLoadError, match="SystemExit: no config"):
        load_app(f"{name}:app")


@pytest.mark.parametrize(
    ("text", "message"),
    [
        (
            "sample_asgi:apq",
            r"^attribute 'apq' not found in module 'sample_asgi' \(.*sample_asgi\.py\)$",
        ),
        ("sample_asgi:holder.nope", "^attribute 'holder.nope' not found in module 'sample_asgi'"),
        ("sample_wsgi:app", "^attribute 'app' not found in module 'sample_wsgi'"),
        (
            "sample_asgi:NOT_AN_APP",
            r"^application 'sample_asgi:NOT_AN_APP' is not callable \(got int\)$",
        ),
        ("sample_asgi:NOT_AN_APP()", "^factory 'sample_asgi:NOT_AN_APP' is not callable"),
    ],
)
def test_load_errors(apps: Path, text: str, message: str) -> None:
    with pytest.raises(AppLoadError, match=message):
        load_app(text)


def test_no_default_attribute(make_module: ModuleMaker) -> None:
    with pytest.raises(AppLoadError, match="attribute 'app' or 'application' not found"):
        load_app(make_module("handler = print"))


def test_factory_errors(make_module: ModuleMaker) -> None:
    name = make_module(
        """
        def broken():
            raise ValueError("bad\\nconfig")

        def empty():
            return None

        def numeric():
            return 3
        """
    )
    with pytest.raises(AppLoadError, match=f"^error while calling factory '{name}:broken': "
                       rf"ValueError: bad config at .*{name}\.py:3$") as info:
        load_app(f"{name}:broken()")
    assert isinstance(info.value.__cause__, ValueError)
    with pytest.raises(AppLoadError, match="returned None"):
        load_app(f"{name}:empty", factory=True)
    with pytest.raises(AppLoadError, match="is not callable"):
        load_app(f"{name}:numeric()")


# -- detect_interface / resolve_interface --------------------------------------------------------


async def asgi_function(scope: Any, receive: Any, send: Any) -> None:
    pass


def wsgi_function(environ: Any, start_response: Any) -> list[bytes]:
    return []


def asgi2_function(scope: Any) -> Callable[..., Any]:
    async def instance(receive: Any, send: Any) -> None:
        pass

    return instance


def sync_asgi3(scope: Any, receive: Any, send: Any) -> Any:
    return asgi_function(scope, receive, send)


class AsyncCallable:
    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        pass


class WSGICallable:
    def __call__(self, environ: Any, start_response: Any) -> list[bytes]:
        return []

    def handle(self, environ: Any, start_response: Any) -> list[bytes]:
        return []


class WSGIClass:
    def __init__(self, environ: Any, start_response: Any) -> None:
        self.environ = environ

    def __iter__(self) -> Iterator[bytes]:
        yield b""


class ASGI2Class:
    def __init__(self, scope: Any) -> None:
        self.scope = scope

    async def __call__(self, receive: Any, send: Any) -> None:
        pass


class AwaitableClass:
    def __init__(self, scope: Any, receive: Any, send: Any) -> None:
        self.scope = scope

    def __await__(self) -> Any:
        return asgi_function(None, None, None).__await__()


def sync_decorator(function: Callable[..., Any]) -> Callable[..., Any]:
    @functools.wraps(function)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        return function(*args, **kwargs)

    return wrapper


def with_config(config: Any, scope: Any, receive: Any, send: Any) -> Any:
    return asgi_function(scope, receive, send)


async def async_with_config(config: Any, scope: Any, receive: Any, send: Any) -> None:
    pass


def wsgi_with_config(config: Any, environ: Any, start_response: Any) -> list[bytes]:
    return []


def wsgi_with_defaults(environ: Any, start_response: Any, extra: Any = None) -> list[bytes]:
    return []


@pytest.mark.parametrize(
    ("app", "interface"),
    [
        (asgi_function, "asgi"),
        (AsyncCallable(), "asgi"),
        (sync_asgi3, "asgi"),
        (AwaitableClass, "asgi"),
        (functools.partial(async_with_config, {}), "asgi"),
        (functools.partial(with_config, {}), "asgi"),
        (sync_decorator(asgi_function), "asgi"),
        (sync_decorator(AsyncCallable()), "asgi"),
        (ASGI2Class, "asgi"),
        (asgi2_function, "asgi"),
        (wsgi_function, "wsgi"),
        (WSGICallable(), "wsgi"),
        (WSGICallable().handle, "wsgi"),
        (WSGIClass, "wsgi"),
        (functools.partial(wsgi_with_config, {}), "wsgi"),
        (wsgi_with_defaults, "wsgi"),
        (sync_decorator(wsgi_function), "wsgi"),
    ],
)
def test_detect_interface(app: Any, interface: str) -> None:
    assert detect_interface(app) == interface


def passthrough(*args: Any, **kwargs: Any) -> Any:
    return None


@pytest.mark.parametrize(
    "app", [passthrough, lambda *args, **kwargs: None, type("Bare", (), {}), print]
)
def test_detect_refuses_to_guess(app: Any) -> None:
    with pytest.raises(AppLoadError, match=r"cannot tell whether .* ASGI or a WSGI"):
        detect_interface(app)


def test_detect_not_callable() -> None:
    with pytest.raises(AppLoadError, match="is not callable"):
        detect_interface(42)


def test_resolve_auto() -> None:
    assert resolve_interface(asgi_function, "auto") == ("asgi", asgi_function)
    assert resolve_interface(wsgi_function, "auto") == ("wsgi", wsgi_function)
    interface, wrapped = resolve_interface(ASGI2Class, "auto")
    assert interface == "asgi"
    assert wrapped is not ASGI2Class
    assert detect_interface(wrapped) == "asgi"


def test_resolve_explicit_choices_are_trusted() -> None:
    ambiguous = passthrough
    assert resolve_interface(ambiguous, "wsgi") == ("wsgi", ambiguous)
    assert resolve_interface(ambiguous, "asgi") == ("asgi", ambiguous)
    interface, wrapped = resolve_interface(asgi2_function, "asgi2")
    assert interface == "asgi"
    assert wrapped is not asgi2_function


def test_resolve_unknown_interface() -> None:
    with pytest.raises(ConfigError, match="interface must be one of auto, asgi, asgi2, wsgi"):
        resolve_interface(asgi_function, "asgi4")


def test_asgi2_adapter_runs_the_instance(apps: Path) -> None:
    app = load_app("sample_asgi2:App")
    interface, ready = resolve_interface(app, "auto")
    assert interface == "asgi"
    assert asyncio.run(_http_body(ready)) == b"asgi2"
    assert "sample_asgi2" in asgi2_to_asgi3(app).__qualname__


def test_sample_apps_are_detected(apps: Path) -> None:
    assert detect_interface(load_app("sample_asgi:app")) == "asgi"
    assert detect_interface(load_app("sample_asgi:instance")) == "asgi"
    assert detect_interface(load_app("sample_asgi:create_app()")) == "asgi"
    assert detect_interface(load_app("sample_wsgi")) == "wsgi"
    assert detect_interface(load_app("sample_wsgi:create_app()")) == "wsgi"
    assert detect_interface(load_app("sample_no_lifespan:app")) == "asgi"
