"""The access log against gunicorn as the oracle: the same raw request, parsed by gunicorn's own
parser into its own environ and rendered by its own ``Logger.access``, must give the same line as
``AccessFormatter`` — except where escaping deliberately differs (tested on its own below)."""

from __future__ import annotations

import base64
import datetime
import io
import json
import logging
import os
import time
import timeit
from collections.abc import Iterator, Sequence
from typing import Any
from urllib.parse import unquote_to_bytes

import pytest

from prefork.errors import ConfigError
from prefork.logs.access_format import (
    ACCESS_LOGGER,
    DEFAULT_FORMAT,
    AccessFormatter,
    AccessRecord,
)
from prefork.logs.access_log import AccessLog
from prefork.logs.escape import escape

gunicorn_config = pytest.importorskip("gunicorn.config")
glogging = pytest.importorskip("gunicorn.glogging")
gunicorn_parser = pytest.importorskip("gunicorn.http.parser")
gunicorn_wsgi = pytest.importorskip("gunicorn.http.wsgi")

# 10/Oct/2000:13:55:36 -0700, a quarter into the second.
WHEN = 971211336.25
CLIENT = ("10.1.2.3", 51234)

ALL_ATOMS = (
    "%(h)s|%(l)s|%(u)s|%(t)s|%(r)s|%(m)s|%(U)s|%(q)s|%(H)s|%(s)s|%(b)s|%(B)s|%(f)s|%(a)s|"
    "%(T)s|%(D)s|%(M)s|%(L)s|%(p)s|%(nosuch)s|%({nosuch}i)s|%({nosuch}o)s|%({nosuch}e)s|%%"
)
HEADER_ATOMS = (
    "%({x-request-id}i)s %({X-Request-ID}i)s %({user-agent}i)s %({content-type}o)s "
    "%({Content-Type}o)s %({x-cache}o)s %({HOME}e)s %({home}e)s %({http_user_agent}e)s "
    "%({content_type}e)s %({wsgi.version}e)s %({raw_uri}e)s %({path_info}e)s"
)


