"""A worker's metrics block: shared memory the worker writes and the arbiter reads.

The arbiter maps one anonymous block per worker just before the fork (``mmap.mmap(-1, size)``
is ``MAP_SHARED``), so it reads what the worker writes without any message, and the values
outlive the worker's SIGKILL: the arbiter folds a dead worker's final counts into its totals.

Layout (every integer little-endian, every value a float64)::

    0    magic b"PFM1" | committed records (u32) | capacity (u32) | record bytes (u32) | pad
    64   values: capacity + 1 float64 (the last one takes the writes of dropped series)
    ...  records: (length u16, UTF-8 text) * committed, appended in index order

Record ``i`` names value ``i``. A record is a metric declaration (type, help, aggregation) or
one series (metric name, suffix, labels, histogram bound); its text is fields joined by NUL,
the last field free text (see :func:`encode`). Declarations use a value slot too, so indexes
stay one counter.

Rule: one writer per block, which appends a record completely and only then stores the new
count, and the reader reads the count first and parses no further: it never sees half a
record. An aligned 4- or 8-byte store is one instruction on x86-64 and arm64, so the count and
the values are never torn. (On arm64 the stores may become visible out of order; a reader
could then see a fresh count before the record bytes for a few nanoseconds, and would skip a
record whose text does not decode, reading it again at the next scrape.) A value is only
written after its record is committed, so nothing a worker counted is missing from the
arbiter's view of its block. Writers in several threads of one process share ``lock``.

A block that is full (``capacity`` records, or its record bytes) drops new series: they get
the spare last slot, and one warning goes to the error log.
"""

from __future__ import annotations

import logging
import mmap
import struct
import threading
from dataclasses import dataclass

__all__ = [
    "DEFAULT_CAPACITY",
    "DEFAULT_RECORD_BYTES",
    "BlockReader",
    "Declaration",
    "MetricBlock",
    "SeriesKey",
    "decode",
    "encode",
]

MAGIC = b"PFM1"
HEADER = struct.Struct("<4sIII")
HEADER_SIZE = 64
LENGTH = struct.Struct("<H")
COUNT_OFFSET = 4
# 4096 series per worker (a few hundred metrics with labels) and 256 KiB of their names: 288
# KiB of address space per worker, of which only the pages written become resident.
DEFAULT_CAPACITY = 4096
DEFAULT_RECORD_BYTES = 256 * 1024
MAX_RECORD = 0xFFFF

log = logging.getLogger("prefork.error")


@dataclass(frozen=True, slots=True)
class Declaration:
    """What a metric is: rendered as ``# HELP`` and ``# TYPE``, and how workers combine."""

    name: str
    kind: str  # "counter", "gauge" or "histogram"
    help: str
    aggregate: str = "sum"  # gauges: "sum", "max", "min" or "all" (one series per worker)


@dataclass(frozen=True, slots=True)
class SeriesKey:
    """One sample's identity: ``name + suffix {labels, le}``.

    ``labels`` is the rendered label list (``method="GET",code="200"``), ``le`` the bucket bound
    of a histogram bucket (``"0.5"``, ``"+Inf"``), empty otherwise.
    """

    name: str
    suffix: str = ""
    labels: str = ""
    le: str = ""


Record = Declaration | SeriesKey


def encode(record: Record) -> str:
    """A record as the block stores it: fields joined by NUL, the free-text field last."""
    if isinstance(record, Declaration):
        return "\0".join(("T", record.name, record.kind, record.aggregate, record.help))
    return "\0".join(("S", record.name, record.suffix, record.le, record.labels))


def decode(text: str) -> Record:
    """The inverse of :func:`encode`; ValueError for text it did not write."""
    fields = text.split("\0", 4)
    if len(fields) != 5:
        raise ValueError(f"not a metrics record: {text!r}")
    tag, name, second, third, rest = fields
    if tag == "T":
        return Declaration(name=name, kind=second, aggregate=third, help=rest)
    if tag == "S":
        return SeriesKey(name=name, suffix=second, le=third, labels=rest)
    raise ValueError(f"not a metrics record: {text!r}")


