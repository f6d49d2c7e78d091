"""A project's own uvicorn worker class, as deployments write one to give uvicorn options under
gunicorn (``-k tests.apps.uvicorn_workers.ApiUvicornWorker``)."""

from uvicorn_worker import UvicornWorker


class ApiUvicornWorker(UvicornWorker):
    CONFIG_KWARGS = {
        "loop": "uvloop",
        "http": "httptools",
        "lifespan": "off",
        "proxy_headers": True,
        "forwarded_allow_ips": "*",
        "root_path": "/api",
        "headers": [("x-served-by", "api")],
    }


class NotAWorker:
    """Named by -k by mistake: refused, it descends from no uvicorn worker."""
