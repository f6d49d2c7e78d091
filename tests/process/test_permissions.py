"""Files and sockets the arbiter creates: modes independent of the umask, no symlink following,
and no listening socket beyond the configured binds (control channels are socketpairs)."""

from __future__ import annotations

import os
import socket
import stat
from pathlib import Path

import pytest

from prefork.errors import BootError
from prefork.testing import running_server

APP = "tests.apps.pidapp:app"


def _mode(path: Path) -> int:
    return stat.S_IMODE(os.stat(path).st_mode)


@pytest.mark.timeout(60)
@pytest.mark.parametrize("umask", [0, 0o077])
def test_unix_socket_is_0660_whatever_the_umask(tmp_path: Path, umask: int) -> None:
    path = tmp_path / "prefork.sock"
    with running_server(APP, workers=1, bind=f"unix:{path}", umask=umask):
        assert stat.S_ISSOCK(os.stat(path).st_mode)
        assert _mode(path) == 0o660
        with socket.socket(socket.AF_UNIX) as sock:
            sock.settimeout(10)
            sock.connect(str(path))
            sock.sendall(b"GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
            assert sock.recv(12).startswith(b"HTTP/1.1 200")


@pytest.mark.timeout(60)
@pytest.mark.parametrize("umask", [0, 0o077])
def test_pidfile_is_0644(tmp_path: Path, umask: int) -> None:
    pidfile = tmp_path / "prefork.pid"
    with running_server(APP, workers=1, pidfile=str(pidfile), umask=umask) as server:
        assert int(pidfile.read_text()) == server.pid
        assert _mode(pidfile) == 0o644


@pytest.mark.timeout(60)
def test_stale_pidfile_is_rewritten_with_0644(tmp_path: Path) -> None:
    pidfile = tmp_path / "prefork.pid"
    pidfile.write_text("999999999\n")
    pidfile.chmod(0o666)
    with running_server(APP, workers=1, pidfile=str(pidfile)) as server:
        assert int(pidfile.read_text()) == server.pid
        assert _mode(pidfile) == 0o644


@pytest.mark.timeout(60)
@pytest.mark.parametrize("target_exists", [True, False], ids=["to-a-file", "dangling"])
def test_symlink_at_the_pidfile_path_fails_start_up(tmp_path: Path, target_exists: bool) -> None:
    victim = tmp_path / "victim"
    if target_exists:
        victim.write_text("keep me\n")
    pidfile = tmp_path / "prefork.pid"
    pidfile.symlink_to(victim)
    with (pytest.raises(BootError, match=r"^pidfile: cannot write .*prefork\.pid: ") as caught,
          running_server(APP, workers=1, pidfile=str(pidfile))):
        pass
    assert "\n" not in str(caught.value)
    if target_exists:
        assert victim.read_text() == "keep me\n"
    else:
        assert not victim.exists()
    assert pidfile.is_symlink()


def _tcp_listeners(pid: int) -> dict[int, int]:
    """inode -> local port of every listening TCP socket in ``pid``'s network namespace."""
    found = {}
    for table in ("tcp", "tcp6"):
        with open(f"/proc/{pid}/net/{table}") as handle:
            next(handle)
            for line in handle:
                fields = line.split()
                if fields[3] == "0A":  # TCP_LISTEN
                    found[int(fields[9])] = int(fields[1].rsplit(":", 1)[1], 16)
    return found


def _unix_sockets(pid: int) -> dict[int, tuple[bool, str]]:
    """inode -> (listening, path) of every Unix socket; path is "" for unnamed ones."""
    found = {}
    with open(f"/proc/{pid}/net/unix") as handle:
        next(handle)
        for line in handle:
            fields = line.split()
            listening = int(fields[3], 16) & 0x10000 != 0  # __SO_ACCEPTCON
            found[int(fields[6])] = (listening, fields[7] if len(fields) > 7 else "")
    return found


def _socket_inodes(pid: int) -> list[int]:
    inodes = []
    for fd in os.listdir(f"/proc/{pid}/fd"):
        try:
            target = os.readlink(f"/proc/{pid}/fd/{fd}")
        except FileNotFoundError:
            continue
        if target.startswith("socket:["):
            inodes.append(int(target[len("socket:["):-1]))
    return inodes


@pytest.mark.timeout(60)
def test_arbiter_listens_only_on_configured_binds(tmp_path: Path) -> None:
    path, control = tmp_path / "prefork.sock", tmp_path / "prefork.ctl"
    with running_server(APP, workers=2, bind=("127.0.0.1:0", f"unix:{path}"),
                        control_socket=str(control)) as server:
        pid = server.pid
        assert pid is not None
        inodes = _socket_inodes(pid)
        tcp, unix = _tcp_listeners(pid), _unix_sockets(pid)
        tcp_ports, unix_listeners, unnamed, other = [], [], 0, []
        for inode in inodes:
            if inode in tcp:
                tcp_ports.append(tcp[inode])
            elif inode in unix and unix[inode][0]:
                unix_listeners.append(unix[inode][1])
            elif inode in unix and not unix[inode][1]:
                unnamed += 1  # a socketpair end: the control channel or a worker's channel
            else:
                other.append(inode)
        assert other == [], f"sockets that are neither binds nor socketpairs: {other}"
        assert tcp_ports and set(tcp_ports) == {server.port}, tcp_ports
        assert sorted(unix_listeners) == sorted([str(path), str(control)])
        assert unnamed >= 1
