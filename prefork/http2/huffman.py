"""The Huffman code of HPACK (RFC 7541 §5.2 and Appendix B): string literals in and out.

The code is canonical: within one length the codes run in the order of the symbols, and each
length starts where the shorter ones left off, shifted left. So the bit length of each of the
257 symbols (256 octets and EOS) defines it entirely: :data:`CODE_LENGTHS` is Appendix B's
``len`` column, and :data:`CODES` follows from it (a test checks the result against the
appendix's printed codes and against the ``hpack`` library).

Decoding runs a state machine one input octet at a time. A state is an inner node of the code
tree (the bits read since the last whole symbol: 256 of them, the root included); from each
state, each octet leads to one next state and completes at most two symbols (the shortest code
has 5 bits, so 8 bits finish the pending code and at most one more). The tables, built once at
import, are four ``bytes`` of 65536 entries indexed by ``state << 8 | octet``: the next state,
how many symbols were completed (3: EOS was met, an error), and the two symbols. Plain octet
strings keep them at 256 KiB without an int object per entry, and an indexed ``bytes`` read
is a few inline C operations under mypyc. They are built by composing a per-nibble walk of the
tree in pairs, which keeps the import to some 50 ms even on the pure build. Compiled, decoding
h2load's ``user-agent`` (15 octets) costs about 6,500 instructions a call from Python.

A string ends cleanly at the root or on one of the first seven nodes of the all-ones path
(padding is at most 7 bits of the EOS prefix, §5.2): anything else is :class:`InvalidHuffman`.

This module does no I/O.
"""

from __future__ import annotations

from typing import Final

__all__ = ["CODES", "CODE_LENGTHS", "EOS", "InvalidHuffman", "decode", "encode", "encoded_length"]

EOS: Final = 256

# RFC 7541 Appendix B, the bit length of the code of each symbol 0..256, sixteen a row.
CODE_LENGTHS: Final[tuple[int, ...]] = (
    13, 23, 28, 28, 28, 28, 28, 28, 28, 24, 30, 28, 28, 30, 28, 28,  # 0x00
    28, 28, 28, 28, 28, 28, 30, 28, 28, 28, 28, 28, 28, 28, 28, 28,  # 0x10
    6, 10, 10, 12, 13, 6, 8, 11, 10, 10, 8, 11, 8, 6, 6, 6,  # 0x20  !"#$%&'()*+,-./
    5, 5, 5, 6, 6, 6, 6, 6, 6, 6, 7, 8, 15, 6, 12, 10,  # 0x30  0123456789:;<=>?
    13, 6, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7,  # 0x40  @ABCDEFGHIJKLMNO
    7, 7, 7, 7, 7, 7, 7, 7, 8, 7, 8, 13, 19, 13, 14, 6,  # 0x50  PQRSTUVWXYZ[\]^_
    15, 5, 6, 5, 6, 5, 6, 6, 6, 5, 7, 7, 6, 6, 6, 5,  # 0x60  `abcdefghijklmno
    6, 7, 6, 5, 5, 6, 7, 7, 7, 7, 7, 15, 11, 14, 13, 28,  # 0x70  pqrstuvwxyz{|}~
    20, 22, 20, 20, 22, 22, 22, 23, 22, 23, 23, 23, 23, 23, 24, 23,  # 0x80
    24, 24, 22, 23, 24, 23, 23, 23, 23, 21, 22, 23, 22, 23, 23, 24,  # 0x90
    22, 21, 20, 22, 22, 23, 23, 21, 23, 22, 22, 24, 21, 22, 23, 23,  # 0xa0
    21, 21, 22, 21, 23, 22, 23, 23, 20, 22, 22, 22, 23, 22, 22, 23,  # 0xb0
    26, 26, 20, 19, 22, 23, 22, 25, 26, 26, 26, 27, 27, 26, 24, 25,  # 0xc0
    19, 21, 26, 27, 27, 26, 27, 24, 21, 21, 26, 26, 28, 27, 27, 27,  # 0xd0
    20, 24, 20, 21, 22, 21, 21, 23, 22, 22, 25, 25, 24, 24, 26, 23,  # 0xe0
    26, 27, 26, 26, 27, 27, 27, 27, 27, 28, 27, 27, 27, 27, 27, 26,  # 0xf0
    30,  # EOS
)


class InvalidHuffman(ValueError):
    """A Huffman-coded string that RFC 7541 §5.2 makes a decoding error."""


def _canonical_codes(lengths: tuple[int, ...]) -> tuple[int, ...]:
    """The canonical code of each symbol, given the length of each."""
    codes = [0] * len(lengths)
    code = 0
    previous = 0
    for length in sorted(set(lengths)):
        code <<= length - previous
        previous = length
        for symbol, symbol_length in enumerate(lengths):
            if symbol_length == length:
                codes[symbol] = code
                code += 1
    return tuple(codes)


CODES: Final[tuple[int, ...]] = _canonical_codes(CODE_LENGTHS)


def encode(data: bytes) -> bytes:
    """``data`` Huffman-coded, padded with the high bits of EOS to a whole octet."""
    bits = 0
    count = 0
    out = bytearray()
    for octet in data:
        bits = (bits << CODE_LENGTHS[octet]) | CODES[octet]
        count += CODE_LENGTHS[octet]
        while count >= 8:
            count -= 8
            out.append((bits >> count) & 0xff)
        bits &= (1 << count) - 1
    if count:
        out.append(((bits << (8 - count)) | (0xff >> count)) & 0xff)
    return bytes(out)


