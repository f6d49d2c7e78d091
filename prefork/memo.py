"""Bounded memos of answers that depend on their key alone: checked response heads, split
``Host`` values, trusted-proxy answers.

Such a memo never needs invalidating, only bounding: it is emptied when full, so a stream of
distinct keys (a new length in every response head, a new client address per connection) costs
one store each and never memory. Reads stay a plain ``dict.get`` on the hot path; only a miss
calls :func:`remember`. This module does no I/O.
"""

from __future__ import annotations

from typing import TypeVar

__all__ = ["remember"]

K = TypeVar("K")
V = TypeVar("V")


def remember(memo: dict[K, V], key: K, answer: V, limit: int) -> V:
    """Store ``answer`` under ``key`` (emptying ``memo`` first when it holds ``limit``
    entries) and return it."""
    if len(memo) >= limit:
        memo.clear()
    memo[key] = answer
    return answer
