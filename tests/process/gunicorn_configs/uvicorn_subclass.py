# An API behind a path prefix, its uvicorn options given through its own worker class.
bind = "127.0.0.1:0"
workers = 1
worker_class = "tests.apps.uvicorn_workers.ApiUvicornWorker"
accesslog = "-"


def when_ready(server):
    server.log.info("api ready")
