"""Unit tests for the benchmark suite's pure parts: bench.report's folding of rounds (medians,
paired ratios, failures) and its Markdown, the server matrix, and the apps the scenarios serve
(called in-process: each must answer what the suite's pre-load check expects).
"""

from __future__ import annotations

import asyncio
import dataclasses
import importlib
import io
import json
from collections.abc import Iterable
from pathlib import Path
from typing import Any
from wsgiref.util import setup_testing_defaults

import pytest

from bench import report, servers
from bench.report import FAILED, MISSING, OK, Cell, Context
from bench.scenarios import SCENARIOS, Scenario
from bench.suite import cpu_set, describe_commands, plan, rotated

pytestmark = pytest.mark.timeout(10)

REFERENCES = {"asgi": "uvicorn", "wsgi": "gunicorn-sync"}


def cell(server: str, round_number: int, rate: float, *, scenario: str = "hello",
         interface: str = "asgi", **extra: Any) -> Cell:
    return Cell(round=round_number, scenario=scenario, server=server, interface=interface,
                outcome=extra.pop("outcome", OK), rate=rate, requests=int(rate), **extra)


def only_table(cells: list[Cell]) -> report.Table:
    tables = report.summarize(cells, REFERENCES)
    assert len(tables) == 1
    return tables[0]


# --- folding the rounds --------------------------------------------------------------------------

def test_ratio_is_the_median_of_per_round_ratios_not_a_ratio_of_medians() -> None:
    # The machine drifts: the reference was fast in round 0, slow in round 1. Pairing by round
    # gives 1/3, 2 and 1.5 (median 1.5); the medians alone would say 200/200 = 1.0.
    table = only_table([
        cell("prefork", 0, 100), cell("uvicorn", 0, 300),
        cell("prefork", 1, 200), cell("uvicorn", 1, 100),
        cell("prefork", 2, 300), cell("uvicorn", 2, 200),
    ])
    row = table.row("prefork")
    assert row is not None
    assert row.rate == 200
    assert row.ratio == pytest.approx(1.5)
    assert (row.ratio_low, row.ratio_high) == (pytest.approx(1 / 3), pytest.approx(2.0))
    assert table.reference == "uvicorn"


def test_rounds_where_the_reference_failed_are_left_out_of_the_ratio() -> None:
    table = only_table([
        cell("prefork", 0, 100), cell("uvicorn", 0, 50),
        cell("prefork", 1, 100), cell("uvicorn", 1, 0, outcome=FAILED, reason="boom"),
        cell("prefork", 2, 100), cell("uvicorn", 2, 100),
    ])
    row = table.row("prefork")
    assert row is not None and row.rounds == 3
    assert row.ratio == pytest.approx(1.5)
    assert (row.ratio_low, row.ratio_high) == (pytest.approx(1.0), pytest.approx(2.0))
    reference = table.row("uvicorn")
    assert reference is not None and reference.outcome == OK and reference.rounds == 2
    assert reference.reason == "failed in 1 of 3 rounds: boom"


def test_latency_memory_and_startup_are_medians_and_errors_add_up() -> None:
    table = only_table([
        cell("prefork", 0, 10, errors=1, p50_ms=1.0, p99_ms=9.0, startup_ms=300,
             worker_idle_rss_kb=20_000, worker_peak_rss_kb=21_000, master_peak_rss_kb=None),
        cell("prefork", 1, 20, errors=0, p50_ms=2.0, p99_ms=7.0, startup_ms=100,
             worker_idle_rss_kb=22_000, worker_peak_rss_kb=23_000, master_peak_rss_kb=None),
        cell("prefork", 2, 30, errors=4, p50_ms=3.0, p99_ms=8.0, startup_ms=200,
             worker_idle_rss_kb=21_000, worker_peak_rss_kb=25_000, master_peak_rss_kb=None),
    ])
    row = table.row("prefork")
    assert row is not None
    assert (row.rate, row.p50_ms, row.p99_ms, row.startup_ms) == (20, 2.0, 8.0, 200)
    assert (row.worker_idle_rss_kb, row.worker_peak_rss_kb) == (21_000, 23_000)
    assert row.master_peak_rss_kb is None
    assert (row.errors, row.requests) == (5, 60)
    assert row.ratio is None  # no reference ran


