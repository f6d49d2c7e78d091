"""Turn the suite's per-round measurements into tables: medians, paired ratios, Markdown. Pure.

A ``Cell`` is one server in one scenario in one round, exactly as ``RESULTS.json`` stores it.
``summarize`` folds the rounds: the median rate, p50 and p99 latency, start-up time and memory,
the summed errors, and the **paired ratio** against the interface's reference server: in each
round where both ran, this server's rate over the reference's, then the median of those ratios
and their range. Pairing by round cancels the drift that a shared or throttled machine shows
between rounds (the rounds rotate the server order for the same reason), which a ratio of
medians would not. ``render`` writes the Markdown of ``bench/RESULTS.md``.

Nothing here reads files, clocks or processes, so it is unit-tested on made-up cells.
"""

from __future__ import annotations

import statistics
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field, fields
from typing import Any

OK, FAILED, MISSING = "ok", "failed", "missing"


@dataclass(frozen=True)
class Cell:
    """One server, one scenario, one round."""

    round: int
    scenario: str
    server: str
    interface: str
    outcome: str  # OK, FAILED or MISSING
    reason: str = ""
    rate: float = 0.0  # requests/s, or echoed messages/s for WebSocket
    requests: int = 0
    errors: int = 0
    p50_ms: float | None = None
    p99_ms: float | None = None
    startup_ms: float | None = None
    worker_idle_rss_kb: int | None = None  # the largest worker's VmRSS before any load
    worker_peak_rss_kb: int | None = None  # the largest worker's VmHWM after the load
    master_peak_rss_kb: int | None = None  # None when the server runs in one process
    pss_idle_kb: int | None = None  # all of the server's processes, before any load
    pss_loaded_kb: int | None = None  # all of the server's processes, after the load
    workers_seen: int = 0
    client_cpu: float | None = None  # WebSocket client's CPU share (near 1.0: client-bound)
    cpu_user_us: float | None = None  # the server's CPU per request (bench.cputime), user
    cpu_system_us: float | None = None  # and kernel

    @property
    def cpu_us(self) -> float | None:
        """The server's CPU microseconds per request, user and kernel together."""
        if self.cpu_user_us is None or self.cpu_system_us is None:
            return None
        return self.cpu_user_us + self.cpu_system_us

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Cell:
        """A cell from its ``RESULTS.json`` form; unknown keys (from newer runs) are dropped."""
        names = {f.name for f in fields(cls)}
        return cls(**{key: value for key, value in data.items() if key in names})


@dataclass(frozen=True)
class Row:
    """One server in one scenario, over all rounds."""

    server: str
    outcome: str  # OK if any round ran; else FAILED or MISSING
    reason: str = ""  # why it failed, in every round or in some
    rounds: int = 0  # rounds that ran
    rate: float | None = None
    ratio: float | None = None  # median of per-round ratios against the reference
    ratio_low: float | None = None
    ratio_high: float | None = None
    p50_ms: float | None = None
    p99_ms: float | None = None
    errors: int = 0
    requests: int = 0
    startup_ms: float | None = None
    worker_idle_rss_kb: float | None = None
    worker_peak_rss_kb: float | None = None
    master_peak_rss_kb: float | None = None
    pss_idle_kb: float | None = None
    pss_loaded_kb: float | None = None
    client_cpu: float | None = None
    cpu_user_us: float | None = None
    cpu_system_us: float | None = None
    # the reference's CPU per request over this server's, paired by round like ``ratio``:
    # above 1 when this server spends less CPU on a request
    cpu_ratio: float | None = None
    cpu_ratio_low: float | None = None
    cpu_ratio_high: float | None = None


@dataclass(frozen=True)
class Table:
    """A scenario on one interface: its rows, in server order."""

    scenario: str
    interface: str
    reference: str | None
    rows: tuple[Row, ...]

    def row(self, server: str) -> Row | None:
        """The row of ``server``, if it took part."""
        return next((row for row in self.rows if row.server == server), None)


