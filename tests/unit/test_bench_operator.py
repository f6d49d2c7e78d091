"""Unit tests for the operator-facing benchmarks' pure parts: the nginx configuration of each
upstream mode and the Markdown that the nginx, memory and start-up runs fold into."""

from __future__ import annotations

from pathlib import Path

import pytest

from bench import footprint, nginx_proxy, startup
from bench.report import FAILED, OK, Cell

pytestmark = pytest.mark.timeout(10)


def test_the_default_upstream_is_nginx_own_http_1_0_without_a_pool(tmp_path: Path) -> None:
    text = nginx_proxy.nginx_config("close", 8001, 9001, tmp_path, 64, as_root=False)
    assert "server 127.0.0.1:8001;" in text and "listen 127.0.0.1:9001;" in text
    assert "proxy_pass http://backend;" in text
    assert "keepalive 64" not in text and "proxy_http_version" not in text
    assert "user root" not in text


def test_the_keepalive_upstream_pools_as_many_connections_as_wrk_opens(tmp_path: Path) -> None:
    text = nginx_proxy.nginx_config("keepalive", 8001, 9001, tmp_path, 48, as_root=True)
    upstream = text[text.index("upstream backend"):text.index("server {")]
    assert "keepalive 48;" in upstream
    assert "proxy_http_version 1.1;" in text and 'proxy_set_header Connection "";' in text
    assert text.startswith("user root;")


def test_an_unknown_mode_is_refused(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="upstream mode"):
        nginx_proxy.nginx_config("pipelined", 1, 2, tmp_path, 1, as_root=False)


def test_nginx_gets_a_cpu_of_its_own_only_where_there_are_three() -> None:
    assert nginx_proxy.default_nginx_cpus(2) == "0"
    assert nginx_proxy.default_nginx_cpus(16) == "2"
    assert nginx_proxy.Placement("1", "0", "0").nginx_shares_load
    assert not nginx_proxy.Placement("0", "2", "1").nginx_shares_load


def _cell(server: str, mode: str, round_number: int, rate: float, *, interface: str = "asgi",
          outcome: str = OK, reason: str = "") -> Cell:
    return Cell(round=round_number, scenario=f"nginx-{mode}", server=server, interface=interface,
                outcome=outcome, reason=reason, rate=rate, requests=int(rate), p99_ms=2.0,
                cpu_user_us=10.0, cpu_system_us=5.0)


def test_the_nginx_report_pairs_prefork_with_each_peer_by_round() -> None:
    cells = [_cell("prefork", "close", 0, 300.0), _cell("uvicorn", "close", 0, 100.0),
             _cell("prefork", "close", 1, 200.0), _cell("uvicorn", "close", 1, 200.0),
             _cell("gunicorn-uvicorn-worker", "close", 0, 0.0, outcome=FAILED, reason="no")]
    text = nginx_proxy.render(cells, ["prefork", "uvicorn", "gunicorn-uvicorn-worker"],
                              ["CPU: test"], ["method"], smoke=True)
    rows = {line.split(" | ")[0]: line for line in text.splitlines() if line.startswith("| ")}
    # per-round ratios 3.0 and 1.0: the median 2.0, where a ratio of medians would say 1.0
    assert "**2.00** (1.00-3.00)" in rows["| uvicorn"]
    assert "| 1.00 (1.00-1.00) |" in rows["| uvicorn"]  # the same CPU per request
    assert "15.0" in rows["| prefork"]
    assert "failed: no" in rows["| gunicorn-uvicorn-worker"]
    assert "upstream `keepalive`" not in text  # no cell ran in that mode
    assert "ASGI hello" in text and "WSGI hello" not in text


def _reading(server: str, workers: int, total_mb: float, round_number: int = 0,
             outcome: str = "ok") -> footprint.Reading:
    kb = int(total_mb * 1024)
    return footprint.Reading(round=round_number, server=server, workers=workers,
                             outcome=outcome, total_pss_kb=kb if outcome == "ok" else None,
                             master_pss_kb=1024, worker_pss_kb=(1024,) * workers,
                             idle_pss_kb=kb, workers_served=workers)


def test_the_memory_report_gives_totals_and_prefork_over_each_peer() -> None:
    readings = [_reading("prefork", 2, 30.0), _reading("prefork", 2, 34.0, 1),
                _reading("gunicorn-sync", 2, 40.0), _reading("uvicorn", 2, 0.0,
                                                              outcome="failed: no start")]
    text = footprint.render(readings, ["prefork", "prefork-wsgi", "gunicorn-sync", "uvicorn"],
                            [2], ["CPU: test"], ["method"], smoke=False)
    totals = text[text.index("## Total PSS"):text.index("`prefork`'s total")]
    assert "| 2 | 32.0 | 40.0 | failed: no start |" in totals
    ratios = text[text.index("`prefork`'s total"):text.index("## The parts")]
    assert "| 2 | 0.80 | — |" in ratios
    assert "prefork-wsgi" not in text


def test_the_start_up_report_gives_median_and_range_per_configuration() -> None:
    name = next(iter(startup.CONFIGURATIONS))
    starts = [startup.Start(0, name, "ok", 100.0, 50.0), startup.Start(1, name, "ok", 140.0, 70.0),
              startup.Start(2, name, "ok", 120.0, 60.0),
              startup.Start(0, "uvicorn --workers 4", "failed: exited")]
    text = startup.render(starts, ["CPU: test"], repeat=3)
    assert f"| {name} | 120 | 100 | 140 | 60 | 3 |" in text
    assert "| uvicorn --workers 4 | failed: exited | | | | 0 |" in text
    assert "Smoke run" in text
