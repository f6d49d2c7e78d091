"""The applications every server in the suite serves, one module per scenario or framework.

Each module exposes ``asgi`` and/or ``wsgi`` (framework apps: ``app``). The plain apps do the
least work a real app must (a fixed status, two headers, one body), the same for every server,
so that what differs between rows is the server. They answer any path.
"""
