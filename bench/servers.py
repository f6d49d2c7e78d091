"""The server matrix: every server under test and the command line that starts it. Pure data.

All servers come from one virtual environment (``make bench`` builds ``bench/venv`` with the
peers and frameworks at pinned versions and prefork itself, editable), so they share uvloop,
httptools and the framework versions. Each is configured as its documentation suggests for
production on one worker: access logs off, warnings only, uvloop and httptools where the server
offers a choice. gthread gets 4 threads (gunicorn's documentation suggests 2-4 per core).

prefork's dispatch modes differ only in how a connection reaches a worker, so the roundrobin and
shared variants run only the scenarios where connections are made (``DISPATCH_SCENARIOS``);
the h11 parser variant runs everything, since the parser touches every byte. ``uvloop-floor``
(``bench/floor.py``) is no server but the event loop and parser alone answering a constant: the
ceiling of any server built on them, run in the one-worker hello scenarios.

The HTTP/2 scenarios (``Scenario.http2``) run only the servers that serve cleartext HTTP/2 by
prior knowledge (``Server.http2``), each told to as its documentation says: prefork with
``--http2``, granian with ``--http auto`` (HTTP/1.1 and HTTP/2 on one port, as prefork and
hypercorn serve them; its readiness check is an HTTP/1.1 request), hypercorn as it starts, with
``bench/hypercorn-h2.toml`` lifting its limit of 1,000 requests per connection (h2load opens its
connections once and does not reconnect, so the limit would end the run after 1,000 requests
per connection).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

# (bin dir, app, port, workers, http2) -> argv; http2: serve cleartext HTTP/2 as well
Command = Callable[[Path, str, int, int, bool], list[str]]

DISPATCH_SCENARIOS = frozenset({"hello", "hello-close", "hello-2w"})
FLOOR_SCENARIOS = frozenset({"hello", "hello-close"})
LOG_QUIET = ["--log-level", "warning"]
HYPERCORN_H2_CONFIG = "bench/hypercorn-h2.toml"  # servers start in the repository's root


@dataclass(frozen=True)
class Server:
    """A server under test for one interface."""

    name: str
    interface: str  # "asgi" or "wsgi"
    executable: str  # the console script in the bench venv's bin directory
    command: Command
    scenarios: frozenset[str] | None = None  # None: every scenario with an app for `interface`
    http2: bool = False  # serves cleartext HTTP/2 by prior knowledge when its command says so

    def runs(self, scenario: str, http2: bool = False) -> bool:
        """Whether this server takes part in the scenario (given an app for its interface)."""
        return (self.scenarios is None or scenario in self.scenarios) and (self.http2 or not http2)


def _prefork(interface: str, dispatch: str = "reuseport", parser: str = "httptools") -> Command:
    def command(bin_dir: Path, app: str, port: int, workers: int, http2: bool) -> list[str]:
        return [str(bin_dir / "python"), "-m", "prefork", app, "--bind", f"127.0.0.1:{port}",
                "--workers", str(workers), "--interface", interface, "--dispatch", dispatch,
                "--http", parser, *(["--http2"] if http2 else []), "--no-control-socket",
                *LOG_QUIET]
    return command


def _uvicorn(bin_dir: Path, app: str, port: int, workers: int, http2: bool) -> list[str]:
    return [str(bin_dir / "uvicorn"), app, "--host", "127.0.0.1", "--port", str(port),
            "--workers", str(workers), "--loop", "uvloop", "--http", "httptools",
            "--no-access-log", *LOG_QUIET]


def _gunicorn(worker_class: str, *extra: str) -> Command:
    def command(bin_dir: Path, app: str, port: int, workers: int, http2: bool) -> list[str]:
        return [str(bin_dir / "gunicorn"), app, "--bind", f"127.0.0.1:{port}",
                "--workers", str(workers), "--worker-class", worker_class, *extra, *LOG_QUIET]
    return command


def _granian(interface: str) -> Command:
    def command(bin_dir: Path, app: str, port: int, workers: int, http2: bool) -> list[str]:
        loop = ["--loop", "uvloop"] if interface == "asgi" else []
        return [str(bin_dir / "granian"), "--interface", interface, "--host", "127.0.0.1",
                "--port", str(port), "--workers", str(workers), "--http",
                "auto" if http2 else "1", *loop,
                "--no-access-log", *LOG_QUIET, app]
    return command


def _floor(bin_dir: Path, app: str, port: int, workers: int, http2: bool) -> list[str]:
    return [str(bin_dir / "python"), "-m", "bench.floor", "--port", str(port)]


def _hypercorn(bin_dir: Path, app: str, port: int, workers: int, http2: bool) -> list[str]:
    config = ["--config", HYPERCORN_H2_CONFIG] if http2 else []
    return [str(bin_dir / "hypercorn"), "--bind", f"127.0.0.1:{port}", "--workers", str(workers),
            "--worker-class", "uvloop", *config, *LOG_QUIET, app]


SERVERS: tuple[Server, ...] = (
    Server("prefork", "asgi", "python", _prefork("asgi"), http2=True),
    Server("prefork-roundrobin", "asgi", "python", _prefork("asgi", dispatch="roundrobin"),
           scenarios=DISPATCH_SCENARIOS),
    Server("prefork-shared", "asgi", "python", _prefork("asgi", dispatch="shared"),
           scenarios=DISPATCH_SCENARIOS),
    Server("prefork-h11", "asgi", "python", _prefork("asgi", parser="h11")),
    Server("uvicorn", "asgi", "uvicorn", _uvicorn),
    Server("gunicorn-asgi", "asgi", "gunicorn", _gunicorn("asgi")),
    Server("gunicorn-uvicorn-worker", "asgi", "gunicorn",
           _gunicorn("uvicorn_worker.UvicornWorker")),
    Server("granian", "asgi", "granian", _granian("asgi"), http2=True),
    Server("hypercorn", "asgi", "hypercorn", _hypercorn, http2=True),
    # not a server: uvloop and httptools answering a constant, the ceiling for the two above
    Server("uvloop-floor", "asgi", "python", _floor, scenarios=FLOOR_SCENARIOS),
    Server("prefork-wsgi", "wsgi", "python", _prefork("wsgi")),
    Server("gunicorn-sync", "wsgi", "gunicorn", _gunicorn("sync")),
    Server("gunicorn-gthread", "wsgi", "gunicorn", _gunicorn("gthread", "--threads", "4")),
    Server("granian-wsgi", "wsgi", "granian", _granian("wsgi")),
)

BY_NAME = {server.name: server for server in SERVERS}

# The ratio column of each interface's tables divides by this server's rate in the same round.
REFERENCES = {"asgi": "uvicorn", "wsgi": "gunicorn-sync"}
# The README's headline: prefork's ratio against the reference, per scenario.
HEADLINERS = {"asgi": "prefork", "wsgi": "prefork-wsgi"}


def select(tokens: list[str]) -> list[Server]:
    """Servers named by ``tokens``: exact names, or the groups ``all``, ``asgi`` and ``wsgi``.

    Raises ValueError naming an unknown token.
    """
    chosen: list[Server] = []
    for token in tokens:
        if token == "all":
            group = list(SERVERS)
        elif token in ("asgi", "wsgi"):
            group = [server for server in SERVERS if server.interface == token]
        elif token in BY_NAME:
            group = [BY_NAME[token]]
        else:
            raise ValueError(f"unknown server {token!r}; choose from all, asgi, wsgi, "
                             + ", ".join(BY_NAME))
        chosen += [server for server in group if server not in chosen]
    return [server for server in SERVERS if server in chosen]
