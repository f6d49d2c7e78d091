"""Start a server under test, time it to its first 200, check its answer, stop it and its children.

The server runs in its own session (so that its processes can be found and stopped together)
under ``taskset`` when pinned; its output goes to a log file whose last line becomes the reason
when it fails to start. Start-up time runs from the spawn to the first 200 on the scenario's
readiness path, polled every 5 ms from the suite's own core.
"""

from __future__ import annotations

import contextlib
import http.client
import os
import signal
import socket
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

from bench import memory

ROOT = Path(__file__).resolve().parents[1]
POLL_INTERVAL = 0.005
STOP_GRACE = 10.0


class ServerFailed(Exception):
    """The server did not start, or did not answer as the scenario expects."""


@dataclass
class ServerProcess:
    """A started server: its first process (a session leader), its port and its log."""

    process: subprocess.Popen[bytes]
    port: int
    log: Path
    spawned_at: float

    @property
    def pid(self) -> int:
        """The started process: the master, or the only process."""
        return self.process.pid

    def log_tail(self) -> str:
        """The last non-empty line the server wrote, shortened, for a failure reason."""
        try:
            lines = [line.strip() for line in self.log.read_text(errors="replace").splitlines()]
        except OSError:
            return ""
        lines = [line for line in lines if line]
        return lines[-1][:200] if lines else ""


def free_port() -> int:
    """A port that was free a moment ago (peers cannot report a port 0 choice uniformly)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def spawn(argv: list[str], port: int, cpus: str | None, log: Path) -> ServerProcess:
    """Start ``argv`` in a new session from the repository root, pinned to ``cpus`` if given."""
    command = ["taskset", "-c", cpus, *argv] if cpus is not None else argv
    # the tree first, so the servers import the prefork being measured; what the caller's
    # PYTHONPATH held (peers installed outside a venv) stays reachable after it
    search_path = [str(ROOT), *filter(None, [os.environ.get("PYTHONPATH")])]
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(search_path), PYTHONUNBUFFERED="1")
    with log.open("wb") as output:
        spawned_at = time.monotonic()
        process = subprocess.Popen(command, cwd=ROOT, env=env, stdin=subprocess.DEVNULL,
                                   stdout=output, stderr=subprocess.STDOUT,
                                   start_new_session=True)
    return ServerProcess(process, port, log, spawned_at)


def request(port: int, method: str, path: str, body: str = "",
            headers: dict[str, str] | None = None, timeout: float = 5.0) -> tuple[int, bytes]:
    """One HTTP request on a fresh connection: the status and the body."""
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
    try:
        connection.request(method, path, body=body.encode() or None, headers=headers or {})
        response = connection.getresponse()
        return response.status, response.read()
    finally:
        connection.close()


def wait_ready(server: ServerProcess, path: str, timeout: float = 30.0) -> float:
    """Seconds from the spawn to the first 200 on ``path``; ServerFailed if none comes."""
    deadline = server.spawned_at + timeout
    last_error = "no answer"
    while time.monotonic() < deadline:
        if server.process.poll() is not None:
            raise ServerFailed(f"exited with status {server.process.returncode}: "
                               f"{server.log_tail()}")
        try:
            status, _ = request(server.port, "GET", path, timeout=1.0)
        except OSError as error:
            last_error = str(error) or type(error).__name__
        except http.client.HTTPException as error:
            last_error = f"bad HTTP: {error!r}"
        else:
            if status == 200:
                return time.monotonic() - server.spawned_at
            last_error = f"status {status} on GET {path}"
        time.sleep(POLL_INTERVAL)
    raise ServerFailed(f"not ready after {timeout:.0f}s ({last_error}): {server.log_tail()}")


def stop(server: ServerProcess) -> None:
    """SIGTERM the server's process group, SIGKILL whatever of its session is left after a grace."""
    with contextlib.suppress(ProcessLookupError):
        os.killpg(server.pid, signal.SIGTERM)
    try:
        server.process.wait(STOP_GRACE)
    except subprocess.TimeoutExpired:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(server.pid, signal.SIGKILL)
        server.process.wait(STOP_GRACE)
    # Workers that left the group (or outlived their master) are still in the session.
    deadline = time.monotonic() + STOP_GRACE
    while (left := memory.session_pids(server.pid)) and time.monotonic() < deadline:
        for pid in left:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        time.sleep(0.05)
