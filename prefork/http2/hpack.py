"""HPACK (RFC 7541): a connection's request header blocks in, its response heads out.

Why prefork has its own: the ``hpack`` library costs the engine's whole per-request budget
(4 µs) several times over. Interpreted, with a generator per field, ``HeaderTuple`` objects and
a Huffman pass over every literal it writes, it spends 17 µs of CPU decoding h2load's first
request block and 9 µs on each later one (five indexes), and 7 µs encoding a hello response
head it has seen, 19 µs one with a new ``date``. Compiled with mypyc, this module takes 0.9 µs,
0.18 µs (30 ns when the block repeats: the memo below), 30 ns and 0.4 µs for the same
(``bench/hpack_cost.py``, one core of a shared 2-core machine).

:class:`HeaderDecoder` decodes every representation of §6 against the static table (Appendix
A) and a dynamic table with eviction (§4). It refuses what §5 and §6 leave malformed (index 0
or past the table, an integer past 2**28 or over five continuation octets, a string running
past the block, a Huffman string holding EOS or a bad padding, a table size update after a
field or above what was announced) with :class:`HpackError`, and stops with
:class:`HeaderListTooLarge` as soon as the fields decoded so far pass
``max_header_list_size`` (RFC 9113 §6.5.2 counts 32 octets per field besides its name and
value): a block of one-octet references to a large table entry costs no more than the limit.
Names and values are returned as sent; the request rules are ``prefork.http2.requests``'s.

:class:`HeaderEncoder` writes a static full match as one index (``:status`` 200, 204, 206,
304, 400, 404 and 500 among them) and any other field as a literal, its name indexed where the
static table has it, no Huffman coding (the CPU it costs buys a few octets of a small frame).
Fields whose values repeat from response to response (``content-type``, ``server``, ...) are
added to the dynamic table, so that from the second response on they cost one octet each; the
peer's SETTINGS_HEADER_TABLE_SIZE is honoured, with the size updates §4.2 asks for. Cookies and
credentials are sent "never indexed" (§7.1.3).

Both remember their last block: clients repeat their request blocks (once its fields are in
the table, each of h2load's requests is the same five octets), and an app answers with the
same head. A block that left the table as it was gives the same answer again from the same
input, so the decoder returns the list it made for an equal block and the encoder the block it
made for an equal list, as long as the table has not changed since (a counter of changes
says so) and the limits are those it was made under.

This module does no I/O.
"""

from __future__ import annotations

from typing import Final

from prefork.http2 import huffman

__all__ = ["ENCODER_TABLE_MAX", "STATIC_TABLE", "HeaderDecoder", "HeaderEncoder",
           "HeaderListTooLarge", "HpackError"]


class HpackError(Exception):
    """A malformed header block: the connection's COMPRESSION_ERROR (RFC 9113 §4.3)."""


class HeaderListTooLarge(HpackError):
    """The decoded fields passed ``max_header_list_size``; decoding stopped there."""


