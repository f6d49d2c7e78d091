#!/usr/bin/env bash
# One more Python: the in-process tests (tests/unit, tests/integration) and a served request,
# on the pure package and then compiled in place. Usage: other-python.sh VERSION PYTHON.
# Its venv (.venvs/pyVERSION) is made once and remade when pyproject.toml changes. With a third
# argument (the lowest version), websockets is installed at the floor pyproject.toml declares,
# so the floor is proved, not just stated (its API is the one that moved between releases).
set -euo pipefail
version=$1 python=$2 lowest=${3:-}
venv=.venvs/py$version
tests=(tests/unit tests/integration tests/process/test_install_served.py)

if [ ! -e "$venv/.installed" ] || [ pyproject.toml -nt "$venv/.installed" ]; then
    echo "Python $version: making $venv"
    rm -rf "$venv"
    "$python" -m venv "$venv"
    # setuptools and mypy for the in-place compile below, as the main venv has them
    "$venv/bin/python" -m pip install -q --upgrade pip "setuptools>=77" "mypy>=1.11"
    "$venv/bin/python" -m pip install -q -e '.[test]'
    if [ -n "$lowest" ]; then
        floor=$(sed -n 's/^ *"websockets>=\([0-9.]*\)".*/\1/p' pyproject.toml | head -n 1)
        echo "Python $version: websockets at its floor, $floor"
        "$venv/bin/python" -m pip install -q "websockets==$floor"
    fi
    touch "$venv/.installed"
fi

suffix=$("$venv/bin/python" -c 'import sysconfig; print(sysconfig.get_config_var("EXT_SUFFIX"))')
find prefork -name "*$suffix" -delete
echo "Python $version, pure Python: ${tests[*]}"
"$venv/bin/python" -m pytest -q -p no:cacheprovider "${tests[@]}"

echo "Python $version: compiling the request path (log: build/compile-$version.log)"
mkdir -p build
# one compile at a time: mypyc writes its C sources to build/ whatever the Python
if ! PREFORK_COMPILE=1 flock build/.compile.lock "$venv/bin/python" setup.py -q build_ext \
        --inplace >"build/compile-$version.log" 2>&1; then
    tail -n 25 "build/compile-$version.log" | sed 's/^/    /'
    find prefork -name "*$suffix" -delete
    echo "Python $version: compiling the request path failed"
    exit 1
fi
"$venv/bin/python" -c 'import prefork, sys; sys.exit(prefork.build() != "compiled")'
echo "Python $version, compiled: ${tests[*]}"
status=0
"$venv/bin/python" -m pytest -q -p no:cacheprovider "${tests[@]}" || status=$?
find prefork -name "*$suffix" -delete
exit $status
