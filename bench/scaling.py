"""Multi-worker scaling: prefork and its peers at 1, 2, 4, 8 … workers, side by side in one run.

The suite measures one pinned worker on a 2-core machine; this asks what each server does as
workers are added on a machine with many cores (``make bench-scaling``)::

    bench/venv/bin/python -m bench.scaling --workers 1,2,4,8,16 --rounds 2 --duration 4

Placement, on a machine of C CPUs: wrk runs ``C/2`` threads pinned to the upper half of the
CPUs, and a server of N workers is pinned to CPUs ``0 .. N-1`` while N is at most ``C/2``. A
larger N gets every CPU and shares them with wrk; those rows are marked *shared*, and their
figures say how the server behaves when oversubscribed, not what it would do alone. wrk keeps
64 connections per worker so that every worker has connections to serve whichever way the
kernel spreads them.

Each round runs every worker count, and for each count every server in turn, the order rotated
by one per round; a cell is the suite's (``bench.suite.run_cell``): a fresh server, one checked
request, a warm-up, the timed load, stop. The report gives, per interface and worker count,
each server's median rate, its speed-up over its own one-worker rate, and the paired ratio of
the interface's headline server against the reference (``bench.servers``). ``SCALING.md`` and
``SCALING.json`` are rewritten after every cell, so a run cut short keeps what it measured.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from bench import report, suite
from bench.scenarios import BY_NAME as SCENARIOS_BY_NAME
from bench.scenarios import Scenario
from bench.servers import HEADLINERS, REFERENCES, Server, select

HERE = Path(__file__).resolve().parent
DEFAULT_SERVERS = "prefork,uvicorn,granian,prefork-wsgi,gunicorn-sync,granian-wsgi"
CONNECTIONS_PER_WORKER = 64


@dataclasses.dataclass(frozen=True)
class Placement:
    """Where a server of ``workers`` workers and the load generator run."""

    workers: int
    server_cpus: str
    load_cpus: str
    load_threads: int
    shared: bool  # the server's CPUs include the load generator's


def place(workers: int, cpu_count: int) -> Placement:
    """The placement of ``workers`` workers on a machine of ``cpu_count`` CPUs (see the module)."""
    half = max(1, cpu_count // 2)
    load_cpus = f"{cpu_count - half}-{cpu_count - 1}" if half > 1 else str(cpu_count - 1)
    if workers <= cpu_count - half:
        server_cpus = "0" if workers == 1 else f"0-{workers - 1}"
        return Placement(workers, server_cpus, load_cpus, half, shared=False)
    return Placement(workers, f"0-{cpu_count - 1}", load_cpus, half, shared=True)


def scenario_name(base: str, workers: int) -> str:
    """The name a worker count's cells carry: the base scenario and the count (``hello-8w``)."""
    return f"{base}-{workers}w"


def worker_count(name: str) -> int:
    """The worker count in a name made by ``scenario_name``."""
    return int(name.rsplit("-", 1)[1].removesuffix("w"))


def _rate(tables: dict[tuple[str, str], report.Table], scenario: str, interface: str,
          server: str) -> float | None:
    table = tables.get((scenario, interface))
    row = table.row(server) if table else None
    return row.rate if row and row.outcome == report.OK else None


