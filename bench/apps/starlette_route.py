"""A Starlette route with a path parameter and a JSON answer (the "starlette" scenario)."""

from __future__ import annotations

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route


async def user(request: Request) -> JSONResponse:
    """A small user record for the id in the path."""
    user_id = request.path_params["user_id"]
    return JSONResponse({"id": user_id, "name": f"user-{user_id}", "active": True})


app = Starlette(routes=[Route("/users/{user_id:int}", user)])
