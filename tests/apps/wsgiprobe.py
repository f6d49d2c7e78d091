"""A WSGI app that answers with what it was given: the environ keys a gunicorn user reads."""

import json

KEYS = ("REMOTE_ADDR", "REMOTE_PORT", "SERVER_SOFTWARE", "HTTP_UPGRADE", "HTTP_CONNECTION",
        "HTTP_HOST", "HTTP_X_FORWARDED_FOR", "HTTP_X_FORWARDED_PROTO", "wsgi.url_scheme")


def app(environ, start_response):
    body = json.dumps({key: environ.get(key) for key in KEYS}).encode()
    start_response("200 OK", [("Content-Type", "application/json"),
                              ("Content-Length", str(len(body)))])
    return [body]
