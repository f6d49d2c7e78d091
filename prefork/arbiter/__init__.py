"""The arbiter process: supervision of the workers, connection hand-off, binary upgrade, the
control socket and the bounded client loop it shares with ``/metrics``. It never handles a
request, and nothing here is imported by the worker's request path."""
