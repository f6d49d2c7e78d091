"""The one exception hierarchy of prefork, and the worker exit-code contract.

Library code raises these; only ``prefork.cli`` turns them into a printed line and an exit status.
HTTP protocol errors carry the status they map to, and "the peer broke the protocol"
(:class:`RemoteProtocolError`) is a different type from "we were asked to break it"
(:class:`LocalProtocolError`). This module does no I/O.
"""

from __future__ import annotations


class PreforkError(Exception):
    """Base class of every error prefork raises on purpose."""


class ConfigError(PreforkError):
    """A setting has a bad value; the message names the setting."""


class AppLoadError(PreforkError):
    """The application could not be found, imported or called as an app."""


class BootError(PreforkError):
    """The server could not start: bind failure, no worker could boot, breaker open."""


class ProtocolError(PreforkError):
    """An HTTP/1.1 framing or syntax error; ``status_hint`` is the response status it maps to."""

    def __init__(self, message: str, status_hint: int = 400) -> None:
        super().__init__(message)
        self.status_hint = status_hint


class RemoteProtocolError(ProtocolError):
    """The peer sent something that breaks HTTP/1.1; answer ``status_hint`` and close."""


class LocalProtocolError(ProtocolError):
    """The application asked us to send something that would break HTTP/1.1."""


# Worker exit codes: the contract between a worker process and the arbiter. A worker that exits
# with one of the boot codes never reached "ready"; the arbiter counts it for the circuit breaker
# and remembers the reason it sent for the final exit line.
WORKER_EXIT_OK = 0
WORKER_EXIT_BOOT_FAILED = 3  # lifespan startup failed or the worker could not set itself up
WORKER_EXIT_APP_LOAD_FAILED = 4  # the app could not be imported or is not an app
WORKER_EXIT_ORPHANED = 5  # the arbiter went away; the worker stopped by itself
WORKER_EXIT_ABORTED = 6  # SIGABRT from the heartbeat watchdog

BOOT_EXIT_CODES = frozenset({WORKER_EXIT_BOOT_FAILED, WORKER_EXIT_APP_LOAD_FAILED})


class ClientDisconnected(PreforkError, OSError):
    """Raised by an ASGI ``send`` once the client has gone (the ASGI spec asks for an OSError)."""
