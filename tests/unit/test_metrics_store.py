"""The metrics block (append-only records, float values, a reader that sees only committed
records) and the ``prefork.metrics`` API that writes into it."""

from __future__ import annotations

import logging
import struct
import threading

import pytest

from prefork.metrics import Counter, Gauge, Histogram, current_block, use_block
from prefork.metrics.store import (
    COUNT_OFFSET,
    Declaration,
    MetricBlock,
    SeriesKey,
    decode,
    encode,
)


def test_records_round_trip_with_any_label_text() -> None:
    for record in (Declaration("a_total", "counter", "Help with\nnewline and \0 nul"),
                   SeriesKey("a_total", "", 'path="/x\0y"'),
                   SeriesKey("h", "_bucket", 'a="1"', "+Inf")):
        assert decode(encode(record)) == record
    with pytest.raises(ValueError, match="not a metrics record"):
        decode("X\0a\0b\0c\0d")


def test_append_index_and_read() -> None:
    block = MetricBlock(capacity=8)
    reader = block.reader()
    assert reader.read() == []
    declaration = Declaration("hits_total", "counter", "Hits.")
    series = SeriesKey("hits_total", labels='route="a"')
    assert block.index(declaration) == 0
    index = block.index(series)
    assert index == 1
    assert block.index(series) == 1  # the same record, the same slot
    block.values[index] += 2.5
    assert reader.read() == [(declaration, 0.0), (series, 2.5)]
    block.values[index] += 1
    assert reader.read()[1] == (series, 3.5)
    block.close()


def test_shared_block_is_seen_by_a_forked_writer_reader_pair() -> None:
    """The arbiter's reader sees what the child writes, after the child is gone too."""
    import os

    block = MetricBlock(capacity=4)
    reader = block.reader()
    pid = os.fork()
    if pid == 0:
        try:
            block.values[block.index(SeriesKey("child_total"))] += 7
        finally:
            os._exit(0)
    os.waitpid(pid, 0)
    assert reader.read() == [(SeriesKey("child_total"), 7.0)]
    block.close()


def test_full_block_drops_new_series_with_one_warning(caplog: pytest.LogCaptureFixture) -> None:
    block = MetricBlock(capacity=3)
    reader = block.reader()
    slots = [block.index(SeriesKey(f"m{i}")) for i in range(3)]
    assert slots == [0, 1, 2]
    with caplog.at_level(logging.WARNING, logger="prefork.error"):
        dropped = [block.index(SeriesKey(f"extra{i}")) for i in range(5)]
    assert dropped == [block.spare] * 5
    block.values[block.spare] += 100  # the dropped series write somewhere harmless
    assert [record for record, _ in reader.read()] == [SeriesKey(f"m{i}") for i in range(3)]
    warnings = [r for r in caplog.records if "block is full" in r.getMessage()]
    assert len(warnings) == 1
    assert "3 series" in warnings[0].getMessage()
    block.close()


def test_record_bytes_full_also_drops() -> None:
    block = MetricBlock(capacity=100, record_bytes=64)
    assert block.index(SeriesKey("short")) == 0
    assert block.index(SeriesKey("x" * 80)) == block.spare
    assert block.index(SeriesKey("tiny")) == 1  # still room for a small one
    block.close()


def test_reader_sees_only_committed_records() -> None:
    block = MetricBlock(capacity=8)
    reader = block.reader()
    block.index(SeriesKey("first"))
    # Write a second record's bytes by hand without publishing the count: what a reader meets
    # when it reads while a writer is in the middle of an append.
    data = b"S\0second\0\0\0"
    offset = block._used
    block._raw[offset:offset + 2] = struct.pack("<H", len(data))
    block._raw[offset + 2:offset + 2 + len(data)] = data
    assert [r for r, _ in reader.read()] == [SeriesKey("first")]
    struct.pack_into("<I", block._raw, COUNT_OFFSET, 2)
    assert [r for r, _ in reader.read()] == [SeriesKey("first"), SeriesKey("second")]
    block.close()


def test_concurrent_reader_never_sees_a_partial_record() -> None:
    block = MetricBlock(capacity=5000)
    reader = block.reader()
    done = threading.Event()
    seen: list[int] = []

    def write() -> None:
        for i in range(3000):
            block.values[block.index(SeriesKey(f"series_{i}", labels=f'n="{i}"'))] += i
        done.set()

    writer = threading.Thread(target=write)
    writer.start()
    while not done.is_set():
        records = reader.read()
        seen.append(len(records))
        for position, (record, value) in enumerate(records):
            assert isinstance(record, SeriesKey)
            assert record.name == f"series_{position}"
            assert value in (0.0, float(position))
    writer.join()
    assert len(reader.read()) == 3000
    assert seen == sorted(seen)
    block.close()


# -- the API writes into the process's block ---------------------------------------------------


