# The example image: prefork serving examples/hello.py on port 8000.
# For your own service, install your application the same way and change CMD to name it.
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1

# Install prefork from the build context; the sources are not kept in the image.
COPY pyproject.toml README.md /tmp/prefork-src/
COPY prefork /tmp/prefork-src/prefork
RUN pip install /tmp/prefork-src && rm -rf /tmp/prefork-src

# The application code stays owned by root: the server user can read it, not change it.
WORKDIR /app
COPY examples ./examples

RUN useradd --system --uid 10001 --no-create-home --shell /usr/sbin/nologin prefork
USER 10001

EXPOSE 8000
# TERM is prefork's graceful stop: workers finish in-flight requests within --graceful-timeout.
STOPSIGNAL SIGTERM
CMD ["prefork", "examples.hello:app", "--bind", "0.0.0.0:8000", "--workers", "auto"]
