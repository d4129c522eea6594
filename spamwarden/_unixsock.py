"""Unix-domain listening sockets that only the MTA can reach.

A service listening on ``127.0.0.1`` takes connections from every process of the host:
a local user, a web application on the same machine, a compromised daemon.  For intake
that means writing reports as any reporter (intake believes the ``Received`` field its
own MTA adds, and whoever connects can write one); for the milter, delivery records for
messages that never arrived.  A unix socket's file mode decides who may connect
(``connect(2)`` needs write permission on it), so ``unix:/PATH`` listeners are opened
with an explicit mode and group (``socket_mode``, ``socket_group``) rather than whatever
the process's umask leaves.

Nobody can connect before the mode is set: :func:`bind_unix` binds, sets mode and group,
and only then listens (a unix socket bound but not listening refuses every
connection).  The milter's socket is opened by libmilter, which binds and listens in
one call; it is opened under umask 077 (owner only) and widened after
(:func:`owner_only_umask`, :func:`secure`).
"""

from __future__ import annotations

import contextlib
import errno
import grp
import os
import re
import socket
import stat
from collections.abc import Iterator

__all__ = [
    "bind_unix",
    "make_socket_dir",
    "owner_only_umask",
    "parse_mode",
    "resolve_group",
    "secure",
    "unix_path",
]

_MODE = re.compile(r"^0?[0-7]{3}$")


def unix_path(listen: str) -> str | None:
    """The path of a ``unix:/PATH`` (or libmilter's ``local:/PATH``) address, else None."""
    for prefix in ("unix:", "local:"):
        if listen.startswith(prefix):
            return listen[len(prefix):]
    return None


def parse_mode(text: str) -> int:
    """``"0660"`` or ``"660"`` as permission bits.

    :raises ValueError: not three octal digits (set-id and sticky bits are refused: they
        mean nothing on a socket and are most likely a typo).
    """
    if not isinstance(text, str) or not _MODE.match(text):
        raise ValueError(f"{text!r} is not a file mode such as \"0660\"")
    return int(text, 8)


def resolve_group(name: str) -> int | None:
    """The group id of ``name`` (a group name or number); None for ``""`` (keep the
    process's own group).

    :raises ValueError: no such group on this host.
    """
    if name == "":
        return None
    if name.isdigit():
        return int(name)
    try:
        return grp.getgrnam(name).gr_gid
    except KeyError:
        raise ValueError(f"no group {name!r} on this host") from None


@contextlib.contextmanager
def owner_only_umask() -> Iterator[None]:
    """Create files readable and writable by the owner only while inside (the umask is
    the process's: call it before other threads create files)."""
    old = os.umask(0o177)
    try:
        yield
    finally:
        os.umask(old)


def secure(path: str, mode: int, gid: int | None) -> None:
    """Give the socket file at ``path`` ``mode`` and, when set, the group ``gid``.

    :raises OSError: the group cannot be set (the process must be a member of it, or root).
    """
    if gid is not None:
        os.chown(path, -1, gid)
    os.chmod(path, mode)


def make_socket_dir(path: str) -> None:
    """Create the missing directories above the socket ``path`` with mode 0755, whatever
    the umask: the MTA, running as another user, must reach the socket through them (the
    socket's own mode decides who may connect).  Existing directories are left as they are.
    """
    missing: list[str] = []
    parent = os.path.dirname(os.path.abspath(path))
    while not os.path.isdir(parent):
        missing.append(parent)
        parent = os.path.dirname(parent)
    for directory in reversed(missing):
        with contextlib.suppress(FileExistsError):
            os.mkdir(directory)
            os.chmod(directory, 0o755)


def _remove_stale(path: str) -> None:
    """Remove a socket file no process listens on any more; refuse anything else.

    :raises OSError: the path holds something that is not a socket, or a process
        listens on it.
    """
    try:
        st = os.lstat(path)
    except FileNotFoundError:
        return
    if not stat.S_ISSOCK(st.st_mode):
        raise OSError(errno.EEXIST, f"{path} exists and is not a socket; not removing it")
    probe = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        probe.settimeout(1.0)
        probe.connect(path)
    except (ConnectionRefusedError, FileNotFoundError):
        pass  # left behind by a process that is gone
    except OSError as exc:
        if exc.errno not in (errno.ECONNREFUSED, errno.ENOENT):
            raise
    else:
        raise OSError(errno.EADDRINUSE, f"another process listens on {path}")
    finally:
        probe.close()
    with contextlib.suppress(FileNotFoundError):
        os.unlink(path)


def bind_unix(path: str, mode: int, gid: int | None, *, backlog: int = 100) -> socket.socket:
    """A listening unix socket at ``path`` with ``mode`` and group ``gid``.

    A socket file left by a process that is gone is replaced; a live one, or a file that
    is not a socket, is an error.  Missing directories are made (:func:`make_socket_dir`).

    :raises OSError: the path is taken, or the socket cannot be made as asked.
    """
    make_socket_dir(path)
    _remove_stale(path)
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        with owner_only_umask():
            sock.bind(path)
        try:
            secure(path, mode, gid)
            sock.listen(backlog)  # only now can anyone connect
        except OSError:
            with contextlib.suppress(OSError):
                os.unlink(path)
            raise
    except OSError:
        sock.close()
        raise
    return sock
