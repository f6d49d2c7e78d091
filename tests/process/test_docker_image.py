"""The Docker image: the real Dockerfile, built from a clean checkout and run as Docker runs it.

podman stands in for Docker (``podman build`` reads the same Dockerfile and .dockerignore), with
the vfs storage driver, chroot isolation and runc, which work without a daemon or an overlay
filesystem. Where no registry is reachable, ``.ci/python-slim-standin.sh`` provides the base
image under its official name (Debian bookworm's Python 3.11 at /usr/local, built once into
/var/cache/prefork-ci), so the Dockerfile is built unchanged. The build borrows the host's CA
certificates and pip's certificate setting (read-only mounts, not part of the image), so pip
and apt in the build reach their registries wherever the host can.

Without podman the tests skip with the reason; under CI=true they fail instead (``make test``
installs podman, runc and debootstrap).
"""

from __future__ import annotations

import os
import shutil
import subprocess
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from prefork.testing import http_request, wait_until

ROOT = Path(__file__).resolve().parents[2]
CACHE = Path(os.environ.get("PREFORK_CI_CACHE", "/var/cache/prefork-ci"))
PODMAN = ["podman", "--storage-driver", "vfs"]
# crun and podman's default ulimits are refused in some sandboxes (this CI's among them); runc
# and explicit limits work everywhere.
RUN = [*PODMAN, "--runtime", "runc", "run", "--ulimit", "nofile=1024:1024",
       "--ulimit", "nproc=1024:1024"]
IMAGE = "localhost/prefork-test:latest"
# Docker's default grace between the stop signal and SIGKILL (docker stop -t, podman stop -t).
STOP_GRACE = 10

pytestmark = [pytest.mark.process, pytest.mark.timeout(1200)]


def podman(*args: str, timeout: float = 60, runtime: bool = False) -> str:
    command = [*PODMAN, "--runtime", "runc", *args] if runtime else [*PODMAN, *args]
    result = subprocess.run(command, capture_output=True, text=True, timeout=timeout,
                            check=False)
    assert result.returncode == 0, f"{' '.join(command)}:\n{result.stdout}{result.stderr}"
    return result.stdout


def clean_checkout(destination: Path) -> Path:
    """The files a fresh clone of this tree has (tracked, or new and not ignored): no venv,
    compiled modules or caches, whatever the working tree holds."""
    listed = subprocess.run(["git", "ls-files", "-co", "--exclude-standard", "-z"], cwd=ROOT,
                            capture_output=True, check=True, timeout=30).stdout
    for name in filter(None, listed.decode().split("\0")):
        source = ROOT / name
        if source.is_file():
            target = destination / name
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(source, target)
    return destination


def build(context: Path, pip_conf: Path, *args: str, tag: str = IMAGE) -> tuple[str, float]:
    command = [*PODMAN, "build", "--isolation", "chroot", "--pull=never", "--network", "host",
               "-v", "/etc/ssl/certs:/etc/ssl/certs:ro", "-v", f"{pip_conf}:/etc/pip.conf:ro",
               *args, "-t", tag, str(context)]
    started = time.monotonic()
    result = subprocess.run(command, capture_output=True, text=True, timeout=900, check=False)
    output = result.stdout + result.stderr
    assert result.returncode == 0, f"the image did not build:\n{output[-4000:]}"
    return output, time.monotonic() - started


def host_pip_conf(directory: Path) -> Path:
    """pip's settings that the build needs from the host: the CA bundle it verifies with (the
    host's own pip may point at a local mirror, which the build does not use)."""
    lines = ["[global]"]
    certificate = os.environ.get("PIP_CERT") or "/etc/ssl/certs/ca-certificates.crt"
    if certificate.startswith("/etc/ssl/certs/") and Path(certificate).exists():
        lines.append(f"cert = {certificate}")
    path = directory / "pip.conf"
    path.write_text("\n".join(lines) + "\n")
    return path


