"""Counters, gauges and histograms for app code, and where this process's metrics go.

The API is documented in :mod:`prefork.metrics`; app code imports it from there, where it is
re-exported on first use.
"""

from __future__ import annotations

import itertools
import math
import os
import re
import threading
from abc import ABC, abstractmethod
from bisect import bisect_left
from collections.abc import Iterable, Sequence
from typing import Generic, TypeVar

from prefork.metrics.exposition import AGGREGATES, label_text
from prefork.metrics.store import Declaration, MetricBlock, SeriesKey

__all__ = ["DEFAULT_BUCKETS", "Counter", "Gauge", "Histogram"]

# Prometheus' usual request-latency buckets, in seconds.
DEFAULT_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)
RESERVED_PREFIX = "prefork_"  # the server's own metrics
_NAME = re.compile(r"[a-zA-Z_:][a-zA-Z0-9_:]*\Z")
_LABEL = re.compile(r"[a-zA-Z_][a-zA-Z0-9_]*\Z")


class _ProcessMetrics:
    """Where this process's metrics go (a worker's shared block, or a private one), and the
    names defined so far."""

    def __init__(self) -> None:
        self.block: MetricBlock | None = None
        self.definitions: dict[str, tuple[object, ...]] = {}
        self.lock = threading.Lock()  # two threads' first writes make one private block


_process = _ProcessMetrics()


def use_block(block: MetricBlock | None) -> None:
    """Send this process's metrics to ``block`` from now on (the arbiter calls it in a fresh
    worker with the block it watches; None makes the next write start a private one)."""
    _process.block = block


def current_block() -> MetricBlock:
    """This process's block, a private one made on first use outside a worker."""
    with _process.lock:
        block = _process.block
        if block is None:
            block = _process.block = MetricBlock(shared=False)
        return block


def shared_block() -> MetricBlock | None:
    """The block the arbiter reads, in a worker under ``--metrics-bind``; None elsewhere."""
    block = _process.block
    return block if block is not None and block.shared else None


def _after_fork_in_child() -> None:
    # The parent's block is the parent's (or, in the arbiter, nobody's): a worker gets its own
    # through use_block(), any other child starts a private one. A lock some other thread
    # held at the fork would stay held in the child forever: a new one.
    _process.block = None
    _process.lock = threading.Lock()


os.register_at_fork(after_in_child=_after_fork_in_child)


def _check_name(name: object) -> str:
    if not isinstance(name, str) or not _NAME.match(name):
        raise ValueError(f"invalid metric name {name!r}: use letters, digits, '_' and ':', "
                         "not starting with a digit")
    if name.startswith(RESERVED_PREFIX):
        raise ValueError(f"invalid metric name {name!r}: the prefix {RESERVED_PREFIX!r} is "
                         "reserved for prefork's own metrics")
    return name


def _check_labelnames(name: str, labelnames: Iterable[str], reserved: Sequence[str]) -> tuple[
        str, ...]:
    if isinstance(labelnames, str):
        raise ValueError(f"{name}: labelnames must be a sequence of names, not one string")
    names = tuple(labelnames)
    for label in names:
        if not isinstance(label, str) or not _LABEL.match(label) or label.startswith("__"):
            raise ValueError(f"{name}: invalid label name {label!r}: use letters, digits and "
                             "'_', not starting with a digit or '__'")
        if label in reserved:
            raise ValueError(f"{name}: the label name {label!r} is reserved here")
    if len(set(names)) != len(names):
        raise ValueError(f"{name}: duplicate label names in {names!r}")
    return names


S = TypeVar("S", bound="_Series")


