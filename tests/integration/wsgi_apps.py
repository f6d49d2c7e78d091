"""WSGI apps served by the WSGI integration tests.

``app`` routes by the first path segment: ``/flask/...`` to a Flask app, ``/django/...`` to a
minimal Django project (settings configured here, no database), everything else to plain WSGI
routes. Every request goes through ``wsgiref.validate.validator`` except under ``/raw/``, which
serves the same routes unwrapped: the validator wraps the app's iterable, which hides a
``wsgi.file_wrapper`` result from the server (as any middleware would), so the zero-copy path
is only reachable there.
"""

from __future__ import annotations

import json
import os
import sys
import threading
import time
import zlib
from collections.abc import Callable, Iterator
from typing import Any
from urllib.parse import parse_qs
from wsgiref.validate import validator

StartResponse = Callable[..., Any]
HELLO = b"Hello, world!"


def _query(environ: dict[str, Any]) -> dict[str, str]:
    return {key: values[0] for key, values in parse_qs(environ["QUERY_STRING"]).items()}


def _text(start_response: StartResponse, body: bytes, status: str = "200 OK") -> list[bytes]:
    start_response(status, [("Content-Type", "text/plain"), ("Content-Length", str(len(body)))])
    return [body]


def hello(environ: dict[str, Any], start_response: StartResponse) -> list[bytes]:
    start_response("200 OK", [("Content-Type", "text/plain"), ("Content-Length", "13")])
    return [HELLO]


def hello_no_length(environ: dict[str, Any], start_response: StartResponse) -> list[bytes]:
    start_response("200 OK", [("Content-Type", "text/plain")])
    return [HELLO]


def environ_json(environ: dict[str, Any], start_response: StartResponse) -> list[bytes]:
    shown = {key: value for key, value in environ.items() if isinstance(value, str | bool)}
    shown["wsgi.version"] = list(environ["wsgi.version"])
    shown["wsgi.errors.type"] = type(environ["wsgi.errors"]).__name__
    print("hello from wsgi.errors", file=environ["wsgi.errors"])
    body = json.dumps(shown).encode()
    return _text(start_response, body)


def echo(environ: dict[str, Any], start_response: StartResponse) -> list[bytes]:
    """The body back, read the way ``?mode=`` says."""
    stream = environ["wsgi.input"]
    mode = _query(environ).get("mode", "read")
    parts: list[bytes] = []
    if mode == "read":
        parts.append(stream.read())
    elif mode == "readn":
        while chunk := stream.read(7):
            parts.append(chunk)
    elif mode == "readline":
        while line := stream.readline():
            parts.append(line)
    elif mode == "readline-n":
        while line := stream.readline(5):
            parts.append(line)
    elif mode == "readlines":
        parts.extend(stream.readlines())
    elif mode == "iter":
        parts.extend(stream)
    return _text(start_response, b"".join(parts))


def upload(environ: dict[str, Any], start_response: StartResponse) -> list[bytes]:
    """Count and checksum a body read in 1 MiB pieces."""
    stream = environ["wsgi.input"]
    size = crc = 0
    while chunk := stream.read(1 << 20):
        size += len(chunk)
        crc = zlib.crc32(chunk, crc)
    return _text(start_response, json.dumps({"size": size, "crc": crc}).encode())


def stream(environ: dict[str, Any], start_response: StartResponse) -> Iterator[bytes]:
    query = _query(environ)
    count, size = int(query.get("n", "10")), int(query.get("size", "10"))
    start_response("200 OK", [("Content-Type", "application/octet-stream")])
    block = b"x" * size
    for _ in range(count):
        yield block


class SlowBody:
    """An iterable that records its close() in the file named by ``?marker=``."""

    def __init__(self, marker: str) -> None:
        self.marker = marker
        self.sent = 0

    def __iter__(self) -> Iterator[bytes]:
        while self.sent < 10_000:
            self.sent += 1
            time.sleep(0.001)
            yield b"y" * 65536

    def close(self) -> None:
        with open(self.marker, "w") as handle:
            handle.write(f"closed after {self.sent}")


