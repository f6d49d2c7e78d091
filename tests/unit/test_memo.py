"""prefork.memo: a bounded memo is emptied when full, so distinct keys never grow it."""

from __future__ import annotations

import pytest

from prefork.memo import remember

pytestmark = pytest.mark.timeout(10)


def test_remember_stores_and_returns_the_answer() -> None:
    memo: dict[str, int] = {}
    assert remember(memo, "a", 1, limit=4) == 1
    assert memo == {"a": 1}


def test_a_full_memo_is_emptied_before_the_next_store() -> None:
    memo: dict[int, int] = {}
    for key in range(1000):
        remember(memo, key, key * 2, limit=3)
        assert len(memo) <= 3
    assert memo[999] == 1998
