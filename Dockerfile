# prefork in a container: a build stage makes the wheels, the runtime stage installs only them.
# For your own service, copy your application into /app and change CMD (the default command
# serves the demo app). ENTRYPOINT is prefork itself, so `docker run IMAGE myapp:app -w 4` works.

# The build stage compiles the request path (PREFORK_COMPILE=1, see setup.py), so it needs a C
# compiler; the runtime stage does not: the wheel carries the compiled modules.
FROM python:3.11-slim AS build
ENV PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1 PREFORK_COMPILE=1
RUN apt-get update && apt-get install -y --no-install-recommends gcc libc6-dev \
    && rm -rf /var/lib/apt/lists/*
WORKDIR /src
COPY pyproject.toml setup.py README.md ./
COPY prefork ./prefork
RUN pip wheel --wheel-dir /wheels .

FROM python:3.11-slim
ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1
COPY --from=build /wheels /wheels
RUN pip install --no-index --find-links /wheels prefork && rm -rf /wheels \
    && prefork --version | grep -q compiled

# The application code stays owned by root: the server user can read it, not change it.
WORKDIR /app
COPY examples ./examples
RUN useradd --system --uid 10001 --no-create-home --shell /usr/sbin/nologin prefork
USER 10001

EXPOSE 8000
# TERM is prefork's graceful stop: workers finish in-flight requests within --graceful-timeout.
# prefork runs as PID 1 here: it reaps every child, including orphans of the app.
STOPSIGNAL SIGTERM
ENTRYPOINT ["prefork"]
CMD ["examples.hello:app", "--bind", "0.0.0.0:8000", "--workers", "auto"]