# RFC 7541 Appendix A: index 1 is STATIC_TABLE[0].
STATIC_TABLE: Final[tuple[tuple[bytes, bytes], ...]] = (
    (b":authority", b""),
    (b":method", b"GET"),
    (b":method", b"POST"),
    (b":path", b"/"),
    (b":path", b"/index.html"),
    (b":scheme", b"http"),
    (b":scheme", b"https"),
    (b":status", b"200"),
    (b":status", b"204"),
    (b":status", b"206"),
    (b":status", b"304"),
    (b":status", b"400"),
    (b":status", b"404"),
    (b":status", b"500"),
    (b"accept-charset", b""),
    (b"accept-encoding", b"gzip, deflate"),
    (b"accept-language", b""),
    (b"accept-ranges", b""),
    (b"accept", b""),
    (b"access-control-allow-origin", b""),
    (b"age", b""),
    (b"allow", b""),
    (b"authorization", b""),
    (b"cache-control", b""),
    (b"content-disposition", b""),
    (b"content-encoding", b""),
    (b"content-language", b""),
    (b"content-length", b""),
    (b"content-location", b""),
    (b"content-range", b""),
    (b"content-type", b""),
    (b"cookie", b""),
    (b"date", b""),
    (b"etag", b""),
    (b"expect", b""),
    (b"expires", b""),
    (b"from", b""),
    (b"host", b""),
    (b"if-match", b""),
    (b"if-modified-since", b""),
    (b"if-none-match", b""),
    (b"if-range", b""),
    (b"if-unmodified-since", b""),
    (b"last-modified", b""),
    (b"link", b""),
    (b"location", b""),
    (b"max-forwards", b""),
    (b"proxy-authenticate", b""),
    (b"proxy-authorization", b""),
    (b"range", b""),
    (b"referer", b""),
    (b"refresh", b""),
    (b"retry-after", b""),
    (b"server", b""),
    (b"set-cookie", b""),
    (b"strict-transport-security", b""),
    (b"transfer-encoding", b""),
    (b"user-agent", b""),
    (b"vary", b""),
    (b"via", b""),
    (b"www-authenticate", b""),
)
_STATIC_ENTRIES: Final = 61
_ENTRY_OVERHEAD: Final = 32  # §4.1, and RFC 9113 §6.5.2 for the header list
# §5.1 sets no bound; past these an integer is an attack, not a header (h2's and nghttp2's)
_INTEGER_MAX: Final = 1 << 28
_CONTINUATION_MAX: Final = 5


def _integer(block: bytes, position: int, mask: int) -> tuple[int, int]:
    """The integer of §5.1 whose prefix is ``block[position] & mask``, and the position
    after it."""
    end = len(block)
    value = block[position] & mask
    position += 1
    if value < mask:
        return value, position
    shift = 0
    while True:
        if position >= end:
            raise HpackError("the block ends inside an integer")
        octet = block[position]
        position += 1
        value += (octet & 0x7f) << shift
        if not octet & 0x80:
            break
        shift += 7
        if shift >= 7 * _CONTINUATION_MAX:
            raise HpackError(f"an integer over {_CONTINUATION_MAX} continuation octets")
    if value > _INTEGER_MAX:
        raise HpackError(f"an integer over 2**28 ({value})")
    return value, position


def _string(block: bytes, position: int) -> tuple[bytes, int]:
    """The string literal of §5.2 at ``position`` (Huffman-decoded if so coded), and the
    position after it."""
    if position >= len(block):
        raise HpackError("the block ends before a string")
    coded = block[position] & 0x80
    length, position = _integer(block, position, 0x7f)
    end = position + length
    if end > len(block):
        raise HpackError("a string runs past the end of the block")
    if not coded:
        return block[position:end], end
    try:
        return huffman.decode(block, position, end), end
    except huffman.InvalidHuffman as error:
        raise HpackError(str(error)) from None


