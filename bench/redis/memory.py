"""Redis memory each scored message costs: for sizing ``maxmemory`` (docs/operations.md,
"Redis memory").

Starts a private Redis, builds the milter's scanner over it as ``spamwarden milter`` does
(``wiring.build_scanner``: listings, delivery ledger, history, consent; a DNS resolver that
knows nothing, so no DNS is asked), scores corpus messages from distinct client addresses
and records them as the milter's after-reply stage does, and prints ``used_memory`` of
Redis after each part:

* delivered: the delivery ledger and the volume counts (``Scanner.delivered_many``), what an
  accepted message leaves for ``reputation.window``;
* history: the message history entry every verdict leaves (``Scanner.record_history``),
  bounded by ``history.max_entries``.

Figures are bytes per message (the Redis allocator's, keys and overhead included) and the
keys each part left.

Usage: SPAMWARDEN_SHARED=../shared PYTHONPATH=. .venv/bin/python bench/redis/memory.py
       [--messages N] [--recipients R]
"""

from __future__ import annotations

import argparse
import ipaddress
import os
import shutil
import sys
import tempfile
from pathlib import Path

import redis

from spamwarden.config import config_from_mapping
from spamwarden.milter.interfaces import Envelope
from spamwarden.redisconn import EmbeddedRedis
from spamwarden.resolver import StaticResolver
from spamwarden.wiring import build_scanner
from tests.support.messages import corpus_sample

SHARED = (Path(os.environ["SPAMWARDEN_SHARED"]) if os.environ.get("SPAMWARDEN_SHARED")
          else Path(__file__).resolve().parents[3] / "shared")


def corpus(n: int) -> list[bytes]:
    root = SHARED / "corpus" / "spamassassin"
    if not root.is_dir():
        sys.exit(f"no corpus at {root}: set SPAMWARDEN_SHARED to the folder holding corpus/")
    return [p.read_bytes() for p in corpus_sample(SHARED, n)]


def used(client: redis.Redis) -> int:
    return int(client.info("memory")["used_memory"])


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--messages", type=int, default=2000)
    ap.add_argument("--recipients", type=int, default=1,
                    help="envelope recipients of each message (each is indexed)")
    args = ap.parse_args()
    raws = corpus(args.messages)
    work = Path(tempfile.mkdtemp(prefix="sw-redis-mem-"))
    server = EmbeddedRedis(work / "redis")
    server.start()
    try:
        client = redis.Redis(unix_socket_path=str(server.socket))
        cfg = config_from_mapping({"service": {"state_dir": str(work / "state")}},
                                  source="<bench>")
        scanner = build_scanner(cfg, resolver=StaticResolver(), redis_client=client)
        base = ipaddress.IPv4Address("10.0.0.0")
        items = []
        for n, raw in enumerate(raws):
            rcpts = [f"user{n % 5000}.{r}@example.vn" for r in range(args.recipients)]
            env = Envelope(client_ip=str(base + 7 * n + 1), helo=f"mx{n}.example.net",
                           mail_from=f"sender{n}@example.net", rcpts=rcpts,
                           queue_id=f"4Q{n:08X}")
            items.append((scanner.scan(raw, env), env))
        client.flushall()
        start, keys0 = used(client), client.dbsize()
        for i in range(0, len(items), 50):  # the after-reply batches
            scanner.delivered_many(items[i:i + 50])
        delivered, keys1 = used(client), client.dbsize()
        for i in range(0, len(items), 50):
            scanner.record_history(items[i:i + 50])
        history, keys2 = used(client), client.dbsize()
        n = len(items)
        print(f"{n} messages, {args.recipients} recipient(s) each, "
              f"Redis {client.info('server')['redis_version']}")
        print(f"  delivered (ledger, volume): {(delivered - start) / n:8.0f} bytes/message, "
              f"{(keys1 - keys0) / n:.2f} keys/message")
        print(f"  history entry:              {(history - delivered) / n:8.0f} bytes/message, "
              f"{keys2 - keys1} key(s) in all")
        print(f"  together:                   {(history - start) / n:8.0f} bytes/message")
        scanner.close()
        client.close()
    finally:
        server.stop()
        shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
