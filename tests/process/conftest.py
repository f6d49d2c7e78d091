"""Fixtures for tests that fork real arbiters: CLI runs in their own session, cleaned by pid."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from prefork.testing import process_tree

ROOT = Path(__file__).resolve().parents[2]


class CliProcess:
    """``python -m prefork ...`` in its own session, stderr captured to a file."""

    def __init__(self, args: list[str], tmp_path: Path, env: dict[str, str] | None = None,
                 cwd: Path = ROOT):
        self.log_path = tmp_path / f"prefork-{len(list(tmp_path.iterdir()))}.log"
        self._log = open(self.log_path, "wb")  # noqa: SIM115 - closed in stop()
        full_env = {**os.environ, "PYTHONUNBUFFERED": "1", **(env or {})}
        full_env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT),
                                                               full_env.get("PYTHONPATH")]))
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "prefork", *args], cwd=cwd, env=full_env,
            stdout=self._log, stderr=subprocess.STDOUT, start_new_session=True,
        )
        self.pid = self.proc.pid
        self.seen: set[int] = set()

    def output(self) -> str:
        return self.log_path.read_text(errors="replace")

    def descendants(self) -> list[int]:
        pids = process_tree(self.pid)
        self.seen.update(pids)
        return pids

    def stop(self) -> None:
        self.seen.update(process_tree(self.pid))
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.pid, signal.SIGKILL)
        with contextlib.suppress(subprocess.TimeoutExpired):
            self.proc.wait(timeout=10)
        for pid in self.seen:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        self._log.close()


@pytest.fixture
def cli(tmp_path: Path) -> Iterator[object]:
    started: list[CliProcess] = []

    def start(*args: str, env: dict[str, str] | None = None, cwd: Path = ROOT) -> CliProcess:
        process = CliProcess(list(args), tmp_path, env, cwd)
        started.append(process)
        return process

    yield start
    for process in started:
        process.stop()
