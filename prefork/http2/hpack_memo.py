"""HPACK coders that skip the work when a header block repeats while the table stands still.

A client sends the same header block for request after request once its fields are in the
dynamic table (every field an index: the block's bytes repeat exactly), and an app answers
with the same head (the same fields, indexed the same way): decoding or encoding such a block
again gives the same result and leaves the table as it was. :class:`MemoDecoder` and
:class:`MemoEncoder` keep the last block that left their table unchanged, with its result, and
give that result again for the same input while the table is still the one it was made
against; anything else goes to ``hpack`` as before.

The table "is still the one" when its size limit, its number of entries and its newest entry
(the very object, which the memo keeps alive so that its identity cannot be reused) are those
seen after the remembered block: an entry can only be added at the front, and one can only be
evicted by an addition or by shrinking the limit, so any change to the table changes one of
the three. A pending size update (the encoder's ``resized``) is never skipped: such a block
goes to ``hpack``. The decoder's own limits (the header list size, the table size the peer may
set) are part of what must match, so a block is never taken under a limit it was not checked
against.
"""

from __future__ import annotations

from typing import Any

from hpack import Decoder, Encoder
from hpack.table import HeaderTable


def _table_state(table: HeaderTable) -> tuple[int, int, Any]:
    entries = table.dynamic_entries
    return table.maxsize, len(entries), entries[0] if entries else None


def _same_state(state: tuple[int, int, Any], table: HeaderTable) -> bool:
    entries = table.dynamic_entries
    return (state[0] == table.maxsize and state[1] == len(entries)
            and (not entries or entries[0] is state[2]))


class MemoDecoder(Decoder):
    """``hpack.Decoder`` that gives a repeated block its last result (module docstring)."""

    def __init__(self, max_header_list_size: int = 2**16) -> None:
        super().__init__(max_header_list_size)
        self._block: bytes | None = None
        self._headers: list[Any] = []
        self._state: tuple[Any, ...] = ()

    def decode(self, data: bytes, raw: bool = False) -> Any:
        table = self.header_table
        limits = (self.max_header_list_size, self.max_allowed_table_size, raw)
        if (data == self._block and self._state[3:] == limits
                and _same_state(self._state, table)):
            return list(self._headers)
        before = _table_state(table)
        headers = super().decode(data, raw)
        if _same_state(before, table):
            self._block = bytes(data)
            self._headers = list(headers)
            self._state = before + limits
        else:
            self._block = None
        return headers


class MemoEncoder(Encoder):
    """``hpack.Encoder`` that gives a repeated header list its last block (module docstring)."""

    def __init__(self) -> None:
        super().__init__()
        self._fields: tuple[Any, ...] | None = None
        self._block = b""
        self._state: tuple[int, int, Any] = (0, 0, None)

    def encode(self, headers: Any, huffman: bool = True) -> bytes:
        table = self.header_table
        plain = type(headers) is list and huffman
        if plain:
            for field in headers:  # a HeaderTuple asks for its own indexing: never skipped
                if type(field) is not tuple:
                    plain = False
                    break
        if plain:
            fields = tuple(headers)
            if (fields == self._fields and not table.resized
                    and _same_state(self._state, table)):
                return self._block
            pending_resize = table.resized
            before = _table_state(table)
            block = super().encode(headers, huffman)
            if not pending_resize and _same_state(before, table):
                self._fields = fields
                self._block = block
                self._state = before
            else:
                self._fields = None
            return block
        self._fields = None
        return super().encode(headers, huffman)
