"""A FastAPI route that validates a JSON body with pydantic and returns it (the "fastapi" scenario).

``GET /ready`` answers 200 for the suite's readiness probe (the POST route would give 405).
"""

from __future__ import annotations

from fastapi import FastAPI
from pydantic import BaseModel


class Item(BaseModel):
    """What the client posts: the kind of small, nested document an API receives."""

    name: str
    price: float
    quantity: int
    tags: list[str]


app = FastAPI()


@app.post("/items")
async def create_item(item: Item) -> Item:
    """Validate the body and send it back, serialised by the response model."""
    return item


@app.get("/ready")
async def ready() -> dict[str, bool]:
    """The readiness probe's target."""
    return {"ready": True}
