"""Which changes --reload acts on: the include and exclude patterns, the watched roots and the
extra files, and the start-up errors of a plan that cannot be watched."""

from __future__ import annotations

from pathlib import Path

import pytest

from prefork.arbiter.watcher import CodeWatcher
from prefork.arbiter.watchplan import (
    DEFAULT_EXCLUDES,
    WatchPlan,
    combine_patterns,
    plan_watch,
)
from prefork.errors import ConfigError


def _plan(includes: tuple[str, ...] = (), excludes: tuple[str, ...] = (),
          **fields: tuple[str, ...]) -> WatchPlan:
    merged_includes, merged_excludes = combine_patterns(includes, excludes)
    return WatchPlan(roots=("/srv/app",), includes=merged_includes, excludes=merged_excludes,
                     **fields)


@pytest.mark.parametrize("path, wanted", [
    ("/srv/app/main.py", True),
    ("/srv/app/pkg/sub/models.py", True),
    ("/srv/app/README.md", False),
    ("/srv/app/main.pyc", False),
    ("/srv/app/.main.py.swp", False),  # an editor's swap file
    ("/srv/app/.hidden.py", False),
    ("/srv/app/.venv/lib/site.py", False),  # under a hidden directory
    ("/srv/app/.git/hooks/pre-commit.py", False),
    ("/srv/app/~scratch.py", False),
    ("/srv/other/main.py", False),  # outside the roots
    ("/srv/application.py", False),  # a sibling whose name starts like the root
])
def test_the_defaults_watch_python_files_but_not_hidden_ones(path: str, wanted: bool) -> None:
    assert _plan().wants(path) is wanted


def test_includes_add_names_and_excludes_take_them_away() -> None:
    plan = _plan(includes=("*.html", "templates/*.txt"), excludes=("test_*.py", "build"))
    assert plan.wants("/srv/app/templates/index.html")
    assert plan.wants("/srv/app/deep/templates/mail.txt")
    assert not plan.wants("/srv/app/notes.txt")  # the pattern with a / wants templates/
    assert not plan.wants("/srv/app/test_views.py")
    assert not plan.wants("/srv/app/build/generated.py")  # a directory name excluded
    assert plan.wants("/srv/app/views.py")


def test_a_default_named_on_the_other_side_is_dropped() -> None:
    includes, excludes = combine_patterns((".*",), ("*.py",))
    assert "*.py" not in includes and ".*" not in excludes
    assert set(excludes) == set(DEFAULT_EXCLUDES) - {".*"} | {"*.py"}
    plan = WatchPlan(roots=("/srv/app",), includes=includes, excludes=excludes)
    assert plan.wants("/srv/app/.env")
    assert not plan.wants("/srv/app/main.py")


def test_extra_files_reload_whatever_the_patterns_say() -> None:
    plan = _plan(excludes=("*.toml",),
                 extra_files=("/srv/app/settings.toml", "/etc/app/*.conf"))
    assert plan.wants("/srv/app/settings.toml")
    assert not plan.wants("/srv/app/other.toml")
    assert plan.wants("/etc/app/site.conf")
    assert not plan.wants("/etc/app/site.conf.bak")


def test_excluded_directories_hold_nothing_wanted() -> None:
    plan = _plan(excluded_dirs=("/srv/app/vendor",))
    assert not plan.wants("/srv/app/vendor/lib.py")
    assert plan.wants("/srv/app/vendored.py")


def test_the_plan_travels_as_json_unchanged() -> None:
    plan = _plan(includes=("*.html",), extra_files=("/etc/app.conf",),
                 extra_roots=("/etc",))
    assert WatchPlan.from_json(plan.to_json()) == plan


def test_plan_watch_resolves_roots_directories_and_extra_files(tmp_path: Path) -> None:
    (tmp_path / "src" / "pkg").mkdir(parents=True)
    (tmp_path / "vendor").mkdir()
    (tmp_path / "elsewhere").mkdir()
    (tmp_path / "elsewhere" / "app.conf").write_text("")
    (tmp_path / "src" / "index.html").write_text("")
    plan = plan_watch(("src", "src/pkg"), ("*.html",), ("vendor", "*.tmp"),
                      ("elsewhere/app.conf", "src/*.html"), str(tmp_path))
    root = str(tmp_path.resolve())
    assert plan.roots == (f"{root}/src",)  # src/pkg is inside src
    assert plan.excluded_dirs == (f"{root}/vendor",)
    assert "vendor" not in plan.excludes and "*.tmp" in plan.excludes
    assert plan.extra_files == (f"{root}/elsewhere/app.conf", f"{root}/src/*.html")
    assert plan.extra_roots == (f"{root}/elsewhere",)  # src/ is watched already
    assert plan.watched_paths() == (f"{root}/src", f"{root}/elsewhere")
    assert plan_watch((), (), (), (), str(tmp_path)).roots == (root,)  # default: the cwd


def test_plan_watch_refuses_what_it_cannot_watch(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="reload_dirs: 'missing'"):
        plan_watch(("missing",), (), (), (), str(tmp_path))
    with pytest.raises(ConfigError, match=r"reload_extra_files: 'gone\.html'"):
        plan_watch((), (), (), ("gone.html",), str(tmp_path))
    # a pattern may match nothing yet: the file it names may be created later
    assert plan_watch((), (), (), ("*.html",), str(tmp_path)).extra_files


def test_changes_are_handed_over_once_quiet() -> None:
    import logging

    now = [100.0]
    watcher = CodeWatcher(_plan(), "auto", logging.getLogger("test"), clock=lambda: now[0])
    watcher._on_report({"changed": ["/srv/app/a.py"]})
    assert watcher.take_due(now[0]) == []  # a further batch may follow
    now[0] += 0.05
    watcher._on_report({"changed": ["/srv/app/b.py", "/srv/app/a.py"]})
    now[0] += 0.06
    assert watcher.take_due(now[0]) == []  # the second batch restarted the wait
    now[0] += 0.1
    assert watcher.take_due(now[0]) == ["/srv/app/a.py", "/srv/app/b.py"]
    assert watcher.take_due(now[0] + 1) == []


def test_reload_refuses_preload_app_objects_and_modules_imported_here() -> None:
    from prefork import Config, Server

    with pytest.raises(ConfigError, match="reload: not with preload_app"):
        Config.from_mapping({"reload": True, "preload_app": True})
    with pytest.raises(ConfigError, match="import string"):
        Server(lambda environ, start_response: [], reload=True)
    with pytest.raises(ConfigError, match="module 'json' is already imported"):
        Server("json:loads", reload=True)
    assert Server("no_module_imported_here:app", reload=True).config.reload
