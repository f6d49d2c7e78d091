"""The side-by-side benchmark suite: prefork and its peers, every scenario, rounds, one report.

Run (``make bench`` does, from ``bench/venv``)::

    bench/venv/bin/python -m bench.suite --rounds 4 --duration 10
    bench/venv/bin/python -m bench.suite --duration 1 --warmup 1 --rounds 1 \\
        --scenarios hello,echo-4k --servers prefork,uvicorn        # a smoke run
    bench/venv/bin/python -m bench.suite --render bench/RESULTS.json   # re-render the tables

Each round runs every scenario, and in each scenario every server in turn, the server order
rotated by one per round so that drift (a noisy neighbour, a throttled CPU) hits every server
alike. A server is started afresh for each cell, in its own session, pinned with ``taskset`` to
the server core while the load generator and this process keep to the load core. A cell: spawn,
time to the first 200, idle memory, one checked request, a warm-up, the timed load, peak memory,
stop. A server that is not installed, does not start, answers wrongly or dies is recorded with
the reason and the suite goes on. After every round ``RESULTS.json`` (every cell) and
``RESULTS.md`` (``bench.report``'s tables) are rewritten, so an interrupted run keeps its rounds.
"""

from __future__ import annotations

import argparse
import dataclasses
import http.client
import json
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import time
from datetime import datetime, timezone
from importlib import metadata
from pathlib import Path
from typing import Any

import prefork
from bench import cputime, lifecycle, load, memory, report
from bench.scenarios import BY_NAME as SCENARIOS_BY_NAME
from bench.scenarios import SCENARIO_REFERENCES, SCENARIOS, Scenario
from bench.servers import BY_NAME as SERVERS_BY_NAME
from bench.servers import HEADLINERS, REFERENCES, SERVERS, Server, select

ROOT = lifecycle.ROOT
HERE = Path(__file__).resolve().parent
PACKAGES = ("prefork", "uvicorn", "gunicorn", "uvicorn-worker", "granian", "hypercorn", "uvloop",
            "httptools", "h11", "websockets", "starlette", "fastapi", "pydantic", "flask")
# Seconds a cell takes beyond warm-up and load (start-up, settling, check, stop): 1.2 s on
# average over the 97 cells of a smoke run, rounded up for a machine where start-up is slower.
CELL_OVERHEAD = 1.5


@dataclasses.dataclass(frozen=True)
class Options:
    """The run's settings, from the command line."""

    rounds: int
    duration: float
    warmup: float
    connections: int
    server_cpus: str
    load_cpus: str
    bin_dir: Path
    references: dict[str, str]  # interface -> the server the ratio column divides by
    load_threads: int = 1  # wrk threads: one per load CPU

    @property
    def smoke(self) -> bool:
        """Too short or too few rounds to quote."""
        return self.rounds < 4 or self.duration < 10


def cpu_set(cpus: str) -> set[int]:
    """A taskset-style list ("0", "0,2", "0-3") as a set of CPU numbers."""
    numbers: set[int] = set()
    for part in cpus.split(","):
        first, _, last = part.partition("-")
        numbers.update(range(int(first), int(last or first) + 1))
    return numbers


def plan(scenarios: list[Scenario], servers: list[Server]) -> list[tuple[Scenario, list[Server]]]:
    """Each scenario with the servers that run it: an app for their interface, and not excluded."""
    return [(scenario, [server for server in servers
                        if server.interface in scenario.apps
                        and server.runs(scenario.name, scenario.http2)])
            for scenario in scenarios]


def rotated(servers: list[Server], round_number: int) -> list[Server]:
    """The round's server order: shifted by one per round."""
    if not servers:
        return servers
    shift = round_number % len(servers)
    return servers[shift:] + servers[:shift]


def check_answer(scenario: Scenario, port: int) -> None:
    """Send the scenario's request once; ServerFailed unless it gets a 200 of the expected size."""
    if scenario.websocket:
        return  # the echo client checks every echo itself
    status, body = lifecycle.request(port, scenario.method, scenario.path, scenario.body,
                                     scenario.request_headers())
    if status != 200 or (scenario.expect_length is not None
                         and len(body) != scenario.expect_length):
        raise lifecycle.ServerFailed(
            f"answered {status} with {len(body)} bytes to {scenario.method} {scenario.path}")


