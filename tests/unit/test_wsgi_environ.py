"""The WSGI environ (PEP 3333) built from requests the engine parsed, with both parsers."""

from __future__ import annotations

import io
import logging
from typing import Any

import pytest
from http_fixtures import drain, make, parser, request_of

from prefork import __version__
from prefork.http.events import Request
from prefork.wsgi.environ import ErrorStream, base_environ, build_environ, split_target
from prefork.wsgi.filewrapper import FileWrapper

__all__ = ["parser"]  # the fixture, imported for pytest


def parse(parser: str, raw: bytes) -> Request:
    conn = make(parser)
    conn.receive_data(raw)
    return request_of(drain(conn))


def environ_of(request: Request, *, root_path: str = "", scheme: str = "http",
               server: tuple[str, int | None] | None = ("10.0.0.1", 8000)) -> dict[str, Any]:
    base = base_environ(root_path=root_path, errors=io.StringIO(), multithread=False,
                        multiprocess=True, file_wrapper=FileWrapper)
    return build_environ(base, request, scheme=scheme, client=("192.0.2.7", 51234),
                         server=server, wsgi_input=io.BytesIO())


def test_basic_keys(parser: str) -> None:
    raw = (b"POST /a%20b/c?x=1&y=%20 HTTP/1.1\r\nHost: example.com:8080\r\n"
           b"Content-Type: text/plain\r\nContent-Length: 3\r\nX-Custom: v\r\n\r\nabc")
    environ = environ_of(parse(parser, raw))
    assert environ["REQUEST_METHOD"] == "POST"
    assert environ["SCRIPT_NAME"] == ""
    assert environ["PATH_INFO"] == "/a b/c"
    assert environ["QUERY_STRING"] == "x=1&y=%20"
    assert environ["RAW_URI"] == "/a%20b/c?x=1&y=%20"
    assert environ["CONTENT_TYPE"] == "text/plain"
    assert environ["CONTENT_LENGTH"] == "3"
    assert "HTTP_CONTENT_TYPE" not in environ and "HTTP_CONTENT_LENGTH" not in environ
    assert environ["HTTP_X_CUSTOM"] == "v"
    assert environ["HTTP_HOST"] == "example.com:8080"
    assert (environ["SERVER_NAME"], environ["SERVER_PORT"]) == ("example.com", "8080")
    assert environ["SERVER_PROTOCOL"] == "HTTP/1.1"
    assert environ["SERVER_SOFTWARE"] == f"prefork/{__version__}"  # gunicorn has its own
    assert (environ["REMOTE_ADDR"], environ["REMOTE_PORT"]) == ("192.0.2.7", "51234")
    assert environ["wsgi.version"] == (1, 0)
    assert environ["wsgi.url_scheme"] == "http"
    assert environ["wsgi.multithread"] is False and environ["wsgi.multiprocess"] is True
    assert environ["wsgi.run_once"] is False and environ["wsgi.input_terminated"] is True
    assert environ["wsgi.file_wrapper"] is FileWrapper
    for key, value in environ.items():
        if key.isupper():
            assert type(value) is str, key  # PEP 3333: native strings


def test_path_is_percent_decoded_then_latin1(parser: str) -> None:
    environ = environ_of(parse(parser, b"GET /caf%C3%A9/%2F HTTP/1.1\r\nHost: h\r\n\r\n"))
    assert environ["PATH_INFO"] == "/caf\xc3\xa9//"  # bytes as latin-1: PEP 3333
    assert environ["PATH_INFO"].encode("latin-1").decode("utf-8") == "/café//"
    assert environ["RAW_URI"] == "/caf%C3%A9/%2F"


def test_repeated_headers_joined_and_underscores_dropped(parser: str) -> None:
    raw = (b"GET / HTTP/1.1\r\nHost: h\r\nAccept: a\r\nAccept: b\r\n"
           b"X-Forwarded-For: 1.1.1.1\r\nX_Forwarded_For: 6.6.6.6\r\n\r\n")
    environ = environ_of(parse(parser, raw))
    assert environ["HTTP_ACCEPT"] == "a,b"
    assert environ["HTTP_X_FORWARDED_FOR"] == "1.1.1.1"


@pytest.mark.parametrize(("target", "script", "path"), [
    ("/app/x/y", "/app", "/x/y"),
    ("/app", "/app", ""),
    ("/application", "/app", "/application"),  # not at a segment boundary
    ("/other", "/app", "/other"),
])
def test_root_path(parser: str, target: str, script: str, path: str) -> None:
    request = parse(parser, f"GET {target} HTTP/1.1\r\nHost: h\r\n\r\n".encode())
    environ = environ_of(request, root_path="/app")
    assert (environ["SCRIPT_NAME"], environ["PATH_INFO"]) == (script, path)


def test_server_name_without_host_port(parser: str) -> None:
    environ = environ_of(parse(parser, b"GET / HTTP/1.1\r\nHost: example.com\r\n\r\n"),
                         scheme="https")
    assert (environ["SERVER_NAME"], environ["SERVER_PORT"]) == ("example.com", "443")
    environ = environ_of(parse(parser, b"GET / HTTP/1.1\r\nHost: [::1]:9000\r\n\r\n"))
    assert (environ["SERVER_NAME"], environ["SERVER_PORT"]) == ("[::1]", "9000")


def test_server_name_from_socket_for_http10(parser: str) -> None:
    environ = environ_of(parse(parser, b"GET /x HTTP/1.0\r\n\r\n"))
    assert (environ["SERVER_NAME"], environ["SERVER_PORT"]) == ("10.0.0.1", "8000")
    assert environ["SERVER_PROTOCOL"] == "HTTP/1.0"


def test_absolute_form_target(parser: str) -> None:
    environ = environ_of(parse(parser, b"GET http://h.example/p/q?z=1 HTTP/1.1\r\nHost: h\r\n\r\n"))
    assert (environ["PATH_INFO"], environ["QUERY_STRING"]) == ("/p/q", "z=1")
    assert environ["RAW_URI"] == "http://h.example/p/q?z=1"


@pytest.mark.parametrize(("target", "expected"), [
    (b"/a?b", (b"/a", b"b")),
    (b"http://h", (b"/", b"")),
    (b"http://h?q=1", (b"/", b"q=1")),
    (b"*", (b"*", b"")),
])
def test_split_target(target: bytes, expected: tuple[bytes, bytes]) -> None:
    assert split_target(target) == expected


def test_each_request_gets_its_own_dict(parser: str) -> None:
    request = parse(parser, b"GET / HTTP/1.1\r\nHost: h\r\n\r\n")
    base = base_environ(root_path="", errors=None, multithread=True, multiprocess=False,
                        file_wrapper=FileWrapper)
    before = dict(base)
    first = build_environ(base, request, scheme="http", client=None, server=None,
                          wsgi_input=None)
    first["extra"] = 1
    assert base == before
    assert first["REMOTE_ADDR"] == "" and "REMOTE_PORT" not in first


def test_error_stream_logs_whole_lines(caplog: pytest.LogCaptureFixture) -> None:
    logger = logging.getLogger("test.wsgi.errors")
    stream = ErrorStream(logger)
    with caplog.at_level(logging.ERROR, logger="test.wsgi.errors"):
        print("one", "two", file=stream)
        stream.write("partial")
        assert [r.getMessage() for r in caplog.records] == ["one two"]
        stream.writelines(["a\nb", "c\n"])
        stream.flush()
    assert [r.getMessage() for r in caplog.records] == ["one two", "partiala", "bc"]
    with pytest.raises(TypeError):
        stream.write(b"bytes")  # type: ignore[arg-type]  # the point of the test
