"""Hello world through a real nginx in front: prefork and its peers as nginx's upstream.

Most deployments put a proxy before the server. nginx talks to its upstream over HTTP/1.0 and
opens a new connection per request unless told otherwise, so behind a default nginx the server's
speed is its new-connection path; with ``keepalive`` in the upstream block (and HTTP/1.1 with an
empty ``Connection`` field) nginx reuses its upstream connections and the server's keep-alive
path is what counts. Both upstream modes run here, each server with one worker::

    bench/venv/bin/python -m bench.nginx_proxy --rounds 4 --duration 10
    bench/venv/bin/python -m bench.nginx_proxy --rounds 1 --duration 2 --output /tmp/NGINX.md

wrk keeps its connections to nginx open (keep-alive) in both modes: only the upstream side
changes. Placement: the server under ``taskset -c --server-cpus``, wrk and this process under
``--load-cpus``, nginx (one worker process) under ``--nginx-cpus``; by default nginx has a CPU
of its own where the machine has three or more, and shares wrk's on a 2-CPU machine (the report
says which). Each round runs every mode and, in each, every server in turn, the order rotated by
one per round; the ratio of prefork to each peer is paired by round, as in ``bench.suite``. A
cell starts the server and a fresh nginx, checks one answer through nginx, warms up, measures,
and stops both. ``gunicorn-sync`` closes every connection whatever nginx asks, so its keep-alive
row still makes a connection per request.
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import http.client
import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

from bench import cputime, lifecycle, load, memory, report, suite
from bench.scenarios import BY_NAME as SCENARIOS_BY_NAME
from bench.servers import Server, select

HERE = Path(__file__).resolve().parent
MODES = ("close", "keepalive")
DEFAULT_SERVERS = "prefork,uvicorn,gunicorn-uvicorn-worker,prefork-wsgi,gunicorn-sync"
# prefork's server of each interface, divided by every other server of that interface
HEADLINERS = {"asgi": "prefork", "wsgi": "prefork-wsgi"}
HELLO = SCENARIOS_BY_NAME["hello"]
NGINX_START_TIMEOUT = 10.0


@dataclasses.dataclass(frozen=True)
class Placement:
    """Which CPUs the server, nginx and wrk run on."""

    server_cpus: str
    nginx_cpus: str
    load_cpus: str

    @property
    def nginx_shares_load(self) -> bool:
        """Whether nginx and wrk compete for the same CPUs."""
        return bool(suite.cpu_set(self.nginx_cpus) & suite.cpu_set(self.load_cpus))


def default_nginx_cpus(cpu_count: int) -> str:
    """nginx's CPU: its own (the third) where there are three or more, else wrk's (CPU 0)."""
    return "2" if cpu_count >= 3 else "0"


def nginx_config(mode: str, upstream_port: int, listen_port: int, directory: Path,
                 connections: int, as_root: bool) -> str:
    """nginx's whole configuration for one upstream ``mode`` ("close" or "keepalive"). Pure."""
    if mode not in MODES:
        raise ValueError(f"unknown upstream mode {mode!r}; choose from {', '.join(MODES)}")
    # keepalive N: idle upstream connections kept per nginx worker; as many as wrk opens, so
    # that no request has to open one once the warm-up is over
    pool = f"    keepalive {connections};\n    keepalive_requests 1000000;\n" \
        if mode == "keepalive" else ""
    upstream_http = ('      proxy_http_version 1.1;\n      proxy_set_header Connection "";\n'
                     if mode == "keepalive" else "")
    user = "user root;\n" if as_root else ""  # else nginx's worker runs as nobody
    return (f"{user}daemon off;\nworker_processes 1;\npid {directory}/nginx.pid;\n"
            f"error_log {directory}/error.log warn;\n"
            f"events {{ worker_connections {max(1024, 4 * connections)}; }}\n"
            f"http {{\n  access_log off;\n"
            f"  client_body_temp_path {directory}/body;\n  proxy_temp_path {directory}/proxy;\n"
            f"  keepalive_requests 1000000;\n"
            f"  upstream backend {{\n    server 127.0.0.1:{upstream_port};\n{pool}  }}\n"
            f"  server {{\n    listen 127.0.0.1:{listen_port};\n"
            f"    location / {{\n{upstream_http}      proxy_pass http://backend;\n    }}\n"
            f"  }}\n}}\n")


