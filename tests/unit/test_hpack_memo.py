"""The memo HPACK coders give exactly what ``hpack`` gives, block for block, table changes,
size updates and limits included, and skip the work only for a repeated block."""

from __future__ import annotations

import random

import pytest
from hpack import Decoder, Encoder, NeverIndexedHeaderTuple
from hpack.exceptions import HPACKError

from prefork.http2.hpack_memo import MemoDecoder, MemoEncoder

NAMES = [b"a", b"b", b"content-type", b"date", b"x-" + b"n" * 30]
VALUES = [b"1", b"2", b"text/plain", b"v" * 50, b""]


def _decoded(decoder: Decoder, block: bytes) -> object:
    try:
        return decoder.decode(block, raw=True)
    except HPACKError as exc:
        return type(exc)


@pytest.mark.parametrize("seed", range(20))
def test_memo_coders_agree_with_hpack(seed: int) -> None:
    rnd = random.Random(seed)
    plain_encoder, memo_encoder = Encoder(), MemoEncoder()
    plain_decoder, memo_decoder = Decoder(), MemoDecoder()
    fields: list[tuple[bytes, bytes]] = []
    for _ in range(200):
        if rnd.random() < 0.05:
            size = rnd.choice([4096, 200, 100, 60, 0])
            plain_encoder.header_table_size = memo_encoder.header_table_size = size
        if rnd.random() < 0.05:
            size = rnd.choice([4096, 100, 0])
            plain_decoder.max_allowed_table_size = memo_decoder.max_allowed_table_size = size
        if rnd.random() < 0.05:
            size = rnd.choice([65536, 100])
            plain_decoder.max_header_list_size = memo_decoder.max_header_list_size = size
        if not fields or rnd.random() < 0.4:  # else the same list again
            fields = [(rnd.choice(NAMES), rnd.choice(VALUES)) for _ in range(rnd.randint(0, 5))]
        block = plain_encoder.encode(list(fields))
        assert memo_encoder.encode(list(fields)) == block
        expected = _decoded(plain_decoder, block)
        assert _decoded(memo_decoder, block) == expected
        if isinstance(expected, type):
            return


def test_a_repeated_block_is_not_coded_again() -> None:
    encoder, decoder = MemoEncoder(), MemoDecoder()
    fields = [(b":status", b"200"), (b"server", b"prefork")]
    decoder.decode(encoder.encode(list(fields)), raw=True)  # the fields enter both tables
    block = encoder.encode(list(fields))
    assert encoder.encode(list(fields)) is block
    first = decoder.decode(block, raw=True)
    again = decoder.decode(block, raw=True)
    assert again == first and again is not first  # a list of its own each time


def test_never_indexed_fields_are_not_taken_from_the_memo() -> None:
    plain, memo = Encoder(), MemoEncoder()
    fields = [(b"authorization", b"secret")]
    for _ in range(2):
        assert memo.encode(list(fields)) == plain.encode(list(fields))
    sensitive = [NeverIndexedHeaderTuple(b"authorization", b"secret")]
    assert memo.encode(list(sensitive)) == plain.encode(list(sensitive))


def test_a_block_is_held_to_the_limits_it_meets_now() -> None:
    encoder, decoder = Encoder(), MemoDecoder()
    block = encoder.encode([(b"x", b"y" * 100)])
    decoder.decode(block, raw=True)
    block = encoder.encode([(b"x", b"y" * 100)])
    decoder.decode(block, raw=True)
    decoder.max_header_list_size = 50
    with pytest.raises(HPACKError):
        decoder.decode(block, raw=True)
