"""Unit tests for prefork.system.cpus on fake cgroup trees: v2 nested limits, v1, none,
malformed."""

from __future__ import annotations

from pathlib import Path

import pytest

import prefork.system.cpus
from prefork.config import Config, usable_cpu_count
from prefork.system.cpus import CpuQuota, cgroup_quota, usable_cpus

pytestmark = pytest.mark.timeout(10)


def tree(root: Path, files: dict[str, str]) -> Path:
    for name, text in files.items():
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    return root


def membership(root: Path, text: str) -> str:
    path = root / "self-cgroup"
    path.write_text(text)
    return str(path)


V2 = {"sys/cgroup.controllers": "cpu io memory pids\n"}


def test_v2_nested_limits_the_tightest_wins(tmp_path: Path) -> None:
    root = tree(tmp_path, {**V2,
                           "sys/kubepods/cpu.max": "400000 100000\n",
                           "sys/kubepods/pod1/cpu.max": "max 100000\n",
                           "sys/kubepods/pod1/ctr/cpu.max": "150000 100000\n"})
    cgroup = membership(root, "0::/kubepods/pod1/ctr\n")
    quota = cgroup_quota(str(root / "sys"), cgroup)
    assert quota == CpuQuota(150000, 100000, "cpu.max", str(root / "sys/kubepods/pod1/ctr"))
    found = usable_cpus(str(root / "sys"), cgroup, affinity=16)
    assert found.count == 2  # 1.5 CPUs of time: two workers
    assert str(found) == "2 (cgroup cpu.max 150000/100000; affinity 16 CPUs)"


def test_v2_a_parent_tighter_than_the_child(tmp_path: Path) -> None:
    root = tree(tmp_path, {**V2,
                           "sys/slice/cpu.max": "100000 100000\n",
                           "sys/slice/app/cpu.max": "800000 100000\n"})
    cgroup = membership(root, "0::/slice/app\n")
    assert usable_cpus(str(root / "sys"), cgroup, affinity=8).count == 1


def test_v2_cgroup_namespace_reads_the_mount_root(tmp_path: Path) -> None:
    # inside a container the process's path may name the host's view: not under the mount
    root = tree(tmp_path, {**V2, "sys/cpu.max": "300000 100000\n"})
    cgroup = membership(root, "0::/system.slice/docker-abc.scope\n")
    assert usable_cpus(str(root / "sys"), cgroup, affinity=64).count == 3


def test_v1_cfs_quota(tmp_path: Path) -> None:
    root = tree(tmp_path, {"sys/cpu,cpuacct/docker/abc/cpu.cfs_quota_us": "250000\n",
                           "sys/cpu,cpuacct/docker/abc/cpu.cfs_period_us": "100000\n",
                           "sys/cpu,cpuacct/cpu.cfs_quota_us": "-1\n",
                           "sys/cpu,cpuacct/cpu.cfs_period_us": "100000\n"})
    cgroup = membership(root, "12:memory:/docker/abc\n4:cpu,cpuacct:/docker/abc\n"
                              "1:name=systemd:/\n")
    found = usable_cpus(str(root / "sys"), cgroup, affinity=32)
    assert found.count == 3
    assert str(found) == "3 (cgroup cpu.cfs_quota_us 250000/100000; affinity 32 CPUs)"


def test_v1_cpu_mounted_alone_without_a_quota(tmp_path: Path) -> None:
    root = tree(tmp_path, {"sys/cpu/cpu.cfs_quota_us": "-1\n",
                           "sys/cpu/cpu.cfs_period_us": "100000\n"})
    cgroup = membership(root, "3:cpu:/\n")
    assert cgroup_quota(str(root / "sys"), cgroup) is None
    found = usable_cpus(str(root / "sys"), cgroup, affinity=4)
    assert (found.count, str(found)) == (4, "4 (no cgroup CPU quota; affinity 4 CPUs)")


