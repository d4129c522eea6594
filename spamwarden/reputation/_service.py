"""Process life of the asyncio services (``spamwarden worker``, ``spamwarden api``)."""

from __future__ import annotations

import asyncio
import logging
import signal

from ..logs import event

__all__ = ["stop_on_signals"]


def stop_on_signals(stop: asyncio.Event, *, log: logging.Logger) -> None:
    """Set ``stop`` on SIGTERM or SIGINT; log and ignore SIGHUP.

    SIGHUP is systemd's ExecReload: settings are read at start, so the service keeps
    running and says that a restart applies new settings (event ``reload_ignored``).

    :param stop: the event the service's main coroutine waits on.
    :param log: the service's logger.
    :raises RuntimeError: not called from the main thread's running event loop.
    """
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    loop.add_signal_handler(signal.SIGHUP, lambda: event(log, "reload_ignored",
                                                         hint="restart to apply new settings"))
