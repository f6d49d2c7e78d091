"""Side-by-side throughput against peer servers, one worker each, on the same machine.

Run: ``python bench/peers.py --rounds 3``. Each round starts every server in turn, pinned to one
CPU (``taskset -c 1``), and drives it with ``wrk`` pinned to another (``taskset -c 0``), with
keep-alive and with ``Connection: close``. Servers alternate within a round so that machine noise
(which is large on small VMs) hits all of them alike; the table shows the median of the rounds.

Peers come from another virtual environment (``--peers-venv``, default ``/tmp/benchvenv``) holding
``uvicorn uvloop httptools gunicorn``; a peer whose executable is missing is skipped.
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import socket
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PREFORK = str(Path(sys.executable).parent / "prefork")


def servers(peers: Path) -> dict[str, list[str]]:
    """Command lines; ``PORT`` stands for the port each run picks."""
    p = "PORT"
    return {
        "prefork asgi": [PREFORK, "examples.hello:app", "--bind", f"127.0.0.1:{p}",
                         "--log-level", "warning"],
        "uvicorn": [str(peers / "uvicorn"), "examples.hello:app", "--port", p, "--log-level",
                    "warning", "--no-access-log", "--loop", "uvloop", "--http", "httptools"],
        "prefork wsgi": [PREFORK, "bench.wsgi_hello:app", "--bind", f"127.0.0.1:{p}",
                         "--log-level", "warning"],
        "gunicorn sync": [str(peers / "gunicorn"), "bench.wsgi_hello:app", "--bind",
                          f"127.0.0.1:{p}", "--log-level", "warning", "--workers", "1"],
    }


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def wait_listening(port: int, deadline: float) -> None:
    while time.monotonic() < deadline:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                return
        except OSError:
            time.sleep(0.05)
    raise RuntimeError(f"nothing listens on port {port}")


def wrk(port: int, seconds: int, close: bool) -> float:
    cmd = ["taskset", "-c", "0", "wrk", "-t1", "-c64", f"-d{seconds}s"]
    if close:
        cmd += ["-H", "Connection: close"]
    out = subprocess.run([*cmd, f"http://127.0.0.1:{port}/"], capture_output=True, text=True,
                         check=True).stdout
    match = re.search(r"Requests/sec:\s+([\d.]+)", out)
    errors = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    if match is None or errors is not None:
        raise RuntimeError(f"wrk failed:\n{out}")
    return float(match.group(1))


def measure(cmd: list[str], seconds: int, path: str | None = None) -> tuple[float, float]:
    port = free_port()
    cmd = [arg.replace("PORT", str(port)) for arg in cmd]
    env = dict(os.environ, PYTHONPATH=path) if path else None
    proc = subprocess.Popen(["taskset", "-c", "1", *cmd], cwd=path or ROOT, env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        wait_listening(port, time.monotonic() + 15)
        wrk(port, 1, close=False)  # warm-up
        return wrk(port, seconds, close=False), wrk(port, seconds, close=True)
    finally:
        proc.terminate()
        proc.wait(10)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rounds", type=int, default=2)
    ap.add_argument("--seconds", type=int, default=4)
    ap.add_argument("--peers-venv", type=Path, default=Path("/tmp/benchvenv/bin"))
    ap.add_argument("--only", nargs="*", help="server names to run (default: all)")
    ap.add_argument("--baseline", metavar="DIR",
                    help="also run prefork from this source tree (e.g. `git archive HEAD`), "
                         "for before/after figures from the same run")
    args = ap.parse_args()
    if shutil.which("wrk") is None:
        sys.exit("wrk is not installed")
    os.chdir(ROOT)
    table = servers(args.peers_venv)
    names = [n for n in table if not args.only or any(o in n for o in args.only)]
    names = [n for n in names if Path(table[n][0]).exists()]
    paths: dict[str, str | None] = dict.fromkeys(names)
    if args.baseline:
        for name in [n for n in names if n.startswith("prefork")]:
            table[f"{name} (base)"] = table[name]
            paths[f"{name} (base)"] = str(Path(args.baseline).resolve())
            names.insert(names.index(name), f"{name} (base)")
    results: dict[str, list[tuple[float, float]]] = {n: [] for n in names}
    for round_no in range(args.rounds):
        for name in names:
            keep, close = measure(table[name], args.seconds, paths[name])
            results[name].append((keep, close))
            print(f"round {round_no + 1} {name:>21}: {keep:9.0f} keep-alive {close:8.0f} close",
                  flush=True)
    print(f"\n{'server':>21} {'keep-alive':>11} {'close':>8}  (median of {args.rounds})")
    for name, rows in results.items():
        keep = statistics.median(r[0] for r in rows)
        close = statistics.median(r[1] for r in rows)
        print(f"{name:>21} {keep:11.0f} {close:8.0f}")


if __name__ == "__main__":
    main()