def closing(environ: dict[str, Any], start_response: StartResponse) -> SlowBody:
    start_response("200 OK", [("Content-Type", "application/octet-stream")])
    return SlowBody(_query(environ)["marker"])


def send_file(environ: dict[str, Any], start_response: StartResponse) -> Any:
    query = _query(environ)
    handle = open(query["path"], "rb")  # noqa: SIM115 - the file wrapper closes it
    if "offset" in query:
        handle.seek(int(query["offset"]))
    headers = [("Content-Type", "application/octet-stream")]
    if "length" in query:
        headers.append(("Content-Length", query["length"]))
    start_response("200 OK", headers)
    return environ["wsgi.file_wrapper"](handle, 32768)


def fail(environ: dict[str, Any], start_response: StartResponse) -> list[bytes]:
    raise RuntimeError("boom before start_response")


def fail_in_body(environ: dict[str, Any], start_response: StartResponse) -> Iterator[bytes]:
    start_response("200 OK", [("Content-Type", "text/plain")])
    yield b"partial"
    raise RuntimeError("boom after the head")


def fail_before_body(environ: dict[str, Any], start_response: StartResponse) -> Iterator[bytes]:
    start_response("200 OK", [("Content-Type", "text/plain")])
    raise RuntimeError("boom before the first piece")
    yield b""  # a generator


def exc_info(environ: dict[str, Any], start_response: StartResponse) -> list[bytes]:
    start_response("200 OK", [("Content-Type", "text/plain")])
    try:
        raise ValueError("the app's own error page")
    except ValueError:
        body = b"custom error page"
        start_response("503 Service Unavailable",
                       [("Content-Type", "text/plain"), ("Content-Length", str(len(body)))],
                       sys.exc_info())
        return [body]


def bad_header(environ: dict[str, Any], start_response: StartResponse) -> list[bytes]:
    kind = _query(environ).get("kind", "crlf")
    if kind == "crlf":
        start_response("200 OK", [("X-Bad", "a\r\nSet-Cookie: evil=1")])
        return [b"never"]
    # hop-by-hop fields: dropped, as gunicorn does, and the response goes out
    start_response("200 OK", [("Transfer-Encoding", "chunked"), ("Keep-Alive", "timeout=5"),
                              ("Content-Length", "5")])
    return [b"fine!"]


def write_callable(environ: dict[str, Any], start_response: StartResponse) -> list[bytes]:
    write = start_response("200 OK", [("Content-Type", "text/plain")])
    write(b"written, ")
    return [b"then returned"]


def sleep(environ: dict[str, Any], start_response: StartResponse) -> list[bytes]:
    time.sleep(float(_query(environ).get("s", "0.5")))
    return _text(start_response, str(threading.get_ident()).encode())


def empty(environ: dict[str, Any], start_response: StartResponse) -> Iterator[bytes]:
    start_response("204 No Content", [])
    yield from ()


ROUTES: dict[str, Callable[..., Any]] = {
    "/hello": hello, "/hello-no-length": hello_no_length, "/environ": environ_json,
    "/echo": echo, "/upload": upload, "/stream": stream, "/closing": closing,
    "/file": send_file, "/fail": fail, "/fail-in-body": fail_in_body,
    "/fail-before-body": fail_before_body, "/exc-info": exc_info, "/bad-header": bad_header,
    "/write": write_callable, "/sleep": sleep, "/empty": empty,
}  # fmt: skip


def routes(environ: dict[str, Any], start_response: StartResponse) -> Any:
    route = ROUTES.get(environ["PATH_INFO"])
    if route is None:
        return _text(start_response, b"not found", "404 Not Found")
    return route(environ, start_response)


# -- Flask ---------------------------------------------------------------------------------------