@pytest.fixture(params=["UTC0", "PST8PDT,M3.2.0,M11.1.0", "IST-5:30"])
def timezone(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    monkeypatch.setenv("TZ", request.param)
    time.tzset()
    yield request.param
    monkeypatch.undo()
    time.tzset()


@pytest.fixture
def utc(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    monkeypatch.setenv("TZ", "UTC0")
    time.tzset()
    yield
    monkeypatch.undo()
    time.tzset()


class OracleLogger(glogging.Logger):
    """gunicorn's Logger with the clock fixed and access logging on, captured in a list."""

    access_log_enabled = True  # shadows the property: gunicorn's default has accesslog off

    def __init__(self, cfg: Any, when: float) -> None:
        self.when = when
        super().__init__(cfg)

    def now(self) -> str:  # gunicorn's own format string, at a fixed time
        return time.strftime("[%d/%b/%Y:%H:%M:%S %z]", time.localtime(self.when))


class ListHandler(logging.Handler):
    def __init__(self) -> None:
        super().__init__()
        self.lines: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.lines.append(record.getMessage())


def gunicorn_line(
    raw: bytes,
    fmt: str,
    *,
    status: str,
    response_headers: Sequence[tuple[str, str]],
    sent: int,
    micros: int,
    extra_environ: dict[str, str],
    client: tuple[str, int] = CLIENT,
) -> tuple[str, dict[str, Any]]:
    """What gunicorn logs for ``raw``, and the WSGI environ it built."""
    cfg = gunicorn_config.Config()
    cfg.set("access_log_format", fmt)
    req = next(gunicorn_parser.RequestParser(cfg, iter([raw]), client))
    resp, environ = gunicorn_wsgi.create(req, None, client, ("127.0.0.1", 8000), cfg)
    environ.update(extra_environ)
    resp.status = status
    resp.headers = list(response_headers)
    resp.sent = sent
    logger = OracleLogger(cfg, WHEN)
    capture = ListHandler()
    logger.access_log.addHandler(capture)
    try:
        logger.access(resp, req, environ, datetime.timedelta(microseconds=micros))
    finally:
        logger.access_log.removeHandler(capture)
        for handler in list(logger.error_log.handlers):
            logger.error_log.removeHandler(handler)
    [line] = capture.lines
    return line, environ


def record_for(
    raw: bytes,
    *,
    status: str,
    response_headers: Sequence[tuple[str, str]],
    sent: int,
    micros: int,
    environ: dict[str, Any] | None,
    client: tuple[str, int] | None = CLIENT,
) -> AccessRecord:
    """The record prefork's server hands over for ``raw`` (strings as its WSGI environ has them)."""
    head, _, _ = raw.partition(b"\r\n\r\n")
    request_line, *header_lines = head.split(b"\r\n")
    method, target, version = request_line.split(b" ")
    headers = []
    for line in header_lines:
        name, _, value = line.partition(b":")
        headers.append((name.strip().lower(), value.strip(b" \t")))
    path, _, query = target.partition(b"?")
    code, _, reason = status.partition(" ")
    return AccessRecord(
        client=client,
        method=method.decode("latin-1"),
        raw_uri=target.decode("latin-1"),
        path=unquote_to_bytes(path).decode("latin-1"),
        query=query.decode("latin-1"),
        http_version=version.decode("ascii").removeprefix("HTTP/"),
        status=int(code),
        reason=reason,
        request_headers=headers,
        response_headers=[(n.encode("latin-1"), v.encode("latin-1")) for n, v in response_headers],
        response_body_bytes=sent,
        request_start=WHEN - micros / 1_000_000,
        duration=micros / 1_000_000,
        pid=os.getpid(),
        environ=environ,
    )


def both(
    raw: bytes,
    fmt: str = DEFAULT_FORMAT,
    *,
    status: str = "200 OK",
    response_headers: Sequence[tuple[str, str]] = (("Content-Type", "text/plain"),),
    sent: int = 12,
    micros: int = 2345,
    client: tuple[str, int] = CLIENT,
) -> tuple[str, str]:
    """(gunicorn's line, ours) for the same request."""
    extra = {"HOME": "/home/app"}
    theirs, environ = gunicorn_line(
        raw, fmt, status=status, response_headers=response_headers, sent=sent, micros=micros,
        extra_environ=extra, client=client,
    )
    record = record_for(
        raw, status=status, response_headers=response_headers, sent=sent, micros=micros,
        environ=environ, client=client,
    )
    return theirs, AccessFormatter(fmt).render(record)


def basic(credentials: bytes) -> bytes:
    return b"Basic " + base64.b64encode(credentials)


REQUESTS = {
    "plain-get": b"GET / HTTP/1.1\r\nHost: example.com\r\n\r\n",
    "query": b"GET /search?q=a+b&x=%20y&z=%22 HTTP/1.1\r\nHost: example.com\r\n\r\n",
    "http10": b"GET /old HTTP/1.0\r\n\r\n",
    "post-referer-agent": (
        b"POST /api/items HTTP/1.1\r\nHost: example.com\r\nContent-Type: application/json\r\n"
        b"Content-Length: 0\r\nReferer: https://example.com/form?a=1\r\n"
        b"User-Agent: Mozilla/5.0 (X11; Linux x86_64; rv:120.0) Gecko/20100101 Firefox/120.0\r\n"
        b"X-Request-ID: 7f1c2a\r\n\r\n"
    ),
    "basic-user": (
        b"GET /private HTTP/1.1\r\nAuthorization: " + basic(b"alice:s3cret") + b"\r\n\r\n"
    ),
    "basic-unicode-user": (
        b"GET / HTTP/1.1\r\nAuthorization: " + basic("zoë:pw".encode()) + b"\r\n\r\n"
    ),
    "basic-lowercase-scheme": b"GET / HTTP/1.1\r\nAuthorization: basic " + basic(b"bob:x")[6:]
    + b"\r\n\r\n",
    "basic-empty-user": b"GET / HTTP/1.1\r\nAuthorization: " + basic(b":pw") + b"\r\n\r\n",
    "basic-no-colon": b"GET / HTTP/1.1\r\nAuthorization: " + basic(b"token") + b"\r\n\r\n",
    "basic-bad-base64": b"GET / HTTP/1.1\r\nAuthorization: Basic abc\r\n\r\n",
    "basic-not-utf8": b"GET / HTTP/1.1\r\nAuthorization: " + basic(b"\xff:pw") + b"\r\n\r\n",
    "bearer": b"GET / HTTP/1.1\r\nAuthorization: Bearer abc.def\r\n\r\n",
    "unicode-path": b"GET /caf%C3%A9/na%C3%AFve/%20space?q=%C3%A9 HTTP/1.1\r\n\r\n",
    "encoded-slash-and-quote": b"GET /a%2Fb/%22q%22 HTTP/1.1\r\n\r\n",
    "quotes-in-headers": (
        b'GET / HTTP/1.1\r\nReferer: http://x/"><script>\r\nUser-Agent: say "hi"\r\n\r\n'
    ),
    "latin1-header": b"GET / HTTP/1.1\r\nUser-Agent: caf\xe9 \xe0 la cr\xe8me\r\n\r\n",
    "empty-referer": b"GET / HTTP/1.1\r\nReferer:\r\nUser-Agent: \r\n\r\n",
    "repeated-headers": (
        b"GET / HTTP/1.1\r\nUser-Agent: one\r\nX-Request-ID: first\r\nUser-Agent: two\r\n"
        b"Referer: /a\r\nReferer: /b\r\nX-Request-ID: second\r\n\r\n"
    ),
    "options-star": b"OPTIONS * HTTP/1.1\r\nHost: example.com\r\n\r\n",
    "percent-in-target": b"GET /100%25?p=%25s%25(h)s HTTP/1.1\r\n\r\n",
}


@pytest.mark.parametrize("name", sorted(REQUESTS))
@pytest.mark.parametrize("fmt", [DEFAULT_FORMAT, ALL_ATOMS, HEADER_ATOMS],
                         ids=["default", "all-atoms", "header-atoms"])
def test_matches_gunicorn(name: str, fmt: str, timezone: str) -> None:
    theirs, ours = both(REQUESTS[name], fmt)
    assert ours == theirs


@pytest.mark.parametrize(
    "micros", [0, 1, 999, 1000, 999_999, 1_000_000, 1_500_000, 61_000_001, 2_345_678_901]
)
def test_time_atoms_match_gunicorn(micros: int, utc: None) -> None:
    fmt = "%(T)s %(D)s %(M)s %(L)s %(t)s"
    theirs, ours = both(REQUESTS["plain-get"], fmt, micros=micros)
    assert ours == theirs


@pytest.mark.parametrize(
    ("status", "sent", "response_headers"),
    [
        ("200 OK", 0, ()),
        ("204 No Content", 0, (("X-Cache", "miss"),)),
        ("404 Not Found", 9, (("content-type", "text/html"), ("Content-Type", "text/plain"))),
        ("500 Internal Server Error", 123456789, (("X-Cache", 'hit "quoted"'),)),
        ("599", 1, ()),
    ],
)
def test_response_atoms_match_gunicorn(
    status: str, sent: int, response_headers: tuple[tuple[str, str], ...], utc: None
) -> None:
    fmt = DEFAULT_FORMAT + " %(B)s %({content-type}o)s %({x-cache}o)s"
    theirs, ours = both(REQUESTS["post-referer-agent"], fmt, status=status, sent=sent,
                        response_headers=response_headers)
    assert ours == theirs


def test_ipv6_client_matches_gunicorn(utc: None) -> None:
    theirs, ours = both(REQUESTS["plain-get"], client=("2001:db8::1", 443))
    assert ours == theirs
    assert ours.startswith("2001:db8::1 - - ")


@pytest.mark.parametrize(
    "fmt",
    [
        "%(s)5s|%(D)08d|%(h)-15s|%(B)x|%(a).5s|%(T)+d|%(M)r",
        "no atoms at all",
        "%(s)s%%%(b)s 100%% done",
        "%((nested))s %(a(b)c)s",
        "",
    ],
)
def test_printf_specs_match_gunicorn(fmt: str, utc: None) -> None:
    theirs, ours = both(REQUESTS["post-referer-agent"], fmt)
    assert ours == theirs


def test_default_line_shape(utc: None) -> None:
    line = AccessFormatter().render(record_for(
        REQUESTS["post-referer-agent"], status="201 Created", response_headers=(), sent=17,
        micros=1500, environ=None,
    ))
    assert line == (
        '10.1.2.3 - - [10/Oct/2000:20:55:36 +0000] "POST /api/items HTTP/1.1" 201 17 '
        '"https://example.com/form?a=1" '
        '"Mozilla/5.0 (X11; Linux x86_64; rv:120.0) Gecko/20100101 Firefox/120.0"'
    )


# --- escaping: where prefork deliberately writes less than gunicorn lets through ------------------


def test_percent_encoded_newline_in_path_stays_on_one_line(utc: None) -> None:
    raw = b"GET /x%0A127.0.0.1%20-%20-%20%5B10/Oct/2000%5D HTTP/1.1\r\n\r\n"
    theirs, ours = both(raw, "%(U)s")
    assert "\n" in theirs  # gunicorn's %(U)s is the decoded path, newline and all
    assert ours == "/x\\x0a127.0.0.1 - - [10/Oct/2000]"
    assert "\n" not in ours


def test_forged_request_line_is_escaped() -> None:
    record = record_for(REQUESTS["plain-get"], status="200 OK", response_headers=(), sent=0,
                        micros=0, environ=None)
    record.raw_uri = (
        '/a HTTP/1.1" 200 0 "-" "-"\n127.0.0.1 - - [10/Oct/2000:13:55:36 -0700] "GET /b'
    )
    line = AccessFormatter().render(record)
    assert "\n" not in line and "\r" not in line
    assert '"GET /a HTTP/1.1\\" 200 0 \\"-\\" \\"-\\"\\x0a127.0.0.1 - - ' in line
    # Exactly the format's own quotes remain unescaped: r, f and a open and close one each.
    assert line.replace('\\"', "").count('"') == 6


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("plain text", "plain text"),
        ('say "hi"', 'say \\"hi\\"'),
        ("back\\slash", "back\\\\slash"),
        ('end\\"', 'end\\\\\\"'),  # a client cannot close the field with \"
        ("a\nb\rc", "a\\x0ab\\x0dc"),
        ("\x1b[31mred\x1b[0m", "\\x1b[31mred\\x1b[0m"),
        ("tab\there", "tab\\x09here"),
        ("nul\x00del\x7f", "nul\\x00del\\x7f"),
        ("c1 \x85 \x9b", "c1 \\x85 \\x9b"),  # NEL and CSI: newline/escape to some readers
        ("café à la crème ÿ", "café à la crème ÿ"),  # printable Latin-1 passes, as in gunicorn
        ("日本語", "日本語"),
        ("bidi \u202e \u2028 \ufeff", "bidi \\u202e \\u2028 \\ufeff"),
        ("surrogate \udcff", "surrogate \\udcff"),
        ("astral \U000e0001 😀", "astral \\U000e0001 😀"),
    ],
)
def test_escape(value: str, expected: str) -> None:
    assert escape(value) == expected