def run_load(scenario: Scenario, port: int, seconds: float, options: Options) -> load.LoadResult:
    """One load run of the scenario's kind, placed as the scenario says."""
    cpus = options.load_cpus if scenario.pinned else None
    if scenario.websocket:
        return load.run_ws(port, seconds, cpus)
    if scenario.http2:
        return load.run_h2load(scenario, port, seconds, cpus)
    return load.run_wrk(scenario, port, seconds, options.connections, cpus, options.load_threads)


def run_cell(server: Server, scenario: Scenario, round_number: int, options: Options,
             logs: Path) -> report.Cell:
    """Start ``server`` for ``scenario``, measure it, stop it: one cell, whatever happens."""
    identity = {"round": round_number, "scenario": scenario.name, "server": server.name,
                "interface": server.interface}
    executable = options.bin_dir / server.executable
    if not executable.exists():
        return report.Cell(**identity, outcome=report.MISSING, reason=f"no {executable}")
    port = lifecycle.free_port()
    argv = server.command(options.bin_dir, scenario.apps[server.interface], port,
                          scenario.workers, scenario.http2)
    log = logs / f"{server.name}-{scenario.name}-{round_number}.log"
    cpus = options.server_cpus if scenario.pinned else None
    process = lifecycle.spawn(argv, port, cpus, log)
    try:
        startup = lifecycle.wait_ready(process, scenario.ready_path)
        idle = memory.settle(process.pid, scenario.workers)
        worker_idle = memory.largest(idle.workers, "VmRSS")
        pss_idle = memory.total_pss_kb(idle.all)
        check_answer(scenario, port)
        if options.warmup > 0:
            run_load(scenario, port, options.warmup, options)
        cpu_before = cputime.snapshot(memory.roles(process.pid).all)
        result = run_load(scenario, port, options.duration, options)
        if process.process.poll() is not None:
            raise lifecycle.ServerFailed(f"exited during the load: {process.log_tail()}")
        loaded = memory.roles(process.pid)
        cpu = cputime.per_request_us(
            cputime.used_between(cpu_before, cputime.snapshot(loaded.all)), result.requests)
        return report.Cell(
            **identity, outcome=report.OK, rate=result.rate, requests=result.requests,
            errors=result.errors, p50_ms=result.p50_us / 1000, p99_ms=result.p99_us / 1000,
            startup_ms=startup * 1000, worker_idle_rss_kb=worker_idle,
            worker_peak_rss_kb=memory.largest(loaded.workers, "VmHWM"),
            master_peak_rss_kb=(memory.status_kb(loaded.master, "VmHWM")
                                if loaded.master is not None else None),
            pss_idle_kb=pss_idle, pss_loaded_kb=memory.total_pss_kb(loaded.all),
            workers_seen=len(loaded.workers), client_cpu=result.client_cpu,
            cpu_user_us=cpu[0] if cpu else None, cpu_system_us=cpu[1] if cpu else None)
    except (lifecycle.ServerFailed, load.LoadFailed, OSError, http.client.HTTPException,
            subprocess.TimeoutExpired) as error:
        reason = str(error) or type(error).__name__
        return report.Cell(**identity, outcome=report.FAILED, reason=reason)
    finally:
        lifecycle.stop(process)


def _first_line(command: list[str]) -> str:
    try:
        finished = subprocess.run(command, capture_output=True, text=True, timeout=10,
                                  check=False)
    except (OSError, subprocess.TimeoutExpired):
        return "unknown"
    output = (finished.stdout or finished.stderr).strip()
    return output.splitlines()[0] if output else "unknown"


