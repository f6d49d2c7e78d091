"""What ``--reload`` watches, and which changed paths reload the workers.

Rule: ``WatchPlan.wants`` is pure (no file system access), so the filter is unit-tested on
strings; ``plan_watch`` alone reads the file system, once at start-up, to resolve the
directories and check the extra files, and raises ConfigError naming the setting.

The semantics follow uvicorn's for the directories and patterns and gunicorn's for the extra
files:

- the watched roots are ``--reload-dir`` (each recursively) or the current directory;
- a changed file reloads when its name matches an include pattern (``*.py`` and
  ``--reload-include``) and neither its name nor a directory between the root and it matches
  an exclude pattern (``.*``, ``.py[cod]``, ``.sw.*``, ``~*`` and ``--reload-exclude``), and it
  is not under an excluded directory (a ``--reload-exclude`` that names one);
- a default pattern given on the other side is dropped (``--reload-include '.*'`` watches
  hidden files; ``--reload-exclude '*.py'`` stops watching Python files);
- a pattern with a ``/`` matches the end of the path (``templates/*.html``);
- ``--reload-extra-file`` (a path, or a glob pattern) reloads whatever the patterns say, and
  is watched where it is, inside the roots or not.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from fnmatch import fnmatchcase
from pathlib import PurePath

from prefork.errors import ConfigError

DEFAULT_INCLUDES = ("*.py",)
DEFAULT_EXCLUDES = (".*", ".py[cod]", ".sw.*", "~*")
_GLOB_CHARACTERS = frozenset("*?[")


def is_pattern(text: str) -> bool:
    return any(c in _GLOB_CHARACTERS for c in text)


def _pattern_matches(pattern: str, name: str, relative: PurePath) -> bool:
    if "/" in pattern:
        return relative.match(pattern)
    return fnmatchcase(name, pattern)


@dataclass(frozen=True)
class WatchPlan:
    """The roots watched recursively and the rules that pick the changes that matter; every
    path absolute."""

    roots: tuple[str, ...]
    includes: tuple[str, ...] = DEFAULT_INCLUDES
    excludes: tuple[str, ...] = DEFAULT_EXCLUDES
    excluded_dirs: tuple[str, ...] = ()
    extra_files: tuple[str, ...] = ()  # absolute paths and absolute glob patterns
    extra_roots: tuple[str, ...] = ()  # where extra files outside the roots are watched

    def watched_paths(self) -> tuple[str, ...]:
        return self.roots + self.extra_roots

    def wants(self, path: str) -> bool:
        """Whether a change to ``path`` (absolute) reloads."""
        if any(path == extra or (is_pattern(extra) and fnmatchcase(path, extra))
               for extra in self.extra_files):
            return True
        root = next((r for r in self.roots if _is_within(path, r)), None)
        if root is None:
            return False
        if any(_is_within(path, directory) for directory in self.excluded_dirs):
            return False
        relative = PurePath(os.path.relpath(path, root))
        name = relative.name
        if not any(_pattern_matches(p, name, relative) for p in self.includes):
            return False
        directories = relative.parts[:-1]
        for pattern in self.excludes:
            if _pattern_matches(pattern, name, relative):
                return False
            if "/" not in pattern and any(fnmatchcase(part, pattern) for part in directories):
                return False
        return True

    def describe(self) -> str:
        """The roots and patterns, as the start-up log line shows them."""
        extra = f"; extra files {', '.join(self.extra_files)}" if self.extra_files else ""
        return (f"{', '.join(self.roots)} (including {' '.join(self.includes)}; excluding "
                f"{' '.join(self.excludes + self.excluded_dirs)}{extra})")

    def to_json(self) -> str:
        return json.dumps({"roots": self.roots, "includes": self.includes,
                           "excludes": self.excludes, "excluded_dirs": self.excluded_dirs,
                           "extra_files": self.extra_files, "extra_roots": self.extra_roots})

    @classmethod
    def from_json(cls, text: str) -> WatchPlan:
        fields = json.loads(text)
        return cls(**{name: tuple(value) for name, value in fields.items()})


def _is_within(path: str, directory: str) -> bool:
    return path == directory or path.startswith(directory.rstrip(os.sep) + os.sep)


def _outermost(directories: list[str]) -> tuple[str, ...]:
    """``directories`` without duplicates and without those inside another one."""
    kept: list[str] = []
    for directory in sorted(set(directories), key=len):
        if not any(_is_within(directory, outer) for outer in kept):
            kept.append(directory)
    return tuple(kept)


def combine_patterns(includes: tuple[str, ...],
                     excludes: tuple[str, ...]) -> tuple[tuple[str, ...], tuple[str, ...]]:
    """The include and exclude patterns in force: the defaults and the given ones, less the
    defaults given on the other side."""
    merged_includes = [p for p in DEFAULT_INCLUDES if p not in excludes] + list(includes)
    merged_excludes = [p for p in DEFAULT_EXCLUDES if p not in includes] + list(excludes)
    return tuple(dict.fromkeys(merged_includes)), tuple(dict.fromkeys(merged_excludes))


def plan_watch(reload_dirs: tuple[str, ...], includes: tuple[str, ...],
               excludes: tuple[str, ...], extra_files: tuple[str, ...], cwd: str) -> WatchPlan:
    """The plan for these settings, relative paths taken from ``cwd``; raises ConfigError for a
    directory that is missing or an extra file that does not exist (a pattern may match
    nothing yet: a file created later is watched)."""
    roots: list[str] = []
    for directory in reload_dirs or (cwd,):
        path = os.path.realpath(os.path.join(cwd, directory))
        if not os.path.isdir(path):
            raise ConfigError(f"reload_dirs: {directory!r} is not a directory")
        roots.append(path)
    outer = _outermost(roots)
    include_patterns, exclude_patterns = combine_patterns(includes, excludes)
    excluded_dirs: list[str] = []
    for pattern in exclude_patterns:
        if not is_pattern(pattern) and os.path.isdir(os.path.join(cwd, pattern)):
            excluded_dirs.append(os.path.realpath(os.path.join(cwd, pattern)))
    exclude_patterns = tuple(p for p in exclude_patterns
                             if os.path.realpath(os.path.join(cwd, p)) not in excluded_dirs)
    extras: list[str] = []
    extra_roots: list[str] = []
    for entry in extra_files:
        absolute = os.path.normpath(os.path.join(cwd, entry))
        if is_pattern(entry):
            # watched from its last directory without a wildcard, so a file created later counts
            parts = PurePath(absolute).parts
            fixed = next(i for i, part in enumerate(parts) if is_pattern(part))
            where = os.path.realpath(os.path.join(*parts[:fixed]))
            absolute = os.path.join(where, *parts[fixed:])
        elif os.path.isfile(absolute):
            absolute = os.path.realpath(absolute)
            where = os.path.dirname(absolute)
        else:
            raise ConfigError(f"reload_extra_files: {entry!r} is not a file")
        extras.append(absolute)
        if os.path.isdir(where) and not any(_is_within(where, root) for root in outer):
            extra_roots.append(where)
    return WatchPlan(roots=outer, includes=include_patterns, excludes=exclude_patterns,
                     excluded_dirs=tuple(excluded_dirs), extra_files=tuple(extras),
                     extra_roots=_outermost(extra_roots))
