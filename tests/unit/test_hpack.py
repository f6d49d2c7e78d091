"""prefork's HPACK codec: RFC 7541's own examples, the ``hpack`` library as an oracle both
ways, every malformed block, the header-list bound and the memos."""

from __future__ import annotations

import random
from collections.abc import Iterable
from fractions import Fraction
from typing import Any

import hpack
import pytest
from hpack.huffman import HuffmanEncoder
from hpack.huffman_constants import REQUEST_CODES, REQUEST_CODES_LENGTH

from prefork.http2 import huffman
from prefork.http2.hpack import (
    ENCODER_TABLE_MAX,
    STATIC_TABLE,
    HeaderDecoder,
    HeaderEncoder,
    HeaderListTooLarge,
    HpackError,
)

pytestmark = pytest.mark.timeout(60)

Fields = list[tuple[bytes, bytes]]


def _fields(text: str) -> Fields:
    """``name: value`` lines as a header list."""
    fields = []
    for line in text.strip().splitlines():
        name, _, value = line.strip().partition(": ")
        fields.append((name.encode(), value.encode()))
    return fields


def _raw(fields: Iterable[tuple[Any, Any]]) -> Fields:
    """A header list from the ``hpack`` library as plain tuples of bytes."""
    return [(bytes(name), bytes(value)) for name, value in fields]


# --- the Huffman code -----------------------------------------------------------------------

def test_huffman_code_is_appendix_b() -> None:
    # rows as the appendix prints them: (symbol, code as hex, length)
    for symbol, code, length in [(0, 0x1ff8, 13), (1, 0x7fffd8, 23), (10, 0x3ffffffc, 30),
                                 (32, 0x14, 6), (47, 0x18, 6), (48, 0x0, 5), (92, 0x7fff0, 19),
                                 (122, 0x7b, 7), (128, 0xfffe6, 20), (203, 0x7ffffde, 27),
                                 (255, 0x3ffffee, 26), (256, 0x3fffffff, 30)]:
        assert (huffman.CODES[symbol], huffman.CODE_LENGTHS[symbol]) == (code, length)
    assert sum(Fraction(1, 2 ** length) for length in huffman.CODE_LENGTHS) == 1
    assert list(huffman.CODES) == list(REQUEST_CODES)
    assert list(huffman.CODE_LENGTHS) == list(REQUEST_CODES_LENGTH)


def test_huffman_round_trips_every_octet_and_random_strings() -> None:
    theirs = HuffmanEncoder(REQUEST_CODES, REQUEST_CODES_LENGTH)
    rnd = random.Random(7541)
    samples = [bytes((octet,)) for octet in range(256)]
    samples += [bytes(rnd.randrange(256) for _ in range(rnd.randrange(80))) for _ in range(500)]
    samples += [b"", b"www.example.com", b"/static/app.js?v=1", bytes(range(256)) * 3]
    for data in samples:
        coded = huffman.encode(data)
        assert coded == theirs.encode(data)
        assert huffman.encoded_length(data) == len(coded)
        assert huffman.decode(coded, 0, len(coded)) == data
        framed = b"\x00" * 3 + coded + b"\x00" * 2
        assert huffman.decode(framed, 3, 3 + len(coded)) == data


@pytest.mark.parametrize(("coded", "reason"), [
    (b"\xff\xff\xff\xff", "EOS"),  # 30 ones are EOS
    (b"\x18", "padding"),  # 'a' (00011) then 000: padding not all ones
    (b"\x1f\xff", "padding"),  # 'a' then 11 ones of padding: over 7 bits
    (b"\xfe", "padding"),  # seven ones and a zero: no symbol, no valid padding
])
def test_huffman_refuses_eos_and_bad_padding(coded: bytes, reason: str) -> None:
    with pytest.raises(huffman.InvalidHuffman, match=reason):
        huffman.decode(coded, 0, len(coded))


def test_huffman_takes_up_to_seven_bits_of_padding() -> None:
    assert huffman.decode(b"\x1f", 0, 1) == b"a"  # 'a' and three ones
    assert huffman.decode(b"\xff", 0, 0) == b""
    assert huffman.decode(b"\x00\x3f", 0, 2) == b"00"  # two '0' (00000) and six ones