@dataclass(frozen=True)
class Context:
    """What the report says around the tables."""

    title: str = "Benchmark results"
    smoke: bool = False
    machine: Sequence[str] = ()  # one line each: CPU, cores, kernel, versions
    method: Sequence[str] = ()  # one line each
    scenario_titles: dict[str, str] = field(default_factory=dict)
    scenario_notes: dict[str, str] = field(default_factory=dict)
    websocket_scenarios: frozenset[str] = frozenset()
    contaminated_scenarios: frozenset[str] = frozenset()
    headliners: dict[str, str] = field(default_factory=dict)  # interface -> server
    commands: dict[str, str] = field(default_factory=dict)  # server -> command line
    memory_scenario: str = "hello"
    pss_scenario: str = "hello-2w"


def _median(values: Iterable[float | int | None]) -> float | None:
    present = [value for value in values if value is not None]
    return statistics.median(present) if present else None


def _first_seen(items: Iterable[str]) -> list[str]:
    return list(dict.fromkeys(items))


def summarize_row(cells: Sequence[Cell], reference: Sequence[Cell] | None) -> Row:
    """Fold one server's cells in one scenario (and the reference's, for the paired ratio)."""
    ran = [cell for cell in cells if cell.outcome == OK]
    failures = [cell for cell in cells if cell.outcome != OK]
    reason = ""
    if failures:
        reasons = "; ".join(_first_seen(cell.reason for cell in failures if cell.reason))
        reason = (reasons if not ran
                  else f"failed in {len(failures)} of {len(cells)} rounds: {reasons}")
    if not ran:
        outcome = MISSING if all(cell.outcome == MISSING for cell in cells) else FAILED
        return Row(server=cells[0].server, outcome=outcome, reason=reason)
    ratios: list[float] = []
    cpu_ratios: list[float] = []
    if reference is not None:
        reference_rates = {cell.round: cell.rate for cell in reference
                           if cell.outcome == OK and cell.rate > 0}
        ratios = [cell.rate / reference_rates[cell.round] for cell in ran
                  if cell.round in reference_rates]
        reference_cpu = {cell.round: cell.cpu_us for cell in reference
                         if cell.outcome == OK and cell.cpu_us}
        cpu_ratios = [reference_cpu[cell.round] / cpu for cell in ran
                      if (cpu := cell.cpu_us) and cell.round in reference_cpu]
    return Row(
        server=cells[0].server, outcome=OK, reason=reason, rounds=len(ran),
        rate=_median(cell.rate for cell in ran),
        ratio=_median(ratios), ratio_low=min(ratios, default=None),
        ratio_high=max(ratios, default=None),
        p50_ms=_median(cell.p50_ms for cell in ran), p99_ms=_median(cell.p99_ms for cell in ran),
        errors=sum(cell.errors for cell in ran), requests=sum(cell.requests for cell in ran),
        startup_ms=_median(cell.startup_ms for cell in ran),
        worker_idle_rss_kb=_median(cell.worker_idle_rss_kb for cell in ran),
        worker_peak_rss_kb=_median(cell.worker_peak_rss_kb for cell in ran),
        master_peak_rss_kb=_median(cell.master_peak_rss_kb for cell in ran),
        pss_idle_kb=_median(cell.pss_idle_kb for cell in ran),
        pss_loaded_kb=_median(cell.pss_loaded_kb for cell in ran),
        client_cpu=_median(cell.client_cpu for cell in ran),
        cpu_user_us=_median(cell.cpu_user_us for cell in ran),
        cpu_system_us=_median(cell.cpu_system_us for cell in ran),
        cpu_ratio=_median(cpu_ratios), cpu_ratio_low=min(cpu_ratios, default=None),
        cpu_ratio_high=max(cpu_ratios, default=None),
    )


def summarize(cells: Sequence[Cell], references: dict[str, str],
              server_order: Sequence[str] = (),
              scenario_references: dict[str, str] | None = None) -> list[Table]:
    """One table per (scenario, interface), scenarios and interfaces in order of first appearance.

    Rows follow ``server_order``, then first appearance. ``references`` maps an interface to
    the server whose rate the ratio column divides by; ``scenario_references`` names another
    for a scenario the interface's reference does not run (the HTTP/2 ones).
    """
    order = _first_seen([*server_order, *(cell.server for cell in cells)])
    tables = []
    for scenario, interface in _first_seen_pairs(cells):
        group = [cell for cell in cells
                 if cell.scenario == scenario and cell.interface == interface]
        by_server = {server: [cell for cell in group if cell.server == server] for server in order}
        reference = (scenario_references or {}).get(scenario) or references.get(interface)
        reference_cells = by_server.get(reference) if reference else None
        rows = tuple(summarize_row(server_cells, reference_cells or None)
                     for server_cells in by_server.values() if server_cells)
        tables.append(Table(scenario, interface,
                            reference if reference_cells else None, rows))
    return tables