def test_control_bytes_in_every_client_value_are_escaped(utc: None) -> None:
    evil = b"x\x1b\r\n\x85\"\\"
    record = AccessRecord(
        client=("1.2.3.4\n", 1), method="GET\n", raw_uri="/\n", path="/\n", query="q\n",
        http_version="1.1\n", status=200, reason="", response_body_bytes=0,
        request_headers=[(b"referer", evil), (b"user-agent", evil), (b"x-a", evil),
                         (b"authorization", basic(b"ev\nil:pw"))],
        response_headers=[(b"X-B", evil)], request_start=WHEN, duration=0.0, pid=1,
        environ={"EVIL": "a\nb"},
    )
    fmt = ALL_ATOMS + " %({x-a}i)s %({x-b}o)s %({evil}e)s"
    line = AccessFormatter(fmt).render(record)
    assert not any(ch in line for ch in "\x1b\r\n\x85")
    assert "x\\x1b\\x0d\\x0a\\x85\\\"\\\\" in line
    assert "|ev\\x0ail|" in line


def test_backslash_and_c1_in_headers_differ_from_gunicorn_only_by_escaping(utc: None) -> None:
    raw = b"GET / HTTP/1.1\r\nUser-Agent: a\\b\tc \x85\r\n\r\n"
    theirs, ours = both(raw, "%(a)s")
    assert theirs == "a\\b\tc \x85"
    assert ours == "a\\\\b\\x09c \\x85"


