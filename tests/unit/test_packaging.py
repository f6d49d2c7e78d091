"""The packaging's promises that can be read off its files: pip's isolated build has every
dependency mypyc reads types from, and the image's build context admits what the Dockerfile
copies and nothing else of the checkout."""

from __future__ import annotations

import re
import sys
from pathlib import Path

if sys.version_info >= (3, 11):
    import tomllib
else:
    import tomli as tomllib

ROOT = Path(__file__).resolve().parents[2]


def test_the_build_requirements_hold_every_runtime_dependency() -> None:
    # mypyc type-checks the whole package: a dependency missing from the isolated build makes
    # its imports unresolved and the compile fail (the build then falls back to pure Python)
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())
    build = set(project["build-system"]["requires"])
    runtime = [requirement for requirement in project["project"]["dependencies"]
               if "python_version" not in requirement]  # tomli: 3.10 only, never compiled
    assert [requirement for requirement in runtime if requirement not in build] == []


def test_the_docker_context_admits_what_the_dockerfile_copies() -> None:
    patterns = [line for line in (ROOT / ".dockerignore").read_text().splitlines()
                if line and not line.startswith("#")]
    assert patterns[0] == "*", "everything is left out unless admitted"
    admitted = {pattern[1:].rstrip("/") for pattern in patterns if pattern.startswith("!")}
    copied = set()
    for line in (ROOT / "Dockerfile").read_text().splitlines():
        match = re.match(r"COPY (?!--from)(.+) \S+$", line)
        if match:
            copied.update(match[1].split())
    assert copied == admitted, (copied, admitted)
