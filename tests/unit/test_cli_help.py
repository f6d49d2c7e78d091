"""``prefork --help`` lists its options under the sections of the CLI reference, in its order."""

from __future__ import annotations

from click.testing import CliRunner

from prefork.cli import build_command
from prefork.config import SETTINGS


def _help_text() -> str:
    result = CliRunner().invoke(build_command(), ["--help"], terminal_width=100)
    assert result.exit_code == 0, result.output
    return result.output


def _sections_with_options() -> list[str]:
    ordered: list[str] = []
    for setting in SETTINGS:
        if setting.flags and setting.section not in ordered:
            ordered.append(setting.section)
    return ordered


def test_headings_follow_the_reference_order() -> None:
    headings = [line[:-1] for line in _help_text().splitlines()
                if line.endswith(":") and not line.startswith(" ")]
    assert headings == ["General", *_sections_with_options()]


def test_every_option_sits_under_its_own_section() -> None:
    text = _help_text()
    sections = _sections_with_options()
    for setting in SETTINGS:
        if not setting.flags:
            continue
        start = text.index(f"\n{setting.section}:\n")
        following = sections.index(setting.section) + 1
        end = (text.index(f"\n{sections[following]}:\n") if following < len(sections)
               else len(text))
        long_flag = next(flag for flag in setting.flags if flag.startswith("--"))
        assert long_flag in text[start:end], (setting.name, setting.section)


def test_help_and_version_are_listed_first() -> None:
    general = _help_text().split("\nGeneral:\n", 1)[1].split("\n\n", 1)[0]
    assert "--help" in general and "--version" in general
