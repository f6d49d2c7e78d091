# A Django-in-Docker gunicorn.conf.py as they are commonly written: the port from $PORT,
# threads, /dev/shm for the heartbeat file, recycling, preload, logs to the console, trust in
# the platform's proxy.
import multiprocessing
import os

bind = f"0.0.0.0:{os.environ.get('PORT', '8000')}"
workers = min(multiprocessing.cpu_count() * 2 + 1, 2)
worker_class = "gthread"
threads = 4
worker_tmp_dir = "/dev/shm"
timeout = 120
graceful_timeout = 30
keepalive = 5
max_requests = 1000
max_requests_jitter = 100
preload_app = True
daemon = False

accesslog = "-"
errorlog = "-"
loglevel = os.environ.get("LOG_LEVEL", "info")
capture_output = True

forwarded_allow_ips = "*"
secure_scheme_headers = {"X-FORWARDED-PROTO": "https"}
raw_env = ["APP_MODE=production"]
limit_request_line = 8190


def on_starting(server):
    server.log.info("Starting the Django app with %d workers", server.cfg.workers)


def post_worker_init(worker):
    worker.log.info("Worker %s initialised", worker.pid)
