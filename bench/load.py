"""Drive a server with load: wrk for HTTP/1.1, h2load for HTTP/2, ``bench.ws_client`` for
WebSocket echo.

All run as child processes under ``taskset`` on the load core when the scenario is pinned. wrk
and the WebSocket client report JSON lines (``wrk/load.lua``'s ``done()``, the client's one line)
rather than human text; h2load's summary is read from its text, and its latencies from its
per-request log, since the summary has no percentiles.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bench.scenarios import Scenario

HERE = Path(__file__).resolve().parent
WRK_SCRIPT = HERE / "wrk" / "load.lua"
WS_CONNECTIONS = 16
WS_MESSAGE_SIZE = 64


class LoadFailed(Exception):
    """The load generator did not run or did not report."""


@dataclass(frozen=True)
class LoadResult:
    """What one timed run measured."""

    rate: float  # requests/s (wrk) or echoed messages/s (WebSocket)
    requests: int
    errors: int
    error_detail: dict[str, int]
    p50_us: float
    p99_us: float
    client_cpu: float | None = None  # WebSocket client's CPU share: near 1.0, client-bound


def _pinned(command: list[str], cpus: str | None) -> list[str]:
    return ["taskset", "-c", cpus, *command] if cpus is not None else command


def _json_lines(output: str) -> list[dict[str, Any]]:
    lines = []
    for line in output.splitlines():
        line = line.strip()
        if line.startswith("{"):
            try:
                lines.append(json.loads(line))
            except json.JSONDecodeError:
                continue
    return lines


def run_wrk(scenario: Scenario, port: int, seconds: float, connections: int,
            cpus: str | None, threads: int = 1) -> LoadResult:
    """One wrk run of ``seconds`` (rounded up to whole seconds, wrk's unit)."""
    command = ["wrk", f"-t{threads}", f"-c{connections}", f"-d{max(1, round(seconds))}s",
               "--latency", "-s", str(WRK_SCRIPT)]
    for name, value in scenario.request_headers().items():
        if name != "Content-Type":  # the script sets it, with the body
            command += ["-H", f"{name}: {value}"]
    command.append(f"http://127.0.0.1:{port}{scenario.path}")
    env = dict(os.environ, BENCH_METHOD=scenario.method, BENCH_BODY=scenario.body,
               BENCH_CONTENT_TYPE=scenario.content_type or "")
    finished = subprocess.run(_pinned(command, cpus), capture_output=True, text=True, env=env,
                              timeout=seconds + 60, check=False)
    reports = {str(line.get("kind")): line for line in _json_lines(finished.stdout)}
    if finished.returncode != 0 or "summary" not in reports or "latency" not in reports:
        detail = (finished.stderr.strip() or finished.stdout.strip())[-300:]
        raise LoadFailed(f"wrk exited with status {finished.returncode}: {detail}")
    summary, latency = reports["summary"], reports["latency"]
    errors = {str(name): int(count) for name, count in summary["errors"].items()}
    requests = int(summary["requests"])
    duration_s = int(summary["duration_us"]) / 1e6
    return LoadResult(rate=requests / duration_s if duration_s else 0.0, requests=requests,
                      errors=sum(errors.values()), error_detail=errors,
                      p50_us=float(latency["p50_us"]),
                      p99_us=float(latency["p99_us"]))


def run_ws(port: int, seconds: float, cpus: str | None) -> LoadResult:
    """One run of the WebSocket echo client for ``seconds``."""
    command = [sys.executable, "-m", "bench.ws_client", "--url", f"ws://127.0.0.1:{port}/",
               "--connections", str(WS_CONNECTIONS), "--duration", str(seconds),
               "--size", str(WS_MESSAGE_SIZE)]
    finished = subprocess.run(_pinned(command, cpus), capture_output=True, text=True,
                              cwd=HERE.parent, timeout=seconds + 60, check=False)
    lines = _json_lines(finished.stdout)
    if finished.returncode != 0 or not lines:
        detail = (finished.stderr.strip() or finished.stdout.strip())[-300:]
        raise LoadFailed(f"WebSocket client exited with status {finished.returncode}: {detail}")
    figures = lines[-1]
    messages = int(figures["messages"])
    seconds_run = float(figures["seconds"])
    errors = int(figures["errors"])
    return LoadResult(rate=messages / seconds_run if seconds_run else 0.0, requests=messages,
                      errors=errors, error_detail={"websocket": errors},
                      p50_us=float(figures["p50_us"]),
                      p99_us=float(figures["p99_us"]),
                      client_cpu=float(figures["client_cpu"]))


def _h2load_count(pattern: str, output: str) -> int:
    found = re.search(pattern, output)
    if found is None:
        raise LoadFailed(f"h2load's summary has no {pattern!r}: {output.strip()[-300:]}")
    return int(found.group(1))


def _percentile(ordered: list[int], fraction: float) -> float:
    return float(ordered[min(len(ordered) - 1, int(len(ordered) * fraction))]) if ordered else 0.0


def run_h2load(scenario: Scenario, port: int, seconds: float, cpus: str | None) -> LoadResult:
    """One h2load run of ``seconds``: the scenario's connections and streams per connection,
    cleartext HTTP/2 by prior knowledge. A run that did not speak h2c fails."""
    connections = scenario.connections or 1
    with tempfile.NamedTemporaryFile(prefix="h2load-", suffix=".log") as log:
        command = ["h2load", "-t", "1", "-c", str(connections), "-m", str(scenario.streams),
                   "-D", str(max(1, round(seconds))), "--log-file", log.name]
        for name, value in scenario.request_headers().items():
            command += ["-H", f"{name}: {value}"]
        command.append(f"http://127.0.0.1:{port}{scenario.path}")
        finished = subprocess.run(_pinned(command, cpus), capture_output=True, text=True,
                                  timeout=seconds + 60, check=False)
        output = finished.stdout
        if finished.returncode != 0 or "Application protocol: h2c" not in output:
            detail = (finished.stderr.strip() or output.strip())[-300:]
            raise LoadFailed(f"h2load exited with status {finished.returncode}, not on h2c: "
                             f"{detail}")
        # one line per request: start (µs since the epoch), status, duration (µs)
        durations = sorted(int(fields[2]) for fields in
                           (line.split() for line in Path(log.name).read_text().splitlines())
                           if len(fields) >= 3)
    rate = re.search(r"finished in [0-9.]+\w*, ([0-9.]+) req/s", output)
    if rate is None:
        raise LoadFailed(f"h2load reported no rate: {output.strip()[-300:]}")
    done = _h2load_count(r"(\d+) done", output)
    # errored and timed out requests are counted among the failed ones
    errors = {"failed": _h2load_count(r"(\d+) failed", output),
              "non-2xx": sum(_h2load_count(rf"(\d+) {kind}xx", output) for kind in "345")}
    return LoadResult(rate=float(rate.group(1)), requests=done, errors=sum(errors.values()),
                      error_detail=errors, p50_us=_percentile(durations, 0.5),
                      p99_us=_percentile(durations, 0.99))