def test_unix_socket_client_is_a_dash(utc: None) -> None:
    record = record_for(REQUESTS["plain-get"], status="200 OK", response_headers=(), sent=0,
                        micros=0, environ=None, client=None)
    assert AccessFormatter("%(h)s %(u)s %({home}e)s").render(record) == "- - -"


# --- the format language -----------------------------------------------------------------------


@pytest.mark.parametrize(
    "fmt", ["%s", "%(h)s %d", "100%", "%(h", "%(h)", "%(h)*s", "%(h)d", "%(h)q", "% (h)s", "%(()s"]
)
def test_bad_format_fails_at_start_up(fmt: str) -> None:
    with pytest.raises(ConfigError, match="access_log_format"):
        AccessFormatter(fmt)


def test_default_format_is_gunicorns() -> None:
    assert gunicorn_config.Config().access_log_format == DEFAULT_FORMAT
    assert AccessFormatter().fmt == DEFAULT_FORMAT


def test_environ_lookup_is_case_insensitive_and_stringifies() -> None:
    record = record_for(REQUESTS["plain-get"], status="200 OK", response_headers=(), sent=0,
                        micros=0, environ={"Mixed_Case": "m", "wsgi.version": (1, 0), "N": 3})
    fmt = "%({mixed_case}e)s %({MIXED_CASE}e)s %({wsgi.version}e)s %({n}e)s"
    assert AccessFormatter(fmt).render(record) == "m m (1, 0) 3"


