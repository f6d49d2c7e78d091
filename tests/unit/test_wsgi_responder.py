"""start_response: checks, exc_info rules, the write() callable; the file wrapper."""

from __future__ import annotations

import io
import os
import sys
from pathlib import Path
from typing import Any

import pytest

from prefork.http.events import Response
from prefork.wsgi.filewrapper import FileWrapper, file_span
from prefork.wsgi.responder import Responder, make_head


def test_head_is_encoded() -> None:
    head, length = make_head("404 Not Found", [("Content-Type", "text/plain"),
                                               ("Content-Length", "9"), ("X-Caf", "caf\xe9")])
    assert head == Response(404, [(b"Content-Type", b"text/plain"), (b"Content-Length", b"9"),
                                  (b"X-Caf", b"caf\xe9")], b"Not Found")
    assert length == 9


@pytest.mark.parametrize(("status", "headers", "error"), [
    (b"200 OK", [], TypeError),
    ("200", [], ValueError),
    ("2000 OK", [], ValueError),
    ("200 OK\r\nX: y", [], ValueError),
    ("200 OK", (("A", "b"),), TypeError),
    ("200 OK", [("A", b"b")], TypeError),
    ("200 OK", [("A", "b", "c")], TypeError),
    ("200 OK", [("A", "b\r\nSet-Cookie: x=1")], ValueError),
    ("200 OK", [("A", "b\nc")], ValueError),
    ("200 OK", [("A", "b\x00")], ValueError),
    ("200 OK", [("Bad Name", "b")], ValueError),
    ("200 OK", [("Bad:Name", "b")], ValueError),
    ("200 OK", [("Content-Length", "abc")], ValueError),
    ("200 OK", [("X", "\u20ac")], ValueError),  # not latin-1
])
def test_invalid_heads_raise(status: Any, headers: Any, error: type[Exception]) -> None:
    with pytest.raises(error):
        make_head(status, headers)


def test_second_call_needs_exc_info() -> None:
    responder = Responder(lambda data: None)
    responder.start_response("200 OK", [])
    with pytest.raises(AssertionError):
        responder.start_response("500 Oops", [])


def test_exc_info_replaces_the_head_before_it_went_out() -> None:
    responder = Responder(lambda data: None)
    responder.start_response("200 OK", [("A", "1")])
    try:
        raise ValueError("app error")
    except ValueError:
        responder.start_response("500 Oops", [("B", "2")], sys.exc_info())
    assert responder.head == Response(500, [(b"B", b"2")], b"Oops")


def test_exc_info_reraises_once_the_head_went_out() -> None:
    sent: list[bytes] = []
    responder = Responder(sent.append)
    write = responder.start_response("200 OK", [])
    write(b"body")
    assert responder.headers_sent and sent == [b"body"]
    with pytest.raises(ValueError, match="late"):
        try:
            raise ValueError("late")
        except ValueError:
            responder.start_response("500 Oops", [], sys.exc_info())


def test_write_checks() -> None:
    sent: list[bytes] = []
    responder = Responder(sent.append)
    with pytest.raises(AssertionError):
        responder.write(b"x")
    write = responder.start_response("200 OK", [])
    write(bytearray(b"ok"))
    with pytest.raises(TypeError):
        write("text")  # type: ignore[arg-type]  # the point of the test
    assert sent == [b"ok"]


def test_file_wrapper_iterates_and_closes(tmp_path: Path) -> None:
    path = tmp_path / "f.bin"
    path.write_bytes(b"0123456789")
    handle = open(path, "rb")  # noqa: SIM115 - closed by the wrapper
    wrapper = FileWrapper(handle, 4)
    assert list(wrapper) == [b"0123", b"4567", b"89"]
    wrapper.close()
    assert handle.closed


def test_file_span(tmp_path: Path) -> None:
    path = tmp_path / "f.bin"
    path.write_bytes(b"0123456789")
    with open(path, "rb") as handle:
        handle.seek(3)
        assert file_span(FileWrapper(handle)) == (handle, 3, 7)
        assert file_span(iter([handle])) is None
    assert file_span(FileWrapper(io.BytesIO(b"abc"))) is None  # no file descriptor
    with open(path) as text:
        assert file_span(FileWrapper(text)) is None
    read_end, write_end = os.pipe()
    with open(read_end, "rb") as pipe, open(write_end, "wb"):
        assert file_span(FileWrapper(pipe)) is None  # not a regular file


def test_hop_by_hop_fields_are_dropped_except_connection_close() -> None:
    head, _ = make_head("200 OK", [("Transfer-Encoding", "chunked"), ("Keep-Alive", "timeout=5"),
                                   ("Upgrade", "h2c"), ("Connection", "keep-alive"),
                                   ("Connection", "close"), ("X", "y")])
    assert head.headers == [(b"Connection", b"close"), (b"X", b"y")]