@pytest.fixture
def fresh_block():
    """A private block for the test (the process's own one is left as it was)."""
    block = MetricBlock(shared=False)
    previous = current_block()
    use_block(block)
    yield block
    use_block(previous)
    block.close()


def _values(block: MetricBlock) -> dict[SeriesKey | Declaration, float]:
    return dict(block.reader().read())


def test_counter_gauge_histogram_write_their_series(fresh_block: MetricBlock) -> None:
    orders = Counter("t_orders_total", "Orders.", labelnames=("kind",))
    orders.labels(kind="book").inc()
    orders.labels("book").inc(2)
    orders.labels("pen").inc()
    level = Gauge("t_level", "Level.", aggregate="max")
    level.set(5)
    level.dec(2)
    level.inc(0.5)
    latency = Histogram("t_latency_seconds", "Latency.", buckets=(0.1, 1))
    for value in (0.05, 0.1, 0.5, 7):
        latency.observe(value)
    values = _values(fresh_block)
    assert values[SeriesKey("t_orders_total", labels='kind="book"')] == 3
    assert values[SeriesKey("t_orders_total", labels='kind="pen"')] == 1
    assert values[Declaration("t_level", "gauge", "Level.", "max")] == 0
    assert values[SeriesKey("t_level")] == 3.5
    bucket = SeriesKey("t_latency_seconds", "_bucket")
    assert values[SeriesKey(bucket.name, "_bucket", "", "0.1")] == 2  # le: 0.1 counts 0.1
    assert values[SeriesKey(bucket.name, "_bucket", "", "1.0")] == 1
    assert values[SeriesKey(bucket.name, "_bucket", "", "+Inf")] == 1
    assert values[SeriesKey("t_latency_seconds", "_sum")] == pytest.approx(7.65)
    assert orders.labels("book").value == 3
    assert latency.count == 4
    assert latency.sum == pytest.approx(7.65)


def test_series_rebind_when_the_process_block_changes(fresh_block: MetricBlock) -> None:
    """What a worker forked from a --preload arbiter does: the same objects, a new block."""
    hits = Counter("t_rebind_total", "Hits.")
    hits.inc()
    other = MetricBlock(shared=False)
    use_block(other)
    hits.inc(5)
    assert hits.value == 5
    assert _values(other)[SeriesKey("t_rebind_total")] == 5
    assert _values(fresh_block)[SeriesKey("t_rebind_total")] == 1
    use_block(fresh_block)
    other.close()


def test_threads_do_not_lose_increments(fresh_block: MetricBlock) -> None:
    hits = Counter("t_threads_total", "Hits.", labelnames=("n",))

    def work(n: int) -> None:
        for _ in range(20000):
            hits.labels(n % 2).inc()

    threads = [threading.Thread(target=work, args=(n,)) for n in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert hits.labels(0).value + hits.labels(1).value == 80000


@pytest.mark.parametrize(("make", "message"), [
    (lambda: Counter("1bad", "x"), "invalid metric name"),
    (lambda: Counter("bad-name", "x"), "invalid metric name"),
    (lambda: Counter("prefork_mine_total", "x"), "reserved"),
    (lambda: Counter("t_ok_total", "x", labelnames=("bad-label",)), "invalid label name"),
    (lambda: Counter("t_ok_total", "x", labelnames=("__x",)), "invalid label name"),
    (lambda: Counter("t_ok_total", "x", labelnames="route"), "not one string"),
    (lambda: Counter("t_ok_total", "x", labelnames=("a", "a")), "duplicate"),
    (lambda: Histogram("t_h", "x", labelnames=("le",)), "reserved"),
    (lambda: Histogram("t_h", "x", buckets=(1, 0.5)), "ascending"),
    (lambda: Histogram("t_h", "x", buckets=()), "at least one"),
    (lambda: Histogram("t_h", "x", buckets=(float("nan"),)), "finite"),
    (lambda: Gauge("t_g", "x", aggregate="avg"), "aggregate"),
    (lambda: Gauge("t_g", "x", labelnames=("pid",), aggregate="all"), "reserved"),
])
def test_bad_definitions_are_clear_errors(make, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        make()


def test_bad_use_is_a_clear_error(fresh_block: MetricBlock) -> None:
    routed = Counter("t_use_total", "x", labelnames=("route",))
    with pytest.raises(ValueError, match=r"use \.labels"):
        routed.inc()
    with pytest.raises(ValueError, match="expected labels"):
        routed.labels(path="/")
    with pytest.raises(ValueError, match="expected 1 label values"):
        routed.labels("a", "b")
    with pytest.raises(ValueError, match="only goes up"):
        routed.labels("a").inc(-1)
    Counter("t_use_total", "same again", labelnames=("route",))  # the same metric: allowed
    with pytest.raises(ValueError, match="already defined differently"):
        Gauge("t_use_total", "x")
