"""How long a new listing takes to reach real secondaries (BIND, NSD, Knot).

A private redis-server, `spamwarden rbl` as hidden primary with NOTIFY to the three
secondaries (the configurations of tests/support/secondaries.py and docs/dnsbl.md),
then N changes one after another (default 100): each listing is written through the
listing store and every secondary is polled (UDP, every 5 ms) until it answers.
Prints the delay distribution per secondary and over all (change, secondary) pairs.

Usage: bench/dnsbl/propagation [--changes N] [--notify-interval S] [--spacing S] [--background N]
"""

from __future__ import annotations

import argparse
import shutil
import sys
import tempfile
import time
from pathlib import Path

import redis

from spamwarden.redisconn import EmbeddedRedis
from spamwarden.reputation.store import ListingStore
from tests.support.rblserver import ZONE, RblProcess, ip_name
from tests.support.secondaries import SECONDARIES


def pct(values: list[float], q: float) -> float:
    s = sorted(values)
    return s[min(len(s) - 1, int(q * len(s)))]


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--changes", type=int, default=100)
    ap.add_argument("--notify-interval", default="1s", help="rbl.notify_interval (default 1s)")
    ap.add_argument("--spacing", type=float, default=0.0,
                    help="seconds between one change being seen everywhere and the next (default 0: "
                         "back to back, so NOTIFY batching by notify_interval is in the numbers)")
    ap.add_argument("--background", type=int, default=10000,
                    help="listings in the zone before the changes (default 10,000)")
    args = ap.parse_args()
    work = Path(tempfile.mkdtemp(prefix="sw-bench-prop-"))
    srv = EmbeddedRedis(work / "redis")
    srv.start()
    secs = []
    rbl = None
    try:
        store = ListingStore(redis.Redis.from_url(srv.url))
        now = time.time()
        store.add_many([f"10.{i >> 16 & 255}.{i >> 8 & 255}.{i & 255}" for i in range(args.background)],
                       reason="imported", now=now, ttl=86400)
        rbl = RblProcess(work, srv.url, notify_interval=f'"{args.notify_interval}"')
        zones = [f"ip.{ZONE}", f"dbl.{ZONE}"]
        secs = [cls(work / name, zones, rbl.port) for name, cls in SECONDARIES.items()]
        rbl.rbl["notify"] = "[" + ", ".join(f'"127.0.0.1:{s.port}"' for s in secs) + "]"
        rbl.start()
        for s in secs:
            s.start(timeout=60)
        print(f"== {args.changes} changes, {args.background:,} listings in the zone, "
              f"notify_interval {args.notify_interval}, spacing {args.spacing:g}s, secondaries: {', '.join(s.name for s in secs)}")
        delays: dict[str, list[float]] = {s.name: [] for s in secs}
        started = time.monotonic()
        for i in range(args.changes):
            address = f"198.18.{i >> 8}.{i & 255}"
            t0 = time.monotonic()
            store.add(address, reason="complaints", now=time.time(), ttl=3600)
            pending = {s.name: s for s in secs}
            while pending and time.monotonic() - t0 < 30:
                for name, s in list(pending.items()):
                    try:
                        if s.query(ip_name(address), timeout=0.5).answer:
                            delays[name].append(time.monotonic() - t0)
                            del pending[name]
                    except Exception:  # noqa: BLE001 - not answering yet
                        pass
                time.sleep(0.005)
            for name in pending:
                delays[name].append(float("inf"))
            time.sleep(args.spacing)
        every = [d for ds in delays.values() for d in ds]
        print(f"{'':>8} {'p50 s':>7} {'p90 s':>7} {'p99 s':>7} {'max s':>7} {'missed':>6}")
        for name, ds in list(delays.items()) + [("all", every)]:
            print(f"{name:>8} {pct(ds, 0.5):>7.3f} {pct(ds, 0.9):>7.3f} {pct(ds, 0.99):>7.3f} "
                  f"{max(ds):>7.3f} {sum(d == float('inf') for d in ds):>6}")
        print(f"total {time.monotonic() - started:.0f}s")
        return 0
    finally:
        for s in secs:
            s.stop()
        if rbl is not None:
            rbl.stop()
        srv.stop()
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
