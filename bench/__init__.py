"""Benchmarks of prefork, alone and side by side with peer servers.

``python -m bench.suite`` is the side-by-side suite (``make bench``); ``http_engine.py`` times the
HTTP engine in-process and ``soak.py`` runs a long soak. Nothing here is imported by ``prefork``.
"""
