"""Process-wide settings of the arbiter and its workers: environment, umask, user and group,
process title, and capturing a worker's output into the error log.

Each function applies one setting from a resolved :class:`Config` and raises ``BootError`` or
``ConfigError`` naming the setting when it cannot; none of them prints or exits.
"""

from __future__ import annotations

import functools
import grp
import os
import pwd
import sys
from typing import Any

from prefork.config import Config
from prefork.errors import BootError, ConfigError

COMM_LENGTH = 15  # bytes of the kernel's short name ("comm") that ps and top show


def apply_environment(config: Config) -> None:
    """``raw_env`` (``-e NAME=VALUE``) into this process's environment, inherited by workers."""
    for item in config.raw_env:
        name, _, value = item.partition("=")
        os.environ[name] = value


def apply_umask(config: Config) -> None:
    os.umask(config.umask)


def drop_privileges(config: Config) -> None:
    """Switch to ``group`` then ``user`` once the sockets are bound (binding may need root)."""
    if not config.user and not config.group:
        return
    uid, gid = server_identity(config)
    if (uid, gid) == (os.getuid(), os.getgid()):
        return
    try:
        if os.getuid() == 0:
            name = pwd.getpwuid(uid).pw_name if _known_uid(uid) else None
            if name:
                os.initgroups(name, gid)
            else:
                os.setgroups([gid])
        os.setgid(gid)
        os.setuid(uid)
    except PermissionError:
        raise BootError(f"user: cannot switch to uid {uid} gid {gid} "
                        f"(running as uid {os.getuid()}; only root can)") from None


def server_identity(config: Config) -> tuple[int, int]:
    """The uid and gid the server runs as once privileges are dropped: ``user``/``group``
    (names or numbers; the user's own group when only ``user`` is set), else the current
    ones. An unknown name raises ConfigError naming the setting."""
    uid = _uid(config.user) if config.user else os.getuid()
    gid = _gid(config.group) if config.group else (
        pwd.getpwuid(uid).pw_gid if config.user and _known_uid(uid) else os.getgid())
    return uid, gid


def _uid(user: str) -> int:
    if user.isdigit():
        return int(user)
    try:
        return pwd.getpwnam(user).pw_uid
    except KeyError:
        raise ConfigError(f"user: no such user {user!r}") from None


def _gid(group: str) -> int:
    if group.isdigit():
        return int(group)
    try:
        return grp.getgrnam(group).gr_gid
    except KeyError:
        raise ConfigError(f"group: no such group {group!r}") from None


def _known_uid(uid: int) -> bool:
    try:
        pwd.getpwuid(uid)
    except KeyError:
        return False
    return True


def prepare_title() -> None:
    """Load setproctitle, when installed, before anything changes the environment: it moves
    the environment to make room for long titles, and an ``os.environ`` change made before
    that (``raw_env``, systemd's LISTEN_FDS removed) can be lost (gunicorn issue 3430)."""
    setproctitle = _setproctitle()
    if setproctitle is not None:
        setproctitle.getproctitle()


def process_name(config: Config, app_label: str) -> str:
    """The name in the titles, gunicorn's ``proc_name``: the ``proc_name`` setting, else the
    app as given (gunicorn's ``default_proc_name``)."""
    return config.proc_name or app_label


def set_title(config: Config, role: str, app_label: str) -> None:
    """``prefork: ROLE [NAME]`` as the process title that ``ps`` shows, as gunicorn's
    ``gunicorn: master [NAME]`` (setproctitle, when installed; without it the title stays the
    command line); and ``NAME: ROLE`` (``proc_name``, else 'prefork') as the kernel's short
    name, which ``ps -e`` and ``top`` show, so they tell the arbiter from the workers."""
    setproctitle = _setproctitle()
    if setproctitle is not None:
        setproctitle.setproctitle(f"prefork: {role} [{process_name(config, app_label)}]")
    # Writing /proc/self/comm does what prctl(PR_SET_NAME) does from the main thread (proc(5));
    # prctl itself would need ctypes, whose import every arbiter and worker would pay. Written
    # with os.open and os.write rather than a file object: in a fresh worker the io machinery
    # touches (and so copies) about 60 kB more of the pages it shares with the arbiter.
    name = f"{config.proc_name or 'prefork'}: {role}".encode()[:COMM_LENGTH]
    try:
        comm = os.open("/proc/self/comm", os.O_WRONLY | os.O_CLOEXEC)
    except OSError:
        return
    try:
        os.write(comm, name)
    except OSError:
        pass
    finally:
        os.close(comm)


@functools.cache
def _setproctitle() -> Any:
    # Asked once, by the arbiter's prepare_title, and remembered for its workers: without
    # setproctitle, the failed import walks every sys.path entry again, and in a worker that
    # touches (and copies) about 0.3 MB of pages it shares with the arbiter.
    try:
        import setproctitle  # type: ignore[import-not-found, unused-ignore]  # optional extra
    except ImportError:
        return None
    return setproctitle


def capture_output(config: Config) -> None:
    """``capture_output``: the worker's stdout and stderr go to the error log file."""
    if not config.capture_output or config.errorlog == "-":
        return
    fd = os.open(config.errorlog, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    sys.stdout.flush()
    sys.stderr.flush()
    os.dup2(fd, 1)
    os.dup2(fd, 2)
    os.close(fd)
    # the Python-level streams may not write to fds 1 and 2 (an embedder may have replaced
    # them); print() and tracebacks must reach the file too
    sys.stdout = open(1, "w", buffering=1, encoding="utf-8", closefd=False)  # noqa: SIM115
    sys.stderr = open(2, "w", buffering=1, encoding="utf-8", closefd=False)  # noqa: SIM115
