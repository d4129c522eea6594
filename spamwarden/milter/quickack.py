"""Acknowledge Postfix's milter packets at once (``TCP_QUICKACK``), from inside callbacks.

Postfix sends a message to a milter as many small packets and, for the stages whose reply
the milter waives (connect, HELO, MAIL FROM, each header, body), does not wait between
them.  Postfix leaves Nagle's algorithm on, so each packet after the first is held until
the previous one is acknowledged, and Linux delays that acknowledgement by up to 40 ms
once a connection looks interactive.  On the benchmark every milter, spamwarden, a
header-only pymilter and rspamd alike, lost about 40 ms per message that way at 10 SMTP
sessions.

``TCP_QUICKACK`` sends the pending acknowledgement now.  It is not sticky, so it is set
where it matters: at the callbacks after which Postfix has more to send without waiting
(connect, HELO, MAIL FROM, DATA, the first header, each body chunk).  The same socket
carries the end of message's header edits corked (``TCP_CORK``): one packet for all of
them instead of one each.

libmilter gives a filter no way to its connection's socket.  pymilter's context object
holds libmilter's ``SMFICTX`` pointer (its first field), and ``SMFICTX`` starts with the
connection's id, socket descriptor, debug level and timeout.  :class:`ConnectionAcker`
reads the descriptor only after checking the layout (the context object's size; the
configured timeout where the layout puts it), the pointer (libmilter's own
``smfi_getpriv`` must lead back to the context) and the descriptor (a connected TCP
socket on the milter's own port).  When any check fails the feature switches itself off with one log
line; nothing else changes.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import logging
import os
import socket
from typing import Any

from ..logs import event

__all__ = ["ConnectionAcker"]

log = logging.getLogger("spamwarden.milter")

# pymilter's milter_ContextObject: PyObject_HEAD, then SMFICTX *ctx, PyObject *priv,
# PyThreadState *t.  libmilter's struct smfi_str starts with the connection id (4 or 8
# bytes, by version), then socket_t ctx_sd, int ctx_dbg and time_t ctx_timeout, which
# holds the configured timeout at offset 16 either way: the anchor that the layout is
# the expected one.
_HEAD = ctypes.sizeof(ctypes.c_ssize_t) + ctypes.sizeof(ctypes.c_void_p)
_CONTEXT_SIZE = _HEAD + 3 * ctypes.sizeof(ctypes.c_void_p)
_SD_OFFSETS = (8, 4)
_TIMEOUT_OFFSET = 16
_TCP_QUICKACK = getattr(socket, "TCP_QUICKACK", None)
_TCP_CORK = getattr(socket, "TCP_CORK", None)


class ConnectionAcker:
    """Finds a libmilter connection's socket and acknowledges what arrived on it.

    :param port: the milter's TCP port; a descriptor on any other port is not used.
    :param timeout: libmilter's connection timeout (``milter.timeout``, whole seconds).
    """

    def __init__(self, port: int, *, timeout: int) -> None:
        self.port = port
        self.timeout = timeout
        self.enabled = True
        self._found = False
        self._getpriv: Any = None
        if _TCP_QUICKACK is None:
            self._disable("this system has no TCP_QUICKACK")
            return
        try:
            lib = ctypes.CDLL(ctypes.util.find_library("milter") or "libmilter.so.1.0.1")
            self._getpriv = lib.smfi_getpriv
            self._getpriv.restype = ctypes.c_void_p
            self._getpriv.argtypes = [ctypes.c_void_p]
        except (OSError, AttributeError) as exc:
            self._disable(f"libmilter not found: {exc}")

    def _disable(self, why: str) -> None:
        if self.enabled:  # said once
            event(log, "milter_quickack_off", logging.WARNING, why=why)
        self.enabled = False

    def socket_for(self, ctx: Any) -> socket.socket | None:
        """A duplicate of the connection's socket (close it at the end of the
        connection), or ``None`` (and the feature off) when it cannot be found safely."""
        if not self.enabled or ctx is None:
            return None
        if type(ctx).__basicsize__ != _CONTEXT_SIZE:
            self._disable(f"unknown pymilter context layout ({type(ctx).__basicsize__} bytes)")
            return None
        smfictx = ctypes.c_void_p.from_address(id(ctx) + _HEAD).value
        if not smfictx or self._getpriv(smfictx) != id(ctx):
            self._disable("pymilter context does not lead to libmilter's")
            return None
        if ctypes.c_long.from_address(smfictx + _TIMEOUT_OFFSET).value != self.timeout:
            self._disable("libmilter's context does not hold the configured timeout where "
                          "expected")
            return None
        for offset in _SD_OFFSETS:
            sock = self._connection(ctypes.c_int.from_address(smfictx + offset).value)
            if sock is not None:
                if not self._found:
                    self._found = True
                    event(log, "milter_quickack_on", port=self.port, offset=offset)
                return sock
        self._disable(f"no connection to port {self.port} in libmilter's context")
        return None

    def _connection(self, fd: int) -> socket.socket | None:
        """A duplicate of ``fd`` if it is a connected TCP socket on the milter's port."""
        if fd < 0:
            return None
        try:
            sock = socket.socket(fileno=os.dup(fd))
        except OSError:
            return None
        try:
            if (sock.family in (socket.AF_INET, socket.AF_INET6)
                    and sock.type == socket.SOCK_STREAM
                    and sock.getsockname()[1] == self.port):
                sock.getpeername()  # connected
                return sock
        except OSError:
            pass
        sock.close()
        return None

    @staticmethod
    def cork(sock: socket.socket | None, on: bool) -> None:
        """Hold small writes on ``sock`` and send them as one segment when ``on`` is
        false again (``TCP_CORK``): the header edits of an end of message, each its own
        libmilter write, reach Postfix as one packet instead of one each (never raises)."""
        if sock is not None:
            try:
                sock.setsockopt(socket.IPPROTO_TCP, _TCP_CORK, 1 if on else 0)  # type: ignore[arg-type]
            except OSError:
                pass

    @staticmethod
    def ack(sock: socket.socket | None) -> None:
        """Send the pending acknowledgement on ``sock`` now (never raises)."""
        if sock is not None:
            try:
                sock.setsockopt(socket.IPPROTO_TCP, _TCP_QUICKACK, 1)  # type: ignore[arg-type]
            except OSError:
                pass