def test_a_server_that_never_ran_is_failed_or_missing_with_its_reason() -> None:
    table = only_table([
        cell("uvicorn", 0, 100),
        cell("granian", 0, 0, outcome=MISSING, reason="no bench/venv/bin/granian"),
        cell("hypercorn", 0, 0, outcome=FAILED, reason="exited with status 3: ImportError"),
        cell("uvicorn", 1, 100),
        cell("granian", 1, 0, outcome=MISSING, reason="no bench/venv/bin/granian"),
        cell("hypercorn", 1, 0, outcome=FAILED, reason="exited with status 3: ImportError"),
    ])
    granian, hypercorn = table.row("granian"), table.row("hypercorn")
    assert granian is not None and granian.outcome == MISSING and granian.rate is None
    assert hypercorn is not None and hypercorn.outcome == FAILED
    assert hypercorn.reason == "exited with status 3: ImportError"  # said once, not per round


def test_tables_split_by_interface_each_with_its_own_reference() -> None:
    tables = report.summarize([
        cell("prefork", 0, 100), cell("uvicorn", 0, 50),
        cell("prefork-wsgi", 0, 30, interface="wsgi"),
        cell("gunicorn-sync", 0, 10, interface="wsgi"),
    ], REFERENCES)
    assert [(t.scenario, t.interface, t.reference) for t in tables] == [
        ("hello", "asgi", "uvicorn"), ("hello", "wsgi", "gunicorn-sync")]
    wsgi_row = tables[1].row("prefork-wsgi")
    assert wsgi_row is not None and wsgi_row.ratio == pytest.approx(3.0)


def test_a_scenario_the_reference_does_not_run_is_measured_against_its_own() -> None:
    tables = report.summarize([
        cell("prefork", 0, 30, scenario="h2-hello"), cell("granian", 0, 60, scenario="h2-hello"),
        cell("prefork", 0, 100), cell("uvicorn", 0, 50), cell("granian", 0, 80),
    ], REFERENCES, scenario_references={"h2-hello": "granian"})
    assert [(t.scenario, t.reference) for t in tables] == [("h2-hello", "granian"),
                                                           ("hello", "uvicorn")]
    prefork = tables[0].row("prefork")
    assert prefork is not None and prefork.ratio == pytest.approx(0.5)


def test_rows_follow_the_given_server_order() -> None:
    cells = [cell("uvicorn", 0, 1), cell("granian", 0, 1), cell("prefork", 0, 1)]
    table = report.summarize(cells, REFERENCES, server_order=["prefork", "uvicorn"])[0]
    assert [row.server for row in table.rows] == ["prefork", "uvicorn", "granian"]


def test_cells_survive_the_json_round_trip_and_unknown_keys_are_dropped() -> None:
    original = cell("prefork", 2, 123.5, p99_ms=4.5, pss_idle_kb=30_000, client_cpu=0.4)
    data = {**dataclasses.asdict(original), "added_by_a_later_version": 1}
    assert Cell.from_json(data) == original


# --- Markdown ------------------------------------------------------------------------------------

def context(**overrides: Any) -> Context:
    base: dict[str, Any] = {
        "scenario_titles": {"hello": "Hello world", "websocket": "WebSocket echo"},
        "scenario_notes": {"hello-2w": "Contaminated."},
        "websocket_scenarios": frozenset({"websocket"}),
        "contaminated_scenarios": frozenset({"hello-2w"}),
        "headliners": {"asgi": "prefork", "wsgi": "prefork-wsgi"},
        "commands": {"prefork": "python -m prefork APP"},
    }
    return Context(**{**base, **overrides})


def rendered(cells: list[Cell], **overrides: Any) -> str:
    return report.render(report.summarize(cells, REFERENCES), context(**overrides))


def table_line(markdown: str, server: str) -> str:
    lines = [line for line in markdown.splitlines() if line.startswith(f"| {server} |")]
    assert lines, f"no row for {server}"
    return lines[-1]  # the scenario table comes after the memory table


def test_scenario_table_shows_rate_ratio_latency_memory_and_startup() -> None:
    markdown = rendered([
        cell("prefork", 0, 12_000, p50_ms=1.234, p99_ms=5.678, startup_ms=412.4,
             worker_idle_rss_kb=25_600, worker_peak_rss_kb=26_624, master_peak_rss_kb=28_672),
        cell("uvicorn", 0, 10_000),
        cell("prefork", 1, 13_000), cell("uvicorn", 1, 10_000),
    ])
    assert "### Hello world — ASGI (`hello`)" in markdown
    assert ("| server | req/s | vs uvicorn | CPU µs/req (user + sys) | CPU ratio | p50 ms | "
            "p99 ms | errors |") in markdown
    line = table_line(markdown, "prefork")
    assert "| 12,500 | 1.25 (1.20-1.30) |" in line
    assert "| 25.0 / 26.0 | 28.0 | 412 |" in line
    assert "| 1.00 (reference) |" in table_line(markdown, "uvicorn")


