"""The error log's pure pieces: the escape both logs share, the once-a-second gate, and the
text formatter's guard against control characters."""

from __future__ import annotations

import logging
import sys

from prefork.logs.error_log import OncePerSecond, line_formatter
from prefork.logs.escape import escape


def test_escape_keeps_one_line_and_no_control_character() -> None:
    assert escape("/plain/path") == "/plain/path"
    assert escape("/a\r\n[x] [CRITICAL] forged") == "/a\\x0d\\x0a[x] [CRITICAL] forged"
    assert escape("\x1b[2J\x9b") == "\\x1b[2J\\x9b"
    assert escape('say "hi" \\ bye') == 'say \\"hi\\" \\\\ bye'
    assert escape("café\xa0") == "café\xa0"  # printable Latin-1 passes
    assert escape("\u2028") == "\\u2028"  # a line separator to some viewers


def test_once_per_second_lets_one_through_each_second() -> None:
    now = [100.0]
    gate = OncePerSecond(clock=lambda: now[0])
    assert gate.ready()
    now[0] = 100.5
    assert not gate.ready()
    now[0] = 101.0
    assert gate.ready()
    assert not gate.ready()


def test_text_formatter_writes_control_characters_as_hex_but_keeps_traceback_lines() -> None:
    formatter = line_formatter("text")
    try:
        raise RuntimeError("app said \x1b[2J\rhere")
    except RuntimeError:
        record = logging.LogRecord("prefork.error", logging.ERROR, __file__, 1,
                                   "failed: %s", ("\x07bell",), sys.exc_info())
    line = formatter.format(record)
    assert "failed: \\x07bell" in line
    assert "app said \\x1b[2J\\x0dhere" in line
    assert "\nTraceback (most recent call last):\n" in line
    assert not any(ord(char) < 32 and char not in "\n\t" for char in line)
