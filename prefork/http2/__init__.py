"""HTTP/2, sans-I/O, around the python-hyper ``h2`` library: its settings and limits, request
heads from a stream's fields, and a stream's response side in the HTTP/1.1 engine's shape. The
worker side (the transport, flow control, the streams as connections) is
``prefork.workers.h2_session`` and ``prefork.workers.h2_stream``."""