def test_hybrid_hierarchy_v2_unified_and_v1_cpu(tmp_path: Path) -> None:
    root = tree(tmp_path, {"sys/unified/cgroup.controllers": "\n",
                           "sys/cpu,cpuacct/cpu.cfs_quota_us": "200000\n",
                           "sys/cpu,cpuacct/cpu.cfs_period_us": "100000\n"})
    cgroup = membership(root, "2:cpu,cpuacct:/\n0::/user.slice\n")
    assert usable_cpus(str(root / "sys"), cgroup, affinity=8).count == 2


def test_no_limit_anywhere(tmp_path: Path) -> None:
    root = tree(tmp_path, {**V2, "sys/a/cpu.max": "max 100000\n"})
    cgroup = membership(root, "0::/a\n")
    assert usable_cpus(str(root / "sys"), cgroup, affinity=6).count == 6


@pytest.mark.parametrize("content", [
    "", "garbage\n", "150000\n", "150000 100000 7\n", "0 100000\n", "-5 100000\n",
    "100000 0\n", "1.5 1\n", "max\n",
])
def test_malformed_cpu_max_sets_no_limit(tmp_path: Path, content: str) -> None:
    root = tree(tmp_path, {**V2, "sys/a/cpu.max": content})
    cgroup = membership(root, "0::/a\n")
    assert cgroup_quota(str(root / "sys"), cgroup) is None
    assert usable_cpus(str(root / "sys"), cgroup, affinity=5).count == 5


def test_malformed_or_missing_v1_files_set_no_limit(tmp_path: Path) -> None:
    root = tree(tmp_path, {"sys/cpu,cpuacct/a/cpu.cfs_quota_us": "lots\n",
                           "sys/cpu,cpuacct/a/cpu.cfs_period_us": "100000\n",
                           "sys/cpu,cpuacct/b/cpu.cfs_quota_us": "50000\n"})  # no period
    for path in ("/a", "/b"):
        cgroup = membership(root, f"4:cpu,cpuacct:{path}\n")
        assert cgroup_quota(str(root / "sys"), cgroup) is None


@pytest.mark.parametrize("text", ["", "nonsense", "0::relative/path\n", "\xff\xfe"])
def test_malformed_membership_file(tmp_path: Path, text: str) -> None:
    root = tree(tmp_path, {**V2, "sys/cpu.max": "100000 100000\n"})
    (tmp_path / "self-cgroup").write_bytes(text.encode("latin-1"))
    assert cgroup_quota(str(root / "sys"), str(tmp_path / "self-cgroup")) is None


def test_no_cgroups_at_all(tmp_path: Path) -> None:
    assert cgroup_quota(str(tmp_path / "none"), str(tmp_path / "missing")) is None


def test_affinity_smaller_than_the_quota_wins(tmp_path: Path) -> None:
    root = tree(tmp_path, {**V2, "sys/cpu.max": "800000 100000\n"})
    cgroup = membership(root, "0::/\n")
    assert usable_cpus(str(root / "sys"), cgroup, affinity=2).count == 2


def test_a_tiny_quota_still_gets_one_worker(tmp_path: Path) -> None:
    root = tree(tmp_path, {**V2, "sys/cpu.max": "10000 100000\n"})
    cgroup = membership(root, "0::/\n")
    assert usable_cpus(str(root / "sys"), cgroup, affinity=8).count == 1


def test_workers_auto_in_the_config_uses_the_quota(tmp_path: Path,
                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    root = tree(tmp_path, {**V2, "sys/cpu.max": "100000 100000\n"})
    monkeypatch.setattr(prefork.system.cpus, "CGROUP_ROOT", str(root / "sys"))
    monkeypatch.setattr(prefork.system.cpus, "MEMBERSHIP_FILE", membership(root, "0::/\n"))
    assert usable_cpu_count() == 1
    assert Config.from_mapping({"workers": "auto"}).worker_count() == 1
    assert Config.from_mapping({"workers": 3}).worker_count() == 3
