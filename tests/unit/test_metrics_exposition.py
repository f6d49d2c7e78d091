"""The text format and the rules that combine workers: sums, gauges by aggregate, retired
totals, histogram buckets; and the reason label of a worker's exit."""

from __future__ import annotations

import math

import pytest

from prefork.metrics.collector import restart_reason
from prefork.metrics.exposition import (
    Aggregation,
    WorkerSnapshot,
    escape_help,
    escape_label_value,
    format_value,
    label_text,
    render,
)
from prefork.metrics.store import Declaration, SeriesKey

HITS = Declaration("hits_total", "counter", "Hits by route.")
LEVEL = Declaration("level", "gauge", "Level.")
LATENCY = Declaration("latency_seconds", "histogram", "Latency.")


def hit(route: str) -> SeriesKey:
    return SeriesKey("hits_total", labels=label_text([("route", route)]))


def test_label_values_and_help_are_escaped() -> None:
    assert escape_label_value('say "hi"\\n\nend') == 'say \\"hi\\"\\\\n\\nend'
    assert escape_help('a "quote" \\ and\nnewline') == 'a "quote" \\\\ and\\nnewline'
    assert label_text([("path", 'C:\\x"y\n'), ("m", "GET")]) == 'path="C:\\\\x\\"y\\n",m="GET"'


def test_values_are_formatted_for_prometheus() -> None:
    assert format_value(3.0) == "3"
    assert format_value(-2.0) == "-2"
    assert format_value(0.25) == "0.25"
    assert format_value(math.inf) == "+Inf"
    assert format_value(-math.inf) == "-Inf"
    assert format_value(math.nan) == "NaN"
    assert format_value(1e20) == "1e+20"


def test_help_type_and_samples() -> None:
    text = render([(Declaration("odd_total", "counter", "Line one\nline \\two"),
                    {SeriesKey("odd_total", labels='path="/a\\"b"'): 2.0}),
                   (Declaration("empty", "gauge", "Nothing."), {})])
    assert text == ("# HELP odd_total Line one\\nline \\\\two\n"
                    "# TYPE odd_total counter\n"
                    'odd_total{path="/a\\"b"} 2\n')


def test_counters_sum_over_workers_and_retired() -> None:
    aggregation = Aggregation()
    aggregation.retire([(HITS, 0.0), (hit("a"), 5.0), (LEVEL, 0.0), (SeriesKey("level"), 9.0)])
    live = [WorkerSnapshot(10, [(HITS, 0.0), (hit("a"), 1.0), (hit("b"), 2.0)]),
            WorkerSnapshot(11, [(HITS, 0.0), (hit("a"), 3.0)])]
    text = aggregation.render(live)
    assert 'hits_total{route="a"} 9' in text
    assert 'hits_total{route="b"} 2' in text
    assert "level" not in text  # a dead worker's gauge is dropped
    assert text.startswith("# HELP hits_total Hits by route.\n# TYPE hits_total counter\n")


def test_retired_totals_accumulate_over_many_workers() -> None:
    aggregation = Aggregation()
    for _ in range(3):
        aggregation.retire([(HITS, 0.0), (hit("a"), 2.0)])
    assert 'hits_total{route="a"} 6' in aggregation.render([])


@pytest.mark.parametrize(("aggregate", "expected"), [
    ("sum", ["level 7"]),
    ("max", ["level 5"]),
    ("min", ["level 2"]),
    ("all", ['level{pid="10"} 5', 'level{pid="11"} 2']),
])
def test_gauges_combine_by_aggregate(aggregate: str, expected: list[str]) -> None:
    declaration = Declaration("level", "gauge", "Level.", aggregate)
    live = [WorkerSnapshot(10, [(declaration, 0.0), (SeriesKey("level"), 5.0)]),
            WorkerSnapshot(11, [(declaration, 0.0), (SeriesKey("level"), 2.0)])]
    lines = [line for line in Aggregation().render(live).splitlines()
             if not line.startswith("#")]
    assert lines == expected


def test_gauge_all_keeps_other_labels() -> None:
    declaration = Declaration("queue", "gauge", "", "all")
    live = [WorkerSnapshot(7, [(declaration, 0.0), (SeriesKey("queue", labels='q="x"'), 1.0)])]
    assert 'queue{q="x",pid="7"} 1' in Aggregation().render(live)


def test_histogram_buckets_become_cumulative() -> None:
    def worker(pid: int, counts: tuple[float, float, float], total: float) -> WorkerSnapshot:
        records = [(LATENCY, 0.0)]
        for le, count in zip(("0.1", "1.0", "+Inf"), counts, strict=True):
            records.append((SeriesKey("latency_seconds", "_bucket", 'm="GET"', le), count))
        records.append((SeriesKey("latency_seconds", "_sum", 'm="GET"'), total))
        return WorkerSnapshot(pid, records)

    aggregation = Aggregation()
    aggregation.retire(worker(1, (1, 0, 0), 0.05).records)
    text = aggregation.render([worker(2, (2, 3, 1), 4.5), worker(3, (0, 1, 0), 0.5)])
    assert text.splitlines()[2:] == [
        'latency_seconds_bucket{m="GET",le="0.1"} 3',
        'latency_seconds_bucket{m="GET",le="1.0"} 7',
        'latency_seconds_bucket{m="GET",le="+Inf"} 8',
        'latency_seconds_sum{m="GET"} 5.05',
        'latency_seconds_count{m="GET"} 8',
    ]
    assert text.splitlines()[:2] == ["# HELP latency_seconds Latency.",
                                     "# TYPE latency_seconds histogram"]


def test_first_declaration_wins_and_unknown_names_are_untyped() -> None:
    other = Declaration("hits_total", "gauge", "Changed meaning.")
    live = [WorkerSnapshot(1, [(HITS, 0.0), (hit("a"), 1.0)]),
            WorkerSnapshot(2, [(other, 0.0), (hit("a"), 2.0), (SeriesKey("mystery"), 4.0)])]
    text = Aggregation().render(live)
    assert "# TYPE hits_total counter" in text
    assert 'hits_total{route="a"} 3' in text
    assert "# TYPE mystery untyped\nmystery 4" in text


def test_extra_families_come_first() -> None:
    extra = [(Declaration("prefork_workers", "gauge", "Workers."),
              {SeriesKey("prefork_workers", labels='state="serving"'): 2.0})]
    text = Aggregation().render([WorkerSnapshot(1, [(HITS, 0.0), (hit("a"), 1.0)])], extra)
    assert text.index("prefork_workers") < text.index("hits_total")


@pytest.mark.parametrize(("facts", "reason"), [
    ({"crashed": True}, "crash"),
    ({"crashed": True, "aborted": True}, "timeout"),
    ({"retire_reason": "served 100 requests (max-requests)", "retiring": True}, "max-requests"),
    ({"retire_reason": "lived 60s, limit 60s (max-worker-lifetime)"}, "lifetime"),
    ({"retire_reason": "RSS 300 MB over 200 MB for 3 samples (max-worker-memory)"}, "memory"),
    ({"retire_reason": "recycle requested", "retiring": True}, "recycle"),
    ({"retiring": True}, "reload"),
    ({"removed": True}, "scale"),
    ({"stopping": True, "retiring": True}, None),
    ({}, None),
])
def test_restart_reasons(facts: dict[str, object], reason: str | None) -> None:
    given = {"crashed": False, "aborted": False, "retire_reason": None, "retiring": False,
             "removed": False, "stopping": False, **facts}
    assert restart_reason(**given) == reason  # type: ignore[arg-type]
