"""Unix listening sockets: mode and group set before anyone can connect, stale files
replaced, live sockets and other files left alone, other users kept out."""

from __future__ import annotations

import errno
import os
import socket
import stat
from collections.abc import Iterator
from pathlib import Path

import pytest

from spamwarden import _unixsock
from spamwarden._unixsock import bind_unix, parse_mode, resolve_group, unix_path

NOBODY = 65534


@pytest.fixture
def sock_dir(tmp_path: Path) -> Path:
    return tmp_path


@pytest.fixture
def umask_wide() -> Iterator[None]:
    old = os.umask(0)
    try:
        yield
    finally:
        os.umask(old)


def test_unix_path() -> None:
    assert unix_path("unix:/run/x.sock") == "/run/x.sock"
    assert unix_path("local:/run/x.sock") == "/run/x.sock"
    assert unix_path("127.0.0.1:8025") is None
    assert unix_path("inet:127.0.0.1:8890") is None


@pytest.mark.parametrize(("text", "mode"), [("0660", 0o660), ("660", 0o660),
                                            ("0600", 0o600), ("0666", 0o666)])
def test_parse_mode(text: str, mode: int) -> None:
    assert parse_mode(text) == mode


@pytest.mark.parametrize("text", ["999", "4660", "0o660", "66", "", "rw-rw----", 660])
def test_parse_mode_refuses(text: object) -> None:
    with pytest.raises(ValueError):
        parse_mode(text)  # type: ignore[arg-type]


def test_resolve_group() -> None:
    assert resolve_group("") is None
    assert resolve_group("0") == 0
    assert resolve_group("root") == 0
    with pytest.raises(ValueError, match="no group 'no-such-group-here'"):
        resolve_group("no-such-group-here")


@pytest.mark.parametrize("umask", [0o000, 0o022, 0o077])
def test_mode_and_group_whatever_the_umask(sock_dir: Path, umask: int) -> None:
    path = str(sock_dir / "s.sock")
    old = os.umask(umask)
    try:
        sock = bind_unix(path, 0o660, NOBODY)
    finally:
        os.umask(old)
    with sock:
        st = os.stat(path)
        assert stat.S_ISSOCK(st.st_mode)
        assert stat.S_IMODE(st.st_mode) == 0o660
        assert st.st_gid == NOBODY


def test_nobody_connects_before_the_mode_is_set(sock_dir: Path, umask_wide: None,
                                                monkeypatch: pytest.MonkeyPatch) -> None:
    """Under umask 0 the socket is born world-writable; it must not listen until its
    mode is set, or any local process could connect in between."""
    path = str(sock_dir / "s.sock")
    seen: list[str] = []
    secure = _unixsock.secure

    def probing_secure(p: str, mode: int, gid: int | None) -> None:
        probe = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            probe.connect(p)
            seen.append("connected")
        except OSError as exc:
            seen.append(errno.errorcode[exc.errno or 0])
        finally:
            probe.close()
        seen.append(oct(stat.S_IMODE(os.stat(p).st_mode)))
        secure(p, mode, gid)

    monkeypatch.setattr(_unixsock, "secure", probing_secure)
    with bind_unix(path, 0o660, None):
        pass
    assert seen == ["ECONNREFUSED", "0o600"]


def _connect_as_nobody(path: str, groups: list[int]) -> str:
    """Connect to ``path`` from a child process running as nobody with ``groups``."""
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:  # pragma: no cover - the child
        try:
            os.setgroups(groups)
            os.setgid(NOBODY)
            os.setuid(NOBODY)
            s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            try:
                s.connect(path)
                answer = b"connected"
            except OSError as exc:
                answer = errno.errorcode[exc.errno or 0].encode()
            os.write(write, answer)
        finally:
            os._exit(0)
    os.close(write)
    try:
        return os.read(read, 100).decode()
    finally:
        os.close(read)
        os.waitpid(pid, 0)


@pytest.mark.skipif(os.geteuid() != 0, reason="needs root to run a child as nobody")
def test_other_users_kept_out(tmp_path: Path) -> None:
    sock_dir = tmp_path / "run"
    sock_dir.mkdir()
    os.chmod(tmp_path, 0o755)
    os.chmod(sock_dir, 0o755)
    parents = [p for p in tmp_path.parents if p != Path("/")]
    modes = {p: stat.S_IMODE(os.stat(p).st_mode) for p in parents}
    for p in parents:  # pytest's base directories are 0700: let nobody reach the socket
        os.chmod(p, modes[p] | 0o111)
    try:
        path = str(sock_dir / "s.sock")
        with bind_unix(path, 0o660, 0):
            assert _connect_as_nobody(path, []) == "EACCES"
            assert _connect_as_nobody(path, [0]) == "connected"  # a member of the group
        with bind_unix(path, 0o666, 0):
            assert _connect_as_nobody(path, []) == "connected"
    finally:
        for p, mode in modes.items():
            os.chmod(p, mode)


def test_stale_socket_replaced(sock_dir: Path) -> None:
    path = str(sock_dir / "s.sock")
    dead = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    dead.bind(path)
    dead.close()  # the file stays, nobody listens
    with bind_unix(path, 0o600, None) as sock:
        client = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        client.connect(path)
        conn, _ = sock.accept()
        conn.close()
        client.close()


def test_live_socket_not_taken(sock_dir: Path) -> None:
    path = str(sock_dir / "s.sock")
    with bind_unix(path, 0o600, None) as first:
        with pytest.raises(OSError, match="another process listens"):
            bind_unix(path, 0o600, None)
        client = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        client.connect(path)  # the first one still has it
        conn, _ = first.accept()
        conn.close()
        client.close()


def test_other_file_not_removed(sock_dir: Path) -> None:
    path = sock_dir / "s.sock"
    path.write_text("keep me")
    with pytest.raises(OSError, match="not a socket"):
        bind_unix(str(path), 0o600, None)
    assert path.read_text() == "keep me"


def test_group_refused_leaves_no_file(sock_dir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = sock_dir / "s.sock"

    def refuse(p: str, uid: int, gid: int) -> None:
        raise PermissionError(errno.EPERM, "Operation not permitted")

    monkeypatch.setattr(os, "chown", refuse)
    with pytest.raises(PermissionError):
        bind_unix(str(path), 0o660, 12345)
    assert not path.exists()


def test_missing_directories_made_reachable(sock_dir: Path) -> None:
    """The MTA runs as another user: the directories made for the socket must let it
    through even under a restrictive umask; existing ones are not touched."""
    os.chmod(sock_dir, 0o700)
    path = sock_dir / "a" / "b" / "s.sock"
    old = os.umask(0o077)
    try:
        with bind_unix(str(path), 0o660, None):
            pass
    finally:
        os.umask(old)
    assert stat.S_IMODE(os.stat(sock_dir / "a").st_mode) == 0o755
    assert stat.S_IMODE(os.stat(sock_dir / "a" / "b").st_mode) == 0o755
    assert stat.S_IMODE(os.stat(sock_dir).st_mode) == 0o700
