"""Application metrics, summed over every worker by the arbiter: counters, gauges, histograms.

Define metrics at module level in app code and use them from any worker, in any thread::

    from prefork.metrics import Counter, Gauge, Histogram

    ORDERS = Counter("shop_orders_total", "Orders placed.", labelnames=("kind",))
    QUEUE = Gauge("shop_queue_depth", "Jobs waiting.", aggregate="max")
    CHECKOUT = Histogram("shop_checkout_seconds", "Checkout time.", buckets=(0.1, 0.5, 2))

    ORDERS.labels(kind="book").inc()
    QUEUE.set(12)
    CHECKOUT.observe(0.42)

With ``--metrics-bind`` each worker writes into its own shared-memory block
(:mod:`prefork.metrics.store`) and the arbiter's ``/metrics`` adds them up: counters and
histograms keep counting across worker restarts, gauges combine the live workers by
``aggregate``. Outside a worker (tests, scripts, the arbiter importing a preloaded app) a
process keeps its values to itself, so app code never has to ask where it runs; ``.value``
reads this process's value.

A series finds its process's block at its first write, and again after a fork: objects made in
the arbiter by ``--preload`` write to each worker's own block. That process-wide destination is
the one piece of module state here, on purpose: app code defines metrics at module level and
must not carry a handle around. Definitions are remembered per process too, so that one name
cannot be defined with two meanings; defining the same metric twice is allowed (both objects
write the same series).

The instruments live in :mod:`prefork.metrics.instruments` and are imported on first use: every
arbiter imports this package for its collector (``prefork.metrics.collector``), and most
arbiters serve no metrics.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from prefork.metrics.instruments import DEFAULT_BUCKETS, Counter, Gauge, Histogram
    from prefork.metrics.instruments import current_block as current_block
    from prefork.metrics.instruments import histogram_keys as histogram_keys
    from prefork.metrics.instruments import shared_block as shared_block
    from prefork.metrics.instruments import use_block as use_block

__all__ = ["DEFAULT_BUCKETS", "Counter", "Gauge", "Histogram"]
_FROM_INSTRUMENTS = (*__all__, "current_block", "histogram_keys", "shared_block", "use_block")


def __getattr__(name: str) -> Any:
    if name not in _FROM_INSTRUMENTS:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    from prefork.metrics import instruments

    value = getattr(instruments, name)
    globals()[name] = value
    return value
