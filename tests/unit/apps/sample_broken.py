"""Sample module that fails at import time with ``ZeroDivisionError: division by zero``."""

from __future__ import annotations

RATIO = 1 / 0


async def app(scope: object, receive: object, send: object) -> None:
    """Never reached."""
