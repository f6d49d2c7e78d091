"""Unit tests for the multi-worker scaling benchmark's pure parts: where a server of N workers
and the load generator are placed, and the Markdown its rounds fold into."""

from __future__ import annotations

import pytest

from bench.report import FAILED, OK, Cell
from bench.scaling import place, render, scenario_name, worker_count
from bench.suite import cpu_set

pytestmark = pytest.mark.timeout(10)

REFERENCES = {"asgi": "uvicorn", "wsgi": "gunicorn-sync"}


def cell(server: str, workers: int, round_number: int, rate: float, *,
         interface: str = "asgi", **extra: object) -> Cell:
    return Cell(round=round_number, scenario=scenario_name("hello", workers), server=server,
                interface=interface, outcome=str(extra.pop("outcome", OK)), rate=rate,
                requests=int(rate), **extra)  # type: ignore[arg-type]


@pytest.mark.parametrize("workers, server_cpus, shared", [
    (1, "0", False), (2, "0-1", False), (8, "0-7", False), (9, "0-15", True), (16, "0-15", True),
])
def test_a_server_gets_the_lower_half_and_wrk_the_upper(workers: int, server_cpus: str,
                                                        shared: bool) -> None:
    placement = place(workers, 16)
    assert (placement.server_cpus, placement.shared) == (server_cpus, shared)
    assert placement.load_cpus == "8-15" and placement.load_threads == 8
    if not shared:
        assert not cpu_set(placement.server_cpus) & cpu_set(placement.load_cpus)


def test_two_cpus_give_one_to_each() -> None:
    assert place(1, 2) == place(1, 2).__class__(1, "0", "1", 1, shared=False)
    assert place(2, 2).shared and place(2, 2).load_cpus == "1"


def test_names_carry_the_worker_count() -> None:
    assert scenario_name("hello-close", 16) == "hello-close-16w"
    assert worker_count("hello-close-16w") == 16


def test_the_report_gives_speed_up_and_paired_ratio_per_count() -> None:
    cells = [
        cell("prefork", 1, 0, 100.0, pss_idle_kb=30 * 1024), cell("uvicorn", 1, 0, 50.0),
        cell("prefork", 1, 1, 120.0), cell("uvicorn", 1, 1, 40.0),
        cell("prefork", 4, 0, 400.0), cell("uvicorn", 4, 0, 100.0),
        cell("prefork", 4, 1, 360.0), cell("uvicorn", 4, 1, 180.0),
        cell("prefork-wsgi", 1, 0, 90.0, interface="wsgi"),
        cell("gunicorn-sync", 1, 0, 0.0, interface="wsgi", outcome=FAILED, reason="no start"),
    ]
    text = render(cells, "hello", REFERENCES, ["prefork", "uvicorn", "prefork-wsgi",
                                               "gunicorn-sync"],
                  frozenset({4}), ["CPU: test"], ["method"], smoke=False)
    asgi, wsgi = text[text.index("## ASGI"):text.index("## WSGI")], text[text.index("## WSGI"):]
    rates, memory = asgi.split("Memory:")
    rows = {line.split(" | ")[0]: line for line in rates.splitlines() if line.startswith("| ")}
    # prefork: medians 110 and 380 (3.5x its one worker); ratios 2.0, 3.0 and 4.0, 2.0
    assert rows["| 1"] == "| 1 | 110 (1.0x) | 45 (1.0x) | **2.50** (2.00-3.00) |"
    assert rows["| 4 (shared)"] == "| 4 (shared) | 380 (3.5x) | 140 (3.1x) | **3.00** (2.00-4.00) |"
    assert "| 1 | 30.0 | — |" in memory and "| 4 | — | — |" in memory
    assert "failed: no start" in wsgi and "| 1 | 90 (1.0x) |" in wsgi
    assert "Smoke run" not in text and "- CPU: test" in text