# --- the JSON preset ---------------------------------------------------------------------------


def json_record(raw: bytes, **overrides: Any) -> AccessRecord:
    record = record_for(raw, status="201 Created", response_headers=(), sent=17, micros=1_234_567,
                        environ=None)
    for name, value in overrides.items():
        setattr(record, name, value)
    return record


@pytest.mark.parametrize("preset", ["json", "JSON", " json "])
def test_json_fields(preset: str, timezone: str) -> None:
    line = AccessFormatter(preset).render(json_record(REQUESTS["post-referer-agent"]))
    fields = json.loads(line)
    assert list(fields) == [
        "time", "remote_addr", "method", "path", "query", "protocol", "status", "bytes",
        "duration_ms", "referer", "user_agent", "request_id", "pid",
    ]
    expected_time = datetime.datetime.fromtimestamp(WHEN).astimezone()
    assert fields["time"] == expected_time.isoformat(timespec="milliseconds")
    assert datetime.datetime.fromisoformat(fields["time"]).timestamp() == WHEN
    assert fields == fields | {
        "remote_addr": "10.1.2.3", "method": "POST", "path": "/api/items", "query": "",
        "protocol": "HTTP/1.1", "status": 201, "bytes": 17, "duration_ms": 1234.567,
        "referer": "https://example.com/form?a=1", "request_id": "7f1c2a", "pid": os.getpid(),
    }
    assert fields["user_agent"].startswith("Mozilla/5.0 ")


def test_json_missing_values_are_null(utc: None) -> None:
    fields = json.loads(AccessFormatter("json").render(
        json_record(REQUESTS["http10"], client=None, duration=0.0)
    ))
    assert fields["remote_addr"] is None
    assert fields["referer"] is None and fields["user_agent"] is None
    assert fields["request_id"] is None
    assert fields["protocol"] == "HTTP/1.0"
    assert fields["duration_ms"] == 0


def test_json_repeated_headers() -> None:
    fields = json.loads(AccessFormatter("json").render(json_record(REQUESTS["repeated-headers"])))
    assert fields["user_agent"] == "one,two"
    assert fields["referer"] == "/a,/b"
    assert fields["request_id"] == "second"


def test_json_is_one_ascii_line_whatever_the_client_sends() -> None:
    evil = "\n\r\x1b\"\\\x85é日\u2028\udcff"
    record = json_record(
        REQUESTS["plain-get"], method=evil, path=evil, query=evil, raw_uri=evil,
        request_headers=[(b"user-agent", evil.encode("utf-8", "surrogateescape")),
                         (b"referer", b"\n{\"status\": 200}"), (b"x-request-id", b"\x00")],
    )
    line = AccessFormatter("json").render(record)
    assert line.isascii() and line.isprintable()
    fields = json.loads(line)
    assert fields["method"] == fields["path"] == fields["query"] == evil
    assert fields["referer"] == '\n{"status": 200}'
    assert fields["status"] == 201


# --- AccessLog ---------------------------------------------------------------------------------


@pytest.fixture
def logs(monkeypatch: pytest.MonkeyPatch) -> Iterator[list[AccessLog]]:
    """Close every AccessLog a test makes; put the logger and logging's flags back."""
    logger = logging.getLogger(ACCESS_LOGGER)
    monkeypatch.setattr(logging, "raiseExceptions", logging.raiseExceptions)
    monkeypatch.setattr(logger, "propagate", logger.propagate)
    level = logger.level
    made: list[AccessLog] = []
    yield made
    for log in made:
        log.close()
    logger.setLevel(level)  # setLevel, not setattr: it also drops isEnabledFor's cache


def sample() -> AccessRecord:
    return record_for(REQUESTS["post-referer-agent"], status="200 OK", response_headers=(),
                      sent=5, micros=100, environ=None)