# --- RFC 7541 Appendix C --------------------------------------------------------------------

def test_static_table_is_appendix_a() -> None:
    assert len(STATIC_TABLE) == 61
    assert list(STATIC_TABLE) == _raw(hpack.table.HeaderTable.STATIC_TABLE)


@pytest.mark.parametrize(("block", "fields"), [
    ("400a637573746f6d2d6b65790d637573746f6d2d686561646572", [(b"custom-key", b"custom-header")]),
    ("040c2f73616d706c652f70617468", [(b":path", b"/sample/path")]),
    ("100870617373776f726406736563726574", [(b"password", b"secret")]),
    ("82", [(b":method", b"GET")]),
])
def test_rfc_c2_single_representations(block: str, fields: Fields) -> None:
    assert HeaderDecoder().decode(bytes.fromhex(block)) == fields


def test_rfc_c2_1_adds_to_the_table_and_c2_2_does_not() -> None:
    decoder = HeaderDecoder()
    decoder.decode(bytes.fromhex("400a637573746f6d2d6b65790d637573746f6d2d686561646572"))
    decoder.decode(bytes.fromhex("040c2f73616d706c652f70617468"))
    decoder.decode(bytes.fromhex("100870617373776f726406736563726574"))
    assert decoder.decode(b"\xbe") == [(b"custom-key", b"custom-header")]
    with pytest.raises(HpackError, match="index 63"):
        decoder.decode(b"\xbf")


REQUESTS = [_fields(text) for text in (
    """
    :method: GET
    :scheme: http
    :path: /
    :authority: www.example.com
    """, """
    :method: GET
    :scheme: http
    :path: /
    :authority: www.example.com
    cache-control: no-cache
    """, """
    :method: GET
    :scheme: https
    :path: /index.html
    :authority: www.example.com
    custom-key: custom-value
    """)]

RESPONSES = [_fields(text) for text in (
    """
    :status: 302
    cache-control: private
    date: Mon, 21 Oct 2013 20:13:21 GMT
    location: https://www.example.com
    """, """
    :status: 307
    cache-control: private
    date: Mon, 21 Oct 2013 20:13:21 GMT
    location: https://www.example.com
    """, """
    :status: 200
    cache-control: private
    date: Mon, 21 Oct 2013 20:13:22 GMT
    location: https://www.example.com
    content-encoding: gzip
    set-cookie: foo=ASDJKHQKBZXOQWEOPIUAXQWEOIU; max-age=3600; version=1
    """)]

C3 = ["828684410f7777772e6578616d706c652e636f6d",
      "828684be58086e6f2d6361636865",
      "828785bf400a637573746f6d2d6b65790c637573746f6d2d76616c7565"]
C4 = ["828684418cf1e3c2e5f23a6ba0ab90f4ff",
      "828684be5886a8eb10649cbf",
      "828785bf408825a849e95ba97d7f8925a849e95bb8e8b4bf"]
C5 = ["4803333032580770726976617465611d4d6f6e2c203231204f637420323031332032303a31333a323120"
      "474d546e1768747470733a2f2f7777772e6578616d706c652e636f6d",
      "4803333037c1c0bf",
      "88c1611d4d6f6e2c203231204f637420323031332032303a31333a323220474d54c05a04677a69707738"
      "666f6f3d4153444a4b48514b425a584f5157454f50495541585157454f49553b206d61782d6167653d33"
      "3630303b2076657273696f6e3d31"]
C6 = ["488264025885aec3771a4b6196d07abe941054d444a8200595040b8166e082a62d1bff6e919d29ad1718"
      "63c78f0b97c8e9ae82ae43d3",
      "4883640effc1c0bf",
      "88c16196d07abe941054d444a8200595040b8166e084a62d1bffc05a839bd9ab77ad94e7821dd7f2e6c7"
      "b335dfdfcd5b3960d5af27087f3672c1ab270fb5291f9587316065c003ed4ee5b1063d5007"]