class HeaderDecoder:
    """The decoding side of one connection's HPACK context (module docstring)."""

    def __init__(self, max_table_size: int = 4096, max_header_list_size: int = 65536) -> None:
        # the SETTINGS_HEADER_TABLE_SIZE announced: a size update above it is an error
        self.max_table_size = max_table_size
        self.max_header_list_size = max_header_list_size
        self._entries: list[tuple[bytes, bytes]] = []  # the dynamic table, oldest first
        self._table_size = 0
        self._table_limit = max_table_size
        self._changes = 0  # insertions, evictions and resizes so far: the memo's check
        self._last_block = b""
        self._last_headers: list[tuple[bytes, bytes]] = []
        self._last_changes = 0
        self._last_table_max = max_table_size
        self._last_list_max = max_header_list_size

    def decode(self, block: bytes) -> list[tuple[bytes, bytes]]:
        """The fields of one complete header block, in order. An equal block decoded last,
        with the table and limits unchanged since, gives the same list again: the caller must
        not change it."""
        if (block == self._last_block and self._changes == self._last_changes
                and self._last_list_max == self.max_header_list_size
                and self._last_table_max == self.max_table_size):
            return self._last_headers
        changes = self._changes
        headers = self._decode(block)
        if self._changes == changes:
            self._last_block = block
            self._last_headers = headers
            self._last_changes = changes
            self._last_table_max = self.max_table_size
            self._last_list_max = self.max_header_list_size
        return headers

    def _decode(self, block: bytes) -> list[tuple[bytes, bytes]]:
        headers: list[tuple[bytes, bytes]] = []
        bound = self.max_header_list_size
        list_size = 0
        position = 0
        end = len(block)
        while position < end:
            first = block[position]
            if first & 0x80:  # §6.1 indexed field
                if first != 0xff:
                    index = first & 0x7f
                    position += 1
                else:
                    index, position = _integer(block, position, 0x7f)
                field = self._field(index)
            elif first & 0x40:  # §6.2.1 literal with incremental indexing
                index, position = _integer(block, position, 0x3f)
                if index:
                    name = self._field(index)[0]
                else:
                    name, position = _string(block, position)
                value, position = _string(block, position)
                field = (name, value)
                self._insert(field)
            elif first & 0x20:  # §6.3 dynamic table size update
                if headers:
                    raise HpackError("a dynamic table size update after a field")
                limit, position = _integer(block, position, 0x1f)
                if limit > self.max_table_size:
                    raise HpackError(
                        f"a dynamic table size of {limit} over the {self.max_table_size} allowed")
                self._resize(limit)
                continue
            else:  # §6.2.2 without indexing, §6.2.3 never indexed: the same to a server
                index, position = _integer(block, position, 0x0f)
                if index:
                    name = self._field(index)[0]
                else:
                    name, position = _string(block, position)
                value, position = _string(block, position)
                field = (name, value)
            list_size += len(field[0]) + len(field[1]) + _ENTRY_OVERHEAD
            if list_size > bound:
                raise HeaderListTooLarge(f"a header list over {bound} octets")
            headers.append(field)
        return headers

    def _field(self, index: int) -> tuple[bytes, bytes]:
        if index <= _STATIC_ENTRIES:
            if index == 0:
                raise HpackError("index 0")
            return STATIC_TABLE[index - 1]
        entries = self._entries
        position = len(entries) + _STATIC_ENTRIES - index
        if position < 0:
            raise HpackError(f"index {index} past the table's {len(entries)} entries")
        return entries[position]

    def _insert(self, field: tuple[bytes, bytes]) -> None:
        self._changes += 1
        size = len(field[0]) + len(field[1]) + _ENTRY_OVERHEAD
        if size > self._table_limit:  # §4.4: the table is emptied, the field not added
            self._entries.clear()
            self._table_size = 0
            return
        self._evict(self._table_limit - size)
        self._entries.append(field)
        self._table_size += size

    def _resize(self, limit: int) -> None:
        if limit != self._table_limit:
            self._changes += 1
            self._table_limit = limit
            self._evict(limit)

    def _evict(self, room: int) -> None:
        """Drop the oldest entries until the table holds at most ``room`` octets."""
        entries = self._entries
        size = self._table_size
        dropped = 0
        while size > room:
            name, value = entries[dropped]
            size -= len(name) + len(value) + _ENTRY_OVERHEAD
            dropped += 1
        if dropped:
            del entries[:dropped]
            self._table_size = size


# --- the encoder ----------------------------------------------------------------------------

# The largest table the encoder keeps, whatever larger size the peer allows: RFC 9113's
# default, room for a response head's repeated fields many times over.
ENCODER_TABLE_MAX: Final = 4096
# Names whose values repeat from response to response (a handful of distinct values at most):
# indexed, they cost one octet from the second response on. Not date, content-length, etag,
# location, last-modified: a new value nearly every time would only churn the table.
_INDEXED_NAMES: Final = frozenset({
    b"content-type", b"server", b"cache-control", b"vary", b"content-encoding",
    b"content-language", b"accept-ranges", b"access-control-allow-origin",
    b"access-control-allow-credentials", b"access-control-allow-methods",
    b"access-control-allow-headers", b"access-control-expose-headers",
    b"strict-transport-security", b"x-content-type-options", b"x-frame-options",
    b"x-xss-protection", b"referrer-policy", b"content-security-policy", b"alt-svc", b"via",
})
# §7.1.3: what an intermediary must not index either
_NEVER_INDEXED_NAMES: Final = frozenset(
    {b"set-cookie", b"cookie", b"authorization", b"proxy-authorization"})
