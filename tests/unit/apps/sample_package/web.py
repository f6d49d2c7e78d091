"""Sample app in a package submodule: ``sample_package.web:app``."""

from __future__ import annotations

from sample_asgi import app

__all__ = ["app"]