def make_flask_app() -> Any:
    import flask

    flask_app = flask.Flask(__name__)

    @flask_app.route("/form", methods=["POST"])
    def form() -> Any:
        return flask.jsonify(name=flask.request.form["name"], tags=flask.request.form.getlist("t"))

    @flask_app.route("/upload", methods=["POST"])
    def upload_file() -> Any:
        stored = flask.request.files["file"]
        data = stored.read()
        return flask.jsonify(filename=stored.filename, size=len(data), crc=zlib.crc32(data))

    @flask_app.route("/stream")
    def streamed() -> Any:
        def generate() -> Iterator[str]:
            for number in range(5):
                yield f"line {number}\n"

        return flask.Response(flask.stream_with_context(generate()), mimetype="text/plain")

    @flask_app.route("/file")
    def file() -> Any:
        return flask.send_file(flask.request.args["path"], mimetype="application/octet-stream")

    @flask_app.route("/url")
    def url() -> Any:
        return flask.jsonify(url=flask.url_for("url", _external=True),
                             root=flask.request.script_root)

    return flask_app


# -- Django --------------------------------------------------------------------------------------


def django_hello(request: Any) -> Any:
    from django.http import HttpResponse

    return HttpResponse(f"django {request.method} {request.path}", content_type="text/plain")


def django_post(request: Any) -> Any:
    from django.http import JsonResponse

    return JsonResponse({"a": request.POST.get("a"), "body_size": len(request.body)})


def django_stream(request: Any) -> Any:
    from django.http import StreamingHttpResponse

    return StreamingHttpResponse((f"part {n}\n" for n in range(3)), content_type="text/plain")


urlpatterns: list[Any] = []


def make_django_app() -> Any:
    import django
    from django.conf import settings
    from django.core.wsgi import get_wsgi_application
    from django.urls import path

    settings.configure(
        DEBUG=False, SECRET_KEY="test-only", ROOT_URLCONF=__name__, ALLOWED_HOSTS=["*"],
        INSTALLED_APPS=[], MIDDLEWARE=[], DATABASES={}, USE_TZ=True,
    )
    django.setup()
    urlpatterns.extend([
        path("hello", django_hello), path("post", django_post), path("stream", django_stream),
    ])
    return get_wsgi_application()


_frameworks: dict[str, Any] = {}
_frameworks_lock = threading.Lock()
_MAKERS = {"flask": make_flask_app, "django": make_django_app}


def _framework(name: str) -> Any:
    with _frameworks_lock:
        if name not in _frameworks:
            _frameworks[name] = _MAKERS[name]()
        return _frameworks[name]


def _framework_app(name: str) -> Callable[..., Any]:
    """The framework's app, given the server's own wsgi.input back after the validator checked
    the environ: werkzeug reads a form with ``read()`` and no size when
    ``wsgi.input_terminated`` is set, which the validator (older than that key) forbids."""

    def call(environ: dict[str, Any], start_response: StartResponse) -> Any:
        environ["wsgi.input"] = environ.pop("tests.input")
        return _framework(name)(environ, start_response)

    return call


def _mount(environ: dict[str, Any]) -> Callable[..., Any]:
    """The app for this path; a mounted app's prefix moves from PATH_INFO to SCRIPT_NAME."""
    path = environ["PATH_INFO"]
    for prefix in ("/flask", "/django"):
        if path.startswith(prefix + "/"):
            environ["SCRIPT_NAME"] += prefix
            environ["PATH_INFO"] = path[len(prefix):]
            environ["tests.input"] = environ["wsgi.input"]
            return validator(_framework_app(prefix[1:]))
    return validator(routes)


def app(environ: dict[str, Any], start_response: StartResponse) -> Any:
    if environ["PATH_INFO"].startswith("/raw/"):
        environ["PATH_INFO"] = environ["PATH_INFO"][4:]
        return routes(environ, start_response)
    return _mount(environ)(environ, start_response)


# the pid of the worker, for memory checks
def pid(environ: dict[str, Any], start_response: StartResponse) -> list[bytes]:
    return _text(start_response, str(os.getpid()).encode())


ROUTES["/pid"] = pid
