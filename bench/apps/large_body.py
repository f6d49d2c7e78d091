"""A 64 KB response body in one piece (the "body-64k" scenario): the cost of writing bulk bytes."""

from __future__ import annotations

from bench.apps.hello import fixed_answer

BODY = b"x" * 65536
asgi, wsgi = fixed_answer(BODY, "application/octet-stream")