def test_off_by_default(logs: list[AccessLog], capsys: pytest.CaptureFixture[str]) -> None:
    before = list(logging.getLogger(ACCESS_LOGGER).handlers)
    log = AccessLog(None)
    logs.append(log)
    assert not log.enabled
    log.log(sample())
    assert logging.getLogger(ACCESS_LOGGER).handlers == before
    assert capsys.readouterr() == ("", "")


def test_dash_is_stdout_message_only(
    logs: list[AccessLog], capsys: pytest.CaptureFixture[str], utc: None
) -> None:
    log = AccessLog("-")
    logs.append(log)
    assert log.enabled
    log.log(sample())
    out, err = capsys.readouterr()
    assert out == AccessFormatter().render(sample()) + "\n"
    assert err == ""


def test_file_and_reopen(logs: list[AccessLog], tmp_path: Any) -> None:
    path = tmp_path / "access.log"
    log = AccessLog(str(path), "json")
    logs.append(log)
    log.log(sample())
    path.rename(tmp_path / "access.log.1")
    log.log(sample())  # still goes to the renamed file, as before a SIGUSR1
    log.reopen()
    log.log(sample())
    assert len((tmp_path / "access.log.1").read_text().splitlines()) == 2
    [line] = path.read_text().splitlines()
    assert json.loads(line)["bytes"] == 5


def test_reconfiguring_replaces_the_handler(logs: list[AccessLog], tmp_path: Any) -> None:
    first, second = tmp_path / "a.log", tmp_path / "b.log"
    logs.append(AccessLog(str(first)))
    log = AccessLog(str(second), "%(s)s")
    logs.append(log)
    log.log(sample())
    assert first.read_text() == ""
    assert second.read_text() == "200\n"


def test_unopenable_file_is_a_config_error(logs: list[AccessLog], tmp_path: Any) -> None:
    with pytest.raises(ConfigError, match="accesslog"):
        AccessLog(str(tmp_path / "missing-dir" / "access.log"))


def test_logging_config_keeps_control(logs: list[AccessLog]) -> None:
    """A user's logging config owns the logger: prefork adds no handler of its own."""
    logger = logging.getLogger(ACCESS_LOGGER)
    capture = ListHandler()
    logger.addHandler(capture)
    logger.setLevel(logging.INFO)
    try:
        log = AccessLog(None, "%(m)s %(s)s", externally_configured=True)
        logs.append(log)
        assert log.enabled
        log.log(sample())
        assert capture.lines == ["POST 200"]
        assert logger.handlers == [capture]
        logger.setLevel(logging.WARNING)  # the user's config turned access lines off
        log.log(sample())
        assert capture.lines == ["POST 200"]
    finally:
        logger.removeHandler(capture)


class BrokenStream(io.StringIO):
    def write(self, text: str) -> int:
        raise OSError(28, "No space left on device")


def test_failing_write_never_raises(
    logs: list[AccessLog], capsys: pytest.CaptureFixture[str]
) -> None:
    log = AccessLog("-")
    logs.append(log)
    [handler] = [h for h in logging.getLogger(ACCESS_LOGGER).handlers
                 if h.get_name() == ACCESS_LOGGER]
    assert isinstance(handler, logging.StreamHandler)
    handler.setStream(BrokenStream())
    log.log(sample())  # dropped, silently: logging.raiseExceptions is off
    assert logging.raiseExceptions is False
    assert capsys.readouterr().err == ""


def test_unrenderable_record_is_reported_not_raised(
    logs: list[AccessLog], caplog: pytest.LogCaptureFixture
) -> None:
    log = AccessLog("-")
    logs.append(log)
    record = sample()
    record.request_headers = None  # deliberately not a header list
    with caplog.at_level(logging.ERROR, logger="prefork.error"):
        log.log(record)
    assert "access log" in caplog.text


# --- cost per line (printed, not asserted: speed is judged in bench/) ---------------------------


def test_render_cost(capsys: pytest.CaptureFixture[str]) -> None:
    record = sample()
    results = []
    for name, fmt in [("default", DEFAULT_FORMAT), ("json", "json"), ("all atoms", ALL_ATOMS)]:
        timer = timeit.Timer("render(record)", globals={
            "render": AccessFormatter(fmt).render, "record": record,
        })
        best = min(timer.repeat(number=2000, repeat=5)) / 2000
        results.append(f"{name}: {best * 1e6:.2f} µs/line")
    with capsys.disabled():
        print("\naccess log render: " + ", ".join(results))
