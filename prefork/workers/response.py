"""Writing a response on a :class:`~prefork.workers.contract.Connection`: the steps the ASGI and
the WSGI cycles share, so that each is written once.

* A one-message response (head, whole body, end) is joined into one write when its body is
  small (``JOIN_LIMIT``) and written apart from its head otherwise, so that a large body is
  never copied into a buffer with the head.
* When the engine refuses such a response it is either the head (nothing was emitted: a 500
  can still take its place) or the body, which broke the length the head announced (the engine
  is in ``ERROR``, the head may be out: only cutting the connection is honest).
* The internal-error answer (500) replaces a response that has not started.
* A body from a file: the head with the file's ``Content-Length``, then the file's bytes
  through the connection's ``send_file`` (zero-copy where the loop allows).
"""

from __future__ import annotations

from typing import IO, Final

from prefork.errors import LocalProtocolError
from prefork.http.connection import ERROR, JOIN_LIMIT
from prefork.http.events import Response
from prefork.workers.contract import Connection

INTERNAL_ERROR_BODY: Final = b"Internal Server Error"
INTERNAL_ERROR: Final = Response(500, [(b"content-type", b"text/plain; charset=utf-8"),
                                       (b"content-length", b"21")])
_CONTENT_LENGTH: Final = b"content-length"


def write_whole(connection: Connection, head: Response, body: bytes) -> None:
    """Write a one-message response. Raises what the engine raises when it refuses it
    (``LocalProtocolError``, ``TypeError``, ``ValueError``), before anything is written; see
    :func:`body_broke` for which part it refused."""
    conn = connection.conn
    if len(body) < JOIN_LIMIT:
        connection.write(conn.send_whole(head, body))
    else:
        out, rest = conn.send_apart(head, body)
        connection.write_apart(out, rest)


def body_broke(connection: Connection) -> bool:
    """After the engine raised ``LocalProtocolError``: whether it refused a response's body (it
    broke its length: the head may be out) rather than its head (nothing went out)."""
    return connection.conn.our_state == ERROR


def write_internal_error(connection: Connection) -> bool:
    """Answer 500 in place of a response that has not started; False (and the connection is
    aborted) when the engine cannot start one any more."""
    try:
        out = connection.conn.send_whole(INTERNAL_ERROR, INTERNAL_ERROR_BODY)
    except LocalProtocolError:
        connection.abort()
        return False
    connection.write(out)
    return True


def with_length(head: Response, length: int) -> Response:
    """``head`` with ``length`` as its one ``Content-Length``."""
    headers = [(name, value) for name, value in head.headers
               if name.lower() != _CONTENT_LENGTH]
    headers.append((_CONTENT_LENGTH, b"%d" % length))
    return Response(head.status_code, headers, head.reason)


async def write_file_body(connection: Connection, head: bytes, file: IO[bytes], count: int,
                          offset: int = 0) -> bool:
    """Write the serialised ``head`` (of a response whose ``Content-Length`` is ``count``) and
    ``count`` bytes of ``file`` from ``offset`` as its body; False when fewer went out (the
    file shrank, or the connection closed). The end of the message is the caller's to write.
    Raises the ``OSError`` a closed connection's write raises."""
    on_wire = connection.conn.send_body_elsewhere(count)  # a HEAD response has no body
    connection.write(head)
    if on_wire and count:
        return await connection.send_file(file, count, offset) == count
    return True
