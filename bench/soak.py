"""Soak test: a million keep-alive requests against two workers, watching errors and worker memory.

Run: ``python bench/soak.py --requests 1000000`` (a few minutes on a 2-core machine). Not part of
CI. It starts ``prefork examples.hello:app --workers 2`` on port 0, reads the bound port from the
arbiter's "listening on" log line, and drives it with ``wrk`` (keep-alive, ``-t1 -c32``). wrk
has no request-count option, so the run goes in slices sized by duration: a one-second probe
measures the rate, the next slice brings the total to at least ``--baseline`` requests (50 000;
wrk's durations are whole seconds, so at ~30 000 req/s the baseline lands near 70 000), and the
rest follows in slices of at most ``--slice`` seconds, each sized from the rate measured so far.
Worker RSS (``VmRSS`` from /proc) is read after the baseline and after every slice.

The report gives the total requests, the errors (wrk's socket errors plus non-2xx/3xx responses),
the RSS of each worker after the baseline and at the end, and their ratio. The exit status is 1
when there was any error, when a worker's RSS grew more than ``--max-growth`` (5 %) past the
baseline, or when a worker was replaced during the run (a fresh worker would hide a leak).
"""

from __future__ import annotations

import argparse
import re
import shutil
import subprocess
import sys
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import IO

ROOT = Path(__file__).resolve().parent.parent
PREFORK = str(Path(sys.executable).parent / "prefork")
LISTENING = re.compile(r"listening on tcp:[^\s,;]*:(\d+)")


@dataclass
class Slice:
    """What one wrk run reports."""

    requests: int
    seconds: float
    socket_errors: int
    bad_status: int

    @property
    def rate(self) -> float:
        return self.requests / self.seconds if self.seconds else 0.0


def parse_wrk(out: str) -> Slice:
    done = re.search(r"(\d+) requests in ([\d.]+)(us|ms|s|m)\b", out)
    if done is None:
        raise RuntimeError(f"cannot read wrk's output:\n{out}")
    scale = {"us": 1e-6, "ms": 1e-3, "s": 1.0, "m": 60.0}[done.group(3)]
    socket_errors = 0
    errors = re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", out)
    if errors is not None:
        socket_errors = sum(int(n) for n in errors.groups())
    bad = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    return Slice(int(done.group(1)), float(done.group(2)) * scale, socket_errors,
                 int(bad.group(1)) if bad else 0)


def run_wrk(port: int, seconds: float, connections: int) -> Slice:
    duration = max(1, round(seconds))
    cmd = ["wrk", "-t1", f"-c{connections}", f"-d{duration}s", "--latency",
           f"http://127.0.0.1:{port}/"]
    out = subprocess.run(cmd, capture_output=True, text=True, check=True).stdout
    return parse_wrk(out)


def children(pid: int) -> list[int]:
    """``pid``'s direct children, from /proc (workers of the arbiter)."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            fields = (entry / "stat").read_bytes().rsplit(b")", 1)[1].split()
        except OSError:
            continue
        if int(fields[1]) == pid and fields[0] != b"Z":
            found.append(int(entry.name))
    return sorted(found)


def rss_kib(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    raise RuntimeError(f"no VmRSS for pid {pid}")


def drain(stream: IO[str], lines: list[str], port_found: threading.Event) -> None:
    """Keep reading the server's log so that a full pipe never blocks it."""
    for line in stream:
        lines.append(line)
        if LISTENING.search(line):
            port_found.set()
    port_found.set()  # the server exited: wake the waiter, which then finds no port


def start_server(workers: int) -> tuple[subprocess.Popen[str], int, list[str]]:
    proc = subprocess.Popen(
        [PREFORK, "examples.hello:app", "--workers", str(workers), "--bind", "127.0.0.1:0",
         "--log-level", "info"],
        cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
    )
    assert proc.stdout is not None
    lines: list[str] = []
    port_found = threading.Event()
    threading.Thread(target=drain, args=(proc.stdout, lines, port_found), daemon=True).start()
    port_found.wait(30)
    for line in lines:
        if match := LISTENING.search(line):
            break
    else:
        proc.kill()
        raise RuntimeError("the server logged no 'listening on' line:\n" + "".join(lines))
    deadline = time.monotonic() + 30
    while len(children(proc.pid)) < workers:
        if time.monotonic() > deadline or proc.poll() is not None:
            proc.kill()
            raise RuntimeError("the workers did not start:\n" + "".join(lines))
        time.sleep(0.05)
    return proc, int(match.group(1)), lines


def soak(args: argparse.Namespace) -> int:
    proc, port, _ = start_server(args.workers)
    try:
        slices = [run_wrk(port, args.probe, args.connections)]
        total = slices[0].requests

        def rate() -> float:
            return sum(s.requests for s in slices) / sum(s.seconds for s in slices)

        if total < args.baseline:
            slices.append(run_wrk(port, (args.baseline - total) / rate(), args.connections))
            total += slices[-1].requests
        workers = children(proc.pid)
        baseline = {pid: rss_kib(pid) for pid in workers}
        baseline_total = total
        print(f"baseline after {total} requests ({rate():.0f} req/s): "
              + ", ".join(f"worker {pid} {kib} KiB" for pid, kib in baseline.items()), flush=True)
        while total < args.requests:
            seconds = min(args.slice, (args.requests - total) / rate())
            slices.append(run_wrk(port, seconds, args.connections))
            total += slices[-1].requests
            now = {pid: rss_kib(pid) for pid in children(proc.pid)}
            print(f"  {total:>9} requests: "
                  + ", ".join(f"{pid} {kib} KiB" for pid, kib in now.items()), flush=True)
        final_workers = children(proc.pid)
        final = {pid: rss_kib(pid) for pid in final_workers}
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()

    socket_errors = sum(s.socket_errors for s in slices)
    bad_status = sum(s.bad_status for s in slices)
    print(f"\nrequests        {total} ({total - baseline_total} after the baseline), "
          f"{rate():.0f} req/s")
    print(f"errors          {socket_errors + bad_status} "
          f"(socket {socket_errors}, non-2xx/3xx {bad_status})")
    failed = socket_errors + bad_status > 0
    if final_workers != workers:
        print(f"workers         replaced during the run: {workers} -> {final_workers}")
        failed = True
    for pid in workers:
        if pid not in final:
            continue
        ratio = final[pid] / baseline[pid]
        grew = ratio > 1 + args.max_growth
        failed |= grew
        print(f"worker {pid:<8} VmRSS {baseline[pid]} KiB -> {final[pid]} KiB, "
              f"ratio {ratio:.3f}{'  GREW' if grew else ''}")
    print("FAIL" if failed else "OK")
    return 1 if failed else 0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0] if __doc__ else None)
    parser.add_argument("--requests", type=int, default=1_000_000)
    parser.add_argument("--baseline", type=int, default=50_000,
                        help="requests served before the baseline RSS is read")
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--connections", type=int, default=32)
    parser.add_argument("--probe", type=float, default=1.0,
                        help="seconds of the first slice, which measures the rate")
    parser.add_argument("--slice", type=float, default=10.0, help="longest slice, seconds")
    parser.add_argument("--max-growth", type=float, default=0.05,
                        help="largest allowed RSS growth past the baseline (0.05 = 5%%)")
    args = parser.parse_args()
    if shutil.which("wrk") is None:
        print("soak: wrk is not installed", file=sys.stderr)
        return 2
    return soak(args)


if __name__ == "__main__":
    sys.exit(main())