def _accepts(port: int) -> bool:
    with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), 0.2):
        return True
    return False


@contextlib.contextmanager
def running_nginx(mode: str, upstream_port: int, cpus: str, connections: int,
                  directory: Path) -> Iterator[lifecycle.ServerProcess]:
    """nginx proxying to ``upstream_port``, pinned to ``cpus``, once it accepts connections.

    nginx cannot listen on port 0 and tell which port it got, so the port is one that was free
    a moment ago, and the start is retried if another process took it in between."""
    nginx = shutil.which("nginx")
    if nginx is None:
        raise lifecycle.ServerFailed("nginx is not installed (`make nginx` installs it)")
    directory.mkdir(parents=True, exist_ok=True)
    for _attempt in range(5):
        port = lifecycle.free_port()
        conf = directory / "nginx.conf"
        conf.write_text(nginx_config(mode, upstream_port, port, directory, connections,
                                     as_root=os.geteuid() == 0))
        error_log = directory / "error.log"
        error_log.write_text("")
        process = lifecycle.spawn([nginx, "-c", str(conf), "-p", str(directory)], port, cpus,
                                  directory / "nginx.out")
        deadline = time.monotonic() + NGINX_START_TIMEOUT
        while process.process.poll() is None and not _accepts(port):
            if time.monotonic() > deadline:
                lifecycle.stop(process)
                raise lifecycle.ServerFailed(f"nginx did not listen within "
                                             f"{NGINX_START_TIMEOUT:.0f}s")
            time.sleep(0.01)
        if process.process.poll() is not None:
            reason = error_log.read_text(errors="replace").strip()
            lifecycle.stop(process)
            if "Address already in use" in reason:
                continue
            raise lifecycle.ServerFailed(f"nginx exited: {reason[-200:]}")
        try:
            yield process
        finally:
            lifecycle.stop(process)
        return
    raise lifecycle.ServerFailed("nginx found no free port in 5 attempts")


def run_cell(server: Server, mode: str, round_number: int, args: argparse.Namespace,
             placement: Placement, logs: Path) -> report.Cell:
    """One server behind a fresh nginx in one upstream mode: measured, whatever happens."""
    def cell(outcome: str, **figures: Any) -> report.Cell:
        return report.Cell(round=round_number, scenario=f"nginx-{mode}", server=server.name,
                           interface=server.interface, outcome=outcome, **figures)

    executable = args.bin_dir / server.executable
    if not executable.exists():
        return cell(report.MISSING, reason=f"no {executable}")
    port = lifecycle.free_port()
    argv = server.command(args.bin_dir, HELLO.apps[server.interface], port, 1, False)
    process = lifecycle.spawn(argv, port, placement.server_cpus,
                              logs / f"{server.name}-{mode}-{round_number}.log")
    try:
        startup = lifecycle.wait_ready(process, HELLO.ready_path)
        memory.settle(process.pid, 1)
        with running_nginx(mode, port, placement.nginx_cpus, args.connections,
                           logs / f"nginx-{server.name}-{mode}-{round_number}") as proxy:
            suite.check_answer(HELLO, proxy.port)
            if args.warmup > 0:
                load.run_wrk(HELLO, proxy.port, args.warmup, args.connections,
                             placement.load_cpus)
            server_pids = memory.roles(process.pid).all
            before = cputime.snapshot(server_pids)
            result = load.run_wrk(HELLO, proxy.port, args.duration, args.connections,
                                  placement.load_cpus)
            if process.process.poll() is not None:
                raise lifecycle.ServerFailed(f"exited during the load: {process.log_tail()}")
            cpu = cputime.per_request_us(
                cputime.used_between(before, cputime.snapshot(memory.roles(process.pid).all)),
                result.requests)
        return cell(
            report.OK, rate=result.rate, requests=result.requests,
            errors=result.errors, p50_ms=result.p50_us / 1000, p99_ms=result.p99_us / 1000,
            startup_ms=startup * 1000, workers_seen=1,
            cpu_user_us=cpu[0] if cpu else None, cpu_system_us=cpu[1] if cpu else None)
    except (lifecycle.ServerFailed, load.LoadFailed, OSError, http.client.HTTPException,
            subprocess.TimeoutExpired) as error:
        return cell(report.FAILED, reason=str(error) or type(error).__name__)
    finally:
        lifecycle.stop(process)


