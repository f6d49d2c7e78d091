# A FastAPI service's gunicorn.conf.py: uvicorn's worker class, StatsD metrics, the forwarded
# address trusted from the ingress, hooks that log the life of the server.
import os

bind = ["127.0.0.1:0"]
workers = 2
worker_class = "uvicorn.workers.UvicornWorker"
timeout = 60
keepalive = 5
daemon = False

forwarded_allow_ips = "*"
statsd_host = f"127.0.0.1:{os.environ['STATSD_PORT']}"
statsd_prefix = "shop"

accesslog = "-"
loglevel = "info"


def on_starting(server):
    server.log.info("shop starting, %d workers", server.cfg.workers)


def when_ready(server):
    # gunicorn's cfg.bind is a list of strings: hooks written for it use list methods
    addresses = server.cfg.bind
    addresses.append("(list)")
    server.log.info("shop ready on %s", ", ".join(addresses))


def post_worker_init(worker):
    worker.log.info("shop worker %s initialised", worker.pid)


def worker_exit(server, worker):
    server.log.info("shop worker %s exiting", worker.pid)
