"""ASGI and WSGI apps for the metrics tests: app-defined metrics written from the workers.

``/`` counts a hit and answers with the worker's pid; ``/observe?X`` observes X seconds;
``/gauge?X`` sets the gauges to X; ``/status?N`` answers status N; ``/hold?S`` answers, then
blocks its worker's event loop for S seconds (the worker is then known to be idle between
responses, which makes a kill at that moment land between two requests).
"""

import os
import time

from prefork.metrics import Counter, Gauge, Histogram
from tests.apps.lifespan import acknowledge_lifespan

HITS = Counter("app_hits_total", "Hits by route.", labelnames=("route",))
LATENCY = Histogram("app_latency_seconds", "Observed latencies.", buckets=(0.1, 0.5, 1.0))
LEVEL_SUM = Gauge("app_level", "Level, summed over workers.")
LEVEL_MAX = Gauge("app_level_max", "Level, the highest worker's.", aggregate="max")
LEVEL_ALL = Gauge("app_level_each", "Level, per worker.", aggregate="all")


async def app(scope, receive, send):
    if scope["type"] == "lifespan":
        return await acknowledge_lifespan(receive, send)
    path = scope["path"]
    query = scope["query_string"].decode() or "0"
    status = 200
    if path == "/":
        HITS.labels(route="root").inc()
    elif path == "/observe":
        LATENCY.observe(float(query))
    elif path == "/gauge":
        for gauge in (LEVEL_SUM, LEVEL_MAX, LEVEL_ALL):
            gauge.set(float(query))
    elif path == "/status":
        status = int(query)
    body = str(os.getpid()).encode()
    await send({"type": "http.response.start", "status": status,
                "headers": [(b"content-type", b"text/plain"),
                            (b"content-length", str(len(body)).encode())]})
    await send({"type": "http.response.body", "body": body})
    if path == "/hold":
        time.sleep(float(query))  # blocks the loop on purpose, after the response went out


def wsgi(environ, start_response):
    """The same counter from a WSGI app (run with --threads to write from several threads)."""
    HITS.labels("wsgi").inc()
    body = str(os.getpid()).encode()
    start_response("200 OK", [("Content-Type", "text/plain"), ("Content-Length", str(len(body)))])
    return [body]