def render(cells: Sequence[report.Cell], base: str, references: dict[str, str],
           server_order: Sequence[str], shared_counts: frozenset[int],
           machine: Sequence[str], method: Sequence[str], smoke: bool,
           notes: Sequence[str] = ()) -> str:
    """The Markdown report: one table per interface, a row per worker count. Pure."""
    tables = {(table.scenario, table.interface): table
              for table in report.summarize(cells, references, server_order)}
    counts = sorted({worker_count(cell.scenario) for cell in cells})
    lines = ["# Multi-worker scaling", ""]
    if smoke:
        lines += ["**Smoke run**: too few rounds or seconds per cell to quote.", ""]
    lines += [*(f"{note}\n" for note in notes),
              "## Machine", "", *(f"- {line}" for line in machine), "",
              "## Method", "", *(f"- {line}" for line in method), ""]
    for interface in ("asgi", "wsgi"):
        servers = [server for server in server_order
                   if any(cell.server == server and cell.interface == interface
                          for cell in cells)]
        if not servers:
            continue
        headliner, reference = HEADLINERS.get(interface), references.get(interface)
        compare = headliner in servers and reference in servers
        lines += [f"## {interface.upper()}: `{base}`", "",
                  "Median requests/s, and in brackets the speed-up over the same server's one "
                  "worker." + (f" Last column: {headliner} over {reference}, the median of the "
                               "per-round ratios and their range." if compare else ""), ""]
        header = ["workers", *servers] + ([f"{headliner} / {reference}"] if compare else [])
        lines += ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
        for count in counts:
            scenario = scenario_name(base, count)
            label = f"{count} (shared)" if count in shared_counts else str(count)
            row = [label]
            for server in servers:
                rate = _rate(tables, scenario, interface, server)
                single = _rate(tables, scenario_name(base, 1), interface, server)
                if rate is None:
                    table = tables.get((scenario, interface))
                    failed = table.row(server) if table else None
                    row.append(f"failed: {failed.reason[:60]}" if failed and failed.reason
                               else "—")
                    continue
                speed_up = f" ({rate / single:.1f}x)" if single else ""
                row.append(f"{rate:,.0f}{speed_up}")
            if compare:
                table = tables.get((scenario, interface))
                found = table.row(headliner) if table else None
                if found and found.ratio is not None:
                    row.append(f"**{found.ratio:.2f}** ({found.ratio_low:.2f}-"
                               f"{found.ratio_high:.2f})")
                else:
                    row.append("—")
            lines.append("| " + " | ".join(row) + " |")
        lines += ["", "Memory: PSS of all the server's processes together, at idle before the "
                  "load, MB (shared pages counted once).", "",
                  "| " + " | ".join(["workers", *servers]) + " |",
                  "|" + "---|" * (1 + len(servers))]
        for count in counts:
            table = tables.get((scenario_name(base, count), interface))
            sizes = [table.row(server) if table else None for server in servers]
            lines.append("| " + " | ".join(
                [str(count), *(f"{row.pss_idle_kb / 1024:.1f}" if row and row.pss_idle_kb
                               else "—" for row in sizes)]) + " |")
        lines.append("")
    errors = sum(cell.errors for cell in cells if cell.outcome == report.OK)
    lines += [f"Errors over all cells: {errors}.", ""]
    return "\n".join(lines)


def describe_method(args: argparse.Namespace, cpu_count: int) -> list[str]:
    """The method, as the report states it."""
    top = place(cpu_count, cpu_count)
    return [
        f"{args.rounds} round(s); in each, every worker count, and for each count every server "
        "in turn, the order rotated by one per round.",
        f"{cpu_count} CPUs: wrk runs {top.load_threads} threads under `taskset -c "
        f"{top.load_cpus}` with {CONNECTIONS_PER_WORKER} connections per worker; a server of N "
        f"workers runs under `taskset -c 0-(N-1)` up to N = {cpu_count - top.load_threads}, "
        "beyond that on every CPU, shared with wrk (rows marked *shared*).",
        f"Every cell starts the server afresh: spawn to first 200, one checked request, "
        f"{args.warmup:g} s warm-up, {args.duration:g} s measured, stop.",
        "Each server as `bench/servers.py` starts it, with `--workers N`.",
    ]


def parse_options() -> argparse.Namespace:
    """The command line, checked (a one-line error naming the option)."""
    parser = argparse.ArgumentParser(prog="python -m bench.scaling",
                                     description=__doc__.splitlines()[0])
    parser.add_argument("--workers", default="1,2,4,8,16", help="comma-separated worker counts")
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--duration", type=float, default=5.0, help="seconds measured per cell")
    parser.add_argument("--warmup", type=float, default=1.0, help="seconds of load before it")
    parser.add_argument("--scenario", default="hello", choices=["hello", "hello-close"])
    parser.add_argument("--servers", default=DEFAULT_SERVERS,
                        help="comma-separated, as bench.suite takes them")
    parser.add_argument("--cpus", type=int, default=os.cpu_count() or 1,
                        help="CPUs to place on (default: all of this machine's)")
    parser.add_argument("--bin-dir", type=Path, default=Path(sys.executable).parent,
                        help="where the servers' executables are (default: this Python's)")
    parser.add_argument("--output", type=Path, default=HERE / "SCALING.md",
                        help="the Markdown report; the raw JSON goes beside it (.json)")
    parser.add_argument("--note", action="append", default=[],
                        help="a paragraph for the report's head (which tree, what changed)")
    parser.add_argument("--render", type=Path, metavar="SCALING_JSON",
                        help="only re-render --output from a saved raw JSON")
    args = parser.parse_args()
    try:
        args.counts = sorted({int(token) for token in args.workers.split(",") if token})
    except ValueError:
        parser.error("--workers takes comma-separated whole numbers, such as 1,2,4")
    if not args.counts or args.counts[0] < 1:
        parser.error("--workers takes counts of at least 1")
    if args.cpus < 2:
        parser.error("--cpus must be at least 2: one for the server and one for wrk")
    if args.rounds < 1 or args.duration <= 0 or args.warmup < 0:
        parser.error("--rounds must be at least 1, --duration positive, --warmup not negative")
    try:
        args.server_list = select([name for name in args.servers.split(",") if name])
    except ValueError as error:
        parser.error(str(error))
    return args