def test_failed_and_missing_servers_are_marked_and_their_reasons_listed() -> None:
    markdown = rendered([
        cell("uvicorn", 0, 100),
        cell("granian", 0, 0, outcome=MISSING, reason="no bench/venv/bin/granian"),
        cell("hypercorn", 0, 0, outcome=FAILED, reason="answered 500 | with 0 bytes"),
    ])
    assert "| granian | **not installed** | — |" in markdown
    assert "| hypercorn | **failed to run** | — |" in markdown
    assert "- hypercorn: answered 500 \\| with 0 bytes" in markdown


def test_errors_show_their_share_of_requests() -> None:
    markdown = rendered([cell("prefork", 0, 999, errors=1)])
    assert "| 1 (0.1%) |" in table_line(markdown, "prefork")


def test_headline_gives_each_interfaces_headliner_against_its_reference() -> None:
    markdown = rendered([
        cell("prefork", 0, 200), cell("uvicorn", 0, 100),
        cell("prefork-wsgi", 0, 90, interface="wsgi"),
        cell("gunicorn-sync", 0, 30, interface="wsgi"),
        cell("prefork", 0, 50, scenario="hello-2w"), cell("uvicorn", 0, 50, scenario="hello-2w"),
    ])
    headline = markdown.split("## Headline ratios")[1].split("##")[0]
    assert "| hello | ASGI | prefork | 200 req/s | uvicorn | 2.00 | — |" in headline
    assert "| hello | WSGI | prefork-wsgi | 90 req/s | gunicorn-sync | 3.00 | — |" in headline
    assert "| hello-2w ‡ | ASGI |" in headline
    assert "‡ load generator and server share the cores" in headline


def test_cpu_per_request_is_shown_split_and_paired_by_round_like_the_rate() -> None:
    # Round 0: prefork 20 µs, uvicorn 40 µs (2.0); round 1: 30 against 45 (1.5); round 2:
    # uvicorn failed, so prefork's 10 µs is in its median CPU but in no ratio.
    table = only_table([
        cell("prefork", 0, 100, cpu_user_us=12.0, cpu_system_us=8.0),
        cell("uvicorn", 0, 50, cpu_user_us=25.0, cpu_system_us=15.0),
        cell("prefork", 1, 100, cpu_user_us=20.0, cpu_system_us=10.0),
        cell("uvicorn", 1, 50, cpu_user_us=30.0, cpu_system_us=15.0),
        cell("prefork", 2, 100, cpu_user_us=6.0, cpu_system_us=4.0),
        cell("uvicorn", 2, 0, outcome=FAILED, reason="crashed"),
    ])
    row = table.row("prefork")
    assert row is not None
    assert (row.cpu_user_us, row.cpu_system_us) == (12.0, 8.0)
    assert row.cpu_ratio == pytest.approx(1.75)
    assert (row.cpu_ratio_low, row.cpu_ratio_high) == (pytest.approx(1.5), pytest.approx(2.0))
    markdown = report.render(report.summarize([
        cell("prefork", 0, 100, cpu_user_us=12.0, cpu_system_us=8.0),
        cell("uvicorn", 0, 50, cpu_user_us=25.0, cpu_system_us=15.0)], REFERENCES),
        Context(headliners={"asgi": "prefork"}))
    assert "| 20.0 (12.0 + 8.0) | 2.00 |" in table_line(markdown, "prefork")
    headline = markdown.split("## Headline ratios")[1].split("##")[0]
    assert "| hello | ASGI | prefork | 100 req/s | uvicorn | 2.00 | 2.00 |" in headline


def test_cpu_is_dash_where_it_was_not_measured() -> None:
    row = only_table([cell("prefork", 0, 100), cell("uvicorn", 0, 50)]).row("prefork")
    assert row is not None and row.cpu_ratio is None
    assert report.format_cpu(row) == "—"


