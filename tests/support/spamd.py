"""SpamAssassin's spamd as a benchmark peer: the CPU it uses, read from /proc."""

from __future__ import annotations

import os
from pathlib import Path

__all__ = ["spamd_cpu"]


def spamd_cpu(pidfile: Path) -> float:
    """CPU seconds used so far by the spamd parent and its children (from /proc).

    :param pidfile: spamd's ``-r`` pid file; unreadable: 0.0.
    """
    try:
        parent = int(pidfile.read_text())
    except (OSError, ValueError):
        return 0.0
    tick = os.sysconf("SC_CLK_TCK")
    total = 0.0
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        pid = int(stat.parent.name)
        if pid == parent or int(fields[1]) == parent:
            total += (int(fields[11]) + int(fields[12])) / tick
    return total
