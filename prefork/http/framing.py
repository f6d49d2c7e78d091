"""Body framing: the only place that decides how a body is delimited, and writes the delimiters.

Requests (RFC 9112 §6.3): a body is delimited by ``Transfer-Encoding: chunked`` or by one
``Content-Length``, never both, never by the connection closing. Everything else that smugglers
use to make two parsers disagree is refused here with 400, whichever tokeniser ran.

Responses (RFC 9112 §6.3, RFC 9110 §6.4.1): no body for HEAD, 1xx, 204 and 304; otherwise the
application's ``Content-Length`` when it gave one (and it is held to it), else chunked for HTTP/1.1
clients, else the connection's close delimits the body (HTTP/1.0 has no chunked coding).
This module does no I/O.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Final

from prefork.errors import LocalProtocolError, RemoteProtocolError
from prefork.http.headers import encode_fields

# --- request side ---------------------------------------------------------------------------

CHUNKED_BODY: Final = -1  # request_body_length() result for a chunked request body

# 18 digits is under 2**63 and far above any limit; longer values are refused rather than passed
# to int() unbounded (llhttp refuses values past 2**64 on its own).
_MAX_LENGTH_DIGITS: Final = 18


def request_body_length(
    content_lengths: Sequence[bytes], transfer_encodings: Sequence[bytes], http_version: bytes
) -> int:
    """The framing of a request body: its length in bytes, or ``CHUNKED_BODY``.

    Raises RemoteProtocolError (400) for every ambiguous shape: both headers, repeated or
    non-digit ``Content-Length``, any ``Transfer-Encoding`` other than one ``chunked``, and any
    ``Transfer-Encoding`` on HTTP/1.0 (RFC 9112 §6.1: the message must be treated as faulty).
    """
    if transfer_encodings:
        if content_lengths:
            raise RemoteProtocolError("both Transfer-Encoding and Content-Length", 400)
        if http_version != b"1.1":
            raise RemoteProtocolError("Transfer-Encoding in an HTTP/1.0 request", 400)
        if len(transfer_encodings) != 1 or transfer_encodings[0].lower() != b"chunked":
            raise RemoteProtocolError("Transfer-Encoding other than a single 'chunked'", 400)
        return CHUNKED_BODY
    if not content_lengths:
        return 0
    if len(content_lengths) != 1:
        raise RemoteProtocolError("repeated Content-Length", 400)
    value = content_lengths[0]
    if not value.isdigit() or len(value) > _MAX_LENGTH_DIGITS:
        raise RemoteProtocolError(f"bad Content-Length {value[:32]!r}", 400)
    return int(value)


# --- response side --------------------------------------------------------------------------

NO_BODY: Final = 0
CONTENT_LENGTH: Final = 1
CHUNKED: Final = 2
CLOSE_DELIMITED: Final = 3

TRANSFER_ENCODING_CHUNKED: Final = b"transfer-encoding: chunked\r\n"


def response_framing(
    status: int, head_request: bool, http11: bool, content_length: bytes | None
) -> tuple[int, int, bytes]:
    """The framing of a response body, from the application's Content-Length value (None when
    it gave none): one of the four constants above, the length a CONTENT_LENGTH body must have
    (0 otherwise), and the framing field line for the head (``b""`` for none). One call per
    response decides all three. Raises LocalProtocolError (500) for a bad Content-Length.
    """
    if content_length is None:
        length = None
    elif content_length.isdigit() and len(content_length) <= _MAX_LENGTH_DIGITS:
        length = int(content_length)  # the usual form: no whitespace around the digits
    else:
        length = parse_content_length(content_length)
    if head_request or status < 200 or status == 204 or status == 304:
        if length is not None and sends_content_length(status):
            return NO_BODY, 0, b"content-length: %d\r\n" % length
        return NO_BODY, 0, b""
    if length is not None:
        return CONTENT_LENGTH, length, b"content-length: %d\r\n" % length
    if http11:
        return CHUNKED, 0, TRANSFER_ENCODING_CHUNKED
    return CLOSE_DELIMITED, 0, b""


def sends_content_length(status: int) -> bool:
    """Whether an application's Content-Length is passed on for this status.

    RFC 9110 §8.6: never in 1xx or 204; in a HEAD or 304 response it describes the body that a GET
    would have had, so it is kept as given.
    """
    return status >= 200 and status != 204


def content_length_line(length: int) -> bytes:
    return b"content-length: %d\r\n" % length


def parse_content_length(value: bytes) -> int:
    """The application's Content-Length (repeated values were compared by the caller)."""
    digits = value.strip()
    if not digits.isdigit() or len(digits) > _MAX_LENGTH_DIGITS:
        raise LocalProtocolError(f"bad Content-Length {value[:32]!r}", 500)
    return int(digits)


class BodyWriter:
    """Frames the body of the response in progress. One per connection: each response head sets
    ``mode`` and ``remaining`` from :func:`response_framing`."""

    __slots__ = ("mode", "remaining")

    def __init__(self) -> None:
        self.mode = NO_BODY
        self.remaining = 0

    def data(self, data: bytes) -> bytes:
        mode = self.mode
        if mode == CHUNKED:
            if not data:
                return b""  # an empty chunk would be read as the last chunk
            return b"".join((b"%x\r\n" % len(data), data, b"\r\n"))
        if mode == CONTENT_LENGTH:
            remaining = self.remaining - len(data)
            if remaining < 0:
                raise LocalProtocolError("response body longer than its Content-Length", 500)
            self.remaining = remaining
            return data
        if mode == CLOSE_DELIMITED:
            return data
        return b""  # HEAD, 1xx, 204, 304: the body is dropped

    def elsewhere(self, size: int) -> bool:
        """Account for ``size`` body bytes the I/O layer writes itself (``sendfile``); False
        when the body does not go on the wire (HEAD, 204, 304)."""
        mode = self.mode
        if mode == CONTENT_LENGTH:
            remaining = self.remaining - size
            if remaining < 0:
                raise LocalProtocolError("response body longer than its Content-Length", 500)
            self.remaining = remaining
            return True
        if mode == CLOSE_DELIMITED:
            return True
        if mode == CHUNKED:
            raise LocalProtocolError("a body sent by sendfile needs a Content-Length", 500)
        return False

    def around(self, size: int) -> tuple[bytes, bytes] | None:
        """Account for ``size`` body bytes the I/O layer writes itself, in any framing: the
        bytes to write before and after them (a chunk's size line and its CRLF when chunked;
        nothing otherwise), or None when the body does not go on the wire (HEAD, 204, 304)."""
        if self.mode == CHUNKED:
            if not size:
                return b"", b""  # an empty chunk would be read as the last chunk
            return b"%x\r\n" % size, b"\r\n"
        return (b"", b"") if self.elsewhere(size) else None

    def end(self, trailers: Sequence[tuple[bytes, bytes]]) -> bytes:
        mode = self.mode
        if mode == CHUNKED:
            if not trailers:
                return b"0\r\n\r\n"
            return b"0\r\n" + encode_fields(trailers) + b"\r\n"
        if trailers and mode != NO_BODY:
            raise LocalProtocolError("trailers need a chunked response", 500)
        if mode == CONTENT_LENGTH and self.remaining:
            raise LocalProtocolError(
                f"response body {self.remaining} bytes shorter than its Content-Length", 500
            )
        return b""
