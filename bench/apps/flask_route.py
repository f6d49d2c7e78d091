"""A Flask route with a path parameter and a JSON answer (the "flask" scenario): the WSGI twin
of ``starlette_route``."""

from __future__ import annotations

from typing import Any

from flask import Flask

app = Flask(__name__)


@app.get("/users/<int:user_id>")
def user(user_id: int) -> dict[str, Any]:
    """A small user record for the id in the path."""
    return {"id": user_id, "name": f"user-{user_id}", "active": True}
