# prefork in a container: the build stage compiles the request path into a venv, the runtime
# stage copies that venv alone. ENTRYPOINT is prefork itself, so `docker run IMAGE myapp:app -w 4`
# works; the default command serves the demo app. For your own service, build on this image
# (examples/fastapi/Dockerfile) or copy its two stages.

# The build stage needs a C compiler and the Python headers (the slim image has the headers);
# the runtime stage does not: the compiled modules are in the venv. PREFORK_COMPILE=1 makes a
# compile failure fail the build instead of shipping the slower pure-Python fallback.
FROM python:3.11-slim AS build
ENV PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1 PREFORK_COMPILE=1
RUN apt-get update && apt-get install -y --no-install-recommends gcc libc6-dev \
    && rm -rf /var/lib/apt/lists/*
WORKDIR /src

# Layers that change only with pyproject.toml: the build's tools (mypy, and the dependencies whose
# types mypyc reads) in the stage's own Python, the runtime dependencies in the venv it ships.
COPY pyproject.toml ./
RUN python -c "import tomllib; p = tomllib.load(open('pyproject.toml', 'rb')); \
print(*p['build-system']['requires'], sep=chr(10), file=open('/tmp/build.txt', 'w')); \
print(*p['project']['dependencies'], sep=chr(10), file=open('/tmp/run.txt', 'w'))" \
    && pip install -r /tmp/build.txt \
    && python -m venv /opt/prefork \
    && /opt/prefork/bin/pip install -r /tmp/run.txt

# The README is only the package's long description here: a one-line stand-in keeps an edit to
# the real one out of the build context (.dockerignore) and from recompiling.
COPY setup.py ./
COPY prefork ./prefork
RUN echo "prefork: a pre-forking HTTP server for ASGI and WSGI apps." > README.md \
    && pip wheel --no-deps --no-build-isolation --wheel-dir /tmp/wheel . \
    && /opt/prefork/bin/pip install --no-deps /tmp/wheel/prefork-*.whl \
    && rm -rf /tmp/wheel build \
    && /opt/prefork/bin/prefork --version | grep -q compiled

FROM python:3.11-slim
ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PATH=/opt/prefork/bin:$PATH
COPY --from=build /opt/prefork /opt/prefork
RUN useradd --uid 10001 --no-create-home --shell /usr/sbin/nologin prefork

# The application code stays owned by root: the server user can read it, not change it.
WORKDIR /app
COPY examples ./examples
USER 10001

EXPOSE 8000
# TERM is prefork's graceful stop: workers finish in-flight requests within --graceful-timeout.
# prefork runs as PID 1 here: it reaps every child, including orphans of the app.
STOPSIGNAL SIGTERM
ENTRYPOINT ["prefork"]
CMD ["examples.hello:app", "--bind", "0.0.0.0:8000", "--workers", "auto"]