class _Metric(ABC, Generic[S]):
    """What the three kinds share: the name, its labels and the series made so far, each of
    the kind's series class ``S``."""

    kind = ""

    def __init__(self, name: str, help: str, labelnames: Iterable[str] = (), *,
                 aggregate: str = "sum", reserved: Sequence[str] = (),
                 signature: tuple[object, ...] = ()) -> None:
        _check_name(name)
        if not isinstance(help, str):
            raise ValueError(f"{name}: help must be a string")
        self.name = name
        self.labelnames = _check_labelnames(name, labelnames, reserved)
        self.declaration = Declaration(name, self.kind, help, aggregate)
        defined = (self.kind, self.labelnames, aggregate, *signature)
        previous = _process.definitions.setdefault(name, defined)
        if previous != defined:
            raise ValueError(f"metric {name!r} is already defined differently in this process "
                             f"({previous[0]} with labels {previous[1]!r})")
        self._series: dict[tuple[str, ...], S] = {}

    def labels(self, *values: object, **named: object) -> S:
        """The series for these label values (by position or by name)."""
        return self._labelled(values, named)

    def _labelled(self, values: tuple[object, ...], named: dict[str, object]) -> S:
        if values and named:
            raise ValueError(f"{self.name}: give label values by position or by name, not both")
        if named:
            if set(named) != set(self.labelnames):
                raise ValueError(f"{self.name}: expected labels {self.labelnames!r}, got "
                                 f"{tuple(named)!r}")
            values = tuple(named[label] for label in self.labelnames)
        if len(values) != len(self.labelnames):
            raise ValueError(f"{self.name}: expected {len(self.labelnames)} label values "
                             f"{self.labelnames!r}, got {len(values)}")
        key = tuple(str(value) for value in values)
        series = self._series.get(key)
        if series is None:
            series = self._series.setdefault(key, self._make_series(key))
        return series

    def _unlabelled(self) -> S:
        if self.labelnames:
            raise ValueError(f"{self.name} has labels {self.labelnames!r}: use .labels(...) "
                             "first")
        return self._labelled((), {})

    @abstractmethod
    def _make_series(self, values: tuple[str, ...]) -> S:
        """The series of one label combination, of this metric's kind."""


class _Series:
    """One label combination, bound lazily to this process's block."""

    __slots__ = ("_block", "_index", "_keys", "declaration")

    def __init__(self, declaration: Declaration, keys: list[SeriesKey]) -> None:
        self.declaration = declaration
        self._keys = keys
        self._block: MetricBlock | None = None
        self._index: list[int] = []

    def _bind(self) -> MetricBlock:
        block = current_block()
        with block.lock:
            block.index(self.declaration)
            self._index = [block.index(key) for key in self._keys]
        self._block = block
        return block

    def _add(self, position: int, amount: float) -> None:
        block = _process.block
        if block is None or block is not self._block:
            block = self._bind()
        with block.lock:
            block.values[self._index[position]] += amount

    def _read(self, position: int) -> float:
        block = _process.block
        if block is None or block is not self._block:
            block = self._bind()
        return float(block.values[self._index[position]])


class CounterSeries(_Series):
    """A counter with its label values: only goes up."""

    __slots__ = ()

    def inc(self, amount: float = 1.0) -> None:
        """Add ``amount`` (0 or more)."""
        if not amount >= 0:
            raise ValueError(f"{self.declaration.name}: a counter only goes up, got {amount!r}")
        self._add(0, amount)

    @property
    def value(self) -> float:
        """This process's count."""
        return self._read(0)


class GaugeSeries(_Series):
    """A gauge with its label values: set, or moved up and down."""

    __slots__ = ()

    def inc(self, amount: float = 1.0) -> None:
        self._add(0, amount)

    def dec(self, amount: float = 1.0) -> None:
        self._add(0, -amount)

    def set(self, value: float) -> None:
        block = _process.block
        if block is None or block is not self._block:
            block = self._bind()
        block.values[self._index[0]] = float(value)

    @property
    def value(self) -> float:
        """This process's value."""
        return self._read(0)


class HistogramSeries(_Series):
    """A histogram with its label values: counts observations per bucket, and their sum."""

    __slots__ = ("_bounds",)

    def __init__(self, declaration: Declaration, keys: list[SeriesKey],
                 bounds: tuple[float, ...]) -> None:
        super().__init__(declaration, keys)
        self._bounds = bounds

    def observe(self, value: float) -> None:
        """Count ``value`` in the first bucket whose bound is at least ``value``."""
        block = _process.block
        if block is None or block is not self._block:
            block = self._bind()
        index, values = self._index, block.values
        with block.lock:
            values[index[bisect_left(self._bounds, value)]] += 1.0
            values[index[-1]] += value

    @property
    def count(self) -> float:
        """Observations made in this process."""
        return sum(self._read(i) for i in range(len(self._index) - 1))

    @property
    def sum(self) -> float:
        """Sum of the observations made in this process."""
        return self._read(len(self._index) - 1)