# A field larger than this share of the table is not indexed: it would evict too much.
_INDEXED_FIELD_SHARE: Final = 4


def _encode_integer(value: int, prefix_bits: int, flags: int) -> bytes:
    """``value`` as §5.1 writes it with a ``prefix_bits`` prefix, ``flags`` in the first
    octet's high bits."""
    mask = (1 << prefix_bits) - 1
    if value < mask:
        return bytes((flags | value,))
    out = bytearray((flags | mask,))
    value -= mask
    while value >= 0x80:
        out.append((value & 0x7f) | 0x80)
        value >>= 7
    out.append(value)
    return bytes(out)


def _static_names() -> dict[bytes, int]:
    names: dict[bytes, int] = {}
    for index, (name, _) in enumerate(STATIC_TABLE, 1):
        names.setdefault(name, index)
    return names


class _NameRule:
    """How the encoder writes a field of one name: its static full matches, and the octets
    that start a literal of it (its name indexed where the static table has it)."""

    def __init__(self, values: dict[bytes, bytes] | None, literal: bytes,
                 indexing: bytes | None, slot: int) -> None:
        self.values = values  # value -> the one octet of a static full match
        self.literal = literal  # the literal's start: without indexing, or never indexed
        self.indexing = indexing  # the start of one added to the table, for _INDEXED_NAMES
        self.slot = slot  # for _INDEXED_NAMES: where an encoder keeps this name's entries


def _literal_start(name: bytes, index: int, prefix_bits: int, flags: int) -> bytes:
    if index:
        return _encode_integer(index, prefix_bits, flags)
    return bytes((flags,)) + _encode_integer(len(name), 7, 0x00) + name


def _name_rules() -> dict[bytes, _NameRule]:
    """A rule for each name of the static table or of _INDEXED_NAMES and
    _NEVER_INDEXED_NAMES: one dictionary lookup per field finds all the encoder needs."""
    indexes: dict[bytes, int] = {}
    values: dict[bytes, dict[bytes, bytes]] = {}
    for index, (name, value) in enumerate(STATIC_TABLE, 1):
        indexes.setdefault(name, index)
        if value:
            values.setdefault(name, {})[value] = _encode_integer(index, 7, 0x80)
    slots = {name: slot for slot, name in enumerate(sorted(_INDEXED_NAMES))}
    rules = {}
    for name in indexes.keys() | _INDEXED_NAMES | _NEVER_INDEXED_NAMES:
        index = indexes.get(name, 0)
        never = name in _NEVER_INDEXED_NAMES
        rules[name] = _NameRule(
            values.get(name), _literal_start(name, index, 4, 0x10 if never else 0x00),
            _literal_start(name, index, 6, 0x40) if name in _INDEXED_NAMES else None,
            slots.get(name, -1))
    return rules


# One lookup by name per field, never by a (name, value) tuple: under mypyc a field is a C
# struct, and a tuple key would be built (and hashed) anew for every lookup.
_NAME_RULES: Final = _name_rules()
# an indexed field, by index: every index a table of ENCODER_TABLE_MAX octets can reach
_INDEXED_FIELDS: Final = tuple(_encode_integer(index, 7, 0x80) for index in range(256))
# a string's length octet, for the short ones (no allocation per field)
_SHORT_LENGTHS: Final = tuple(bytes((length,)) for length in range(0x7f))
_LITERAL_NAME_PLAIN: Final = b"\x00"


def _length(value: bytes) -> bytes:
    length = len(value)
    if length < 0x7f:
        return _SHORT_LENGTHS[length]
    return _encode_integer(length, 7, 0x00)


