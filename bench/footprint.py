"""What a server costs a machine in memory: total PSS of its processes at 2, 4 and 8 workers.

An operator pays for every process a server runs, the arbiter (master) included, and for the
pages each has that no other shares. PSS (``/proc/PID/smaps_rollup``) shares each page among the
processes that map it, so the PSS of all of a server's processes is what the server costs, where
summed RSS would count a page shared after a fork once per process. The figure is read after a
warm-up of requests spread over every worker, since a worker's first requests fill caches and
may write to pages it shared with its parent (copy-on-write breaks them)::

    bench/venv/bin/python -m bench.footprint --workers 2,4,8 --rounds 2
    bench/venv/bin/python -m bench.footprint --rounds 1 --warmup 1 --output /tmp/FOOTPRINT.md

Servers: prefork on ASGI and WSGI hello, gunicorn sync (WSGI), gunicorn with
``uvicorn_worker.UvicornWorker`` and ``uvicorn --workers N`` (ASGI), each started as
``bench/servers.py`` starts it. Each round runs every worker count and, in each, every server in
turn, the order rotated by one per round; the report gives medians over the rounds. Nothing is
pinned: memory does not depend on placement, and eight workers need no core each to be counted.
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import http.client
import json
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from bench import cputime, lifecycle, load, memory, suite
from bench.scenarios import BY_NAME as SCENARIOS_BY_NAME
from bench.servers import Server, select

HERE = Path(__file__).resolve().parent
DEFAULT_SERVERS = "prefork,prefork-wsgi,gunicorn-sync,gunicorn-uvicorn-worker,uvicorn"
HEADLINERS = ("prefork", "prefork-wsgi")
HELLO = SCENARIOS_BY_NAME["hello"]
CONNECTIONS_PER_WORKER = 16


@dataclasses.dataclass(frozen=True)
class Reading:
    """One server at one worker count in one round, kB."""

    round: int
    server: str
    workers: int
    outcome: str  # "ok" or why not
    total_pss_kb: int | None = None  # every process of the server, after the warm-up
    master_pss_kb: int | None = None  # the arbiter / master; None when there is none
    worker_pss_kb: tuple[int, ...] = ()  # each worker's, after the warm-up
    helper_pss_kb: int | None = None  # multiprocessing's helpers (uvicorn's spawn), summed
    idle_pss_kb: int | None = None  # every process, before any request
    workers_served: int = 0  # workers that used CPU during the warm-up


def _pss(pids: Sequence[int]) -> int | None:
    return memory.total_pss_kb(tuple(pids)) if pids else None


def measure(server: Server, workers: int, round_number: int, args: argparse.Namespace,
            logs: Path) -> Reading:
    """Start ``server`` with ``workers`` workers, warm it up, read its PSS, stop it."""
    def reading(outcome: str, **figures: Any) -> Reading:
        return Reading(round=round_number, server=server.name, workers=workers, outcome=outcome,
                       **figures)

    if not (args.bin_dir / server.executable).exists():
        return reading(f"missing: no {args.bin_dir / server.executable}")
    port = lifecycle.free_port()
    argv = server.command(args.bin_dir, HELLO.apps[server.interface], port, workers, False)
    process = lifecycle.spawn(argv, port, None, logs / f"{server.name}-{workers}-{round_number}")
    try:
        lifecycle.wait_ready(process, HELLO.ready_path)
        idle = memory.settle(process.pid, workers)
        idle_pss = memory.total_pss_kb(idle.all)
        suite.check_answer(HELLO, port)
        before = cputime.snapshot(idle.all)
        if args.warmup > 0:
            load.run_wrk(HELLO, port, args.warmup, CONNECTIONS_PER_WORKER * workers,
                         args.load_cpus)
        warm = memory.settle(process.pid, workers)
        after = cputime.snapshot(warm.workers)
        served = sum(1 for pid, times in after.items()
                     if (times - before.get(pid, cputime.CpuTimes())).user > 0)
        worker_pss = tuple(memory.pss_kb(pid) or 0 for pid in warm.workers)
        return reading(
            "ok", total_pss_kb=memory.total_pss_kb(warm.all),
            master_pss_kb=memory.pss_kb(warm.master) if warm.master is not None else None,
            worker_pss_kb=worker_pss, helper_pss_kb=_pss(warm.helpers), idle_pss_kb=idle_pss,
            workers_served=served)
    except (lifecycle.ServerFailed, load.LoadFailed, OSError, http.client.HTTPException,
            subprocess.TimeoutExpired) as error:
        return reading(f"failed: {error or type(error).__name__}")
    finally:
        lifecycle.stop(process)


def _median(values: Sequence[float]) -> float | None:
    ordered = sorted(values)
    if not ordered:
        return None
    middle = len(ordered) // 2
    return ordered[middle] if len(ordered) % 2 else (ordered[middle - 1] + ordered[middle]) / 2


def _megabytes(kb: float | None) -> str:
    return "—" if kb is None else f"{kb / 1024:.1f}"


def render(readings: Sequence[Reading], order: Sequence[str], counts: Sequence[int],
           machine: Sequence[str], method: Sequence[str], smoke: bool) -> str:
    """The Markdown report: total PSS per server and worker count, then its parts. Pure."""
    def ok(server: str, count: int) -> list[Reading]:
        return [r for r in readings if r.server == server and r.workers == count
                and r.outcome == "ok" and r.total_pss_kb is not None]

    def total(server: str, count: int) -> float | None:
        return _median([r.total_pss_kb for r in ok(server, count) if r.total_pss_kb])

    servers = [name for name in order if any(r.server == name for r in readings)]
    lines = ["# Memory an operator pays", ""]
    if smoke:
        lines += ["**Smoke run**: too few rounds to quote.", ""]
    lines += ["## Machine", "", *(f"- {line}" for line in machine), "",
              "## Method", "", *(f"- {line}" for line in method), "",
              "## Total PSS, MB (the arbiter or master, the workers and any helper)", "",
              "| workers | " + " | ".join(servers) + " |", "|---|" + "---|" * len(servers)]
    for count in counts:
        cells = []
        for name in servers:
            value = total(name, count)
            if value is None:
                failed = [r.outcome for r in readings if r.server == name and r.workers == count]
                cells.append(failed[0][:60] if failed else "—")
                continue
            cells.append(f"{value / 1024:.1f}")
        lines.append(f"| {count} | " + " | ".join(cells) + " |")
    for headliner in HEADLINERS:
        if headliner not in servers:
            continue
        peers = [name for name in servers if name not in HEADLINERS]
        lines += ["", f"`{headliner}`'s total over each peer's (below 1: {headliner} costs less)",
                  "", "| workers | " + " | ".join(peers) + " |", "|---|" + "---|" * len(peers)]
        for count in counts:
            mine = total(headliner, count)
            ratios = []
            for name in peers:
                theirs = total(name, count)
                ratios.append("—" if mine is None or not theirs else f"{mine / theirs:.2f}")
            lines.append(f"| {count} | " + " | ".join(ratios) + " |")
    lines += ["", "## The parts, MB (medians): master · mean worker · helpers; idle total before "
              "any request; workers that served during the warm-up", "",
              "| server | workers | master | mean worker | helpers | total idle → warm | "
              "served |", "|---|---|---|---|---|---|---|"]
    for name in servers:
        for count in counts:
            found = ok(name, count)
            if not found:
                continue
            master = _median([r.master_pss_kb for r in found if r.master_pss_kb is not None])
            worker = _median([sum(r.worker_pss_kb) / len(r.worker_pss_kb)
                              for r in found if r.worker_pss_kb])
            helpers = _median([r.helper_pss_kb for r in found if r.helper_pss_kb is not None])
            idle = _median([r.idle_pss_kb for r in found if r.idle_pss_kb is not None])
            served = min(r.workers_served for r in found)
            lines.append(f"| {name} | {count} | {_megabytes(master)} | {_megabytes(worker)} | "
                         f"{_megabytes(helpers)} | {_megabytes(idle)} → "
                         f"{_megabytes(total(name, count))} | {served} of {count} |")
    lines.append("")
    return "\n".join(lines)


def describe_method(args: argparse.Namespace) -> list[str]:
    """The method, as the report states it."""
    return [
        f"{args.rounds} round(s); in each, every worker count ({', '.join(map(str, args.counts))})"
        " and, for each, every server in turn, the order rotated by one per round. Medians over "
        "the rounds.",
        "Each server as `bench/servers.py` starts it, with `--workers N`, serving hello world "
        "(ASGI, or WSGI for `prefork-wsgi` and `gunicorn-sync`); nothing pinned.",
        f"A cell: spawn, the first 200, wait for N workers and a steady RSS, PSS at idle; then "
        f"wrk ({CONNECTIONS_PER_WORKER} connections per worker, keep-alive) for "
        f"{args.warmup:g} s, a steady RSS again, and PSS of every process "
        "(`/proc/PID/smaps_rollup`), summed.",
    ]


def parse_options() -> argparse.Namespace:
    """The command line, checked (a one-line error naming the option)."""
    parser = argparse.ArgumentParser(prog="python -m bench.footprint",
                                     description=__doc__.splitlines()[0])
    parser.add_argument("--workers", default="2,4,8", help="comma-separated worker counts")
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--warmup", type=float, default=2.0,
                        help="seconds of requests before the reading")
    parser.add_argument("--servers", default=DEFAULT_SERVERS,
                        help="comma-separated, as bench.suite takes them")
    parser.add_argument("--load-cpus", default=None,
                        help="taskset list for wrk (default: not pinned)")
    parser.add_argument("--bin-dir", type=Path, default=Path(sys.executable).parent)
    parser.add_argument("--output", type=Path, default=HERE / "FOOTPRINT.md",
                        help="the Markdown report; the raw JSON goes beside it (.json)")
    args = parser.parse_args()
    try:
        args.counts = sorted({int(token) for token in args.workers.split(",") if token})
    except ValueError:
        parser.error("--workers takes comma-separated whole numbers, such as 2,4,8")
    if not args.counts or args.counts[0] < 1:
        parser.error("--workers takes counts of at least 1")
    if args.rounds < 1 or args.warmup < 0:
        parser.error("--rounds must be at least 1, --warmup not negative")
    if args.load_cpus is not None:
        try:
            suite.cpu_set(args.load_cpus)
        except ValueError:
            parser.error("--load-cpus takes a CPU list such as 0 or 0-1,3")
    try:
        args.server_list = select([name for name in args.servers.split(",") if name])
    except ValueError as error:
        parser.error(str(error))
    return args


def main() -> None:
    """Measure every server at every worker count and write the report."""
    args = parse_options()
    suite.require_tools([HELLO])
    if not memory.available():
        sys.exit("bench.footprint: this system has no /proc/PID/smaps_rollup")
    servers: list[Server] = args.server_list
    order = [server.name for server in servers]
    markdown: Path = args.output
    raw = markdown.with_suffix(".json")
    markdown.parent.mkdir(parents=True, exist_ok=True)
    machine, method = suite.describe_machine(), describe_method(args)
    smoke = args.rounds < 2
    readings: list[Reading] = []
    started = time.monotonic()
    with tempfile.TemporaryDirectory(prefix="prefork-footprint-") as logs:
        for round_number in range(args.rounds):
            for count in args.counts:
                for server in suite.rotated(servers, round_number):
                    reading = measure(server, count, round_number, args, Path(logs))
                    readings.append(reading)
                    figure = (f"{(reading.total_pss_kb or 0) / 1024:7.1f} MB PSS, "
                              f"{reading.workers_served} of {count} served"
                              if reading.outcome == "ok" else reading.outcome)
                    print(f"round {round_number + 1} {count:2} workers {server.name:24} {figure}",
                          flush=True)
                with contextlib.suppress(OSError):
                    raw.write_text(json.dumps(
                        {"machine": machine, "method": method, "smoke": smoke,
                         "readings": [dataclasses.asdict(r) for r in readings]}, indent=1) + "\n")
                    markdown.write_text(render(readings, order, args.counts, machine, method,
                                               smoke))
    print(f"done in {(time.monotonic() - started) / 60:.1f} min: wrote {markdown} and {raw}")


if __name__ == "__main__":
    main()