class Counter(_Metric["CounterSeries"]):
    """A count that only goes up (requests, errors, bytes); name it ``..._total``."""

    kind = "counter"

    def __init__(self, name: str, help: str, labelnames: Iterable[str] = ()) -> None:
        super().__init__(name, help, labelnames)

    def inc(self, amount: float = 1.0) -> None:
        """Add ``amount`` to a counter without labels."""
        self._unlabelled().inc(amount)

    @property
    def value(self) -> float:
        return self._unlabelled().value

    def _make_series(self, values: tuple[str, ...]) -> CounterSeries:
        return CounterSeries(self.declaration, [_single_key(self, values)])


class Gauge(_Metric["GaugeSeries"]):
    """A value that goes up and down (queue depth, temperature).

    ``aggregate`` says how the live workers' values combine: ``sum`` (default), ``max``,
    ``min``, or ``all`` (one series per worker, with a ``pid`` label). A dead worker's gauges
    are dropped.
    """

    kind = "gauge"

    def __init__(self, name: str, help: str, labelnames: Iterable[str] = (), *,
                 aggregate: str = "sum") -> None:
        if aggregate not in AGGREGATES:
            raise ValueError(f"{name}: aggregate must be one of {', '.join(AGGREGATES)}, got "
                             f"{aggregate!r}")
        super().__init__(name, help, labelnames, aggregate=aggregate,
                         reserved=("pid",) if aggregate == "all" else ())

    def inc(self, amount: float = 1.0) -> None:
        self._unlabelled().inc(amount)

    def dec(self, amount: float = 1.0) -> None:
        self._unlabelled().dec(amount)

    def set(self, value: float) -> None:
        self._unlabelled().set(value)

    @property
    def value(self) -> float:
        return self._unlabelled().value

    def _make_series(self, values: tuple[str, ...]) -> GaugeSeries:
        return GaugeSeries(self.declaration, [_single_key(self, values)])


class Histogram(_Metric["HistogramSeries"]):
    """Observations (durations, sizes) counted in buckets: ``buckets`` are the upper bounds,
    ascending; ``+Inf`` is added."""

    kind = "histogram"

    def __init__(self, name: str, help: str, labelnames: Iterable[str] = (), *,
                 buckets: Iterable[float] = DEFAULT_BUCKETS) -> None:
        self.bounds = _check_buckets(name, buckets)
        super().__init__(name, help, labelnames, reserved=("le",), signature=self.bounds)

    def observe(self, value: float) -> None:
        self._unlabelled().observe(value)

    @property
    def count(self) -> float:
        return self._unlabelled().count

    @property
    def sum(self) -> float:
        return self._unlabelled().sum

    def _make_series(self, values: tuple[str, ...]) -> HistogramSeries:
        return HistogramSeries(self.declaration,
                               histogram_keys(self.name, _labels(self.labelnames, values),
                                              self.bounds), self.bounds)


def histogram_keys(name: str, labels: str, bounds: Sequence[float]) -> list[SeriesKey]:
    """The series of one histogram: a bucket per bound, ``+Inf``, then ``_sum``."""
    keys = [SeriesKey(name, "_bucket", labels, bound_text(bound)) for bound in bounds]
    keys.append(SeriesKey(name, "_bucket", labels, "+Inf"))
    keys.append(SeriesKey(name, "_sum", labels))
    return keys


def bound_text(bound: float) -> str:
    """A bucket bound as its ``le`` label: ``0.005``, ``1.0``."""
    return repr(float(bound))


def _check_buckets(name: str, buckets: Iterable[float]) -> tuple[float, ...]:
    try:
        bounds = [float(bound) for bound in buckets]
    except (TypeError, ValueError):
        raise ValueError(f"{name}: buckets must be numbers") from None
    if bounds and bounds[-1] == math.inf:
        bounds.pop()
    if not bounds:
        raise ValueError(f"{name}: a histogram needs at least one finite bucket bound")
    if any(not math.isfinite(bound) for bound in bounds):
        raise ValueError(f"{name}: bucket bounds must be finite (+Inf is added)")
    if any(a >= b for a, b in itertools.pairwise(bounds)):
        raise ValueError(f"{name}: bucket bounds must be strictly ascending, got {bounds!r}")
    return tuple(bounds)


def _single_key(metric: _Metric[S], values: tuple[str, ...]) -> SeriesKey:
    """The one series key of a counter's or gauge's label combination."""
    return SeriesKey(metric.name, labels=_labels(metric.labelnames, values))


def _labels(names: tuple[str, ...], values: tuple[str, ...]) -> str:
    return label_text(zip(names, values, strict=True))
