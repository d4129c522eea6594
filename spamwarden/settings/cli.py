"""``spamwarden settings ...``, ``spamwarden allow ...`` and ``spamwarden deny ...``:
thin handlers over :class:`~.store.SettingsStore`.  Bad input exits 2 with one line
saying what was expected; Redis trouble exits 1."""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any

from ..config import Config
from .model import (
    THRESHOLDS,
    SettingsError,
    SettingsSnapshot,
    Thresholds,
    parse_overrides,
    parse_target,
)
from .store import SettingsStore, settings_json

__all__ = [
    "cmd_entry_add", "cmd_entry_list", "cmd_entry_remove", "cmd_settings_list",
    "cmd_settings_remove", "cmd_settings_set", "cmd_settings_show",
]


def _store(cfg: Config) -> SettingsStore:
    from ..redisconn import sync_client

    return SettingsStore.from_config(cfg, sync_client(cfg))


def _base(cfg: Config) -> Thresholds:
    p = cfg.policy
    return Thresholds(p.tag_threshold, p.quarantine_threshold, p.reject_threshold)


def _bad(exc: SettingsError) -> int:
    print(f"spamwarden: {exc}", file=sys.stderr)
    return 2


def _print(data: Any) -> None:
    print(json.dumps(data, indent=2, sort_keys=True))


def cmd_settings_set(args: argparse.Namespace, cfg: Config) -> int:
    """``spamwarden settings set TARGET --tag-threshold N ...``: set a target's thresholds."""
    try:
        target = parse_target(args.target)
        over = parse_overrides({name: getattr(args, name) for name in THRESHOLDS})
        store = _store(cfg)
        every = store.settings()
        every[target] = over
        limits = SettingsSnapshot(every).thresholds(
            target, _base(cfg), delimiters=cfg.intake.recipient_delimiter)
        if not limits.ordered():
            raise SettingsError(
                "the thresholds in effect would not satisfy tag_threshold <= "
                f"quarantine_threshold <= reject_threshold: tag {limits.tag_threshold:g}, "
                f"quarantine {limits.quarantine_threshold:g}, reject {limits.reject_threshold:g}")
        new = store.put_setting(target, over)
    except SettingsError as exc:
        return _bad(exc)
    shown = ", ".join(f"{k} = {v:g}" for k, v in over.to_json().items())
    print(f"{'added' if new else 'replaced'} {target}: {shown}")
    return 0


def cmd_settings_remove(args: argparse.Namespace, cfg: Config) -> int:
    """``spamwarden settings remove TARGET``."""
    try:
        removed = _store(cfg).remove_setting(args.target)
    except SettingsError as exc:
        return _bad(exc)
    if not removed:
        print(f"spamwarden: {args.target} has no settings", file=sys.stderr)
        return 1
    print(f"removed {parse_target(args.target)}")
    return 0


def cmd_settings_list(args: argparse.Namespace, cfg: Config) -> int:
    """``spamwarden settings list [--json]``: every target's settings."""
    every = _store(cfg).settings()
    if args.json:
        _print(settings_json(every))
        return 0
    p = cfg.policy
    print(f"[policy]: tag_threshold = {p.tag_threshold:g}, quarantine_threshold = "
          f"{p.quarantine_threshold:g}, reject_threshold = {p.reject_threshold:g}")
    for target, over in every.items():
        print(f"{target}: " + ", ".join(f"{k} = {v:g}" for k, v in over.to_json().items()))
    return 0


def cmd_settings_show(args: argparse.Namespace, cfg: Config) -> int:
    """``spamwarden settings show RECIPIENT [--json]``: the thresholds in effect."""
    try:
        target = parse_target(args.target)
    except SettingsError as exc:
        return _bad(exc)
    limits = SettingsSnapshot(_store(cfg).settings()).thresholds(
        target, _base(cfg), delimiters=cfg.intake.recipient_delimiter)
    if args.json:
        _print({"target": target, **limits.to_json()})
        return 0
    print(f"{target}: tag_threshold = {limits.tag_threshold:g}, quarantine_threshold = "
          f"{limits.quarantine_threshold:g}, reject_threshold = {limits.reject_threshold:g}")
    print("from: " + (" < ".join(("[policy]", *limits.sources))))
    return 0


def cmd_entry_add(args: argparse.Namespace, cfg: Config) -> int:
    """``spamwarden allow|deny add ENTRY [--note TEXT]``."""
    try:
        stored = _store(cfg).put_entry(args.list_name, args.entry, note=args.note or "")
    except SettingsError as exc:
        return _bad(exc)
    print(f"{args.list_name}: added {stored}")
    return 0


def cmd_entry_remove(args: argparse.Namespace, cfg: Config) -> int:
    """``spamwarden allow|deny remove ENTRY``."""
    try:
        removed = _store(cfg).remove_entry(args.list_name, args.entry)
    except SettingsError as exc:
        return _bad(exc)
    if not removed:
        print(f"spamwarden: {args.entry} is not on the {args.list_name} list", file=sys.stderr)
        return 1
    print(f"{args.list_name}: removed {args.entry}")
    return 0


def cmd_entry_list(args: argparse.Namespace, cfg: Config) -> int:
    """``spamwarden allow|deny list [--json]``: stored entries, then the static ones."""
    found = _store(cfg).entries(args.list_name)
    static = cfg.settings.allow if args.list_name == "allow" else cfg.settings.deny
    if args.json:
        _print({"list": args.list_name, "entries": [e.to_json() for e in found],
                "static": list(static)})
        return 0
    for e in found:
        print(e.entry + (f"  # {e.note}" if e.note else ""))
    for s in static:
        print(f"{s}  # settings.{args.list_name} (configuration file)")
    return 0