def require_tools(scenarios: list[Scenario]) -> None:
    """Exit with one line naming a missing tool the scenarios run (wrk, h2load, taskset)."""
    tools = ["taskset"]
    tools += ["wrk"] if any(not s.http2 and not s.websocket for s in scenarios) else []
    tools += ["h2load"] if any(s.http2 for s in scenarios) else []
    for tool in tools:
        if shutil.which(tool) is None:
            sys.exit(f"bench: {tool} is not installed (make bench installs wrk and h2load)")


def cell_line(cell: report.Cell) -> str:
    """A cell's progress line: its rate, p99 and errors, or why it did not run."""
    figure = (f"{cell.rate:10.0f}/s  p99 {cell.p99_ms or 0:6.2f} ms  errors {cell.errors}"
              if cell.outcome == report.OK else f"{cell.outcome.upper()}: {cell.reason}")
    return f"round {cell.round + 1} {cell.scenario:14} {cell.server:24} {figure}"


def describe_machine() -> list[str]:
    """One line per fact a reader needs to compare these figures with others."""
    cpuinfo = Path("/proc/cpuinfo").read_text() if Path("/proc/cpuinfo").exists() else ""
    models = [line.split(":", 1)[1].strip() for line in cpuinfo.splitlines()
              if line.startswith("model name")]
    meminfo = Path("/proc/meminfo").read_text() if Path("/proc/meminfo").exists() else ""
    total = next((line.split()[1] for line in meminfo.splitlines()
                  if line.startswith("MemTotal:")), None)
    versions = []
    for package in PACKAGES:
        try:
            versions.append(f"{package} {metadata.version(package)}")
        except metadata.PackageNotFoundError:
            versions.append(f"{package} (not installed)")
    load1, load5, _ = os.getloadavg()
    return [
        f"CPU: {models[0] if models else platform.processor() or 'unknown'}, "
        f"{os.cpu_count()} logical CPUs" + (f", {int(total) // 1024} MB memory" if total else ""),
        f"Kernel: {platform.system()} {platform.release()}",
        f"Python {platform.python_version()} ({sys.executable})",
        f"Load generator: {_first_line(['wrk', '-v'])}; {_first_line(['h2load', '--version'])}",
        "Versions: " + ", ".join(versions),
        "prefork tree: " + _first_line(["git", "-C", str(ROOT), "describe", "--always",
                                        "--dirty"]) + f", {prefork.build()}",
        f"Run at {datetime.now(timezone.utc):%Y-%m-%d %H:%M} UTC; load average at start "
        f"{load1:.2f} (1 min), {load5:.2f} (5 min)",
    ]


def describe_method(options: Options) -> list[str]:
    """The method, as the report states it."""
    return [
        f"{options.rounds} round(s). In each, every scenario runs every server in turn, the "
        "order rotated by one each round so that drift hits every server alike.",
        f"One worker per server (two in `hello-2w`). The server and all its processes under "
        f"`taskset -c {options.server_cpus}`; wrk (1 thread, {options.connections} "
        f"connections, `bench/wrk/load.lua`) and the suite under `taskset -c "
        f"{options.load_cpus}`. `hello-2w` pins nothing. The HTTP/2 scenarios (`h2-*`) are "
        "loaded by h2load (1 thread, cleartext by prior knowledge, the connections and "
        "streams per connection their titles give) in place of wrk; their latencies are "
        "h2load's per-request times.",
        f"Every cell starts the server afresh: spawn to first 200 (start-up), one checked "
        f"request, {options.warmup:g} s warm-up, {options.duration:g} s measured, stop.",
        "Rate and latency: median over the rounds. Errors: summed over the rounds (connect, "
        "read, write, timeout, non-2xx). Ratio: median of the per-round ratios against the "
        "reference (" + ", ".join(f"{server} for {interface.upper()}"
                                  for interface, server in options.references.items())
        + "; " + ", ".join(f"{server} in `{scenario}`"
                           for scenario, server in SCENARIO_REFERENCES.items())
        + "), with their range.",
        "CPU per request: user and system CPU seconds of all the server's processes during the "
        "measured seconds (/proc/PID/stat), over the requests (messages for WebSocket) served. "
        "CPU ratio: the reference's CPU per request over the server's, paired by round. On a "
        "saturated pinned core it follows the rate; it also holds where the load generator is "
        "the limit (WebSocket, `hello-2w`), and the split shows whose work a request is.",
    ]


