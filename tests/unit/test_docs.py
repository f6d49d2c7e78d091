"""The generated docs pages (CLI reference, gunicorn settings) are exactly what ``prefork.docs``
renders from the settings table and ``prefork.sources``."""

from __future__ import annotations

from pathlib import Path

import pytest

from prefork import docs
from prefork.config import SETTINGS, Setting


def _cli_page_text() -> str:
    return (docs.DOCS / docs.CLI_PAGE).read_text(encoding="utf-8")


def test_cli_page_block_matches_the_settings_table() -> None:
    assert docs.extract_block(_cli_page_text()) == docs.render_reference(), (
        "docs/reference/cli.md is out of date: run python -m prefork.docs"
    )


def test_check_passes_on_the_repository() -> None:
    assert docs.main(["--check"]) == 0


@pytest.mark.parametrize("setting", SETTINGS, ids=lambda setting: setting.name)
def test_every_setting_is_documented(setting: Setting) -> None:
    block = docs.extract_block(_cli_page_text())
    assert f"`{setting.name}`" in block
    for flag in setting.flags:
        assert flag in block
    assert setting.section in block
    first_words = setting.help.split(".")[0].replace("|", "\\|")
    assert first_words in block


def test_every_section_gets_one_heading() -> None:
    rendered = docs.render_reference()
    for section in {setting.section for setting in SETTINGS}:
        assert rendered.count(f"\n## {section}\n") == 1


def test_pipes_are_escaped_inside_table_cells() -> None:
    for line in docs.render_reference().splitlines():
        if line.startswith("| `"):
            unescaped = line.replace("\\|", "")
            assert unescaped.count("|") == 5, line


def test_replace_block_keeps_the_surrounding_text() -> None:
    text = f"before\n{docs.START_MARKER}\nold\n{docs.END_MARKER}\nafter\n"
    updated = docs.replace_block(text, "new\n")
    assert updated == f"before\n{docs.START_MARKER}\nnew\n{docs.END_MARKER}\nafter\n"
    assert docs.extract_block(updated) == "new\n"


def test_missing_markers_are_an_error() -> None:
    with pytest.raises(ValueError, match="markers"):
        docs.replace_block("no markers here\n", "block\n")


def test_check_and_rewrite(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    cli_page = tmp_path / docs.CLI_PAGE
    gunicorn_page = tmp_path / docs.GUNICORN_PAGE
    cli_page.parent.mkdir(parents=True, exist_ok=True)
    start, end = docs.GUNICORN_MARKERS
    cli_page.write_text(f"# title\n{docs.START_MARKER}\nstale\n{docs.END_MARKER}\n",
                        encoding="utf-8")
    gunicorn_page.write_text(f"# title\n{start}\nstale too\n{end}\n", encoding="utf-8")

    assert docs.main(["--check", "--docs", str(tmp_path)]) == 1
    error = capsys.readouterr().err
    assert error.count("\n") == 2 and "out of date" in error
    assert "stale" in cli_page.read_text(encoding="utf-8")

    assert docs.main(["--docs", str(tmp_path)]) == 0
    assert docs.extract_block(cli_page.read_text(encoding="utf-8")) == docs.render_reference()
    assert (docs.extract_block(gunicorn_page.read_text(encoding="utf-8"), docs.GUNICORN_MARKERS)
            == docs.render_gunicorn_table())
    assert docs.main(["--check", "--docs", str(tmp_path)]) == 0


def test_gunicorn_table_covers_every_name_once() -> None:
    table = docs.render_gunicorn_table()
    names = [line.split("`")[1] for line in table.splitlines() if line.startswith("| `")]
    assert len(names) == len(set(names))
    assert {"bind", "worker_class", "statsd_host", "asgi_lifespan", "protocol"} <= set(names)
    page = (docs.DOCS / docs.GUNICORN_PAGE).read_text(encoding="utf-8")
    assert docs.extract_block(page, docs.GUNICORN_MARKERS) == table
