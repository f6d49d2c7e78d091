"""Compare the three --dispatch modes side by side: hello-world keep-alive and Connection: close.

The server and all its processes run under ``taskset -c SERVER_CPUS``, wrk under
``taskset -c LOAD_CPUS``; rounds rotate the order so drift hits every mode alike; the report is
the median req/s per mode and the median of per-round ratios against ``reuseport``.

    python bench/dispatch.py [--workers 1] [--rounds 4] [--duration 5]
"""

from __future__ import annotations

import argparse
import os
import re
import signal
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
MODES = ("reuseport", "roundrobin", "shared")


def start_server(mode: str, port: int, workers: int, cpus: str) -> subprocess.Popen[bytes]:
    command = ["taskset", "-c", cpus, sys.executable, "-m", "prefork", "examples.hello:app",
               "--bind", f"127.0.0.1:{port}", "--workers", str(workers), "--dispatch", mode,
               "--log-level", "warning"]
    proc = subprocess.Popen(command, cwd=ROOT, start_new_session=True)
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        if subprocess.run(["curl", "-sf", f"http://127.0.0.1:{port}/"], capture_output=True,
                          check=False).returncode == 0:
            return proc
        time.sleep(0.1)
    proc.kill()
    raise RuntimeError(f"{mode} did not start")


def wrk(port: int, seconds: int, close: bool, cpus: str) -> float:
    command = ["taskset", "-c", cpus, "wrk", "-t1", "-c64", f"-d{seconds}s",
               f"http://127.0.0.1:{port}/"]
    if close:
        command[4:4] = ["-H", "Connection: close"]
    out = subprocess.run(command, capture_output=True, text=True, check=True).stdout
    match = re.search(r"Requests/sec:\s+([\d.]+)", out)
    errors = re.search(r"Socket errors: (.*)", out)
    if errors:
        print(f"    wrk socket errors: {errors.group(1)}", file=sys.stderr)
    return float(match.group(1)) if match else 0.0


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--workers", type=int, default=1)
    parser.add_argument("--rounds", type=int, default=4)
    parser.add_argument("--duration", type=int, default=5)
    parser.add_argument("--server-cpus", default="1")
    parser.add_argument("--load-cpus", default="0")
    args = parser.parse_args()
    results: dict[tuple[str, bool], list[float]] = {}
    port = 18700
    for round_number in range(args.rounds):
        order = MODES[round_number % 3:] + MODES[:round_number % 3]
        for mode in order:
            port += 1
            proc = start_server(mode, port, args.workers, args.server_cpus)
            try:
                wrk(port, 1, False, args.load_cpus)  # warm-up
                for close in (False, True):
                    rate = wrk(port, args.duration, close, args.load_cpus)
                    results.setdefault((mode, close), []).append(rate)
                    print(f"round {round_number} {mode:10} close={close!s:5} {rate:10.0f} req/s")
            finally:
                os.killpg(proc.pid, signal.SIGTERM)
                proc.wait(timeout=30)
    print(f"\n{args.workers} worker(s), server on CPU {args.server_cpus}, wrk on CPU "
          f"{args.load_cpus}, {args.rounds} rounds of {args.duration}s\n")
    print("| mode | keep-alive req/s | ratio | Connection: close req/s | ratio |")
    print("|---|---|---|---|---|")
    for mode in MODES:
        cells = []
        for close in (False, True):
            rates = results[(mode, close)]
            base = results[("reuseport", close)]
            ratio = statistics.median(r / b for r, b in zip(rates, base, strict=True))
            cells += [f"{statistics.median(rates):.0f}", f"{ratio:.2f}"]
        print(f"| {mode} | " + " | ".join(cells) + " |")


if __name__ == "__main__":
    main()