def describe_commands(servers: list[Server], bin_dir: Path) -> dict[str, str]:
    """Each server's command line with placeholders for the app, port and worker count; for a
    server that serves HTTP/2, its HTTP/2 scenarios' line too ("NAME, HTTP/2")."""
    try:
        shown_bin = bin_dir.resolve().relative_to(ROOT)
    except ValueError:
        shown_bin = bin_dir
    port, workers = 65432, 98
    lines = {}
    for server in servers:
        for http2 in (False, True) if server.http2 else (False,):
            argv = server.command(shown_bin, "APP", port, workers, http2)
            argv = ["N" if token == str(workers) else token.replace(str(port), "PORT")
                    for token in argv]
            lines[f"{server.name}, HTTP/2" if http2 else server.name] = " ".join(argv)
    return lines


def make_context(smoke: bool, machine: list[str], method: list[str],
                 commands: dict[str, str]) -> report.Context:
    """The report's context: this run's description and the scenarios' titles and notes."""
    return report.Context(
        smoke=smoke, machine=machine, method=method,
        scenario_titles={s.name: s.title for s in SCENARIOS},
        scenario_notes={s.name: s.note for s in SCENARIOS if s.note},
        websocket_scenarios=frozenset(s.name for s in SCENARIOS if s.websocket),
        contaminated_scenarios=frozenset(s.name for s in SCENARIOS if not s.pinned),
        headliners=HEADLINERS, commands=commands)


def write_outputs(cells: list[report.Cell], context: report.Context, meta: dict[str, Any],
                  markdown: Path, raw: Path) -> None:
    """Rewrite the raw JSON and the Markdown report from every cell so far."""
    raw.write_text(json.dumps({"meta": meta, "context": dataclasses.asdict(context),
                               "cells": [dataclasses.asdict(cell) for cell in cells]},
                              indent=1, default=sorted) + "\n")
    tables = report.summarize(cells, meta["references"], [server.name for server in SERVERS],
                              SCENARIO_REFERENCES)
    markdown.write_text(report.render(tables, context))


def render_saved(raw: Path, markdown: Path) -> None:
    """Re-render ``markdown`` from a saved raw JSON (after editing the report code)."""
    data = json.loads(raw.read_text())
    cells = [report.Cell.from_json(cell) for cell in data["cells"]]
    saved = data.get("context", {})
    context = make_context(bool(saved.get("smoke")), saved.get("machine", []),
                           saved.get("method", []), saved.get("commands", {}))
    references = data.get("meta", {}).get("references", REFERENCES)
    tables = report.summarize(cells, references, [server.name for server in SERVERS],
                              SCENARIO_REFERENCES)
    markdown.write_text(report.render(tables, context))