def _number(value: float | None, digits: int = 0) -> str:
    return "—" if value is None else f"{value:,.{digits}f}"


def _ratio(row: report.Row | None) -> str:
    if row is None or row.ratio is None or row.ratio_low is None or row.ratio_high is None:
        return "—"
    return f"**{row.ratio:.2f}** ({row.ratio_low:.2f}-{row.ratio_high:.2f})"


def _cpu_ratio(row: report.Row | None) -> str:
    if (row is None or row.cpu_ratio is None or row.cpu_ratio_low is None
            or row.cpu_ratio_high is None):
        return "—"
    return f"{row.cpu_ratio:.2f} ({row.cpu_ratio_low:.2f}-{row.cpu_ratio_high:.2f})"


def render(cells: Sequence[report.Cell], order: Sequence[str], machine: Sequence[str],
           method: Sequence[str], smoke: bool) -> str:
    """The Markdown report: per upstream mode and interface, a row per server. Pure."""
    lines = ["# Through nginx", ""]
    if smoke:
        lines += ["**Smoke run**: too few rounds or seconds per cell to quote.", ""]
    lines += ["## Machine", "", *(f"- {line}" for line in machine), "",
              "## Method", "", *(f"- {line}" for line in method), ""]
    titles = {"close": "nginx's default upstream: HTTP/1.0, a new connection per request",
              "keepalive": "upstream `keepalive`: HTTP/1.1, nginx reuses its connections"}
    for mode in MODES:
        for interface, headliner in HEADLINERS.items():
            group = [cell for cell in cells
                     if cell.scenario == f"nginx-{mode}" and cell.interface == interface]
            if not group:
                continue
            by_server = {name: [cell for cell in group if cell.server == name] for name in order}
            by_server = {name: found for name, found in by_server.items() if found}
            mine = by_server.get(headliner)
            lines += [f"## {titles[mode]} ({interface.upper()} hello)", "",
                      f"Median over the rounds; `{headliner} ÷ server`: the median of "
                      "the per-round ratios of the rates, and their range; CPU: the "
                      "server's processes only (not nginx, not wrk), per request, and the "
                      f"peer's over {headliner}'s, paired the same way (above 1: {headliner} "
                      "spends less); server busy: rate times CPU per request, the share of its "
                      "core the server used. Well under 100 %, nginx or wrk set the rate, "
                      "and the CPU figures say more than the rates.", "",
                      f"| server | req/s | {headliner} ÷ server | p50 ms | p99 ms | "
                      f"CPU µs/req | CPU: server ÷ {headliner} | server busy | errors |",
                      "|---|---|---|---|---|---|---|---|---|"]
            for name, server_cells in by_server.items():
                row = report.summarize_row(server_cells, None)
                if row.outcome != report.OK:
                    lines.append(f"| {name} | {row.outcome}: {row.reason[:80]} | | | | | |")
                    continue
                paired = (report.summarize_row(mine, server_cells)
                          if mine and name != headliner else None)
                cpu = (None if row.cpu_user_us is None or row.cpu_system_us is None
                       else row.cpu_user_us + row.cpu_system_us)
                busy = (f"{row.rate * cpu / 1e6:.0%}" if row.rate is not None and cpu is not None
                        else "—")
                lines.append(f"| {name} | {_number(row.rate)} | {_ratio(paired)} | "
                             f"{_number(row.p50_ms, 2)} | {_number(row.p99_ms, 2)} | "
                             f"{_number(cpu, 1)} | {_cpu_ratio(paired)} | {busy} | "
                             f"{row.errors} |")
            lines.append("")
    return "\n".join(lines)


def describe_method(args: argparse.Namespace, placement: Placement) -> list[str]:
    """The method, as the report states it."""
    where = ("shares wrk's CPU (the machine has too few for one of its own)"
             if placement.nginx_shares_load else "has a CPU of its own")
    return [
        f"{args.rounds} round(s); in each, both upstream modes, and in each mode every "
        "server in turn, the order rotated by one per round.",
        f"One worker per server under `taskset -c {placement.server_cpus}`; nginx (one worker "
        f"process) under `taskset -c {placement.nginx_cpus}`: it {where}; wrk (1 thread, "
        f"{args.connections} keep-alive connections to nginx) under `taskset -c "
        f"{placement.load_cpus}`.",
        "`close`: nginx's defaults (`proxy_pass` over HTTP/1.0, `Connection: close` to the "
        f"upstream). `keepalive`: `keepalive {args.connections}` in the upstream block, "
        "`proxy_http_version 1.1` and `proxy_set_header Connection \"\"`.",
        f"Every cell starts the server and nginx afresh, checks one answer through nginx, "
        f"{args.warmup:g} s warm-up, {args.duration:g} s measured, stop.",
    ]