@pytest.mark.parametrize("blocks", [C3, C4], ids=["C.3 plain", "C.4 huffman"])
def test_rfc_c3_c4_requests_on_one_connection(blocks: list[str]) -> None:
    decoder = HeaderDecoder()
    for block, fields in zip(blocks, REQUESTS, strict=True):
        assert decoder.decode(bytes.fromhex(block)) == fields
    # the table after C.3.3 / C.4.3, newest first
    assert decoder.decode(b"\xbe\xbf\xc0") == [
        (b"custom-key", b"custom-value"), (b"cache-control", b"no-cache"),
        (b":authority", b"www.example.com")]
    with pytest.raises(HpackError):
        decoder.decode(b"\xc1")


@pytest.mark.parametrize("blocks", [C5, C6], ids=["C.5 plain", "C.6 huffman"])
def test_rfc_c5_c6_responses_evict_under_a_256_octet_table(blocks: list[str]) -> None:
    decoder = HeaderDecoder(max_table_size=256)
    for block, fields in zip(blocks, RESPONSES, strict=True):
        assert decoder.decode(bytes.fromhex(block)) == fields
    # the table after C.5.3 / C.6.3: three entries, 215 octets
    assert decoder.decode(b"\xbe\xbf\xc0") == [
        RESPONSES[2][5], (b"content-encoding", b"gzip"), RESPONSES[2][2]]
    with pytest.raises(HpackError):
        decoder.decode(b"\xc1")


# --- round trips with the hpack library -----------------------------------------------------

NAMES = [b":status", b"content-type", b"server", b"date", b"set-cookie", b"vary",
         b"cache-control", b"x-request-id", b"x-" + b"long" * 40, b"content-length",
         b"access-control-allow-origin", b"x-frame-options", b"cookie", b"accept-encoding"]
VALUES = [b"200", b"404", b"201", b"text/plain", b"", b"gzip, deflate", b"v" * 300,
          b"a=1; Path=/", b"Sun, 06 Dec 2026 08:00:00 GMT", b"\x01\xfe binary"]


def _random_fields(rnd: random.Random) -> Fields:
    return [(rnd.choice(NAMES), rnd.choice(VALUES)) for _ in range(rnd.randrange(12))]


@pytest.mark.parametrize("seed", range(8))
def test_our_encoder_decodes_with_hpack(seed: int) -> None:
    rnd = random.Random(seed)
    ours, theirs = HeaderEncoder(), hpack.Decoder()
    for _ in range(300):
        if rnd.random() < 0.05:
            size = rnd.choice([0, 40, 100, 300, 4096, 65536])
            ours.set_max_table_size(size)
            theirs.max_allowed_table_size = size
        fields = _random_fields(rnd)
        assert _raw(theirs.decode(ours.encode(fields), raw=True)) == fields


@pytest.mark.parametrize("seed", range(8))
def test_hpack_encoder_decodes_with_ours(seed: int) -> None:
    rnd = random.Random(seed)
    theirs, ours = hpack.Encoder(), HeaderDecoder()
    for _ in range(300):
        if rnd.random() < 0.05:
            theirs.header_table_size = rnd.choice([0, 40, 100, 300, 4096])
        fields = _random_fields(rnd)
        sensitive = [hpack.NeverIndexedHeaderTuple(name, value) if rnd.random() < 0.2
                     else (name, value) for name, value in fields]
        block = theirs.encode(sensitive, huffman=rnd.random() < 0.7)
        assert ours.decode(block) == fields


def test_our_encoder_decodes_with_ours() -> None:
    rnd = random.Random(2)
    encoder, decoder = HeaderEncoder(), HeaderDecoder()
    for _ in range(500):
        fields = _random_fields(rnd)
        assert decoder.decode(encoder.encode(fields)) == fields


# --- the encoder's choices ------------------------------------------------------------------

