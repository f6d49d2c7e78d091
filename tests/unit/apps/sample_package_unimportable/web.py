"""Sample submodule of a package that cannot be imported."""

from __future__ import annotations


async def app(scope: object, receive: object, send: object) -> None:
    """Never served: the parent package fails first."""