def main() -> None:
    """Run the scaling benchmark as the command line says and write the report."""
    args = parse_options()
    if args.render:
        render_saved(args.render, args.output)
        print(f"wrote {args.output}")
        return
    markdown: Path = args.output
    raw = markdown.with_suffix(".json")
    markdown.parent.mkdir(parents=True, exist_ok=True)
    base: Scenario = SCENARIOS_BY_NAME[args.scenario]
    suite.require_tools([base])
    servers: list[Server] = args.server_list
    placements = [place(count, args.cpus) for count in args.counts]
    os.sched_setaffinity(0, suite.cpu_set(placements[0].load_cpus))
    machine = suite.describe_machine()
    method = describe_method(args, args.cpus)
    shared = frozenset(p.workers for p in placements if p.shared)
    order = [server.name for server in servers]
    cells: list[report.Cell] = []
    per_cell = args.duration + args.warmup + 2
    print(f"{len(servers) * len(placements)} cells per round x {args.rounds} rounds, about "
          f"{len(servers) * len(placements) * args.rounds * per_cell / 60:.0f} min", flush=True)
    started = time.monotonic()
    with tempfile.TemporaryDirectory(prefix="prefork-scaling-") as logs:
        for round_number in range(args.rounds):
            for placement in placements:
                scenario = dataclasses.replace(
                    base, name=scenario_name(base.name, placement.workers),
                    workers=placement.workers, pinned=True)
                options = suite.Options(
                    rounds=args.rounds, duration=args.duration, warmup=args.warmup,
                    connections=CONNECTIONS_PER_WORKER * placement.workers,
                    server_cpus=placement.server_cpus, load_cpus=placement.load_cpus,
                    bin_dir=args.bin_dir, references=dict(REFERENCES),
                    load_threads=placement.load_threads)
                for server in suite.rotated(servers, round_number):
                    cell = suite.run_cell(server, scenario, round_number, options, Path(logs))
                    cells.append(cell)
                    print(suite.cell_line(cell), flush=True)
                    _write(cells, base.name, order, shared, machine, method, args, markdown, raw)
    print(f"done in {(time.monotonic() - started) / 60:.1f} min: wrote {markdown} and {raw}")


def _write(cells: list[report.Cell], base: str, order: list[str], shared: frozenset[int],
           machine: list[str], method: list[str], args: argparse.Namespace, markdown: Path,
           raw: Path) -> None:
    smoke = args.rounds < 2 or args.duration < 3
    meta: dict[str, Any] = {"scenario": base, "servers": order, "shared": sorted(shared),
                            "machine": machine, "method": method, "smoke": smoke,
                            "notes": args.note}
    raw.write_text(json.dumps({"meta": meta, "cells": [dataclasses.asdict(c) for c in cells]},
                              indent=1) + "\n")
    markdown.write_text(render(cells, base, REFERENCES, order, shared, machine, method, smoke,
                               args.note))


def render_saved(raw: Path, markdown: Path) -> None:
    """Re-render ``markdown`` from a saved raw JSON (after editing the report code)."""
    data = json.loads(raw.read_text())
    meta = data["meta"]
    cells = [report.Cell.from_json(cell) for cell in data["cells"]]
    markdown.write_text(render(cells, meta["scenario"], REFERENCES, meta["servers"],
                               frozenset(meta["shared"]), meta["machine"], meta["method"],
                               meta["smoke"], meta.get("notes", ())))


if __name__ == "__main__":
    main()