def test_encoder_indexes_static_full_matches_and_writes_the_rest_plainly() -> None:
    encoder = HeaderEncoder()
    for index, status in enumerate([b"200", b"204", b"206", b"304", b"400", b"404", b"500"], 8):
        assert encoder.encode([(b":status", status)]) == bytes((0x80 | index,))
    assert encoder.encode([(b":status", b"201")]) == b"\x08\x03201"  # name 8, not indexed
    assert encoder.encode([(b"x-id", b"7")]) == b"\x00\x04x-id\x017"
    assert encoder.encode([(b"content-length", b"13")]) == b"\x0f\x0d\x0213"  # name 28


def test_encoder_sends_cookies_and_credentials_never_indexed() -> None:
    decoder = hpack.Decoder()
    block = HeaderEncoder().encode([(b"set-cookie", b"id=1"), (b"authorization", b"x")])
    assert block[0] & 0xf0 == 0x10
    assert all(isinstance(field, hpack.NeverIndexedHeaderTuple)
               for field in decoder.decode(block, raw=True))


def test_encoder_indexes_repeated_fields_from_the_second_head_on() -> None:
    head = [(b":status", b"200"), (b"content-type", b"text/plain"), (b"server", b"prefork")]
    encoder = HeaderEncoder()
    first = encoder.encode(head)
    assert first == b"\x88\x5f\x0atext/plain\x76\x07prefork"  # added to the table (31, 54)
    assert encoder.encode(head) == b"\x88\xbf\xbe"
    decoder = hpack.Decoder()
    assert _raw(decoder.decode(first, raw=True)) == head
    assert _raw(decoder.decode(b"\x88\xbf\xbe", raw=True)) == head


def test_encoder_does_not_index_a_field_too_large_for_its_table() -> None:
    encoder = HeaderEncoder()
    big = [(b"content-type", b"t" * ENCODER_TABLE_MAX)]
    assert encoder.encode(big) == encoder.encode(big)
    assert encoder.encode(big)[0] == 0x0f  # without indexing, name 31


def test_encoder_announces_the_smallest_then_the_final_table_size() -> None:
    head = [(b"content-type", b"text/plain")]
    encoder = HeaderEncoder()
    decoder = hpack.Decoder()
    assert _raw(decoder.decode(encoder.encode(head), raw=True)) == head
    encoder.set_max_table_size(100)
    encoder.set_max_table_size(50)
    encoder.set_max_table_size(8192)  # above what the encoder uses: 4096
    block = encoder.encode(head)
    assert block.startswith(b"\x3f\x13" b"\x3f\xe1\x1f")  # update(50), update(4096)
    assert _raw(decoder.decode(block, raw=True)) == head
    encoder.set_max_table_size(0)
    block = encoder.encode(head)
    assert block[:2] == b"\x20\x0f"  # the update, then content-type not indexed: no room
    decoder.max_allowed_table_size = 0
    assert _raw(decoder.decode(block, raw=True)) == head
    encoder.set_max_table_size(4096)  # back up: one update, and indexing again
    block = encoder.encode(head)
    assert block.startswith(b"\x3f\xe1\x1f\x5f")


def test_encoder_sends_no_update_for_an_unchanged_size() -> None:
    encoder = HeaderEncoder()
    encoder.set_max_table_size(4096)
    encoder.set_max_table_size(65536)
    assert encoder.encode([(b":status", b"200")]) == b"\x88"


def test_encoder_evicts_as_a_decoder_does() -> None:
    encoder, decoder = HeaderEncoder(), hpack.Decoder()
    encoder.set_max_table_size(200)
    decoder.max_allowed_table_size = 200
    for round_ in range(40):  # each value ~50 octets: the table holds three or so
        head = [(b"content-type", b"type/%d" % (round_ % 7) + b"x" * 30),
                (b"server", b"s%d" % (round_ % 3))]
        assert _raw(decoder.decode(encoder.encode(head), raw=True)) == head


# --- malformed blocks -----------------------------------------------------------------------

