"""Handlers of ``spamwarden rbl`` and ``spamwarden export rbldnsd|rpz`` (wired in cli.py)."""

from __future__ import annotations

import argparse
import asyncio
import sys
from pathlib import Path
from typing import Any

from ..config import Config
from ..errors import ServiceError, StoreUnavailable

__all__ = ["cmd_rbl", "cmd_export_rbldnsd", "cmd_export_rpz", "load_responder"]


def cmd_rbl(args: argparse.Namespace, cfg: Config) -> int:
    """Serve the blocklist zones (foreground)."""
    import dataclasses

    from .server import run_rbl

    if getattr(args, "listen", None):
        cfg = dataclasses.replace(cfg, rbl=dataclasses.replace(cfg.rbl, listen=tuple(args.listen)))
    return run_rbl(cfg)


def load_responder(cfg: Config) -> Any:
    """A responder whose index holds every listing in Redis right now.

    :raises StoreUnavailable: Redis cannot be reached.
    """
    import redis

    from ..redisconn import async_client
    from .follower import ListingFollower
    from .responder import DnsblResponder
    from .server import build_settings, follower_config
    from .zone import DnsblZone

    async def load() -> DnsblResponder:
        client = async_client(follower_config(cfg, timeout=30.0))
        responder = DnsblResponder(DnsblZone(), build_settings(cfg))
        try:
            await ListingFollower(responder, client).load()
        finally:
            await client.aclose()
        return responder

    try:
        return asyncio.run(load())
    except (redis.RedisError, OSError) as exc:
        raise StoreUnavailable(f"cannot read the listings from Redis: {exc}") from exc


def cmd_export_rbldnsd(args: argparse.Namespace, cfg: Config) -> int:
    """Write rbldnsd data files and print how to serve them."""
    from .export import export_rbldnsd

    responder = load_responder(cfg)
    directory = Path(args.dir)
    try:
        paths = export_rbldnsd(responder.zone, responder, directory)
    except OSError as exc:
        raise ServiceError(f"cannot write {directory}: {exc}") from exc
    apex = responder.settings.apex
    print(f"wrote {len(responder.zone)} listings to {directory} (serial {responder.zone.serial})")
    print(f"serve: rbldnsd -b 127.0.0.1/53 -w {directory} ip.{apex}:ip4trie:{paths['ip4'].name} "
          f"ip.{apex}:ip6trie:{paths['ip6'].name} dbl.{apex}:dnset:{paths['dbl'].name}",
          file=sys.stderr)
    return 0


def cmd_export_rpz(args: argparse.Namespace, cfg: Config) -> int:
    """Write a Response Policy Zone of the listed domains."""
    from .export import export_rpz

    responder = load_responder(cfg)
    path = Path(args.file)
    try:
        n = export_rpz(responder.zone, responder, path, origin=args.origin)
    except OSError as exc:
        raise ServiceError(f"cannot write {path}: {exc}") from exc
    print(f"wrote {n} domains to {path}")
    return 0