def test_websocket_tables_count_messages_and_show_the_clients_cpu() -> None:
    markdown = rendered([cell("prefork", 0, 6000, scenario="websocket", client_cpu=0.45)])
    assert "| server | msg/s |" in markdown and "client CPU |" in markdown
    assert "CPU µs/msg (user + sys)" in markdown
    assert table_line(markdown, "prefork").endswith("| 45% |")


def test_memory_section_joins_one_worker_figures_with_two_workers_pss() -> None:
    markdown = rendered([
        cell("prefork", 0, 1, worker_idle_rss_kb=25_600, startup_ms=400),
        cell("prefork", 0, 1, scenario="hello-2w", pss_idle_kb=40_960, pss_loaded_kb=41_984),
    ])
    memory = markdown.split("## Memory and start-up")[1].split("##")[0]
    assert "| prefork | ASGI | 25.0 | — | — | 400 | 40.0 / 41.0 |" in memory


def test_smoke_runs_say_so_and_machine_and_commands_are_listed() -> None:
    markdown = rendered([cell("prefork", 0, 1)], smoke=True,
                        machine=["CPU: test, 2 logical CPUs"])
    assert "> **Smoke run**" in markdown
    assert "- CPU: test, 2 logical CPUs" in markdown
    assert "- prefork: `python -m prefork APP`" in markdown
    assert "Smoke run" not in rendered([cell("prefork", 0, 1)])


# --- the suite's plan and the server matrix ------------------------------------------------------

def test_rotation_puts_every_server_in_every_position_over_the_rounds() -> None:
    group = list(servers.SERVERS[:4])
    orders = [rotated(group, number) for number in range(4)]
    for position in range(4):
        assert {order[position].name for order in orders} == {s.name for s in group}


def test_plan_runs_each_server_only_where_its_interface_has_an_app() -> None:
    by_name = {scenario.name: group for scenario, group in plan(list(SCENARIOS),
                                                                list(servers.SERVERS))}
    assert {s.interface for s in by_name["flask"]} == {"wsgi"}
    assert {s.interface for s in by_name["fastapi"]} == {"asgi"}
    assert "prefork-roundrobin" in {s.name for s in by_name["hello-close"]}
    assert "prefork-roundrobin" not in {s.name for s in by_name["body-64k"]}
    assert {s.name for s in by_name["websocket"]} >= {"prefork", "uvicorn", "granian",
                                                      "hypercorn", "gunicorn-asgi"}


def test_http2_scenarios_run_only_the_servers_that_serve_it() -> None:
    by_name = {scenario.name: group for scenario, group in plan(list(SCENARIOS),
                                                                list(servers.SERVERS))}
    for name in ("h2-hello", "h2-hello-1c"):
        assert {s.name for s in by_name[name]} == {"prefork", "granian", "hypercorn"}
    assert "uvicorn" in {s.name for s in by_name["hello"]}
    lines = describe_commands(list(servers.SERVERS), Path("/nowhere/bin"))
    assert "--http2" in lines["prefork, HTTP/2"] and "--http2" not in lines["prefork"]
    assert "--http auto" in lines["granian, HTTP/2"] and "--http 1" in lines["granian"]
    assert "hypercorn-h2.toml" in lines["hypercorn, HTTP/2"]
    assert "uvicorn, HTTP/2" not in lines


def test_server_selection_by_name_and_group_and_unknown_names() -> None:
    assert [s.name for s in servers.select(["uvicorn", "prefork"])] == ["prefork", "uvicorn"]
    assert {s.interface for s in servers.select(["wsgi"])} == {"wsgi"}
    assert len(servers.select(["all", "uvicorn"])) == len(servers.SERVERS)
    with pytest.raises(ValueError, match="unknown server 'nginx'"):
        servers.select(["nginx"])


def test_command_lines_in_the_report_use_placeholders() -> None:
    lines = describe_commands(list(servers.SERVERS), Path("/nowhere/bin"))
    assert lines["uvicorn"].startswith("/nowhere/bin/uvicorn APP --host 127.0.0.1 --port PORT")
    assert "--workers N" in lines["prefork"] and "--dispatch reuseport" in lines["prefork"]
    assert "--worker-class sync" in lines["gunicorn-sync"]


def test_cpu_lists_read_as_taskset_does() -> None:
    assert cpu_set("1") == {1}
    assert cpu_set("0-2,5") == {0, 1, 2, 5}
    with pytest.raises(ValueError):
        cpu_set("one")