def _first_seen_pairs(cells: Sequence[Cell]) -> list[tuple[str, str]]:
    return list(dict.fromkeys((cell.scenario, cell.interface) for cell in cells))


# --- Markdown ------------------------------------------------------------------------------------

def _number(value: float | None, digits: int = 0) -> str:
    return "—" if value is None else f"{value:,.{digits}f}"


def _megabytes(kilobytes: float | None) -> str:
    return "—" if kilobytes is None else f"{kilobytes / 1024:.1f}"


def format_ratio(row: Row, reference: str | None) -> str:
    """``1.23 (1.20-1.26)``, median (range); ``1.00 (reference)``; ``—`` when unpaired."""
    return _ratio_text(row, reference, row.ratio, row.ratio_low, row.ratio_high)


def format_cpu_ratio(row: Row, reference: str | None) -> str:
    """The CPU-per-request ratio as :func:`format_ratio` writes the rate ratio."""
    return _ratio_text(row, reference, row.cpu_ratio, row.cpu_ratio_low, row.cpu_ratio_high)


def _ratio_text(row: Row, reference: str | None, ratio: float | None, low: float | None,
                high: float | None) -> str:
    if row.server == reference and row.outcome == OK:
        return "1.00 (reference)"
    if ratio is None or low is None or high is None:
        return "—"
    if low == high:  # one paired round: no range to give
        return f"{ratio:.2f}"
    return f"{ratio:.2f} ({low:.2f}-{high:.2f})"


def format_cpu(row: Row) -> str:
    """``12.3 (7.1 + 5.2)``: CPU µs per request, user + kernel; ``—`` when not measured."""
    if row.cpu_user_us is None or row.cpu_system_us is None:
        return "—"
    return (f"{row.cpu_user_us + row.cpu_system_us:.1f} "
            f"({row.cpu_user_us:.1f} + {row.cpu_system_us:.1f})")


def _errors(row: Row) -> str:
    if row.errors == 0:
        return "0"
    share = row.errors / (row.requests + row.errors) * 100 if row.requests + row.errors else 0
    return f"{row.errors:,} ({share:.2g}%)"


