PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
PIP := $(PY) -m pip

.PHONY: install install-test compile pure nginx redis podman nghttp2 docker-base run test test-pythons \
	lint docs typecheck bench bench-install bench-scaling fuzz fuzz-h2 clean

# setuptools and mypy (mypyc) too: make compile builds the request path with them in place, and
# the editable install (pure: see setup.py) builds with them rather than in pip's isolated copy.
$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PIP) install -q --upgrade pip "setuptools>=77" "mypy>=1.11"
	$(PIP) install -q --no-build-isolation -e .
	touch $@

$(VENV)/.installed-test: $(VENV)/.installed pyproject.toml
	$(PIP) install -q -e '.[test]'
	touch $@

# nginx (with the stream module, which sends PROXY protocol headers) for the end-to-end proxy
# tests; they skip with a reason where it cannot be installed (no root, no apt).
nginx:
	@command -v nginx >/dev/null && test -e /usr/lib/nginx/modules/ngx_stream_module.so || \
	  (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq \
	     --no-install-recommends nginx-light libnginx-mod-stream >/dev/null) || \
	  echo "nginx could not be installed: tests/integration/test_nginx.py will fail"

# redis-server for the examples/sessions test, which fails (does not skip) without it when
# run as root: installing it is this target's job.
redis:
	@command -v redis-server >/dev/null || \
	  (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq \
	     --no-install-recommends redis-server >/dev/null) || \
	  echo "redis-server could not be installed: tests/process/test_sessions_example.py will fail"

# podman, runc and debootstrap build and run the Docker image (tests/process/test_docker_image.py,
# which skips without them, and fails under CI=true).
podman:
	@command -v podman >/dev/null && command -v runc >/dev/null && \
	  command -v debootstrap >/dev/null || \
	  (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq \
	     --no-install-recommends podman runc debootstrap >/dev/null) || \
	  echo "podman could not be installed: tests/process/test_docker_image.py will skip"

# nghttp2-client (nghttp and h2load) for the HTTP/2 client tests
# (tests/process/test_http2_clients.py, which skip without them, and fail under CI=true) and for
# make bench's HTTP/2 scenarios.
nghttp2:
	@command -v nghttp >/dev/null && command -v h2load >/dev/null || \
	  (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq \
	     --no-install-recommends nghttp2-client >/dev/null) || \
	  echo "nghttp2-client could not be installed: tests/process/test_http2_clients.py will skip"

# The image's base, python:3.11-slim, from the registry where it is reachable; else the stand-in
# (.ci/python-slim-standin.sh), built once into /var/cache/prefork-ci.
docker-base: podman
	@command -v podman >/dev/null && .ci/python-slim-standin.sh || true

# The request path compiled with mypyc (setup.py), in place beside its sources, where the
# import system prefers it. Rebuilt when any source changes: mypyc reads the types of the whole
# package. Where it cannot be built (no C compiler), the pure-Python package serves, slower.
# An unchanged module is not relinked (setuptools skips an extension newer than its C source,
# which mypyc rewrites only when it changes), so the .so files are touched to be newer than the
# sources make compares them with. A failed compile leaves no stamp, so the next make tries
# again, and keeps its log apart (build/compile-failed.log) with its last lines printed.
SOURCES := $(shell find prefork -name '*.py')
COMPILED := build/.compiled

$(COMPILED): $(VENV)/.installed setup.py $(SOURCES)
	@mkdir -p build && rm -f $(COMPILED)
	@echo "compiling the request path with mypyc (35-40 s on 2 cores;" \
	  "log: build/compile.log)"
	@start=$$(date +%s); \
	if PREFORK_COMPILE=1 $(PY) setup.py -q build_ext --inplace >build/compile.log 2>&1; then \
	  find prefork -name '*.so' -exec touch {} + && touch $@ && \
	  echo "compiled in $$(($$(date +%s) - start)) s"; \
	else \
	  mv build/compile.log build/compile-failed.log; \
	  echo "compiling the request path failed after $$(($$(date +%s) - start)) s;" \
	    "the end of build/compile-failed.log:"; \
	  tail -n 25 build/compile-failed.log | sed 's/^/    /'; \
	  echo "prefork runs as pure Python (slower)"; \
	  find prefork -name '*.so' -delete; \
	fi

compile: $(COMPILED)

# Back to the interpreted package (the compiled modules are removed).
pure:
	find prefork -name '*.so' -delete
	rm -f $(COMPILED)

install: $(VENV)/.installed $(COMPILED)

install-test: $(VENV)/.installed-test

run: install
	@echo "serving examples.hello:app at http://127.0.0.1:8000/ with $$($(VENV)/bin/prefork --version)"
	$(VENV)/bin/prefork examples.hello:app --workers auto --bind 127.0.0.1:8000

# The suite runs on the compiled build (what make run and the Docker image serve); the tests that
# run the request path in-process run again on the pure-Python package, the fallback. Then the
# same in-process tests and a served request on every other Python that requires-python admits.
test: install-test nginx redis podman nghttp2 docker-base
	$(VENV)/bin/ruff check prefork tests bench setup.py
	$(VENV)/bin/mypy
	$(MAKE) -s docs
	$(MAKE) -s pure
	$(PY) -m pytest -q tests/unit tests/integration
	$(MAKE) -s compile
	$(PY) -c "import prefork, sys; sys.exit(prefork.build() != 'compiled')" || \
	  (echo "the compiled build is missing: see build/compile-failed.log" && false)
	$(PY) -m pytest -q
	$(MAKE) -s test-pythons

