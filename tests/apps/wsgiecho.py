"""A WSGI app that reads the whole request body and answers with the protocol and its size."""


def app(environ, start_response):
    size = len(environ["wsgi.input"].read())
    body = f"{environ['SERVER_PROTOCOL']} {size}".encode()
    start_response("200 OK", [("Content-Type", "text/plain"),
                              ("Content-Length", str(len(body)))])
    return [body]
