"""A small WSGI app for access-log parity tests: the same answer under gunicorn and prefork."""


def app(environ, start_response):
    body = b"hello " + environ["PATH_INFO"].encode("latin-1")
    start_response("201 Created", [("Content-Type", "text/plain"),
                                   ("Content-Length", str(len(body))), ("X-Trace", "abc")])
    return [body]
