"""``prefork ctl``: operate a running server over its control socket (``prefork.arbiter.control``).

``prefork ctl status`` prints one row per worker; ``reload``, ``scale N|+N|-N``, ``recycle
PID|all`` and ``stop`` change things. Every verb takes ``--json`` to print the arbiter's reply
as it came; ``--wait`` makes reload, scale, recycle and stop return only once the change is done
(for deploy scripts). :func:`send_command` is the client for Python callers.

Like ``prefork.cli`` (and unlike library code) this module prints and exits: it is the second
command-line entry point, reached through ``prefork ctl``; ``cli.main`` hands it the arguments.
"""

from __future__ import annotations

import functools
import json
import os
import socket
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import click

from prefork.arbiter.control import MAX_REQUEST, default_socket_path
from prefork.errors import PreforkError

EXIT_FAILED = 1
EXIT_USAGE = 2
POLL_INTERVAL = 0.2  # seconds between status requests while --wait waits


def send_command(path: str, command: str, timeout: float = 5.0,
                 **arguments: Any) -> dict[str, Any]:
    """Send one command to the arbiter at ``path``; its reply. Raises PreforkError when no
    arbiter answers there or it answers with an error."""
    request = json.dumps({"command": command, **arguments}).encode() + b"\n"
    if len(request) > MAX_REQUEST:
        raise PreforkError(f"the {command} request is too long")
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
        sock.settimeout(timeout)
        try:
            sock.connect(path)
        except (FileNotFoundError, ConnectionRefusedError, NotADirectoryError):
            raise PreforkError(f"no prefork arbiter at {path} (is it running? "
                               "--control-socket)") from None
        except PermissionError:
            raise PreforkError(f"permission denied on {path} (run as the server's user, "
                               "or see --control-socket-mode)") from None
        except OSError as exc:
            raise PreforkError(f"cannot connect to {path}: {exc.strerror or exc}") from None
        reply = _exchange(sock, request, path, timeout)
    if not isinstance(reply, dict):
        raise PreforkError(f"the arbiter at {path} sent a reply that is not an object")
    if "error" in reply:
        raise PreforkError(str(reply["error"]))
    return reply


def _exchange(sock: socket.socket, request: bytes, path: str, timeout: float) -> Any:
    received = bytearray()
    try:
        sock.sendall(request)
        while b"\n" not in received and (chunk := sock.recv(65536)):
            received += chunk
    except TimeoutError:
        raise PreforkError(f"the arbiter at {path} did not answer within {timeout:g}s") from None
    except OSError as exc:
        raise PreforkError(f"the arbiter at {path} closed the connection: {exc}") from None
    try:
        return json.loads(bytes(received).partition(b"\n")[0])
    except ValueError:
        raise PreforkError(f"the arbiter at {path} sent no reply") from None


# -- the command line -----------------------------------------------------------------------------


@dataclass(frozen=True)
class Target:
    """The arbiter the verbs talk to."""

    path: str
    timeout: float

    def send(self, command: str, **arguments: Any) -> dict[str, Any]:
        return send_command(self.path, command, self.timeout, **arguments)

    def wait(self, done: Callable[[dict[str, Any]], bool], limit: float) -> float:
        """Poll status until ``done(status)``; seconds waited. Raises PreforkError past limit."""
        started = time.monotonic()
        while not done(self.send("status")):
            if time.monotonic() - started > limit:
                raise PreforkError(f"not done within {limit:g}s (--wait-timeout)")
            time.sleep(POLL_INTERVAL)
        return time.monotonic() - started


SOCKET_HELP = ("The server's --control-socket. Default: $XDG_RUNTIME_DIR/prefork.ctl, or "
               "/tmp/prefork-UID/prefork.ctl.")


def _common_options(command: Callable[..., Any]) -> Callable[..., Any]:
    """--json, and --control-socket after the verb too (``prefork ctl status
    --control-socket PATH``), where it replaces the group's."""

    def run(*args: Any, path: str | None, **kwargs: Any) -> Any:
        context = click.get_current_context()
        if path:
            context.obj = Target(path, context.obj.timeout)
        return command(context.obj, *args, **kwargs)

    run = functools.update_wrapper(run, command)
    run = click.option("--json", "as_json", is_flag=True,
                       help="Print the arbiter's reply as JSON.")(run)
    return click.option("--control-socket", "path", metavar="PATH", help=SOCKET_HELP)(run)


