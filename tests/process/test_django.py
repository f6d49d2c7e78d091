"""A real Django project, made by ``django-admin startproject`` and migrated on sqlite, served
as gunicorn's sync worker serves it: the admin login (a CSRF-checked POST that writes a
session through the ORM), an ORM write and read, and views that call ``asyncio.run()`` and
asgiref's ``async_to_sync``. Django refuses ORM calls from a thread with a running event loop
(``SynchronousOnlyOperation``), and both of the others refuse to start inside one, so each of
these fails if the app can see the worker's loop: with ``--threads 1`` (the default, the app
on the loop's thread) and with a pool of threads.
"""

from __future__ import annotations

import json
import os
import re
import signal
import socket
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import requests

from prefork.testing import parse_response, wait_until

pytest.importorskip("django")

PASSWORD = "a-long-test-password-1"

VIEWS = '''
import asyncio
import uuid

from asgiref.sync import async_to_sync
from django.contrib.auth.models import Group
from django.http import JsonResponse, StreamingHttpResponse
from django.views.decorators.csrf import csrf_exempt


@csrf_exempt
def orm(request):
    name = "group-" + (request.body.decode() or uuid.uuid4().hex)
    Group.objects.create(name=name)
    return JsonResponse({"found": Group.objects.filter(name=name).count()})


def stream(request):
    def rows():
        for group in Group.objects.filter(name__startswith="group-").iterator():
            yield group.name.encode() + b"\\n"
        yield b"end\\n"
    return StreamingHttpResponse(rows(), content_type="text/plain")


async def _answer():
    await asyncio.sleep(0)
    return 42


def run_coroutine(request):
    return JsonResponse({"answer": asyncio.run(_answer())})


def async_to_sync_view(request):
    return JsonResponse({"answer": async_to_sync(_answer)()})
'''

URLS = '''
from django.contrib import admin
from django.urls import path

from mysite import probes

urlpatterns = [
    path("admin/", admin.site.urls),
    path("orm/", probes.orm),
    path("stream/", probes.stream),
    path("asyncio-run/", probes.run_coroutine),
    path("async-to-sync/", probes.async_to_sync_view),
]
'''


def _manage(project: Path, *args: str, env: dict[str, str] | None = None) -> None:
    subprocess.run([sys.executable, "manage.py", *args], cwd=project, check=True,
                   capture_output=True, timeout=120, env={**os.environ, **(env or {})})


@pytest.fixture(scope="module")
def project(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A fresh project with its sqlite database migrated and a superuser ``admin``."""
    root = tmp_path_factory.mktemp("django")
    admin = Path(sys.executable).with_name("django-admin")
    command = [str(admin)] if admin.exists() else [sys.executable, "-m", "django"]
    subprocess.run([*command, "startproject", "mysite", str(root)], check=True,
                   capture_output=True, timeout=60)
    (root / "mysite" / "probes.py").write_text(VIEWS)
    (root / "mysite" / "urls.py").write_text(URLS)
    _manage(root, "migrate", "--noinput")
    _manage(root, "createsuperuser", "--noinput", "--username", "admin",
            "--email", "admin@example.com", env={"DJANGO_SUPERUSER_PASSWORD": PASSWORD})
    return root


@pytest.fixture(params=[1, 4], ids=["threads-1", "threads-4"])
def site(request: pytest.FixtureRequest, cli, project: Path) -> Iterator[tuple[str, Any]]:
    """The project under prefork's defaults (``--threads`` 1, then 4): its base URL and the
    CLI process."""
    threads = request.param
    process = cli("mysite.wsgi:application", "--chdir", str(project), "-b", "127.0.0.1:0",
                  *(["--threads", str(threads)] if threads > 1 else []))
    line = wait_until(lambda: next((line for line in process.output().splitlines()
                                    if "listening on" in line), None), timeout=30)
    port = int(re.search(r"127\.0\.0\.1:(\d+)", line).group(1))
    yield f"http://127.0.0.1:{port}", process


def _no_traceback(process: Any) -> None:
    output = process.output()
    assert "Traceback" not in output, output[-4000:]


@pytest.mark.timeout(120)
def test_admin_login_with_the_csrf_token(site: tuple[str, Any]) -> None:
    base, process = site
    session = requests.Session()
    # the first request waits in the listener's backlog until the worker has booted
    form = session.get(f"{base}/admin/login/?next=/admin/", timeout=30)
    assert form.status_code == 200, form.text[:2000]
    token = re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', form.text).group(1)
    assert session.cookies.get("csrftoken")
    answer = session.post(f"{base}/admin/login/?next=/admin/", timeout=30, allow_redirects=False,
                          data={"csrfmiddlewaretoken": token, "username": "admin",
                                "password": PASSWORD, "next": "/admin/"})
    assert answer.status_code == 302, answer.text[:2000]
    assert answer.headers["Location"] == "/admin/"
    index = session.get(f"{base}/admin/", timeout=30, allow_redirects=False)
    assert index.status_code == 200 and "Site administration" in index.text
    _no_traceback(process)


@pytest.mark.timeout(120)
@pytest.mark.parametrize(("path", "expected"), [
    ("/orm/", {"found": 1}),
    ("/asyncio-run/", {"answer": 42}),
    ("/async-to-sync/", {"answer": 42}),
])
def test_views_that_need_no_running_loop(site: tuple[str, Any], path: str,
                                         expected: dict[str, int]) -> None:
    base, process = site
    for _ in range(3):  # and the worker's own loop still serves after each
        answer = requests.get(f"{base}{path}", timeout=30)
        assert answer.status_code == 200, answer.text[:2000]
        assert answer.json() == expected
    # the worker's signal handling is intact too: TERM drains it and it exits cleanly
    process.proc.send_signal(signal.SIGTERM)
    assert process.proc.wait(timeout=30) == 0
    assert "stopped (exit code 0)" in process.output()
    _no_traceback(process)




def _post_after_continue(base: str, path: str, body: bytes) -> tuple[int, bytes]:
    """A POST whose body is sent only once the server asked for it (``100 Continue``), so the
    app is called after the worker waited for the body, not as the head arrived."""
    host, port = base.removeprefix("http://").split(":")
    with socket.create_connection((host, int(port)), timeout=30) as sock:
        sock.sendall(f"POST {path} HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n"
                     f"Content-Length: {len(body)}\r\nExpect: 100-continue\r\n\r\n"
                     .encode())
        interim = b""
        while b"\r\n\r\n" not in interim:
            interim += sock.recv(65536)
        assert interim.startswith(b"HTTP/1.1 100 "), interim
        rest = interim.partition(b"\r\n\r\n")[2]
        sock.sendall(body)
        while chunk := sock.recv(65536):
            rest += chunk
    status, _, answer = parse_response(rest)
    return status, answer


@pytest.mark.timeout(120)
def test_orm_after_waiting_for_the_body_and_in_a_streamed_answer(
        site: tuple[str, Any]) -> None:
    """The app called once the body came (from the worker's task that waited for it), and an
    answer whose iterable reads the database while it is sent."""
    base, process = site
    name = "waited-" + os.urandom(4).hex()
    status, answer = _post_after_continue(base, "/orm/", name.encode())
    assert status == 200, answer[:2000]
    assert json.loads(answer) == {"found": 1}
    listing = requests.get(f"{base}/stream/", timeout=30)
    assert listing.status_code == 200, listing.text[:2000]
    assert f"group-{name}\n" in listing.text and listing.text.endswith("end\n")
    _no_traceback(process)