def parse_options() -> argparse.Namespace:
    """The command line, checked (a one-line error naming the option)."""
    parser = argparse.ArgumentParser(prog="python -m bench.nginx_proxy",
                                     description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=4)
    parser.add_argument("--duration", type=float, default=10.0, help="seconds measured per cell")
    parser.add_argument("--warmup", type=float, default=2.0, help="seconds of load before it")
    parser.add_argument("--connections", type=int, default=64, help="wrk connections to nginx")
    parser.add_argument("--modes", default=",".join(MODES), help="comma-separated: "
                        + ", ".join(MODES))
    parser.add_argument("--servers", default=DEFAULT_SERVERS,
                        help="comma-separated, as bench.suite takes them")
    parser.add_argument("--server-cpus", default="1")
    parser.add_argument("--load-cpus", default="0")
    parser.add_argument("--nginx-cpus", default=default_nginx_cpus(os.cpu_count() or 1),
                        help="default: CPU 2 where there are three or more, else CPU 0")
    parser.add_argument("--bin-dir", type=Path, default=Path(sys.executable).parent)
    parser.add_argument("--output", type=Path, default=HERE / "NGINX.md",
                        help="the Markdown report; the raw JSON goes beside it (.json)")
    args = parser.parse_args()
    if args.rounds < 1 or args.duration <= 0 or args.warmup < 0 or args.connections < 1:
        parser.error("--rounds and --connections must be at least 1, --duration positive, "
                     "--warmup not negative")
    args.mode_list = [mode for mode in args.modes.split(",") if mode]
    if not args.mode_list or any(mode not in MODES for mode in args.mode_list):
        parser.error(f"--modes takes a comma-separated list of {', '.join(MODES)}")
    for option in ("server_cpus", "load_cpus", "nginx_cpus"):
        try:
            suite.cpu_set(getattr(args, option))
        except ValueError:
            parser.error(f"--{option.replace('_', '-')} takes a CPU list such as 0 or 0-1,3")
    try:
        args.server_list = select([name for name in args.servers.split(",") if name])
    except ValueError as error:
        parser.error(str(error))
    return args


def main() -> None:
    """Run the nginx benchmark as the command line says and write the report."""
    args = parse_options()
    suite.require_tools([HELLO])
    if shutil.which("nginx") is None:
        sys.exit("bench.nginx_proxy: nginx is not installed (`make nginx` installs it)")
    placement = Placement(args.server_cpus, args.nginx_cpus, args.load_cpus)
    os.sched_setaffinity(0, suite.cpu_set(placement.load_cpus))
    servers: list[Server] = args.server_list
    order = [server.name for server in servers]
    markdown: Path = args.output
    raw = markdown.with_suffix(".json")
    markdown.parent.mkdir(parents=True, exist_ok=True)
    machine, method = suite.describe_machine(), describe_method(args, placement)
    smoke = args.rounds < 4 or args.duration < 10
    cells: list[report.Cell] = []
    cells_per_round = len(servers) * len(args.mode_list)
    print(f"{cells_per_round} cells per round x {args.rounds} rounds, about "
          f"{cells_per_round * args.rounds * (args.duration + args.warmup + 2) / 60:.0f} min",
          flush=True)
    started = time.monotonic()
    with tempfile.TemporaryDirectory(prefix="prefork-nginx-") as logs:
        for round_number in range(args.rounds):
            for mode in args.mode_list:
                for server in suite.rotated(servers, round_number):
                    cell = run_cell(server, mode, round_number, args, placement, Path(logs))
                    cells.append(cell)
                    print(suite.cell_line(cell), flush=True)
            raw.write_text(json.dumps({"machine": machine, "method": method, "smoke": smoke,
                                       "cells": [dataclasses.asdict(c) for c in cells]},
                                      indent=1) + "\n")
            markdown.write_text(render(cells, order, machine, method, smoke))
    print(f"done in {(time.monotonic() - started) / 60:.1f} min: wrote {markdown} and {raw}")


if __name__ == "__main__":
    main()
