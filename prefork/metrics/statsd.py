"""StatsD over UDP, with gunicorn's metric names, so existing dashboards keep working.

Workers send, per request, ``gunicorn.requests`` (counter), ``gunicorn.request.duration``
(timer, milliseconds) and ``gunicorn.request.status.<code>`` (counter); the arbiter sends the
``gunicorn.workers`` gauge; both count error-log lines as ``gunicorn.log.<level>`` (warning,
error, exception, critical). ``--statsd-prefix`` goes in front of every name (with a dot added
unless it ends with one) and ``--dogstatsd-tags`` after every line as ``|#tags``.

Lines are batched, newline-separated, into datagrams of at most ``MAX_DATAGRAM`` bytes (StatsD
and the DogStatsD agent both split on newlines): a worker flushes when a datagram is full or
``FLUSH_DELAY`` after the first line of a batch, instead of one ``sendto`` per request.

Rule: sending never raises and never blocks. The socket is non-blocking; a full buffer, an
unreachable agent (ICMP errors come back as ``ECONNREFUSED`` on the next send) or any other
``OSError`` drops the batch, which is what UDP metrics accept.
"""

from __future__ import annotations

import contextlib
import logging
import os
import socket
from collections.abc import Callable

from prefork.errors import BootError

__all__ = ["FLUSH_DELAY", "MAX_DATAGRAM", "StatsdClient", "StatsdLogCounter", "parse_address"]

# Under the 1500-byte Ethernet MTU with IP and UDP headers: one datagram, no fragments (the
# Datadog agent's documented safe size for UDP is 1432 bytes).
MAX_DATAGRAM = 1432
FLUSH_DELAY = 0.1  # seconds a worker holds lines before sending a batch that is not full


def parse_address(text: str) -> tuple[str, int]:
    """``HOST:PORT`` or ``[V6]:PORT`` (already checked by the settings table)."""
    host, _, port = text.rpartition(":")
    return host.strip("[]"), int(port)


class StatsdClient:
    """Sends StatsD lines to ``address`` from one process.

    ``schedule(delay, callback)`` arms the flush of a batch (the worker's ``loop.call_later``);
    without it every line is sent at once (the arbiter's few gauges).
    """

    def __init__(self, address: str, prefix: str = "", tags: str = "",
                 schedule: Callable[[float, Callable[[], None]], object] | None = None) -> None:
        host, port = parse_address(address)
        try:
            family, kind, proto, _, target = socket.getaddrinfo(
                host, port, type=socket.SOCK_DGRAM)[0]
        except (OSError, IndexError) as exc:
            reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else exc
            raise BootError(f"statsd_host: cannot resolve {address}: {reason}") from None
        self.sock = socket.socket(family, kind, proto)
        self.sock.setblocking(False)
        try:
            self.sock.connect(target)  # UDP: only fixes the destination; nothing is sent
        except OSError as exc:
            self.sock.close()
            raise BootError(f"statsd_host: cannot send to {address}: {exc}") from None
        self.prefix = prefix + "." if prefix and not prefix.endswith(".") else prefix
        self.suffix = f"|#{tags}" if tags else ""
        self.schedule = schedule
        self.pending: list[str] = []
        self.pending_bytes = 0
        self.flush_armed = False
        self.owner = os.getpid()
        p, t = self.prefix, self.suffix
        # Three lines per request, formatted in one step on the hot path.
        self._request_lines = (f"{p}gunicorn.requests:1|c{t}\n"
                               f"{p}gunicorn.request.duration:%.3f|ms{t}\n"
                               f"{p}gunicorn.request.status.%d:1|c{t}")

    def request(self, status: int, seconds: float) -> None:
        """One response: gunicorn's three per-request metrics."""
        self._add(self._request_lines % (seconds * 1000.0, status))

    def increment(self, name: str, value: float = 1) -> None:
        self._add(f"{self.prefix}{name}:{value:g}|c{self.suffix}")

    def gauge(self, name: str, value: float) -> None:
        self._add(f"{self.prefix}{name}:{value:g}|g{self.suffix}")

    def timing(self, name: str, milliseconds: float) -> None:
        self._add(f"{self.prefix}{name}:{milliseconds:.3f}|ms{self.suffix}")

    def _add(self, lines: str) -> None:
        size = len(lines) + 1
        if self.pending_bytes + size > MAX_DATAGRAM:
            self.flush()
        self.pending.append(lines)
        self.pending_bytes += size
        if self.schedule is None:
            self.flush()
        elif not self.flush_armed:
            self.flush_armed = True
            self.schedule(FLUSH_DELAY, self.flush)

    def flush(self) -> None:
        """Send what is pending as one datagram (dropped on any error)."""
        self.flush_armed = False
        if not self.pending:
            return
        data = "\n".join(self.pending)
        self.pending.clear()
        self.pending_bytes = 0
        self.send_now(data)

    def send_now(self, lines: str) -> None:
        """Send ``lines`` in a datagram of their own, from any thread."""
        with contextlib.suppress(OSError):  # best effort: see the module docstring
            self.sock.send(lines.encode("utf-8", "replace"))

    def close(self) -> None:
        self.flush()
        self.sock.close()


class StatsdLogCounter(logging.Handler):
    """Counts error-log records of WARNING and above as ``gunicorn.log.<level>``.

    Installed on the error logger by the arbiter and by each worker; a forked worker inherits
    the arbiter's handler, which then stays silent (it only counts in the process that made it).
    """

    def __init__(self, client: StatsdClient) -> None:
        super().__init__(logging.WARNING)
        self.client = client

    def emit(self, record: logging.LogRecord) -> None:
        if os.getpid() != self.client.owner:
            return
        if record.levelno >= logging.CRITICAL:
            level = "critical"
        elif record.levelno >= logging.ERROR:
            level = "exception" if record.exc_info else "error"
        else:
            level = "warning"
        client = self.client
        # Records come from any thread (a WSGI app's pool): not through the loop's batch.
        client.send_now(f"{client.prefix}gunicorn.log.{level}:1|c{client.suffix}")