def _cell_text(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


def render_table(table: Table, context: Context) -> list[str]:
    """The Markdown lines of one scenario table, its heading and notes included."""
    websocket = table.scenario in context.websocket_scenarios
    unit = "msg/s" if websocket else "req/s"
    title = context.scenario_titles.get(table.scenario, table.scenario)
    lines = [f"### {title} — {table.interface.upper()} (`{table.scenario}`)", ""]
    note = context.scenario_notes.get(table.scenario)
    if note:
        lines += [f"_{note}_", ""]
    versus = f"vs {table.reference}" if table.reference else "ratio"
    per = "msg" if websocket else "req"
    header = ["server", unit, versus, f"CPU µs/{per} (user + sys)", "CPU ratio", "p50 ms",
              "p99 ms", "errors",
              "worker RSS MB (idle / peak)", "master RSS MB", "start-up ms"]
    if websocket:
        header.append("client CPU")
    lines += ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    footnotes = []
    for row in table.rows:
        if row.outcome != OK:
            label = "not installed" if row.outcome == MISSING else "failed to run"
            cells = [row.server, f"**{label}**", *["—"] * (len(header) - 2)]
            if row.reason:
                footnotes.append(f"- {row.server}: {_cell_text(row.reason)}")
        else:
            cells = [
                row.server, _number(row.rate), format_ratio(row, table.reference),
                format_cpu(row), format_cpu_ratio(row, table.reference),
                _number(row.p50_ms, 2), _number(row.p99_ms, 2), _errors(row),
                f"{_megabytes(row.worker_idle_rss_kb)} / {_megabytes(row.worker_peak_rss_kb)}",
                _megabytes(row.master_peak_rss_kb), _number(row.startup_ms),
            ]
            if websocket:
                cells.append("—" if row.client_cpu is None else f"{row.client_cpu:.0%}")
            if row.reason:
                footnotes.append(f"- {row.server}: {_cell_text(row.reason)}")
        lines.append("| " + " | ".join(cells) + " |")
    if footnotes:
        lines += ["", *footnotes]
    return [*lines, ""]


def render_headline(tables: Sequence[Table], context: Context) -> list[str]:
    """The ratios the README quotes: each interface's headliner against its reference."""
    lines = ["| scenario | interface | server | rate | reference | ratio (range) | "
             "CPU per request, ratio (range) |",
             "|---|---|---|---|---|---|---|"]
    count = 0
    for table in tables:
        headliner = context.headliners.get(table.interface)
        row = table.row(headliner) if headliner else None
        if row is None or row.outcome != OK or table.reference in (None, row.server):
            continue
        mark = " ‡" if table.scenario in context.contaminated_scenarios else ""
        unit = "msg/s" if table.scenario in context.websocket_scenarios else "req/s"
        lines.append(f"| {table.scenario}{mark} | {table.interface.upper()} | {row.server} | "
                     f"{_number(row.rate)} {unit} | {table.reference} | "
                     f"{format_ratio(row, table.reference)} | "
                     f"{format_cpu_ratio(row, table.reference)} |")
        count += 1
    if not count:
        return []
    if any(t.scenario in context.contaminated_scenarios for t in tables):
        lines += ["", "‡ load generator and server share the cores: indicative only."]
    return [*lines, ""]


def render_memory(tables: Sequence[Table], context: Context) -> list[str]:
    """Memory and start-up per server: one worker at idle and after load, and two workers' PSS."""
    one = {(t.interface, r.server): r for t in tables if t.scenario == context.memory_scenario
           for r in t.rows if r.outcome == OK}
    two = {(t.interface, r.server): r for t in tables if t.scenario == context.pss_scenario
           for r in t.rows if r.outcome == OK}
    keys = _first_seen_keys([*one, *two])
    if not keys:
        return []
    lines = ["| server | interface | worker RSS idle MB | worker peak RSS MB | master RSS MB | "
             "start-up ms | 2 workers: total PSS idle / loaded MB |",
             "|---|---|---|---|---|---|---|"]
    for interface, server in keys:
        single, double = one.get((interface, server)), two.get((interface, server))
        pss = "—" if double is None else (f"{_megabytes(double.pss_idle_kb)} / "
                                          f"{_megabytes(double.pss_loaded_kb)}")
        lines.append(" | ".join([
            f"| {server}", interface.upper(),
            _megabytes(single.worker_idle_rss_kb) if single else "—",
            _megabytes(single.worker_peak_rss_kb) if single else "—",
            _megabytes(single.master_peak_rss_kb) if single else "—",
            _number(single.startup_ms) if single else "—",
            f"{pss} |",
        ]))
    return [*lines, ""]


def _first_seen_keys(keys: Iterable[tuple[str, str]]) -> list[tuple[str, str]]:
    return list(dict.fromkeys(keys))


def render(tables: Sequence[Table], context: Context) -> str:
    """The whole ``RESULTS.md``."""
    lines = [f"# {context.title}", ""]
    if context.smoke:
        lines += ["> **Smoke run**: too short and too few rounds to quote. It shows that every "
                  "server and scenario runs and how the report reads; `make bench` on a quiet "
                  "machine writes the real figures.", ""]
    if context.machine:
        lines += ["## Machine", "", *(f"- {line}" for line in context.machine), ""]
    if context.method:
        lines += ["## Method", "", *(f"- {line}" for line in context.method), ""]
    headline = render_headline(tables, context)
    if headline:
        lines += ["## Headline ratios", "", *headline]
    memory = render_memory(tables, context)
    if memory:
        lines += ["## Memory and start-up", "",
                  f"One worker (`{context.memory_scenario}`): RSS of the largest worker at idle "
                  "(VmRSS) and its peak after the load (VmHWM), the master's peak, spawn to "
                  f"first 200. Two workers (`{context.pss_scenario}`): PSS of all the server's "
                  "processes (smaps_rollup), which counts shared pages once.", "", *memory]
    lines += ["## Scenarios", ""]
    for table in tables:
        lines += render_table(table, context)
    if context.commands:
        lines += ["## Command lines", "",
                  "`APP`, `PORT` and `N` stand for the scenario's app, the port and the worker "
                  "count.", ""]
        lines += [f"- {server}: `{command}`" for server, command in context.commands.items()]
        lines.append("")
    return "\n".join(lines)