# --- the apps answer what the scenarios check ----------------------------------------------------

def load(spec: str) -> Any:
    module, _, attribute = spec.partition(":")
    return getattr(importlib.import_module(module), attribute)


def http_scope(scenario: Scenario, path: str, method: str) -> dict[str, Any]:
    headers = [(name.lower().encode(), value.encode())
               for name, value in scenario.request_headers().items()]
    return {"type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1",
            "method": method, "scheme": "http", "path": path, "raw_path": path.encode(),
            "query_string": b"", "root_path": "", "headers": [(b"host", b"bench"), *headers],
            "client": ("127.0.0.1", 40000), "server": ("127.0.0.1", 8000)}


def call_asgi(app: Any, scope: dict[str, Any], body: bytes) -> tuple[int, bytes]:
    inbox = [{"type": "http.request", "body": body, "more_body": False}]
    sent: list[dict[str, Any]] = []

    async def receive() -> dict[str, Any]:
        return inbox.pop(0) if inbox else {"type": "http.disconnect"}

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    asyncio.run(app(scope, receive, send))
    return sent[0]["status"], b"".join(m.get("body", b"") for m in sent[1:])


def call_wsgi(app: Any, scenario: Scenario, path: str, method: str) -> tuple[int, bytes]:
    body = scenario.body.encode() if method == scenario.method else b""
    environ: dict[str, Any] = {"REQUEST_METHOD": method, "PATH_INFO": path,
                               "CONTENT_LENGTH": str(len(body)),
                               "wsgi.input": io.BytesIO(body)}
    if scenario.content_type:
        environ["CONTENT_TYPE"] = scenario.content_type
    setup_testing_defaults(environ)
    statuses: list[str] = []

    def start_response(status: str, headers: list[tuple[str, str]], *_: Any) -> None:
        statuses.append(status)

    result: Iterable[bytes] = app(environ, start_response)
    answer = b"".join(result)
    if hasattr(result, "close"):
        result.close()
    return int(statuses[0].split()[0]), answer


HTTP_CASES = [(scenario, interface) for scenario in SCENARIOS if not scenario.websocket
              for interface in scenario.apps]


@pytest.mark.parametrize(("scenario", "interface"), HTTP_CASES,
                         ids=[f"{s.name}-{i}" for s, i in HTTP_CASES])
def test_each_app_answers_its_request_and_readiness_probe(scenario: Scenario,
                                                          interface: str) -> None:
    app = load(scenario.apps[interface])
    for path, method in ((scenario.path, scenario.method), (scenario.ready_path, "GET")):
        if interface == "asgi":
            body = scenario.body.encode() if method == scenario.method else b""
            status, answer = call_asgi(app, http_scope(scenario, path, method), body)
        else:
            status, answer = call_wsgi(app, scenario, path, method)
        assert status == 200, (path, method)
        if method == scenario.method and scenario.expect_length is not None:
            assert len(answer) == scenario.expect_length
        if method == "POST" and scenario.content_type == "application/json":
            assert json.loads(answer) == json.loads(scenario.body)  # validated and sent back
        elif method == "POST":
            assert answer == scenario.body.encode()


def test_websocket_app_echoes_text_and_bytes() -> None:
    app = load(next(s for s in SCENARIOS if s.websocket).apps["asgi"])
    inbox = [{"type": "websocket.connect"}, {"type": "websocket.receive", "text": "hi"},
             {"type": "websocket.receive", "bytes": b"\x00\x01"},
             {"type": "websocket.disconnect", "code": 1000}]
    sent: list[dict[str, Any]] = []

    async def receive() -> dict[str, Any]:
        return inbox.pop(0)

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    asyncio.run(app({"type": "websocket", "path": "/"}, receive, send))
    assert sent == [{"type": "websocket.accept"}, {"type": "websocket.send", "text": "hi"},
                    {"type": "websocket.send", "bytes": b"\x00\x01"}]


def test_a_progress_line_gives_the_figures_or_the_reason() -> None:
    from bench.suite import cell_line

    ran = cell("prefork", 0, 12345.4, p99_ms=3.5)
    failed = cell("uvicorn", 1, 0.0, outcome=FAILED, reason="no 200 within 10 s")
    assert cell_line(ran).split() == ["round", "1", "hello", "prefork", "12345/s", "p99", "3.50",
                                      "ms", "errors", "0"]
    assert cell_line(failed).endswith("FAILED: no 200 within 10 s")
