# The settings of gunicorn's examples/example_config.py, with the values it ships with, and
# hooks that log what its hooks log: a config written for gunicorn that must start unchanged.

bind = "127.0.0.1:8000"
backlog = 2048

workers = 1
worker_class = "sync"
worker_connections = 1000
timeout = 30
keepalive = 2

spew = False

daemon = False
raw_env = [
    "DJANGO_SECRET_KEY=something",
    "SPAM=eggs",
]
pidfile = None
umask = 0
user = None
group = None
tmp_upload_dir = None

errorlog = "-"
loglevel = "info"
accesslog = "-"
access_log_format = '%(h)s %(l)s %(u)s %(t)s "%(r)s" %(s)s %(b)s "%(f)s" "%(a)s"'

proc_name = None


def post_fork(server, worker):
    server.log.info("Worker spawned (pid: %s)", worker.pid)


def pre_fork(server, worker):
    pass


def pre_exec(server):
    server.log.info("Forked child, re-executing.")


def when_ready(server):
    server.log.info("Server is ready. Spawning workers")


def worker_int(worker):
    worker.log.info("worker received INT or QUIT signal")

    import sys
    import threading
    import traceback

    names = {thread.ident: thread.name for thread in threading.enumerate()}
    lines = []
    for ident, frame in sys._current_frames().items():
        lines.append(f"\n# Thread: {names.get(ident, '')}({ident})")
        for filename, lineno, name, line in traceback.extract_stack(frame):
            lines.append(f'File: "{filename}", line {lineno}, in {name}')
            if line:
                lines.append(f"  {line.strip()}")
    worker.log.debug("\n".join(lines))


def worker_abort(worker):
    worker.log.info("worker received SIGABRT signal")
