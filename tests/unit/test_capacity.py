"""--max-workers auto: the rule, and the memory found in a fake /proc and cgroup tree."""

from __future__ import annotations

from pathlib import Path

import pytest

from prefork.config import Config
from prefork.errors import ConfigError
from prefork.system.capacity import WORKER_MEMORY, derived_max_workers, usable_memory

MIB = 1024 * 1024


@pytest.mark.parametrize("cpus, memory, expected", [
    (1, None, 16),  # at least 16 where memory allows
    (2, 24 * 1024 * MIB, 16),
    (8, 64 * 1024 * MIB, 32),  # 4 per CPU
    (64, 8 * 1024 * MIB, 256),  # 8 GiB / 32 MiB = 256 = 4 x 64
    (64, 2 * 1024 * MIB, 64),  # memory caps it
    (2, 512 * MIB, 16),
    (2, 256 * MIB, 8),
    (4, 16 * MIB, 1),  # never below one
])
def test_derived_max_workers(cpus: int, memory: int | None, expected: int) -> None:
    assert derived_max_workers(cpus, memory) == expected


def _tree(tmp_path: Path, membership: str, files: dict[str, str]) -> tuple[str, str, str]:
    for name, text in files.items():
        path = tmp_path / "cgroup" / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    (tmp_path / "cgroup").mkdir(exist_ok=True)
    (tmp_path / "self-cgroup").write_text(membership)
    (tmp_path / "meminfo").write_text("MemTotal:       16384000 kB\nMemFree: 1 kB\n")
    return str(tmp_path / "cgroup"), str(tmp_path / "self-cgroup"), str(tmp_path / "meminfo")


def test_memory_is_memtotal_without_a_cgroup_limit(tmp_path: Path) -> None:
    root, membership, meminfo = _tree(tmp_path, "0::/app\n", {"app/memory.max": "max\n"})
    assert usable_memory(root, membership, meminfo) == 16384000 * 1024


def test_a_cgroup_v2_limit_on_an_ancestor_caps_memory(tmp_path: Path) -> None:
    root, membership, meminfo = _tree(tmp_path, "0::/pod/app\n", {
        "pod/memory.max": str(512 * MIB), "pod/app/memory.max": "max"})
    assert usable_memory(root, membership, meminfo) == 512 * MIB
    assert derived_max_workers(2, usable_memory(root, membership, meminfo)) == \
        512 * MIB // WORKER_MEMORY


def test_cgroup_v1_limit_and_its_no_limit_value(tmp_path: Path) -> None:
    root, membership, meminfo = _tree(tmp_path, "4:memory:/docker/abc\n", {
        "memory/docker/abc/memory.limit_in_bytes": str(256 * MIB),
        "memory/memory.limit_in_bytes": "9223372036854771712"})
    assert usable_memory(root, membership, meminfo) == 256 * MIB


def test_nothing_readable_is_unknown(tmp_path: Path) -> None:
    missing = str(tmp_path / "missing")
    assert usable_memory(missing, missing, missing) is None


def test_workers_above_max_workers_is_refused_naming_both_settings() -> None:
    with pytest.raises(ConfigError, match=r"workers: 9 is more than max_workers \(8, "
                                          r"--max-workers\); raise --max-workers"):
        Config.from_mapping({"workers": 9, "max_workers": 8})
    assert Config.from_mapping({"workers": 8, "max_workers": 8}).max_worker_count() == 8
    assert Config.from_mapping({"max_workers": "auto"}).max_worker_count() >= 1
    with pytest.raises(ConfigError, match="max_workers"):
        Config.from_mapping({"max_workers": 0})