@pytest.mark.parametrize(("block", "reason"), [
    (b"\x80", "index 0"),
    (b"\xbe", "index 62 past"),
    (b"\xff\x80\x80\x80\x80\x10", "over 2\\*\\*28"),  # 127 + 2**30
    (b"\xff\x80\x80\x80\x80\x80\x00", "continuation"),
    (b"\xff\x80", "ends inside an integer"),
    (b"\x40", "ends before a string"),
    (b"\x40\x01a", "ends before a string"),
    (b"\x04\x05/ab", "runs past the end"),
    (b"\x04\x7f\x80\x80\x80\x80\x01", "over 2\\*\\*28"),  # a length past 2**28
    (b"\x04\x84\xff\xff\xff\xff", "EOS"),
    (b"\x04\x81\x18", "padding"),
    (b"\x82\x20", "size update after a field"),
    (b"\x3f\xe2\x1f", "over the 4096 allowed"),  # 4097
    (b"\x1f\x2f\x00\x00", "index 62 past"),  # never indexed, name index 62 of an empty table
])
def test_malformed_blocks_are_hpack_errors(block: bytes, reason: str) -> None:
    with pytest.raises(HpackError, match=reason):
        HeaderDecoder().decode(block)


def test_any_octets_decode_or_raise_hpack_error() -> None:
    # random octets, and valid blocks with octets flipped, cut short or spliced together
    rnd = random.Random(9113)
    valid = [bytes.fromhex(block) for block in C3 + C4 + C5 + C6]
    for _ in range(3000):
        kind = rnd.randrange(3)
        if kind == 0:
            block = bytes(rnd.randrange(256) for _ in range(rnd.randrange(40)))
        elif kind == 1:
            mutated = bytearray(rnd.choice(valid))
            for _ in range(rnd.randrange(1, 4)):
                mutated[rnd.randrange(len(mutated))] = rnd.randrange(256)
            block = bytes(mutated)
        else:
            first, second = rnd.choice(valid), rnd.choice(valid)
            block = first[:rnd.randrange(len(first))] + second[rnd.randrange(len(second)):]
        decoder = HeaderDecoder(max_table_size=256, max_header_list_size=2048)
        try:
            fields = decoder.decode(block)
        except HpackError:
            continue
        assert all(type(name) is bytes and type(value) is bytes for name, value in fields)


def test_integer_bounds_are_inclusive() -> None:
    # 2**28 itself is taken (as a size update it is then over the table's limit)
    with pytest.raises(HpackError, match="over the 4096 allowed"):
        HeaderDecoder().decode(b"\x3f" + _continuation(2 ** 28 - 31))
    with pytest.raises(HpackError, match="over 2\\*\\*28"):
        HeaderDecoder().decode(b"\x3f" + _continuation(2 ** 28 - 30))


def _continuation(value: int) -> bytes:
    out = bytearray()
    while value >= 0x80:
        out.append(value & 0x7f | 0x80)
        value >>= 7
    out.append(value)
    return bytes(out)


def test_size_updates_are_taken_at_the_start_of_a_block() -> None:
    decoder = HeaderDecoder()
    decoder.decode(b"\x40\x01a\x01b")  # a: b in the table
    assert decoder.decode(b"\x3f\xe1\x1f\xbe") == [(b"a", b"b")]  # 4096: unchanged
    assert decoder.decode(b"\x20\x3f\xe1\x1f\x82") == [(b":method", b"GET")]  # 0, then 4096
    with pytest.raises(HpackError):
        decoder.decode(b"\xbe")  # the update to 0 emptied the table


def test_a_field_larger_than_the_table_empties_it() -> None:
    decoder = HeaderDecoder(max_table_size=64)
    decoder.decode(b"\x40\x01a\x01b")
    assert decoder.decode(b"\x40\x01c\x20" + b"x" * 32 + b"\x82") == [
        (b"c", b"x" * 32), (b":method", b"GET")]
    with pytest.raises(HpackError):
        decoder.decode(b"\xbe")


# --- the header-list bound ------------------------------------------------------------------

def test_header_list_bound_counts_32_octets_per_field() -> None:
    block = b"\x00\x01a\x01b" * 2  # two fields of 34 octets each
    assert len(HeaderDecoder(max_header_list_size=68).decode(block)) == 2
    with pytest.raises(HeaderListTooLarge):
        HeaderDecoder(max_header_list_size=67).decode(block)