class MetricBlock:
    """The writing side of a block (and the owner of its memory).

    ``shared=True`` maps anonymous shared memory, for a worker the arbiter watches; otherwise
    the block lives in private memory, for metrics written outside any worker.
    """

    def __init__(self, capacity: int = DEFAULT_CAPACITY,
                 record_bytes: int = DEFAULT_RECORD_BYTES, *, shared: bool = True) -> None:
        if capacity < 1 or record_bytes < 1:
            raise ValueError("a metrics block needs room for at least one record")
        self.capacity = capacity
        self.records_at = HEADER_SIZE + 8 * (capacity + 1)
        size = self.records_at + record_bytes
        self.memory: mmap.mmap | bytearray = mmap.mmap(-1, size) if shared else bytearray(size)
        self.shared = shared
        HEADER.pack_into(self.memory, 0, MAGIC, 0, capacity, record_bytes)
        self._raw = memoryview(self.memory)
        # ``values[i] += x`` on this view is one float64 load and store in place.
        self.values = self._raw[HEADER_SIZE:self.records_at].cast("d")
        self.lock = threading.Lock()
        self.spare = capacity  # the slot dropped series write to
        self._indexes: dict[str, int] = {}
        self._readers: list[BlockReader] = []
        self._count = 0
        self._used = self.records_at
        self._full_warned = False

    @property
    def count(self) -> int:
        """Committed records."""
        return self._count

    def index(self, record: Record) -> int:
        """The value slot of ``record``, appended when new; ``spare`` when the block is full.

        Callers in more than one thread hold ``lock``.
        """
        text = encode(record)
        found = self._indexes.get(text)
        if found is not None:
            return found
        data = text.encode("utf-8")
        end = self._used + LENGTH.size + len(data)
        if len(data) > MAX_RECORD or self._count >= self.capacity or end > len(self.memory):
            self._warn_full(record)
            return self.spare
        raw = self._raw
        LENGTH.pack_into(raw, self._used, len(data))
        raw[self._used + LENGTH.size:end] = data
        index = self._count
        self.values[index] = 0.0
        self._used = end
        self._count = index + 1
        # Last: the reader trusts every record below the count it reads.
        struct.pack_into("<I", raw, COUNT_OFFSET, self._count)
        self._indexes[text] = index
        return index

    def _warn_full(self, record: Record) -> None:
        if not self._full_warned:
            self._full_warned = True
            log.warning("metrics: this worker's block is full (%d series); new series such as "
                        "%r are dropped", self.capacity, record.name)

    def reader(self) -> BlockReader:
        """A reader of this block's memory (in the arbiter: of what the worker writes)."""
        reader = BlockReader(memoryview(self.memory))
        self._readers.append(reader)
        return reader

    def close(self) -> None:
        """Release the memory; the block and its readers are unusable afterwards."""
        for reader in self._readers:
            reader.close()
        self._readers.clear()
        self.values.release()
        self._raw.release()
        if isinstance(self.memory, mmap.mmap):
            self.memory.close()


class BlockReader:
    """Reads a block's committed records and their values; parses each record once."""

    def __init__(self, memory: memoryview) -> None:
        magic, _count, capacity, _size = HEADER.unpack_from(memory, 0)
        if magic != MAGIC:
            raise ValueError("not a metrics block")
        self._memory = memory
        self._values = memory[HEADER_SIZE:HEADER_SIZE + 8 * (capacity + 1)].cast("d")
        self._offset = HEADER_SIZE + 8 * (capacity + 1)
        self.records: list[Record] = []

    def refresh(self) -> list[Record]:
        """Parse the records committed since the last call; returns every record so far."""
        (count,) = struct.unpack_from("<I", self._memory, COUNT_OFFSET)
        memory, offset, records = self._memory, self._offset, self.records
        while len(records) < count:
            (length,) = LENGTH.unpack_from(memory, offset)
            start = offset + LENGTH.size
            try:
                record = decode(bytes(memory[start:start + length]).decode("utf-8"))
            except ValueError:
                break  # not visible yet (see the module docstring): next time
            records.append(record)
            offset = start + length
        self._offset = offset
        return records

    def read(self) -> list[tuple[Record, float]]:
        """Every committed record with its current value."""
        values = self._values
        return [(record, values[i]) for i, record in enumerate(self.refresh())]

    def close(self) -> None:
        self._values.release()
        self._memory.release()