# Each Python from pyenv (CI's machine image has them all), two at a time: one that is missing is
# skipped with a line here, and fails the run under CI=true. The lowest runs on the websockets
# floor. Each version's output is shown when it is done (--output-sync), and each runs whatever
# another's result (-k).
PYENV_ROOT ?= $(HOME)/.pyenv
OTHER_PYTHONS := 3.10 3.12 3.13
LOWEST_PYTHON := 3.10

test-pythons:
	@$(MAKE) -s -k -j2 --output-sync=target $(addprefix test-python-,$(OTHER_PYTHONS))

test-python-%:
	@python=$$(ls -d $(PYENV_ROOT)/versions/$*.*/bin/python$* 2>/dev/null | sort -V | tail -n 1); \
	if [ -z "$$python" ]; then \
	  echo "Python $* is not installed ($(PYENV_ROOT)/versions/$*.*): its tests are skipped"; \
	  if [ "$$CI" = true ]; then exit 1; fi; \
	else \
	  .ci/other-python.sh $* $$python $(if $(filter $*,$(LOWEST_PYTHON)),lowest); \
	fi

lint: install-test
	$(VENV)/bin/ruff check prefork tests bench setup.py
	$(VENV)/bin/mypy

# The documentation site (mkdocs.yml, docs/) built with --strict, which fails on a broken link,
# anchor or page left out of the nav, into a temporary directory that is removed afterwards. Its
# log is shown only on failure (--quiet would also hide the warnings --strict counts).
docs: install-test
	@site=$$(mktemp -d) && $(VENV)/bin/mkdocs build --strict --site-dir "$$site/html" \
	  >"$$site/log" 2>&1; status=$$?; [ $$status = 0 ] || cat "$$site/log"; rm -rf "$$site"; \
	  exit $$status

# Peers at pinned versions, in their own environment so they never meet prefork's test deps.
# prefork is installed there too (editable: the working tree is what gets measured), so every
# server runs on the same uvloop, httptools and framework versions.
BENCH_VENV := bench/venv
PEERS := uvicorn==0.54.0 uvloop==0.23.0 httptools==0.9.0 gunicorn==27.0.1 \
	uvicorn-worker==0.4.0 granian==2.8.7 hypercorn==0.18.0 websockets==17.4
BENCH_FRAMEWORKS := starlette==1.10.0 fastapi==0.165.0 pydantic==2.14.4 flask==3.1.3
# e.g. make bench BENCH_ARGS="--duration 2 --rounds 1 --scenarios hello --servers prefork,uvicorn"
BENCH_ARGS ?= --rounds 4 --duration 10

$(BENCH_VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(BENCH_VENV)
	$(BENCH_VENV)/bin/python -m pip install -q $(PEERS) $(BENCH_FRAMEWORKS) -e .
	touch $@

bench-install: $(BENCH_VENV)/.installed

# What an operator pays, run after the suite: through nginx (bench.nginx_proxy), memory at
# 2, 4 and 8 workers (bench.footprint), start-up to the first 200 (bench.startup).
NGINX_ARGS ?= --rounds 4 --duration 5
FOOTPRINT_ARGS ?= --workers 2,4,8 --rounds 2
STARTUP_ARGS ?= --repeat 10

bench: install nginx nghttp2 $(BENCH_VENV)/.installed
	command -v wrk >/dev/null || (apt-get update -qq && apt-get install -y -qq wrk)
	$(PY) bench/http_engine.py
	# pip byte-compiled the peers when it installed them; prefork and the benchmark apps are
	# not installed that way, so compile them too, or start-up and memory would include
	# compiling their source
	$(BENCH_VENV)/bin/python -m compileall -q prefork bench/*.py bench/apps
	$(BENCH_VENV)/bin/python -m bench.suite $(BENCH_ARGS)
	$(BENCH_VENV)/bin/python -m bench.nginx_proxy $(NGINX_ARGS)
	$(BENCH_VENV)/bin/python -m bench.footprint $(FOOTPRINT_ARGS)
	$(BENCH_VENV)/bin/python -m bench.startup $(STARTUP_ARGS)

# 1, 2, 4, 8 and 16 workers side by side, for a machine with many cores (wrk takes the upper
# half of the CPUs); e.g. make bench-scaling SCALING_ARGS="--scenario hello-close --rounds 4"
SCALING_ARGS ?= --workers 1,2,4,8,16 --rounds 2
bench-scaling: install $(BENCH_VENV)/.installed
	command -v wrk >/dev/null || (apt-get update -qq && apt-get install -y -qq wrk)
	$(BENCH_VENV)/bin/python -m compileall -q prefork bench/*.py bench/apps
	$(BENCH_VENV)/bin/python -m bench.scaling $(SCALING_ARGS)

# Coverage-guided fuzzing of the HTTP engine (atheris); not part of CI.
fuzz: install-test
	$(PIP) install -q atheris
	mkdir -p fuzz/corpus
	$(PY) fuzz/http_engine.py -max_len=4096 -timeout=5 -max_total_time=600 fuzz/corpus tests/corpus

# The same for the HTTP/2 engine, then its HPACK decoder alone; not part of CI.
fuzz-h2: install-test
	$(PIP) install -q atheris
	mkdir -p fuzz/corpus-h2 fuzz/corpus-hpack
	$(PY) fuzz/http2_engine.py --seeds fuzz/seeds-h2
	$(PY) fuzz/http2_engine.py -max_len=4096 -timeout=5 -max_total_time=600 \
	    fuzz/corpus-h2 fuzz/seeds-h2
	$(PY) fuzz/http2_engine.py --hpack -max_len=1024 -timeout=5 -max_total_time=300 \
	    fuzz/corpus-hpack

clean: pure
	rm -rf $(VENV) .venvs $(BENCH_VENV) build *.egg-info
