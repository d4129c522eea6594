"""Consent registry benchmark: what the milter pays per recipient, against Redis itself.

One private redis-server on a unix socket (as ``spamwarden serve`` runs it), one client,
interleaved rounds of:
  * ``PING``: a bare round trip (the floor any per-recipient check pays);
  * ``HGET`` of one consent record: a plain read of the data the check needs;
  * ``recipient_state``: the RCPT-time check (global refusal, refusal, consent, expiry,
    rolling 24 h count) in one Lua script;
  * ``record_sends``: counting one delivered ad (trim, add, expire, stats) in one Lua script;
  * ``ConsentPolicy.check_rcpt``: the whole milter-side RCPT decision (advertiser map from
    its cache, address normalisation, the script, the reply text).
Registry: 1,000 advertisers, 100,000 consent records, 1 % refusals. Prints microseconds per
operation (median of the rounds) and the ratio to PING.

Usage: bench/consent/run [--ops N] [--rounds R]
"""

from __future__ import annotations

import argparse
import random
import shutil
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]

import redis  # noqa: E402

from spamwarden.config import Config  # noqa: E402
from spamwarden.consent.policy import ConsentPolicy  # noqa: E402
from spamwarden.consent.registry import (  # noqa: E402
    ConsentRecord,
    RedisConsentRegistry,
    consent_key,
)
from spamwarden.milter.interfaces import Envelope  # noqa: E402
from spamwarden.redisconn import EmbeddedRedis  # noqa: E402

NOW = time.time()


def populate(reg: RedisConsentRegistry, advertisers: int, records: int) -> None:
    for i in range(advertisers):
        reg.register_advertiser(f"adv{i}", name=f"Advertiser {i}", domains=[f"adv{i}.test"])
    rng = random.Random(7)
    for i in range(advertisers):  # one bulk submission per advertiser, as the API takes them
        reg.add_consents([
            ConsentRecord(f"adv{i}", f"user{j}@example.test", "form", NOW - 86400, "form")
            for j in range(i, records, advertisers)
        ])
    for j in rng.sample(range(records), records // 100):
        reg.refuse(f"user{j}@example.test", adv=f"adv{j % advertisers}", channel="bench")


def timed(fn: Callable[[int], object], ops: int) -> float:
    start = time.perf_counter()
    for i in range(ops):
        fn(i)
    return (time.perf_counter() - start) / ops * 1e6


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--ops", type=int, default=5000, help="operations per kind per round")
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--advertisers", type=int, default=1000)
    ap.add_argument("--records", type=int, default=100_000)
    ap.add_argument("--quick", action="store_true",
                    help="a smoke run: 500 operations, 1 round, 10,000 records")
    args = ap.parse_args()
    if args.quick:
        args.ops, args.rounds, args.records = min(args.ops, 500), 1, min(args.records, 10_000)

    d = Path(tempfile.mkdtemp(prefix="sw-consent-bench-"))
    server = EmbeddedRedis(d)
    server.start()
    try:
        client = redis.Redis.from_url(server.url)
        reg = RedisConsentRegistry(client, delimiters="+")
        t0 = time.perf_counter()
        populate(reg, args.advertisers, args.records)
        load_s = time.perf_counter() - t0
        t0 = time.perf_counter()
        bulk = [ConsentRecord("adv0", f"bulk{j}@example.test", "app", NOW - 60, "app")
                for j in range(10_000)]
        reg.add_consents(bulk)
        bulk_s = time.perf_counter() - t0
        policy = ConsentPolicy(Config(), reg, domain_cache_ttl=3600)
        n_adv, n_rec = args.advertisers, args.records

        def rcpt(i: int) -> str:
            return f"user{(i * 7919) % n_rec}@example.test"

        kinds: dict[str, Callable[[int], object]] = {
            "PING": lambda i: client.ping(),
            "HGET consent": lambda i: client.hget(consent_key(f"adv{i % n_adv}"), rcpt(i)),
            "recipient_state (Lua)": lambda i: reg.recipient_state(
                f"adv{((i * 7919) % n_rec) % n_adv}", rcpt(i), now=NOW, default_cap=3),
            "record_sends (Lua)": lambda i: reg.record_sends(
                f"adv{((i * 7919) % n_rec) % n_adv}", [rcpt(i)], now=NOW + i * 1e-3, ref="b"),
            "check_rcpt (policy)": lambda i: policy.check_rcpt(
                Envelope(mail_from=f"news@adv{((i * 7919) % n_rec) % n_adv}.test"), rcpt(i)),
        }
        results: dict[str, list[float]] = {k: [] for k in kinds}
        for _ in range(args.rounds):
            for name, fn in kinds.items():
                results[name].append(timed(fn, args.ops))
        info = client.info("memory")
        print(f"registry: {n_adv} advertisers, {n_rec} consents, {n_rec // 100} refusals; "
              f"loaded in {load_s:.1f} s; used_memory {info['used_memory_human']}")
        print(f"bulk consent submission: 10,000 records for one advertiser in {bulk_s:.2f} s "
              f"({10_000 / bulk_s:,.0f} records/s)")
        ping = statistics.median(results["PING"])
        print(f"{'operation':<24} {'us/op (median)':>15} {'min':>8} {'max':>8} {'x PING':>7}")
        for name, vals in results.items():
            med = statistics.median(vals)
            print(f"{name:<24} {med:>15.1f} {min(vals):>8.1f} {max(vals):>8.1f} "
                  f"{med / ping:>7.2f}")
        client.close()
    finally:
        server.stop()
        shutil.rmtree(d, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