def encoded_length(data: bytes) -> int:
    """How many octets :func:`encode` makes of ``data``."""
    bits = 0
    for octet in data:
        bits += CODE_LENGTHS[octet]
    return (bits + 7) >> 3


# --- the decoding tables ------------------------------------------------------------------

_EMIT_EOS: Final = 3  # in the count table: the octet runs into EOS


def _code_tree() -> tuple[list[int], list[int]]:
    """The code as a tree: ``children[2 * node + bit]`` is an inner node's number, or
    ``-1 - symbol`` for a leaf; node 0 is the root. Also which inner nodes may end a string
    (the root, and the all-ones path to depth 7), as a 0/1 list by node."""
    children = [0, 0]
    depth = [0]
    for symbol, length in enumerate(CODE_LENGTHS):
        code = CODES[symbol]
        node = 0
        for shift in range(length - 1, 0, -1):
            slot = 2 * node + ((code >> shift) & 1)
            if children[slot] == 0:  # no child yet: the root, node 0, is nobody's child
                children[slot] = len(depth)
                depth.append(depth[node] + 1)
                children.extend((0, 0))
            node = children[slot]
        children[2 * node + (code & 1)] = -1 - symbol
    accepting = [0] * len(depth)
    node = 0
    for level in range(8):
        accepting[node] = 1
        if level < 7:
            node = children[2 * node + 1]
    return children, accepting


def _nibble_steps(children: list[int]) -> list[tuple[int, int, int]]:
    """For each inner node and 4-bit input (``node << 4 | nibble``): the next node, how many
    symbols that completed (0, 1 or EOS), and the symbol. Four bits complete one code at most,
    since the shortest has five."""
    steps = []
    for node in range((len(children)) // 2):
        for nibble in range(16):
            at = node
            emitted = 0
            symbol = 0
            for shift in (3, 2, 1, 0):
                child = children[2 * at + ((nibble >> shift) & 1)]
                if child >= 0:
                    at = child
                    continue
                at = 0
                if -1 - child == EOS:
                    emitted = _EMIT_EOS
                elif emitted != _EMIT_EOS:
                    emitted = 1
                    symbol = -1 - child
            steps.append((at, emitted, symbol))
    return steps


def _octet_tables() -> tuple[bytes, bytes, bytes, bytes, bytes]:
    children, accepting = _code_tree()
    nibbles = _nibble_steps(children)
    states = len(accepting)
    next_state = bytearray(states << 8)
    emitted = bytearray(states << 8)
    first = bytearray(states << 8)
    second = bytearray(states << 8)
    for state in range(states):
        for high in range(16):
            middle, count_high, symbol_high = nibbles[state << 4 | high]
            for low in range(16):
                end, count_low, symbol_low = nibbles[middle << 4 | low]
                at = state << 8 | high << 4 | low
                next_state[at] = end
                if count_high == _EMIT_EOS or count_low == _EMIT_EOS:
                    emitted[at] = _EMIT_EOS
                elif count_high:
                    emitted[at] = 1 + count_low
                    first[at] = symbol_high
                    second[at] = symbol_low
                elif count_low:
                    emitted[at] = 1
                    first[at] = symbol_low
    return (bytes(next_state), bytes(emitted), bytes(first), bytes(second), bytes(accepting))


# Final names are C globals under mypyc, read without a dictionary lookup.
_TABLES: Final = _octet_tables()
_NEXT: Final = _TABLES[0]
_EMITTED: Final = _TABLES[1]
_FIRST: Final = _TABLES[2]
_SECOND: Final = _TABLES[3]
_ACCEPTING: Final = _TABLES[4]


def decode(data: bytes, start: int, end: int) -> bytes:
    """The octets Huffman-coded in ``data[start:end]``; InvalidHuffman when they hold EOS or
    end in anything but at most 7 bits of padding, all ones (RFC 7541 §5.2)."""
    # The octets out are gathered in an int, up to 7 of them (under mypyc a tagged int: no
    # object until it passes 62 bits), and written 6 or 7 at a time: a list of int boxes each
    # octet, a bytearray looks its append up each time, and a join of one-octet bytes (or str)
    # pays per piece; each measured slower under cachegrind.
    pieces: list[bytes] = []
    chunk = 0
    held = 0
    state = 0
    position = start
    while position < end:
        at = (state << 8) | data[position]
        position += 1
        emitted = _EMITTED[at]
        if emitted:
            if emitted == _EMIT_EOS:
                raise InvalidHuffman("EOS inside a Huffman-coded string")
            chunk = (chunk << 8) | _FIRST[at]
            held += 1
            if emitted == 2:
                chunk = (chunk << 8) | _SECOND[at]
                held += 1
            if held >= 6:
                pieces.append(chunk.to_bytes(held, "big"))
                chunk = 0
                held = 0
        state = _NEXT[at]
    if not _ACCEPTING[state]:
        raise InvalidHuffman("a Huffman-coded string ends in a bad padding")
    last = chunk.to_bytes(held, "big")
    if not pieces:
        return last
    pieces.append(last)
    return b"".join(pieces)