def test_header_list_bound_stops_a_bomb_before_the_rest_is_read() -> None:
    # one 4 KB entry, then a million one-octet references to it, then an index 0 that a
    # decoder reading everything would refuse as malformed: the bound stops it first
    entry = b"\x40\x01a\x7f" + _continuation(4000 - 127) + b"v" * 4000
    block = entry + b"\xbe" * 1_000_000 + b"\x80"
    with pytest.raises(HeaderListTooLarge):
        HeaderDecoder(max_header_list_size=65536).decode(block)


def test_header_list_bound_is_checked_on_huffman_decoded_lengths() -> None:
    value = b"0" * 1000  # 5 bits each: 625 octets coded
    coded = huffman.encode(value)
    block = b"\x00\x01a" + b"\xff" + _continuation(len(coded) - 127) + coded
    assert HeaderDecoder(max_header_list_size=1033).decode(block) == [(b"a", value)]
    with pytest.raises(HeaderListTooLarge):
        HeaderDecoder(max_header_list_size=1032).decode(block)


# --- the memos ------------------------------------------------------------------------------

def test_decoder_gives_a_repeated_block_its_last_list() -> None:
    decoder = HeaderDecoder()
    decoder.decode(bytes.fromhex(C3[0]))
    indexed = b"\x82\x86\x84\xbe"
    first = decoder.decode(indexed)
    again = decoder.decode(bytes(bytearray(indexed)))  # equal, not the same object
    assert again == first == REQUESTS[0]
    assert again is first


def test_decoder_decodes_again_a_block_that_changed_the_table() -> None:
    decoder = HeaderDecoder()
    block = b"\x40\x01a\x01b"
    assert decoder.decode(block) == [(b"a", b"b")]
    assert decoder.decode(block) == [(b"a", b"b")]
    # decoded twice: two entries, so index 63 exists
    assert decoder.decode(b"\xbe\xbf") == [(b"a", b"b"), (b"a", b"b")]


def test_decoder_memo_follows_the_table() -> None:
    decoder = HeaderDecoder()
    decoder.decode(b"\x40\x01a\x011")
    assert decoder.decode(b"\xbe") == [(b"a", b"1")]
    decoder.decode(b"\x40\x01a\x012")  # a new newest entry
    assert decoder.decode(b"\xbe") == [(b"a", b"2")]


def test_decoder_memo_follows_the_limits() -> None:
    decoder = HeaderDecoder()
    block = b"\x82\x86"
    assert decoder.decode(block) == [(b":method", b"GET"), (b":scheme", b"http")]
    decoder.max_header_list_size = 50
    with pytest.raises(HeaderListTooLarge):
        decoder.decode(block)
    decoder.max_header_list_size = 65536
    size_update = b"\x3f\xe1\x1f\x82"
    assert decoder.decode(size_update) == [(b":method", b"GET")]
    decoder.max_table_size = 100
    with pytest.raises(HpackError, match="over the 100 allowed"):
        decoder.decode(size_update)


def test_decoder_error_leaves_no_memo_behind() -> None:
    decoder = HeaderDecoder()
    with pytest.raises(HpackError):
        decoder.decode(b"\x82\x80")
    with pytest.raises(HpackError):
        decoder.decode(b"\x82\x80")


def test_encoder_gives_an_equal_list_its_last_block() -> None:
    head = [(b":status", b"200"), (b"content-length", b"13"), (b"server", b"prefork")]
    encoder = HeaderEncoder()
    first = encoder.encode(head)  # adds server: not remembered
    second = encoder.encode(list(head))
    assert second != first
    third = encoder.encode([(b":status", b"200"), (b"content-length", b"13"),
                            (b"server", b"prefork")])
    assert third is second
    head.append((b"x", b"y"))  # the caller's list changing does not fool the memo
    assert encoder.encode(head) == second + b"\x00\x01x\x01y"


def test_encoder_memo_yields_to_a_pending_size_update() -> None:
    head = [(b":status", b"200")]
    encoder = HeaderEncoder()
    assert encoder.encode(head) == b"\x88"
    encoder.set_max_table_size(0)
    assert encoder.encode(head) == b"\x20\x88"
    assert encoder.encode(head) == b"\x88"
