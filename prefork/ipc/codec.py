"""The one message codec between the arbiter and its workers (pure: no I/O).

Wire format of one frame::

    +----------------+-----------+------------------------------+
    | length: u32 BE | kind: u8  | body: UTF-8 JSON object       |
    +----------------+-----------+------------------------------+
      length counts kind + body

Frames travel over an ``AF_UNIX``/``SOCK_SEQPACKET`` pair, one frame per datagram, so file
descriptors passed with ``SCM_RIGHTS`` belong to exactly one frame. The length prefix still makes
the stream self-checking and lets the same codec run over a byte stream. Message classes register
themselves by ``KIND``; an unknown kind or a malformed frame raises :class:`CodecError`.
"""

from __future__ import annotations

import json
import json.encoder
import struct
from typing import Any, ClassVar, Protocol, TypeVar

HEADER = struct.Struct(">IB")
MAX_FRAME = 1 << 20


class CodecError(ValueError):
    """A frame that cannot be decoded: truncated, oversized, unknown kind or bad body."""


class Message(Protocol):
    KIND: ClassVar[int]

    def as_dict(self) -> dict[str, Any]: ...


_REGISTRY: dict[int, type[Any]] = {}
M = TypeVar("M", bound=type[Any])


def message(cls: M) -> M:
    """Class decorator: registers a message class (``prefork.ipc.messages``) under its
    ``KIND``; its constructor takes the fields ``as_dict`` gives, by name."""
    kind = cls.KIND
    if kind in _REGISTRY and _REGISTRY[kind] is not cls:
        raise ValueError(f"message kind {kind} registered twice")
    _REGISTRY[kind] = cls
    return cls


def encode(msg: Any) -> bytes:
    """One frame for ``msg``."""
    body = _compact_json(msg.as_dict()).encode()
    return HEADER.pack(len(body) + 1, msg.KIND) + body


def _not_json(value: object) -> Any:
    raise TypeError(f"Object of type {type(value).__name__} is not JSON serializable")


def _compact_json(data: Any) -> str:
    """``json.dumps(data, separators=(",", ":"))``, straight from json's C encoder when there is
    one: a fresh worker sends its first frames (Ready, a heartbeat each second) through here,
    and json.dumps's Python layer (the JSONEncoder it builds, its encode and iterencode) touched
    about 0.1 MB more of the pages the worker shares with the arbiter."""
    if _C_ENCODER is None:  # pragma: no cover - CPython always has json's C accelerator
        return json.dumps(data, separators=(",", ":"))
    # a fresh markers dict per call, as json.dumps makes: it catches circular references
    return "".join(_C_ENCODER({}, _not_json, _ESCAPE, None, ":", ",", False, False, True)(
        data, 0))


_C_ENCODER: Any = getattr(json.encoder, "c_make_encoder", None)  # None without json's C part
_ESCAPE = json.encoder.encode_basestring_ascii


def decode(frame: bytes) -> Any:
    """The message in one whole frame."""
    if len(frame) < HEADER.size:
        raise CodecError(f"frame of {len(frame)} bytes is shorter than its header")
    length, kind = HEADER.unpack_from(frame)
    if length != len(frame) - HEADER.size + 1 or length > MAX_FRAME:
        raise CodecError(f"frame length {length} does not match {len(frame)} bytes received")
    cls = _REGISTRY.get(kind)
    if cls is None:
        raise CodecError(f"unknown message kind {kind}")
    try:
        fields = json.loads(frame[HEADER.size:])
        return cls(**fields)
    except (ValueError, TypeError) as exc:
        raise CodecError(f"bad body for {cls.__name__}: {exc}") from None


def split_frames(buffer: bytes) -> tuple[list[bytes], bytes]:
    """Whole frames at the front of a byte stream, and the incomplete rest."""
    frames = []
    offset = 0
    while len(buffer) - offset >= HEADER.size:
        length, _ = HEADER.unpack_from(buffer, offset)
        if length > MAX_FRAME:
            raise CodecError(f"frame length {length} over the {MAX_FRAME}-byte limit")
        end = offset + HEADER.size - 1 + length
        if end > len(buffer):
            break
        frames.append(buffer[offset:end])
        offset = end
    return frames, buffer[offset:]
