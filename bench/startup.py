"""Start-up as an operator sees it: from exec to the first 200, at 1 and 4 workers.

A deploy, a restart or an autoscaler waits for this. The clock runs from the spawn of the
server's command to the first ``200`` on a fresh connection, polled every 5 ms
(``bench.lifecycle.wait_ready``); the server is then stopped and started again. prefork runs
as an operator types it, its console script with nothing but the app and the address
(``--workers 1`` is its default), and with ``--workers 4``; uvicorn beside it, started as
``bench/servers.py`` starts it, for scale::

    bench/venv/bin/python -m bench.startup --repeat 10
    bench/venv/bin/python -m bench.startup --repeat 3 --output /tmp/STARTUP.md

Each repetition starts every configuration once, the order rotated by one per repetition.
Nothing is pinned. Python reads the modules' bytecode as pip would have written it: run
``python -m compileall prefork bench`` first (``make bench`` does), or the first start
includes compiling them, and every start does under ``PYTHONDONTWRITEBYTECODE``.
"""

from __future__ import annotations

import argparse
import dataclasses
import http.client
import json
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from pathlib import Path

from bench import cputime, lifecycle, memory, suite
from bench.servers import BY_NAME as SERVERS_BY_NAME

HERE = Path(__file__).resolve().parent
APP = "bench.apps.hello:asgi"
TARGET_MS = 250.0

Command = Callable[[Path, int], list[str]]  # (bin dir, port) -> argv


def _prefork(*extra: str) -> Command:
    def command(bin_dir: Path, port: int) -> list[str]:
        return [str(bin_dir / "prefork"), APP, "--bind", f"127.0.0.1:{port}", *extra]
    return command


def _peer(name: str, workers: int) -> Command:
    def command(bin_dir: Path, port: int) -> list[str]:
        return SERVERS_BY_NAME[name].command(bin_dir, APP, port, workers, False)
    return command


CONFIGURATIONS: dict[str, Command] = {
    "prefork (defaults: 1 worker)": _prefork(),
    "prefork --workers 4": _prefork("--workers", "4"),
    "uvicorn --workers 1": _peer("uvicorn", 1),
    "uvicorn --workers 4": _peer("uvicorn", 4),
}


@dataclasses.dataclass(frozen=True)
class Start:
    """One start of one configuration."""

    repetition: int
    configuration: str
    outcome: str  # "ok" or why not
    startup_ms: float | None = None
    # CPU the server's processes had used by then, user and system: what the start costs
    # whatever else the machine is doing, where the wall-clock time also counts the waits
    cpu_ms: float | None = None


def start_once(name: str, repetition: int, bin_dir: Path, logs: Path) -> Start:
    """Start the configuration, time it to its first 200, stop it."""
    port = lifecycle.free_port()
    argv = CONFIGURATIONS[name](bin_dir, port)
    if not Path(argv[0]).exists():
        return Start(repetition, name, f"missing: no {argv[0]}")
    process = lifecycle.spawn(argv, port, None, logs / f"{repetition}-{len(name)}.log")
    try:
        seconds = lifecycle.wait_ready(process, "/")
        spent = cputime.used_between({}, cputime.snapshot(memory.roles(process.pid).all))
        return Start(repetition, name, "ok", seconds * 1000,
                     (spent.user + spent.system) * 1000)
    except (lifecycle.ServerFailed, OSError, http.client.HTTPException,
            subprocess.TimeoutExpired) as error:
        return Start(repetition, name, f"failed: {error or type(error).__name__}")
    finally:
        lifecycle.stop(process)


def render(starts: Sequence[Start], machine: Sequence[str], repeat: int) -> str:
    """The Markdown report: per configuration, the median, fastest and slowest start. Pure."""
    lines = ["# Start-up to the first 200", ""]
    if repeat < 5:
        lines += ["**Smoke run**: too few starts to quote.", ""]
    lines += ["## Machine", "", *(f"- {line}" for line in machine), "",
              "## Method", "",
              f"- {repeat} start(s) of each configuration, the order rotated by one per "
              "repetition; from the spawn to the first 200 on a fresh connection, polled every "
              f"5 ms; nothing pinned. The hello app (`{APP}`). Goal: {TARGET_MS:.0f} ms.",
              "- CPU ms: user and system CPU time of all the server's processes alive at the "
              "first 200 (a process that already exited, such as a spawned helper, is not "
              "counted), the median: unlike the wall-clock time, it hardly moves with the "
              "machine's load.", "",
              "| configuration | median ms | fastest | slowest | CPU ms | starts |",
              "|---|---|---|---|---|---|"]
    for name in CONFIGURATIONS:
        times = [s.startup_ms for s in starts
                 if s.configuration == name and s.outcome == "ok" and s.startup_ms is not None]
        failed = [s.outcome for s in starts if s.configuration == name and s.outcome != "ok"]
        if not times:
            if failed:
                lines.append(f"| {name} | {failed[0][:80]} | | | | 0 |")
            continue
        cpu = [s.cpu_ms for s in starts
               if s.configuration == name and s.outcome == "ok" and s.cpu_ms is not None]
        cpu_text = f"{statistics.median(cpu):.0f}" if cpu else "—"
        lines.append(f"| {name} | {statistics.median(times):.0f} | {min(times):.0f} | "
                     f"{max(times):.0f} | {cpu_text} | {len(times)} |")
    lines.append("")
    return "\n".join(lines)


def main() -> None:
    """Start every configuration ``--repeat`` times and write the report."""
    parser = argparse.ArgumentParser(prog="python -m bench.startup",
                                     description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=10, help="starts of each configuration")
    parser.add_argument("--bin-dir", type=Path, default=Path(sys.executable).parent)
    parser.add_argument("--output", type=Path, default=HERE / "STARTUP.md",
                        help="the Markdown report; the raw JSON goes beside it (.json)")
    args = parser.parse_args()
    if args.repeat < 1:
        parser.error("--repeat must be at least 1")
    markdown: Path = args.output
    raw = markdown.with_suffix(".json")
    markdown.parent.mkdir(parents=True, exist_ok=True)
    machine = suite.describe_machine()
    names = list(CONFIGURATIONS)
    starts: list[Start] = []
    began = time.monotonic()
    with tempfile.TemporaryDirectory(prefix="prefork-startup-") as logs:
        for repetition in range(args.repeat):
            shift = repetition % len(names)
            for name in names[shift:] + names[:shift]:
                start = start_once(name, repetition, args.bin_dir, Path(logs))
                starts.append(start)
                figure = (f"{start.startup_ms:7.1f} ms, CPU {start.cpu_ms or 0:6.1f} ms"
                          if start.startup_ms is not None else start.outcome)
                print(f"start {repetition + 1} {name:30} {figure}", flush=True)
    raw.write_text(json.dumps({"machine": machine,
                               "starts": [dataclasses.asdict(s) for s in starts]},
                              indent=1) + "\n")
    markdown.write_text(render(starts, machine, args.repeat))
    print(f"done in {time.monotonic() - began:.0f} s: wrote {markdown} and {raw}")


if __name__ == "__main__":
    main()
