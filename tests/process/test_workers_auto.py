"""``--workers auto`` under a (fake) cgroup CPU quota: the arbiter forks what the quota allows
and says so in its start-up log."""

from __future__ import annotations

from pathlib import Path

import pytest

import prefork.system.cpus
from prefork.system.cpus import affinity_count
from prefork.testing import running_server


@pytest.mark.timeout(60)
@pytest.mark.skipif(affinity_count() < 2, reason="needs 2 usable CPUs to see the quota cap")
def test_workers_auto_follows_the_cgroup_quota(tmp_path: Path,
                                               monkeypatch: pytest.MonkeyPatch) -> None:
    root = tmp_path / "cgroup"
    (root / "app").mkdir(parents=True)
    (root / "cgroup.controllers").write_text("cpu memory\n")
    (root / "app" / "cpu.max").write_text("100000 100000\n")  # one CPU's worth of time
    membership = tmp_path / "self-cgroup"
    membership.write_text("0::/app\n")
    # the arbiter is forked from this process, so it reads the fake tree too
    monkeypatch.setattr(prefork.system.cpus, "CGROUP_ROOT", str(root))
    monkeypatch.setattr(prefork.system.cpus, "MEMBERSHIP_FILE", str(membership))
    log = tmp_path / "error.log"
    with running_server("tests.apps.pidapp:app", workers="auto", errorlog=str(log)) as server:
        assert len(server.worker_pids()) == 1
        assert server.stats()["target"] == 1
    assert (f"workers auto: 1 (cgroup cpu.max 100000/100000; affinity {affinity_count()} CPUs)"
            in log.read_text())


@pytest.mark.timeout(60)
def test_workers_auto_without_a_quota_uses_the_affinity(tmp_path: Path,
                                                        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(prefork.system.cpus, "CGROUP_ROOT", str(tmp_path / "none"))
    log = tmp_path / "error.log"
    with running_server("tests.apps.pidapp:app", workers="auto", errorlog=str(log)) as server:
        assert len(server.worker_pids()) == affinity_count()
    assert f"workers auto: {affinity_count()} (no cgroup CPU quota; affinity" in log.read_text()
