"""Client text made safe for one log line, shared by the error log, the access log and the
request paths that quote a client's method, path or target in an error line.

It imports nothing of prefork, so the settings table can check an access-log format
(``prefork.logs.access_format``) without loading the logging set-up.
"""

from __future__ import annotations

import re

# Anything not printable ASCII or printable Latin-1, plus the quote and the escape character.
_UNSAFE = re.compile(r'[^\x20\x21\x23-\x5b\x5d-\x7e\xa0-\xff]')


def _escape_char(match: re.Match[str]) -> str:
    char = match.group()
    if char == '"':
        return '\\"'
    if char == "\\":
        return "\\\\"
    code = ord(char)
    if code <= 0xFF:
        return f"\\x{code:02x}"
    if char.isprintable():
        return char
    return f"\\u{code:04x}" if code <= 0xFFFF else f"\\U{code:08x}"


def escape(text: str) -> str:
    """``text`` made safe to put between quotes on one log line: ``"`` and ``\\`` escaped,
    control characters (C0, DEL, C1) and unprintable ones above U+00FF as ``\\xHH`` /
    ``\\uHHHH`` (nginx's and Apache's convention). Printable Latin-1 passes unchanged."""
    if text.isascii():  # the common case; these checks cost half the regex search
        if text.isprintable() and '"' not in text and "\\" not in text:
            return text
    elif _UNSAFE.search(text) is None:
        return text
    return _UNSAFE.sub(_escape_char, text)