def _wait_options(command: Callable[..., Any]) -> Callable[..., Any]:
    command = click.option("--wait-timeout", type=float, default=300.0, show_default=True,
                           metavar="SECONDS", help="Give up waiting after this long.")(command)
    return click.option("--wait", is_flag=True,
                        help="Return once every worker affected was replaced and all serve.")(
        command)


@click.group(name="prefork ctl",
             context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100})
@click.option("--control-socket", "path", metavar="PATH", help=SOCKET_HELP)
@click.option("--timeout", type=float, default=5.0, show_default=True, metavar="SECONDS",
              help="How long to wait for each answer.")
@click.pass_context
def ctl(context: click.Context, path: str | None, timeout: float) -> None:
    """Operate a running prefork server over its control socket."""
    context.obj = Target(path or default_socket_path(os.environ, os.getuid()), timeout)


@ctl.command()
@_common_options
def status(target: Target, as_json: bool) -> None:
    """One row per worker: slot, pid, state, uptime, memory, CPU, requests, restarts."""
    reply = target.send("status")
    click.echo(json.dumps(reply, indent=2) if as_json else format_status(reply))


@ctl.command()
@_wait_options
@_common_options
def reload(target: Target, as_json: bool, wait: bool, wait_timeout: float) -> None:
    """Re-read the configuration and replace every worker (as SIGHUP)."""
    reply = target.send("reload")
    replacing = [int(pid) for pid in reply.get("replacing", [])]
    if wait:
        outcome: dict[str, Any] = {}

        def finished(status: dict[str, Any]) -> bool:
            outcome.update(status.get("reload", {}))
            return outcome.get("state") == "failed" or _settled(status, replacing)

        reply["waited"] = round(target.wait(finished, wait_timeout), 3)
        if outcome.get("state") == "failed":
            raise PreforkError(f"reload failed, the old workers keep serving: "
                               f"{outcome.get('reason', '')}")
    _echo(reply, as_json, f"reloading: replacing {len(replacing)} workers"
                          + _waited(reply))


@ctl.command(context_settings={"ignore_unknown_options": True})
@click.argument("count", metavar="N|+N|-N")
@_wait_options
@_common_options
def scale(target: Target, count: str, as_json: bool, wait: bool, wait_timeout: float) -> None:
    """Run N workers, or N more (+N) or fewer (-N)."""
    text = count.strip()
    try:
        number = int(text)
    except ValueError:
        raise click.BadParameter(f"expected N, +N or -N, got {count!r}",
                                 param_hint="N|+N|-N") from None
    reply = (target.send("scale", change=number) if text[0] in "+-"
             else target.send("scale", workers=number))
    if wait:
        reply["waited"] = round(target.wait(lambda s: _settled(s, []), wait_timeout), 3)
    _echo(reply, as_json, f"scaled from {reply['previous']} to {reply['target']} workers"
                          + _waited(reply))


@ctl.command()
@click.argument("which", metavar="PID|all")
@_wait_options
@_common_options
def recycle(target: Target, which: str, as_json: bool, wait: bool, wait_timeout: float) -> None:
    """Replace one worker, or all of them one at a time; each old worker drains only once its
    replacement serves."""
    if which != "all" and not which.isdigit():
        raise click.BadParameter(f"expected a worker's pid or 'all', got {which!r}",
                                 param_hint="PID|all")
    reply = target.send("recycle", pid="all" if which == "all" else int(which))
    pids = [int(pid) for pid in reply.get("recycling", [])]
    if wait:
        reply["waited"] = round(target.wait(lambda s: _settled(s, pids), wait_timeout), 3)
    listed = ", ".join(str(pid) for pid in pids) or "none"
    _echo(reply, as_json, f"recycling {len(pids)} workers one at a time: {listed}"
                          + _waited(reply))


@ctl.command()
@click.option("--fast", is_flag=True,
              help="Close connections at once instead of letting requests finish.")
@_wait_options
@_common_options
def stop(target: Target, fast: bool, as_json: bool, wait: bool, wait_timeout: float) -> None:
    """Stop the server: gracefully (as SIGTERM) or with --fast (as SIGINT)."""
    reply = target.send("stop", graceful=not fast)
    if wait:
        reply["waited"] = round(_wait_gone(target, wait_timeout), 3)
    _echo(reply, as_json, f"{reply.get('stopping') or 'graceful'} shutdown begun"
                          + _waited(reply, "stopped"))


