"""The package as users install it: each way pip builds it, in a fresh venv with pip's build
isolation, gives the compiled request path where a C compiler exists, and the pure one with a
line that says why where none does.

The builds run from a clean copy of the checkout (what a fresh clone has), two at a time: each
compile is one mypy run and one C compile, single-threaded. Run on the main Python only.
"""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from tests.process.test_docker_image import clean_checkout

pytestmark = [pytest.mark.process, pytest.mark.timeout(1200)]

# The subprocesses must not inherit the test run's view of the package or a build choice.
ENVIRONMENT = {name: value for name, value in os.environ.items()
               if name not in ("PYTHONPATH", "PREFORK_PURE", "PREFORK_COMPILE", "CC")}


def run(command: list[str], cwd: Path, **extra: str) -> str:
    result = subprocess.run(command, cwd=cwd, env={**ENVIRONMENT, **extra}, capture_output=True,
                            text=True, timeout=900, check=False)
    output = result.stdout + result.stderr
    assert result.returncode == 0, f"{' '.join(command)}:\n{output[-4000:]}"
    return output


def fresh_venv(path: Path) -> Path:
    run([sys.executable, "-m", "venv", str(path)], cwd=path.parent)
    return path / "bin"


def version(bin_dir: Path) -> str:
    # from a directory with no checkout in it: the installed package answers
    return run([str(bin_dir / "prefork"), "--version"], cwd=bin_dir).strip()


@pytest.fixture(scope="module")
def source(tmp_path_factory: pytest.TempPathFactory) -> Path:
    checkout = clean_checkout(tmp_path_factory.mktemp("source") / "prefork")
    run(["git", "init", "-q"], cwd=checkout)
    run(["git", "add", "-A"], cwd=checkout)
    run(["git", "-c", "user.name=t", "-c", "user.email=t@t", "commit", "-qm", "tree"],
        cwd=checkout)
    return checkout


def install_from_checkout(source: Path, work: Path) -> str:
    pip = fresh_venv(work / "venv") / "pip"
    run([str(pip), "install", str(source)], cwd=work)
    return version(pip.parent)


def install_from_git(source: Path, work: Path) -> str:
    pip = fresh_venv(work / "venv") / "pip"
    run([str(pip), "install", f"git+file://{source}"], cwd=work)
    return version(pip.parent)


def install_the_sdist(source: Path, work: Path) -> str:
    builder = fresh_venv(work / "builder")
    run([str(builder / "pip"), "install", "build"], cwd=work)
    run([str(builder / "python"), "-m", "build", "--sdist", "--outdir", str(work / "dist"),
         str(source)], cwd=work)
    (sdist,) = (work / "dist").glob("prefork-*.tar.gz")
    pip = fresh_venv(work / "venv") / "pip"
    run([str(pip), "install", str(sdist)], cwd=work)
    return version(pip.parent)


def install_the_wheel(source: Path, work: Path) -> str:
    """pip wheel, then the wheel installed and serving. (It needs no compiler to install: the
    image's runtime stage, which has none, installs the same wheel; test_docker_image.)"""
    builder = fresh_venv(work / "builder")
    run([str(builder / "pip"), "wheel", "--no-deps", "--wheel-dir", str(work / "wheels"),
         str(source)], cwd=work)
    (wheel,) = (work / "wheels").glob("prefork-*.whl")
    assert not wheel.name.endswith("-none-any.whl"), wheel.name
    bin_dir = fresh_venv(work / "venv")
    run([str(bin_dir / "pip"), "install", str(wheel)], cwd=work)
    served = run([str(bin_dir / "python"), "-c", textwrap.dedent('''
        from prefork.testing import http_request, running_server

        async def app(scope, receive, send):
            if scope["type"] == "http":
                await send({"type": "http.response.start", "status": 200, "headers": []})
                await send({"type": "http.response.body", "body": b"served"})

        with running_server(app, workers=1) as server:
            print(http_request(server.port, "/")[::2])
        ''')], cwd=work)
    assert "(200, b'served')" in served, served
    return version(bin_dir)


BUILDS = {
    "pip install .": install_from_checkout,
    "pip install git+file://": install_from_git,
    "sdist, then pip install": install_the_sdist,
    "pip wheel ., the wheel served": install_the_wheel,
}


def test_every_pip_build_is_compiled(source: Path, tmp_path: Path) -> None:
    def attempt(name: str) -> str:
        work = tmp_path / f"build{list(BUILDS).index(name)}"
        work.mkdir()
        return BUILDS[name](source, work)

    with ThreadPoolExecutor(max_workers=2) as pool:
        versions = dict(zip(BUILDS, pool.map(attempt, BUILDS), strict=True))
    print("".join(f"\n{name}: {answer}" for name, answer in versions.items()))
    assert all(answer.endswith("(compiled)") for answer in versions.values()), versions


def test_without_a_compiler_the_build_is_pure_and_says_why(source: Path,
                                                          tmp_path: Path) -> None:
    pip = fresh_venv(tmp_path / "venv") / "pip"
    output = run([str(pip), "install", "-v", str(source)], cwd=tmp_path, CC="/nonexistent/cc")
    said = [line.strip() for line in output.splitlines() if line.strip().startswith("prefork:")]
    assert said == ["prefork: building the pure-Python request path (slower): no C compiler "
                    "(/nonexistent/cc not found; Debian: gcc)"], said
    assert version(pip.parent).endswith("(pure Python)")


def test_prefork_pure_opts_out(source: Path, tmp_path: Path) -> None:
    pip = fresh_venv(tmp_path / "venv") / "pip"
    run([str(pip), "install", str(source)], cwd=tmp_path, PREFORK_PURE="1")
    assert version(pip.parent).endswith("(pure Python)")
