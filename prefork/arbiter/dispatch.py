"""The arbiter's side of connection hand-off: accept, then pass the socket to a worker.

In ``roundrobin`` mode every listener is served this way; in ``reuseport`` mode only the
listeners of slots that have no serving worker for the moment. Each accepted socket goes to the
next worker in rotation over its control channel (``SCM_RIGHTS``), skipping a worker whose
channel is full or closed; the arbiter's copy of the fd is closed right after the hand-off.
Which listeners to serve follows from which slots have a serving worker (``follow``); the
arbiter says which those are.
"""

from __future__ import annotations

import contextlib
import logging
import selectors
import socket
from collections.abc import Callable, Sequence
from typing import Protocol

from prefork.ipc.channel import Channel, ChannelClosed
from prefork.ipc.messages import Connections
from prefork.logs.error_log import OncePerSecond
from prefork.sockets import RESOURCE_ERRORS, ListenerSet

ACCEPT_BATCH = 64  # connections accepted per wake-up, so one busy listener cannot starve others


class Target(Protocol):
    """A worker that can take connections."""

    channel: Channel


class HandOff:
    """Accepting on a changing set of listeners and rotating connections over workers."""

    def __init__(self, selector: selectors.BaseSelector, log: logging.Logger,
                 targets: Callable[[], Sequence[Target]],
                 channel_closed: Callable[[Target], None]) -> None:
        self.selector = selector
        self.log = log
        self.targets = targets  # serving workers in slot order, asked at each hand-off
        self.channel_closed = channel_closed
        self.accepting: set[socket.socket] = set()
        self.next = 0
        self.accept_failures = OncePerSecond()

    def serve(self, wanted: set[socket.socket]) -> None:
        """Accept on exactly ``wanted`` from now on."""
        for sock in wanted - self.accepting:
            sock.setblocking(False)
            self.selector.register(sock, selectors.EVENT_READ, self._on_readable)
        for sock in self.accepting - wanted:
            with contextlib.suppress(KeyError, ValueError):
                self.selector.unregister(sock)
        self.accepting = wanted

    def follow(self, listeners: Sequence[ListenerSet], serving: set[int], mode: str) -> None:
        """Accept on what the workers serving the slots ``serving`` leave (``mode``: the
        dispatch mode): in ``roundrobin``, every listener; in ``reuseport``, the listeners of
        slots with no serving worker (crashed, backing off, breaker open, being removed), which
        would otherwise leave the connections the kernel hashes to them waiting. Nothing while
        no worker can take a connection: those wait in the kernel's queue instead of being
        dropped."""
        wanted: set[socket.socket] = set()
        if serving and mode == "roundrobin":
            wanted = {sock for ls in listeners for sock in ls.all_sockets()}
        elif serving and mode == "reuseport":
            wanted = {sock for ls in listeners
                      for slot, sock in ls.slot_sockets().items() if slot not in serving}
        self.serve(wanted)

    def release_slots(self, listeners: Sequence[ListenerSet], target: int,
                      in_use: set[int]) -> None:
        """Close the listeners of slots removed by a scale-down (``target`` and above) once no
        worker uses them, after handing over what they still queue."""
        for listener in listeners:
            for slot, sock in listener.slot_sockets().items():
                if slot >= target and slot not in in_use:
                    self.drain(sock)
                    listener.release_slot(slot)

    def stop(self) -> None:
        self.serve(set())

    def drain(self, sock: socket.socket) -> None:
        """Hand over what is still queued on ``sock`` and stop accepting on it (before the
        listener of a removed slot is closed)."""
        if sock in self.accepting:
            self.accept_from(sock)
            self.serve(self.accepting - {sock})

    def _on_readable(self, key: selectors.SelectorKey) -> None:
        self.accept_from(key.fileobj)  # type: ignore[arg-type]  # only sockets are registered

    def accept_from(self, listener: socket.socket) -> None:
        accepted: list[socket.socket] = []
        for _ in range(ACCEPT_BATCH):
            try:
                conn, _ = listener.accept()
            except (BlockingIOError, InterruptedError):
                break
            except OSError as exc:
                if exc.errno in RESOURCE_ERRORS:
                    if self.accept_failures.ready():
                        self.log.error("accept failed: %s", exc)
                    break
                continue  # the client went away between SYN and accept
            accepted.append(conn)
        for conn in accepted:
            self._hand_over(conn)

    def _hand_over(self, conn: socket.socket) -> None:
        """Give the connection to the next worker; skip full or dead ones."""
        try:
            candidates = self.targets()
            count = len(candidates)
            for step in range(count):
                worker = candidates[(self.next + step) % count]
                try:
                    sent = worker.channel.send(Connections(count=1), [conn.fileno()])
                except ChannelClosed:
                    self.channel_closed(worker)
                    continue
                if sent:
                    self.next = (self.next + step + 1) % count
                    return
            self.log.warning("no worker could take a connection; closing it")
        finally:
            conn.close()
