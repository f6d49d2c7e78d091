"""Unit tests for bench.cputime: CPU seconds read from /proc and folded per request."""

from __future__ import annotations

import os
import time

import pytest

from bench import cputime
from bench.cputime import CpuTimes

pytestmark = pytest.mark.timeout(10)


def test_a_busy_process_reads_its_own_user_time_from_proc() -> None:
    before = cputime.process_times(os.getpid())
    deadline = time.process_time() + 0.2
    while time.process_time() < deadline:
        pass
    after = cputime.process_times(os.getpid())
    assert before is not None and after is not None
    spent = after - before
    # 0.2 s of busy looping, read in clock ticks: user time grows, within a tick or two
    assert 0.1 <= spent.user + spent.system <= 1.0
    assert spent.user > 0


def test_a_process_that_is_gone_reads_as_none() -> None:
    pid = os.fork()
    if pid == 0:
        os._exit(0)
    os.waitpid(pid, 0)
    assert cputime.process_times(pid) is None
    assert cputime.snapshot((pid, os.getpid())).keys() == {os.getpid()}


def test_time_between_snapshots_counts_processes_born_in_between_from_zero() -> None:
    before = {1: CpuTimes(1.0, 0.5), 2: CpuTimes(2.0, 1.0)}
    # pid 2 exited (its time is lost), pid 3 was born
    after = {1: CpuTimes(1.5, 0.75), 3: CpuTimes(0.25, 0.25)}
    assert cputime.used_between(before, after) == CpuTimes(0.75, 0.5)


def test_per_request_figures_are_microseconds_and_need_requests() -> None:
    assert cputime.per_request_us(CpuTimes(1.0, 0.5), 100_000) == (pytest.approx(10.0),
                                                                    pytest.approx(5.0))
    assert cputime.per_request_us(CpuTimes(1.0, 0.5), 0) is None