class HeaderEncoder:
    """The encoding side of one connection's HPACK context (module docstring)."""

    def __init__(self) -> None:
        # the dynamic table, oldest first: each entry's name's slot, its value and its size
        self._entries: list[tuple[int, bytes, int]] = []
        # each entry's insertion number (the first is 0), by its name's slot and its value:
        # its index is 62 plus how many came after it
        # (made on the first insertion: most connections index a name or two)
        self._numbers: list[dict[bytes, int] | None] = [None] * len(_INDEXED_NAMES)
        self._inserted = 0
        self._table_size = 0
        self._table_limit = ENCODER_TABLE_MAX  # RFC 9113 §6.5.2: 4096 until the peer says
        self._smallest_limit = -1  # the smallest limit since the last block; -1: no update due
        self._changes = 0
        self._last_headers: list[tuple[bytes, bytes]] = []
        self._last_block = b""
        self._last_changes = -1

    def set_max_table_size(self, size: int) -> None:
        """The peer's SETTINGS_HEADER_TABLE_SIZE: the next block starts with the size updates
        §4.2 asks for (the smallest limit since the last block, then the new one)."""
        limit = min(size, ENCODER_TABLE_MAX)
        if self._smallest_limit < 0:
            if limit == self._table_limit:
                return
            self._smallest_limit = limit
        else:
            self._smallest_limit = min(self._smallest_limit, limit)
        self._table_limit = limit

    def encode(self, headers: list[tuple[bytes, bytes]]) -> bytes:
        """One header block for ``headers`` (lower-case names, as HTTP/2 requires)."""
        if (self._changes == self._last_changes and self._smallest_limit < 0
                and headers == self._last_headers):
            return self._last_block
        changes = self._changes
        parts: list[bytes] = []
        if self._smallest_limit >= 0:
            self._announce_limit(parts)
        for name, value in headers:
            rule = _NAME_RULES.get(name)
            if rule is None:
                parts.append(_LITERAL_NAME_PLAIN)
                parts.append(_length(name))
                parts.append(name)
            else:
                if rule.values is not None:
                    octets = rule.values.get(value)
                    if octets is not None:
                        parts.append(octets)
                        continue
                if rule.indexing is None:
                    parts.append(rule.literal)
                else:
                    numbers = self._numbers[rule.slot]
                    if numbers is not None:
                        number = numbers.get(value)
                        if number is not None:
                            parts.append(
                                _INDEXED_FIELDS[_STATIC_ENTRIES + self._inserted - number])
                            continue
                    size = len(name) + len(value) + _ENTRY_OVERHEAD
                    if size * _INDEXED_FIELD_SHARE <= self._table_limit:
                        parts.append(rule.indexing)
                        self._insert(rule.slot, value, size)
                    else:
                        parts.append(rule.literal)
            parts.append(_length(value))
            parts.append(value)
        block = b"".join(parts)
        if self._changes == changes:
            self._last_headers = list(headers)
            self._last_block = block
            self._last_changes = changes
        return block

    def _announce_limit(self, parts: list[bytes]) -> None:
        self._changes += 1
        smallest = self._smallest_limit
        self._smallest_limit = -1
        self._evict(smallest)
        parts.append(_encode_integer(smallest, 5, 0x20))
        if self._table_limit != smallest:
            parts.append(_encode_integer(self._table_limit, 5, 0x20))

    def _insert(self, slot: int, value: bytes, size: int) -> None:
        self._changes += 1
        self._evict(self._table_limit - size)  # fits: _INDEXED_FIELD_SHARE keeps it small
        self._entries.append((slot, value, size))
        numbers = self._numbers[slot]
        if numbers is None:
            numbers = self._numbers[slot] = {}
        numbers[value] = self._inserted
        self._inserted += 1
        self._table_size += size

    def _evict(self, room: int) -> None:
        """Drop the oldest entries until the table holds at most ``room`` octets."""
        entries = self._entries
        size = self._table_size
        dropped = 0
        first = self._inserted - len(entries)  # the oldest entry's insertion number
        while size > room:
            slot, value, entry_size = entries[dropped]
            size -= entry_size
            numbers = self._numbers[slot]
            if numbers is not None and numbers.get(value) == first + dropped:
                del numbers[value]
            dropped += 1
        if dropped:
            del entries[:dropped]
            self._table_size = size
