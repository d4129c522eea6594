"""Peak memory of ``spamwarden intake`` for large reports.

Starts a private Redis and the real ``spamwarden intake`` command, sends N reports of about
``--mb`` MB at once (each from its own reporter, each forwarding one original with a large
base64 attachment), and prints the intake process's peak resident set (``VmHWM`` from
``/proc/PID/status``) before and after, with every SMTP reply.

Usage: PYTHONPATH=. .venv/bin/python bench/intake/memory.py [--reports N] [--mb 9.5]
"""

from __future__ import annotations

import argparse
import shutil
import sys
import tempfile
from pathlib import Path

from spamwarden.redisconn import EmbeddedRedis
from tests.support.bigreport import RunningIntake, big_report


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[1])
    ap.add_argument("--reports", type=int, default=10)
    ap.add_argument("--mb", type=float, default=9.5)
    args = ap.parse_args()
    work = Path(tempfile.mkdtemp(prefix="sw-intake-mem-"))
    redis = EmbeddedRedis(work / "redis")
    redis.start()
    try:
        size = int(args.mb * 1_000_000)
        reports = [big_report(i, size) for i in range(args.reports)]
        print(f"{len(reports)} reports of {len(reports[0]) / 1e6:.2f} MB each")
        for label, batch in (("one report", reports[:1]), (f"{len(reports)} at once", reports)):
            intake = RunningIntake(work, redis.url)
            try:
                idle = intake.peak_mb()
                replies = intake.send_at_once(batch)
                peak = intake.peak_mb()
            finally:
                intake.stop()
            codes = sorted({r[:3] for r in replies})
            print(f"{label:>14}: VmHWM idle {idle:.0f} MB, peak {peak:.0f} MB; replies {codes}")
            for r in sorted(set(replies)):
                print(f"{'':>16}{r[:100]}")
    finally:
        redis.stop()
        shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
