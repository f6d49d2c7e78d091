"""HTTP/2, sans-I/O: its settings and limits, the engines that speak it (prefork's own
``engine``, or python-hyper's ``h2`` behind the same interface: ``engines``), request heads from
a stream's fields, and a stream's response side in the HTTP/1.1 engine's shape. The worker side
(the transport, flow control, the streams as connections) is ``prefork.workers.h2_session`` and
``prefork.workers.h2_stream``."""
