"""The documentation generated from code: the CLI reference and the gunicorn settings table.

``prefork.config.SETTINGS`` is the only place an option is declared, so the reference in
``docs/reference/cli.md`` is generated from it rather than written by hand: one Markdown table
per ``section`` (in the order sections first appear in the table, the order ``prefork --help``
lists them in), one row per setting with its flags, its config-file / Python API key, its
default and its help text. Likewise the table of every gunicorn setting in ``docs/migrating.md``
comes from ``prefork.sources``. Each rendered block lives between its two markers
(``<!-- cli-reference:start -->`` ... ``<!-- cli-reference:end -->``).

``python -m prefork.docs`` rewrites those blocks in place; ``--check`` changes nothing and exits
1 with one line when a block is out of date (the unit test ``tests/unit/test_docs.py`` makes the
same comparison, so the docs cannot drift from the code).

Rule: rendering is pure (text in, text out). Only :func:`main`, a developer command rather than
library code, reads and writes the files, prints and returns an exit status.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

from prefork.config import SETTINGS, Setting
from prefork.sources import GUNICORN_ALIASES, IGNORED, REFUSED, SAME_AS_GUNICORN

__all__ = [
    "CLI_PAGE",
    "DOCS",
    "END_MARKER",
    "GUNICORN_PAGE",
    "START_MARKER",
    "extract_block",
    "main",
    "render_reference",
    "replace_block",
]

START_MARKER = "<!-- cli-reference:start -->"
END_MARKER = "<!-- cli-reference:end -->"
GUNICORN_MARKERS = ("<!-- gunicorn-settings:start -->", "<!-- gunicorn-settings:end -->")
GUNICORN_NOTICE = ("<!-- Generated from prefork.sources by `python -m prefork.docs`; edit the "
                   "tables there, not this block. -->")
DOCS = Path(__file__).resolve().parent.parent / "docs"
CLI_PAGE = "reference/cli.md"
GUNICORN_PAGE = "migrating.md"

_NOTICE = (
    "<!-- Generated from prefork.config.SETTINGS by `python -m prefork.docs`; "
    "edit the settings table, not this block. -->"
)


def _cell(text: str) -> str:
    """Text made safe for one cell of a Markdown table (GFM allows ``\\|`` even in code)."""
    return text.replace("|", "\\|").replace("\n", " ")


def _flags(setting: Setting) -> str:
    """How the option is spelled: ``-b, --bind ADDRESS``, ``--x / --no-x``, ``--mode a|b``."""
    if not setting.flags:
        return "config file only"
    if setting.negatable:
        long_flag = next(flag for flag in setting.flags if flag.startswith("--"))
        return f"`{long_flag} / --no-{long_flag[2:]}`"
    spelled = ", ".join(setting.flags)
    if setting.choices:
        spelled += " " + "|".join(setting.choices)
    elif not setting.is_flag:
        spelled += " " + (setting.metavar or "VALUE")
    text = f"`{spelled}`"
    if setting.multiple and "repeatable" not in setting.help.lower():
        text += " (repeatable)"
    return text


def _default(setting: Setting) -> str:
    value: Any = setting.default
    if setting.is_flag or isinstance(value, bool):
        return "on" if value else "off"
    if value is None:
        return "none"
    if isinstance(value, (tuple, list)):
        return ", ".join(f"`{item}`" for item in value) if value else "none"
    if isinstance(value, float):
        return f"`{value:g}`"
    if value == "":
        return "empty"
    return f"`{value}`"


def _sections(settings: Iterable[Setting]) -> dict[str, list[Setting]]:
    grouped: dict[str, list[Setting]] = {}
    for setting in settings:
        grouped.setdefault(setting.section, []).append(setting)
    return grouped


def render_reference(settings: Sequence[Setting] = SETTINGS) -> str:
    """The Markdown reference of ``settings``: a heading and a table per section."""
    lines = [_NOTICE]
    for section, members in _sections(settings).items():
        lines += ["", f"## {section}", "", "| Option | Key | Default | Meaning |",
                  "|---|---|---|---|"]
        for setting in members:
            row = (_flags(setting), f"`{setting.name}`", _default(setting), setting.help)
            lines.append("| " + " | ".join(_cell(part) for part in row) + " |")
    return "\n".join(lines) + "\n"


def _marker_positions(text: str, markers: tuple[str, str]) -> tuple[int, int]:
    start_marker, end_marker = markers
    start = text.find(start_marker)
    end = text.find(end_marker)
    if start < 0 or end < 0 or end < start:
        raise ValueError(f"the markers {start_marker} and {end_marker} are missing or out of "
                         "order")
    return start + len(start_marker), end


def extract_block(text: str, markers: tuple[str, str] = (START_MARKER, END_MARKER)) -> str:
    """What stands between the markers now, without the newline that follows the start one."""
    start, end = _marker_positions(text, markers)
    return text[start:end].removeprefix("\n")


def replace_block(text: str, block: str,
                  markers: tuple[str, str] = (START_MARKER, END_MARKER)) -> str:
    """``text`` with the content between the markers replaced by ``block``."""
    start, end = _marker_positions(text, markers)
    return text[:start] + "\n" + block + text[end:]


def render_gunicorn_table() -> str:
    """Every gunicorn setting and what prefork does with it, from ``prefork.sources``."""
    rows: list[tuple[str, str, str]] = []
    for name in SAME_AS_GUNICORN:
        rows.append((name, "same", f"`{name}`"))
    for name, ours in GUNICORN_ALIASES.items():
        rows.append((name, "equivalent", f"`{ours}`"))
    for name, reason in IGNORED.items():
        if name in REFUSED:
            values, feature = REFUSED[name]
            reason += f"; refused at start-up for {values} ({feature})"
        rows.append((name, "ignored, with a start-up warning unless at gunicorn's default",
                     reason))
    for name, (values, feature) in REFUSED.items():
        if name not in IGNORED:
            rows.append((name, f"refused at start-up for {values}",
                         f"{feature} is not supported; gunicorn's default is accepted "
                         "silently"))
    lines = [GUNICORN_NOTICE, "", "| gunicorn setting | prefork | setting or reason |",
             "|---|---|---|"]
    lines += [f"| `{_cell(name)}` | {status} | {_cell(note)} |"
              for name, status, note in sorted(rows)]
    return "\n".join(lines) + "\n"


def _blocks() -> list[tuple[str, tuple[str, str], str]]:
    """(page under docs/, its markers, the block that belongs between them), for each block."""
    return [(CLI_PAGE, (START_MARKER, END_MARKER), render_reference()),
            (GUNICORN_PAGE, GUNICORN_MARKERS, render_gunicorn_table())]


def main(argv: Sequence[str] | None = None) -> int:
    """Rewrite (or, with ``--check``, verify) the generated blocks of the docs pages."""
    parser = argparse.ArgumentParser(
        prog="python -m prefork.docs",
        description="Render the CLI reference (from prefork.config.SETTINGS) and the gunicorn "
                    "settings table (from prefork.sources) into the docs pages.",
    )
    parser.add_argument("--check", action="store_true",
                        help="change nothing; exit 1 if a generated block is out of date")
    parser.add_argument("--docs", type=Path, default=DOCS,
                        help="the documentation directory to update")
    args = parser.parse_args(argv)
    texts: dict[Path, tuple[str, str]] = {}  # page -> (as it is, as it should be)
    for page, markers, block in _blocks():
        path: Path = args.docs / page
        try:
            if path not in texts:
                current = path.read_text(encoding="utf-8")
                texts[path] = (current, current)
            current, updated = texts[path]
            texts[path] = (current, replace_block(updated, block, markers))
        except (OSError, ValueError) as exc:
            print(f"{path}: {exc}", file=sys.stderr)
            return 1
    stale = [path for path, (current, updated) in texts.items() if updated != current]
    if args.check:
        for path in stale:
            print(f"{path}: generated reference is out of date; run python -m prefork.docs",
                  file=sys.stderr)
        return 1 if stale else 0
    for path in stale:
        path.write_text(texts[path][1], encoding="utf-8")
        print(f"{path}: generated reference updated")
    if not stale:
        print(f"{args.docs}: generated references already up to date")
    return 0

if __name__ == "__main__":
    sys.exit(main())