def _settled(status: dict[str, Any], replaced: list[int]) -> bool:
    """None of ``replaced`` is left, and exactly the target count serves."""
    workers = status.get("workers", [])
    if any(worker["pid"] in replaced for worker in workers):
        return False
    return (len(workers) == status.get("target")
            and all(w["state"] == "serving" and not w["retiring"] for w in workers))


def _wait_gone(target: Target, limit: float) -> float:
    started = time.monotonic()
    while True:
        try:
            target.send("status")
        except PreforkError:
            return time.monotonic() - started
        if time.monotonic() - started > limit:
            raise PreforkError(f"the server did not stop within {limit:g}s (--wait-timeout)")
        time.sleep(POLL_INTERVAL)


def _waited(reply: dict[str, Any], done: str = "done") -> str:
    return f"; {done} in {reply['waited']:.1f}s" if "waited" in reply else ""


def _echo(reply: dict[str, Any], as_json: bool, text: str) -> None:
    click.echo(json.dumps(reply, indent=2) if as_json else text)


# -- the status table -----------------------------------------------------------------------------

COLUMNS = ("SLOT", "PID", "STATE", "UPTIME", "RSS", "CPU%", "REQUESTS", "IN-FLIGHT", "RESTARTS",
           "LAST EXIT")


def format_status(status: dict[str, Any]) -> str:
    """The human table of ``prefork ctl status``."""
    stopping = f"; stopping ({status['stopping']})" if status.get("stopping") else ""
    lines = [f"arbiter {status.get('pid')}: {status.get('target')} workers wanted, breaker "
             f"{status.get('breaker')}{stopping}"]
    rows = [COLUMNS]
    for worker in status.get("workers", []):
        state = "retiring" if worker.get("retiring") and worker["state"] == "serving" \
            else worker["state"]
        rows.append((
            str(worker["slot"]), str(worker["pid"]), state, format_duration(worker["uptime"]),
            format_bytes(worker.get("rss", 0)), f"{worker.get('cpu_percent', 0.0):.1f}",
            str(worker.get("requests", 0)), str(worker.get("in_flight", 0)),
            str(worker.get("restarts", 0)), worker.get("last_exit") or "-",
        ))
    widths = [max(len(row[i]) for row in rows) for i in range(len(COLUMNS))]
    for row in rows:
        lines.append("  ".join(cell.ljust(width) for cell, width in zip(row, widths,
                                                                         strict=True)).rstrip())
    reload = status.get("reload", {})
    if reload.get("state") == "failed":
        lines.append(f"last reload FAILED, the old workers keep serving: {reload.get('reason')}")
    elif reload.get("state") == "in progress":
        lines.append("reload in progress")
    if status.get("recycling"):
        lines.append("waiting to be recycled: "
                     + ", ".join(str(pid) for pid in status["recycling"]))
    return "\n".join(lines)


def format_duration(seconds: float) -> str:
    """``42s``, ``12m05s``, ``3h02m``, ``2d04h``."""
    whole = int(seconds)
    if whole < 60:
        return f"{whole}s"
    if whole < 3600:
        return f"{whole // 60}m{whole % 60:02d}s"
    if whole < 86400:
        return f"{whole // 3600}h{whole % 3600 // 60:02d}m"
    return f"{whole // 86400}d{whole % 86400 // 3600:02d}h"


def format_bytes(count: int) -> str:
    """Resident memory in MB (2**20 bytes), as ``--max-worker-memory`` counts it."""
    return f"{count / 1048576:.1f}M" if count else "-"


# -- entry point ------------------------------------------------------------------------------


def main(argv: Sequence[str]) -> None:
    """``prefork ctl ARGS``: runs one verb and exits (0 on success)."""
    try:
        result = ctl.main(args=list(argv), prog_name="prefork ctl", standalone_mode=False)
    except click.exceptions.Exit as exc:
        sys.exit(exc.exit_code)
    except click.ClickException as exc:
        message = exc.format_message().replace("\n", " ")
        print(f"prefork ctl: error: {message} (see prefork ctl --help)", file=sys.stderr)
        sys.exit(EXIT_USAGE)
    except click.Abort:
        sys.exit(EXIT_FAILED)
    except PreforkError as exc:
        print(f"prefork ctl: error: {exc}", file=sys.stderr)
        sys.exit(EXIT_FAILED)
    except KeyboardInterrupt:
        sys.exit(EXIT_FAILED)
    sys.exit(result if isinstance(result, int) else 0)
