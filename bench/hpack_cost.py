"""What one HPACK call costs: prefork's coder (``prefork.http2.hpack``) beside the ``hpack``
library, for h2load's request block and a hello response head.

No connection, no frames: nanoseconds of CPU per ``decode`` of a request block and per
``encode`` of a response head, best of a few rounds. The request is h2load's five fields; its
first block (as a client sends it: the static fields indexed, ``:authority`` and
``user-agent`` Huffman-coded literals added to the table) is decoded by a fresh decoder each
time, and the block every later request repeats (five indexes) by one decoder again and again:
prefork's decoder answers that from its memo, so it is also timed alternating with the same
fields in another order, which decodes every time. The response head is the hello app's; a
fresh encoder writes its first block, one encoder the repeats (prefork's from its memo), and
one encoder a head whose ``date`` changes every time (what a new second costs).

    .venv/bin/python -m bench.hpack_cost [--calls 20000]

Which build of prefork runs is printed: ``make compile`` first for the compiled one.
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Callable

import hpack

import prefork
from prefork.http2.hpack import HeaderDecoder, HeaderEncoder

REQUEST = [(b":method", b"GET"), (b":scheme", b"http"), (b":path", b"/"),
           (b":authority", b"127.0.0.1:8000"), (b"user-agent", b"h2load nghttp2/1.52.0")]
RESPONSE = [(b":status", b"200"), (b"content-type", b"text/plain"),
            (b"content-length", b"13"), (b"date", b"Sun, 06 Dec 2026 08:00:00 GMT"),
            (b"server", b"prefork")]


def _request_blocks() -> tuple[bytes, bytes, bytes]:
    """The first request block, the repeated one, and the repeated one's fields reordered."""
    client = hpack.Encoder()
    first = client.encode(REQUEST)
    later = client.encode(REQUEST)
    reordered = client.encode(REQUEST[::-1])
    return first, later, reordered


def _per_call(prepare: Callable[[int], Callable[[], None]], calls: int, rounds: int) -> float:
    """Nanoseconds of CPU per call, the best of ``rounds``: ``prepare(calls)`` makes what the
    calls need (untimed) and gives the function that makes them."""
    best = float("inf")
    for _ in range(rounds):
        run = prepare(calls)
        began = time.process_time_ns()
        run()
        best = min(best, (time.process_time_ns() - began) / calls)
    return best


def decoding(calls: int, rounds: int) -> list[tuple[str, float, float]]:
    first, later, reordered = _request_blocks()

    def ours_first(n: int) -> Callable[[], None]:
        decoders = [HeaderDecoder() for _ in range(n)]

        def run() -> None:
            for decoder in decoders:
                decoder.decode(first)
        return run

    def theirs_first(n: int) -> Callable[[], None]:
        decoders = [hpack.Decoder() for _ in range(n)]

        def run() -> None:
            for decoder in decoders:
                decoder.decode(first, raw=True)
        return run

    def repeated(decode: Callable[[bytes], object]) -> Callable[[int], Callable[[], None]]:
        def prepare(n: int) -> Callable[[], None]:
            def run() -> None:
                for _ in range(n):
                    decode(later)
            return run
        return prepare

    def alternating(decode: Callable[[bytes], object]) -> Callable[[int], Callable[[], None]]:
        def prepare(n: int) -> Callable[[], None]:
            def run() -> None:
                for _ in range(n // 2):
                    decode(later)
                    decode(reordered)
            return run
        return prepare

    ours, theirs = HeaderDecoder(), hpack.Decoder()
    ours.decode(first)
    theirs.decode(first, raw=True)
    ours_alternating, theirs_alternating = HeaderDecoder(), hpack.Decoder()
    ours_alternating.decode(first)
    theirs_alternating.decode(first, raw=True)
    return [
        ("decode, first block", _per_call(ours_first, calls, rounds),
         _per_call(theirs_first, calls, rounds)),
        ("decode, repeated block", _per_call(repeated(ours.decode), calls, rounds),
         _per_call(repeated(lambda b: theirs.decode(b, raw=True)), calls, rounds)),
        ("decode, indexed block, no memo",
         _per_call(alternating(ours_alternating.decode), calls, rounds),
         _per_call(alternating(lambda b: theirs_alternating.decode(b, raw=True)), calls,
                   rounds)),
    ]


def encoding(calls: int, rounds: int) -> list[tuple[str, float, float]]:
    Encode = Callable[[list[tuple[bytes, bytes]]], bytes]

    def ours_first(n: int) -> Callable[[], None]:
        encoders = [HeaderEncoder() for _ in range(n)]

        def run() -> None:
            for encoder in encoders:
                encoder.encode(RESPONSE)
        return run

    def theirs_first(n: int) -> Callable[[], None]:
        encoders = [hpack.Encoder() for _ in range(n)]

        def run() -> None:
            for encoder in encoders:
                encoder.encode(RESPONSE)
        return run

    def repeated(encode: Encode) -> Callable[[int], Callable[[], None]]:
        def prepare(n: int) -> Callable[[], None]:
            def run() -> None:
                for _ in range(n):
                    encode(RESPONSE)
            return run
        return prepare

    def new_date(encode: Encode) -> Callable[[int], Callable[[], None]]:
        def prepare(n: int) -> Callable[[], None]:
            # a new date (a new bytes object, as the app makes) for each head
            heads = [[*RESPONSE[:3], (b"date", b"Sun, 06 Dec 2026 %02d:%02d:%02d GMT" % (
                i // 3600 % 24, i // 60 % 60, i % 60)), RESPONSE[4]] for i in range(n)]

            def run() -> None:
                for head in heads:
                    encode(head)
            return run
        return prepare

    ours, theirs = HeaderEncoder(), hpack.Encoder()
    ours_dated, theirs_dated = HeaderEncoder(), hpack.Encoder()
    return [
        ("encode, first head", _per_call(ours_first, calls, rounds),
         _per_call(theirs_first, calls, rounds)),
        ("encode, repeated head", _per_call(repeated(ours.encode), calls, rounds),
         _per_call(repeated(theirs.encode), calls, rounds)),
        ("encode, new date each head", _per_call(new_date(ours_dated.encode), calls, rounds),
         _per_call(new_date(theirs_dated.encode), calls, rounds)),
    ]


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.hpack_cost",
                                     description=__doc__.splitlines()[0])
    parser.add_argument("--calls", type=int, default=20000)
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()
    print(f"prefork {prefork.build()} build against hpack {hpack.__version__}, "
          f"ns of CPU per call (best of {args.rounds} x {args.calls})")
    print(f"{'':32} {'prefork':>9} {'hpack':>9}")
    for label, ours, theirs in [*decoding(args.calls, args.rounds),
                                *encoding(args.calls, args.rounds)]:
        print(f"{label:32} {ours:9,.0f} {theirs:9,.0f}")


if __name__ == "__main__":
    main()