def parse_options() -> tuple[argparse.Namespace, list[Scenario], list[Server]]:
    """The command line, with scenario and server names checked (a one-line error if unknown)."""
    parser = argparse.ArgumentParser(prog="python -m bench.suite",
                                     description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=4)
    parser.add_argument("--duration", type=float, default=10.0, help="seconds measured per cell")
    parser.add_argument("--warmup", type=float, default=2.0, help="seconds of load before it")
    parser.add_argument("--scenarios", default="all",
                        help="comma-separated: all, " + ", ".join(SCENARIOS_BY_NAME))
    parser.add_argument("--servers", default="all",
                        help="comma-separated: all, asgi, wsgi, "
                             + ", ".join(server.name for server in SERVERS))
    parser.add_argument("--connections", type=int, default=64, help="wrk connections")
    parser.add_argument("--server-cpus", default="1", help="taskset list for the server")
    parser.add_argument("--load-cpus", default="0", help="taskset list for wrk and the suite")
    parser.add_argument("--bin-dir", type=Path, default=Path(sys.executable).parent,
                        help="where the servers' executables are (default: this Python's)")
    parser.add_argument("--output", type=Path, default=HERE / "RESULTS.md",
                        help="the Markdown report; the raw JSON goes beside it (.json)")
    parser.add_argument("--reference", action="append", default=[], metavar="SERVER",
                        help="divide its interface's rates by this server's (default: "
                             + ", ".join(REFERENCES.values()) + "); repeatable")
    parser.add_argument("--render", type=Path, metavar="RESULTS_JSON",
                        help="only re-render --output from a saved raw JSON")
    args = parser.parse_args()
    if args.rounds < 1 or args.duration <= 0 or args.warmup < 0 or args.connections < 1:
        parser.error("--rounds and --connections must be at least 1, --duration positive, "
                     "--warmup not negative")
    for option in ("server_cpus", "load_cpus"):
        try:
            cpu_set(getattr(args, option))
        except ValueError:
            parser.error(f"--{option.replace('_', '-')} takes a CPU list such as 0 or 0-1,3")
    if args.render is not None and not args.render.is_file():
        parser.error(f"--render: no file {args.render}")
    references = dict(REFERENCES)
    for name in args.reference:
        if name not in SERVERS_BY_NAME:
            parser.error(f"--reference: unknown server {name!r}")
        references[SERVERS_BY_NAME[name].interface] = name
    args.references = references
    names = [name for name in args.scenarios.split(",") if name]
    unknown = [name for name in names if name != "all" and name not in SCENARIOS_BY_NAME]
    if unknown:
        parser.error(f"unknown scenario {unknown[0]!r}; choose from all, "
                     + ", ".join(SCENARIOS_BY_NAME))
    scenarios = list(SCENARIOS) if "all" in names else [s for s in SCENARIOS if s.name in names]
    try:
        servers = select([name for name in args.servers.split(",") if name])
    except ValueError as error:
        parser.error(str(error))
    return args, scenarios, servers


def main() -> None:
    """Run the suite as the command line says and write the report."""
    args, scenarios, servers = parse_options()
    markdown: Path = args.output
    raw = markdown.with_suffix(".json")
    markdown.parent.mkdir(parents=True, exist_ok=True)
    if args.render:
        render_saved(args.render, markdown)
        print(f"wrote {markdown}")
        return
    require_tools(scenarios)
    options = Options(rounds=args.rounds, duration=args.duration, warmup=args.warmup,
                      connections=args.connections, server_cpus=args.server_cpus,
                      load_cpus=args.load_cpus, bin_dir=args.bin_dir,
                      references=args.references)
    # The suite's own polling and bookkeeping stay off the server's core.
    os.sched_setaffinity(0, cpu_set(options.load_cpus))
    work = plan(scenarios, servers)
    cells_per_round = sum(len(group) for _, group in work)
    # wrk runs whole seconds, at least one.
    warmup = max(1, round(options.warmup)) if options.warmup > 0 else 0
    per_cell = max(1, round(options.duration)) + warmup + CELL_OVERHEAD
    estimate = cells_per_round * options.rounds * per_cell
    print(f"{cells_per_round} cells per round x {options.rounds} rounds, about "
          f"{estimate / 60:.0f} min", flush=True)
    context = make_context(options.smoke, describe_machine(), describe_method(options),
                           describe_commands(servers, options.bin_dir))
    meta = {"options": {key: str(value) for key, value in dataclasses.asdict(options).items()},
            "references": options.references,
            "scenarios": [s.name for s in scenarios], "servers": [s.name for s in servers]}
    cells: list[report.Cell] = []
    started = time.monotonic()
    with tempfile.TemporaryDirectory(prefix="prefork-bench-") as logs:
        for round_number in range(options.rounds):
            for scenario, group in work:
                for server in rotated(group, round_number):
                    cell = run_cell(server, scenario, round_number, options, Path(logs))
                    cells.append(cell)
                    print(cell_line(cell), flush=True)
            write_outputs(cells, context, meta, markdown, raw)
    print(f"done in {(time.monotonic() - started) / 60:.1f} min: wrote {markdown} and {raw}")


if __name__ == "__main__":
    main()