@pytest.fixture(scope="module")
def pip_conf(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return host_pip_conf(tmp_path_factory.mktemp("pip"))


@pytest.fixture(scope="module")
def image(tmp_path_factory: pytest.TempPathFactory, pip_conf: Path) -> Iterator[str]:
    missing = [tool for tool in ("podman", "runc", "debootstrap") if shutil.which(tool) is None]
    if missing:
        reason = f"{', '.join(missing)} not installed (make test installs them with apt-get)"
        if os.environ.get("CI") == "true":
            pytest.fail(reason)
        pytest.skip(reason)
    standin = subprocess.run([str(ROOT / ".ci" / "python-slim-standin.sh")], text=True,
                             capture_output=True, timeout=900, check=False)
    assert standin.returncode == 0, standin.stdout + standin.stderr
    work = tmp_path_factory.mktemp("image")
    context = clean_checkout(work / "checkout")
    _, elapsed = build(context, pip_conf)
    size = int(podman("image", "inspect", "--format", "{{.Size}}", IMAGE).strip())
    print(f"\nimage {IMAGE}: built in {elapsed:.0f} s, {size / 1e6:.0f} MB")

    yield IMAGE
    subprocess.run([*PODMAN, "image", "prune", "-f"], capture_output=True, timeout=120,
                   check=False)


def test_the_image_has_the_compiled_build(image: str) -> None:
    result = subprocess.run([*RUN, "--rm", image, "--version"], capture_output=True, text=True,
                            timeout=60, check=False)
    assert result.returncode == 0, result.stderr
    assert "(compiled)" in result.stdout


def test_the_image_holds_the_app_and_the_venv_only(image: str) -> None:
    """.dockerignore lets through what the image is built from, and no build leftovers (a
    wheel directory, the sources) reach the runtime stage."""
    listing = subprocess.run(
        [*RUN, "--rm", "--entrypoint", "/bin/sh", image, "-c",
         "ls -A /app; echo --; ls -A /opt; echo --; ls -d /wheels /src /tmp/wheel 2>&1; true"],
        capture_output=True, text=True, timeout=60, check=False).stdout
    app, opt, leftovers = listing.split("--\n")
    assert app.split() == ["examples"]
    assert opt.split() == ["prefork"]
    assert leftovers.count("No such file") == 3, leftovers


class Container:
    """One detached container; removed, whatever happened, by the fixture."""

    def __init__(self, name: str, *args: str) -> None:
        self.name = name
        podman("run", "-d", "--name", name, "--ulimit", "nofile=1024:1024",
               "--ulimit", "nproc=1024:1024", "-p", "127.0.0.1::8000", *args, runtime=True)
        self.port = int(podman("port", name, "8000/tcp").strip().rsplit(":", 1)[1])

    def logs(self) -> str:
        result = subprocess.run([*PODMAN, "logs", self.name], capture_output=True, text=True,
                                timeout=30, check=False)
        return result.stdout + result.stderr

    def processes(self) -> list[tuple[str, str, str]]:
        table = podman("top", self.name, "pid", "user", "args", runtime=True).splitlines()[1:]
        rows = [line.split(None, 2) for line in table]
        return [(pid, user, args) for pid, user, args in rows]


@pytest.fixture
def container(image: str) -> Iterator[Callable[..., Container]]:
    started: list[Container] = []

    def start(*args: str) -> Container:
        name = f"prefork-test-{os.getpid()}-{len(started)}"
        started.append(Container(name, *args))
        return started[-1]

    yield start
    for each in started:
        subprocess.run([*PODMAN, "--runtime", "runc", "rm", "-f", "-t", "0", each.name],
                       capture_output=True, timeout=60, check=False)


def wait_served(container: Container) -> tuple[int, dict[str, str], bytes]:
    def answered() -> tuple[int, dict[str, str], bytes] | None:
        try:
            return http_request(container.port, "/", timeout=5)
        except OSError:
            return None

    answer: tuple[int, dict[str, str], bytes] = wait_until(answered, timeout=60, interval=0.2)
    return answer


def test_the_default_command_serves_the_demo_as_a_user_in_pid_1(
        image: str, container: Callable[..., Container]) -> None:
    served = container(image)
    status, _, body = wait_served(served)
    assert status == 200 and body.startswith(b"Hello from prefork worker")
    processes = served.processes()
    assert processes, served.logs()
    assert all(user != "root" for _, user, _ in processes), processes
    first = next(args for pid, _, args in processes if pid == "1")
    assert "prefork examples.hello:app" in first


# Answers after a pause long enough to be in flight when the stop comes, short enough to finish
# inside Docker's grace; it says on stdout when a request has arrived.
SLOW_APP = '''
import asyncio, sys

async def app(scope, receive, send):
    if scope["type"] != "http":
        return
    if scope["path"] == "/slow":
        print("slow request started", flush=True)
        await asyncio.sleep(2)
    await send({"type": "http.response.start", "status": 200,
                "headers": [(b"content-length", b"4")]})
    await send({"type": "http.response.body", "body": b"done"})
'''


def test_podman_stop_finishes_the_request_in_flight(
        image: str, container: Callable[..., Container], tmp_path: Path) -> None:
    app = tmp_path / "slowapp.py"
    app.write_text(SLOW_APP)
    app.chmod(0o644)
    served = container("-v", f"{app}:/app/slowapp.py:ro", image, "slowapp:app",
                       "--bind", "0.0.0.0:8000", "--workers", "2")
    wait_served(served)
    answers: list[tuple[int, dict[str, str], bytes]] = []
    request = threading.Thread(target=lambda: answers.append(
        http_request(served.port, "/slow", timeout=30)))
    request.start()
    wait_until(lambda: "slow request started" in served.logs(), timeout=30)
    started = time.monotonic()
    stop = subprocess.run([*PODMAN, "--runtime", "runc", "stop", "-t", str(STOP_GRACE),
                           served.name], capture_output=True, text=True, timeout=60,
                          check=False)
    stopped_in = time.monotonic() - started
    request.join(timeout=30)
    assert stop.returncode == 0, stop.stderr
    assert answers and answers[0][0] == 200 and answers[0][2] == b"done", served.logs()
    exit_code = podman("inspect", "--format", "{{.State.ExitCode}}", served.name).strip()
    assert exit_code == "0", served.logs()
    # SIGKILL would have come at STOP_GRACE seconds, with exit code 137
    assert stopped_in < STOP_GRACE, f"{stopped_in:.1f} s\n{served.logs()}"
    print(f"\npodman stop: the in-flight request answered, exit 0 in {stopped_in:.2f} s")


def test_the_fastapi_example_builds_on_the_image(image: str, pip_conf: Path,
                                                 container: Callable[..., Container]) -> None:
    """examples/fastapi/Dockerfile, as a user's project would build it on prefork's image."""
    tag = "localhost/prefork-test-fastapi:latest"
    _, elapsed = build(ROOT / "examples" / "fastapi", pip_conf,
                       "--build-arg", f"PREFORK_IMAGE={image}", tag=tag)
    print(f"\nexamples/fastapi built on the image in {elapsed:.0f} s")
    status, _, body = wait_served(container(tag))
    assert (status, body) == (200, b'{"message":"Hello from FastAPI on prefork"}')
