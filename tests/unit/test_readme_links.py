"""Every relative link in the Markdown files outside ``docs/`` points at a file that exists, and
every ``#anchor`` in such a link at a heading of its target.

``mkdocs build --strict`` (``make docs``, part of ``make test``) checks the pages under
``docs/``; these are the files it does not build: the README, the benchmark figures and the
examples' notes. Anchors are computed as Python-Markdown's ``toc`` extension makes them, which is
also how GitHub spells them for the headings used here.
"""

from __future__ import annotations

import re
import unicodedata
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
CHECKED = sorted(
    path.relative_to(ROOT).as_posix()
    for path in [ROOT / "README.md", *ROOT.glob("bench/*.md"), *ROOT.glob("examples/**/*.md"),
                 *ROOT.glob("tests/corpus/*.md")]
    if path.is_file()
)

LINK = re.compile(r"\[[^\]]*\]\(([^)\s]+)\)")
FENCE = re.compile(r"^```.*?^```", re.MULTILINE | re.DOTALL)
CODE_SPAN = re.compile(r"`[^`\n]*`")


def _links(text: str) -> list[str]:
    text = FENCE.sub("", text)
    # a link inside a code span is text, not a link; a code span inside a link's text is fine
    return [target for target in LINK.findall(text)
            if not re.match(r"[a-z][a-z0-9+.-]*:", target)]


def _slug(heading: str) -> str:
    text = re.sub(r"\[([^\]]*)\]\([^)]*\)", r"\1", heading).replace("`", "")
    text = unicodedata.normalize("NFKD", text).encode("ascii", "ignore").decode("ascii")
    text = re.sub(r"[^\w\s-]", "", text).strip().lower()
    return re.sub(r"[-\s]+", "-", text)


def _anchors(path: Path) -> set[str]:
    text = FENCE.sub("", path.read_text(encoding="utf-8"))
    return {_slug(line.lstrip("#").strip()) for line in text.splitlines()
            if re.match(r"#{1,6} ", line)}


def test_the_slug_matches_markdowns() -> None:
    assert _slug("`--workers auto` in containers") == "-workers-auto-in-containers"
    assert _slug("Behind nginx") == "behind-nginx"


@pytest.mark.parametrize("name", CHECKED)
def test_relative_links_resolve(name: str) -> None:
    source = ROOT / name
    broken = []
    for target in _links(CODE_SPAN.sub("", source.read_text(encoding="utf-8"))):
        path_part, _, anchor = target.partition("#")
        path = (source.parent / path_part).resolve() if path_part else source
        if not path.exists():
            broken.append(f"{target}: no such file")
        elif anchor and path.suffix == ".md" and anchor not in _anchors(path):
            broken.append(f"{target}: no heading with that anchor")
    assert not broken, f"{name}: " + "; ".join(broken)


def test_the_readme_is_checked_and_short() -> None:
    assert "README.md" in CHECKED
    lines = (ROOT / "README.md").read_text(encoding="utf-8").count("\n")
    assert lines < 400, f"README.md has {lines} lines: the reference belongs in docs/"
