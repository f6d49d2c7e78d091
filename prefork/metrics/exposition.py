"""Metrics of many workers combined, in the Prometheus text format (version 0.0.4).

:class:`Aggregation` keeps what the arbiter must remember between scrapes: every declaration
seen, and the counter and histogram values of workers that are gone ("retired"), so a total
never goes backwards when a worker dies or is replaced. At scrape time it adds up the blocks of
the live workers on top:

* counters and histograms: retired + the sum over live workers;
* gauges: over live workers only (a dead worker's gauge means nothing any more), by the
  declaration's ``aggregate``: ``sum``, ``max``, ``min``, or ``all`` (one series per worker with
  a ``pid`` label).

Histograms are stored per bucket (an observation adds 1 to one bucket, not to every bucket above
it) and made cumulative here; ``_count`` is the ``+Inf`` bucket.

Rule: this module is pure. It does no I/O and reads no clock; the arbiter hands it snapshots.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from prefork.metrics.store import Declaration, Record, SeriesKey

__all__ = [
    "CONTENT_TYPE",
    "Aggregation",
    "WorkerSnapshot",
    "escape_help",
    "escape_label_value",
    "format_value",
    "label_text",
    "render",
]

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"
KINDS = ("counter", "gauge", "histogram")
AGGREGATES = ("sum", "max", "min", "all")


@dataclass(frozen=True, slots=True)
class WorkerSnapshot:
    """The records of one live worker's block with their values at scrape time."""

    pid: int
    records: Sequence[tuple[Record, float]]


Family = tuple[Declaration, dict[SeriesKey, float]]


def escape_label_value(value: str) -> str:
    """A label value inside double quotes: backslash, quote and newline escaped."""
    return value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")


def escape_help(text: str) -> str:
    """``# HELP`` text: backslash and newline escaped (quotes stay as they are)."""
    return text.replace("\\", "\\\\").replace("\n", "\\n")


def label_text(pairs: Iterable[tuple[str, str]]) -> str:
    """``name="value",...``, values escaped: the ``labels`` of a :class:`SeriesKey`."""
    return ",".join(f'{name}="{escape_label_value(value)}"' for name, value in pairs)


def format_value(value: float) -> str:
    """A sample value: whole numbers without a fraction, Go's names for the special floats."""
    if math.isnan(value):
        return "NaN"
    if math.isinf(value):
        return "+Inf" if value > 0 else "-Inf"
    if value.is_integer() and abs(value) < 1e15:
        return str(int(value))
    return repr(value)


def _bound(le: str) -> float:
    try:
        return float(le)
    except ValueError:
        return math.inf


def _join(labels: str, extra: str) -> str:
    return f"{labels},{extra}" if labels else extra


class Aggregation:
    """Declarations seen and the retired totals; see the module docstring."""

    def __init__(self) -> None:
        self.declarations: dict[str, Declaration] = {}
        self.retired: dict[SeriesKey, float] = {}

    def _declare(self, declaration: Declaration) -> None:
        # The first declaration of a name wins: a later one with another type (new code after
        # a reload) would make the sums meaningless.
        self.declarations.setdefault(declaration.name, declaration)

    def _kind(self, name: str) -> str:
        declaration = self.declarations.get(name)
        return declaration.kind if declaration is not None else "untyped"

    def retire(self, records: Iterable[tuple[Record, float]]) -> None:
        """Fold a dead worker's final values in: its counters and histograms count forever."""
        samples = []
        for record, value in records:
            if isinstance(record, Declaration):
                self._declare(record)
            else:
                samples.append((record, value))
        retired = self.retired
        for key, value in samples:
            if self._kind(key.name) != "gauge":
                retired[key] = retired.get(key, 0.0) + value

    def combine(self, live: Iterable[WorkerSnapshot]) -> list[Family]:
        """Every family with its combined series: retired values, then the live workers'."""
        snapshots = list(live)
        for snapshot in snapshots:
            for record, _ in snapshot.records:
                if isinstance(record, Declaration):
                    self._declare(record)
        series: dict[str, dict[SeriesKey, float]] = {name: {} for name in self.declarations}
        for key, value in self.retired.items():
            series.setdefault(key.name, {})[key] = value
        for snapshot in snapshots:
            for record, value in snapshot.records:
                if isinstance(record, Declaration):
                    continue
                family = series.setdefault(record.name, {})
                declaration = self.declarations.get(record.name)
                if declaration is None or declaration.kind != "gauge":
                    family[record] = family.get(record, 0.0) + value
                    continue
                aggregate = declaration.aggregate
                if aggregate == "all":
                    key = SeriesKey(record.name, record.suffix,
                                    _join(record.labels, f'pid="{snapshot.pid}"'), record.le)
                    family[key] = value
                elif record not in family:
                    family[record] = value
                elif aggregate == "max":
                    family[record] = max(family[record], value)
                elif aggregate == "min":
                    family[record] = min(family[record], value)
                else:
                    family[record] += value
        return [(self.declarations.get(name) or Declaration(name, "untyped", ""), values)
                for name, values in series.items()]

    def render(self, live: Iterable[WorkerSnapshot], extra: Iterable[Family] = ()) -> str:
        """The exposition text: ``extra`` (the arbiter's own families) first, then the workers'."""
        return render([*extra, *self.combine(live)])


def render(families: Iterable[Family]) -> str:
    """Families in the text format; a family without samples is left out."""
    lines: list[str] = []
    for declaration, values in families:
        if not values:
            continue
        name = declaration.name
        if declaration.help:
            lines.append(f"# HELP {name} {escape_help(declaration.help)}")
        lines.append(f"# TYPE {name} {declaration.kind}")
        if declaration.kind == "histogram":
            _render_histogram(lines, name, values)
            continue
        for key, value in values.items():
            labels = f"{{{key.labels}}}" if key.labels else ""
            lines.append(f"{key.name}{key.suffix}{labels} {format_value(value)}")
    lines.append("")
    return "\n".join(lines)


def _render_histogram(lines: list[str], name: str, values: dict[SeriesKey, float]) -> None:
    buckets: dict[str, dict[str, float]] = {}
    sums: dict[str, float] = {}
    for key, value in values.items():
        if key.suffix == "_bucket":
            per_bound = buckets.setdefault(key.labels, {})
            per_bound[key.le] = per_bound.get(key.le, 0.0) + value
        elif key.suffix == "_sum":
            sums[key.labels] = sums.get(key.labels, 0.0) + value
            buckets.setdefault(key.labels, {})
    for labels, per_bound in buckets.items():
        per_bound.setdefault("+Inf", 0.0)
        total = 0.0
        for le in sorted(per_bound, key=_bound):
            total += per_bound[le]
            lines.append(f'{name}_bucket{{{_join(labels, f"le={_quote(le)}")}}} '
                         f"{format_value(total)}")
        braces = f"{{{labels}}}" if labels else ""
        lines.append(f"{name}_sum{braces} {format_value(sums.get(labels, 0.0))}")
        lines.append(f"{name}_count{braces} {format_value(total)}")


def _quote(text: str) -> str:
    return f'"{escape_label_value(text)}"'
