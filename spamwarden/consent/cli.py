"""Handlers of the consent commands (``advertiser``, ``consent``, ``refuse``,
``unsubscribe-url``); ``spamwarden.cli._add_consent`` registers them.

Each takes ``(args, cfg)`` and returns the exit status: 0 done, 1 store trouble
(raised as :class:`~spamwarden.errors.SpamwardenError`, printed by the CLI),
2 bad input.
"""

from __future__ import annotations

import argparse
import json
import sys

from ..config import Config
from .records import advertiser_json, export_records, iso, parse_time
from .registry import (
    GLOBAL,
    ConsentError,
    ConsentRecord,
    normalize_advertiser_id,
    normalize_recipient,
    registry_from_config,
)
from .unsubscribe import list_unsubscribe_headers, signer_from_config, unsubscribe_url

__all__ = [
    "cmd_advertiser_add",
    "cmd_advertiser_show",
    "cmd_advertiser_list",
    "cmd_consent_add",
    "cmd_consent_export",
    "cmd_refuse",
    "cmd_unsubscribe_url",
]


def _err(text: str) -> int:
    print(f"spamwarden: {text}", file=sys.stderr)
    return 2


def cmd_advertiser_add(args: argparse.Namespace, cfg: Config) -> int:
    """``spamwarden advertiser add ID``: register an advertiser or update its name, contact
    and domains; a new advertiser (or ``--new-token``) gets an API token, printed once.

    :param args: the parsed command line.
    :param cfg: the configuration.
    :returns: 0 done; 2 for bad input or an unknown advertiser (said on standard error).
    :raises StoreError: Redis failed (``spamwarden`` prints it and exits 1).
    """
    reg = registry_from_config(cfg)
    try:
        existing = reg.advertiser(args.id)
        adv, token = reg.register_advertiser(
            args.id,
            name=args.name if args.name is not None else (existing.name if existing else ""),
            contact=args.contact if args.contact is not None else (
                existing.contact if existing else ""),
            domains=args.domain or (),
            new_token=args.new_token or existing is None,
        )
    except (ValueError, ConsentError) as exc:
        return _err(str(exc))
    print(f"advertiser {adv.id}: {adv.name}")
    print(f"domains: {', '.join(adv.domains) or '(none)'}")
    if token:
        print(f"api token (shown once): {token}")
    return 0


def cmd_advertiser_show(args: argparse.Namespace, cfg: Config) -> int:
    """``spamwarden advertiser show ID``: the advertiser, its domains and counts as JSON.

    :param args: the parsed command line.
    :param cfg: the configuration.
    :returns: 0 done; 2 for bad input or an unknown advertiser (said on standard error).
    :raises StoreError: Redis failed (``spamwarden`` prints it and exits 1).
    """
    reg = registry_from_config(cfg)
    adv = reg.advertiser(args.id)
    if adv is None:
        return _err(f"no advertiser {args.id!r}")
    print(json.dumps(advertiser_json(adv, reg.counts(adv.id)), ensure_ascii=False, indent=2))
    return 0


def cmd_advertiser_list(args: argparse.Namespace, cfg: Config) -> int:
    """``spamwarden advertiser list``: one line per advertiser: id, name, domains (tab-separated).

    :param args: the parsed command line.
    :param cfg: the configuration.
    :returns: 0.
    """
    reg = registry_from_config(cfg)
    for adv_id in reg.advertisers():
        adv = reg.advertiser(adv_id)
        if adv is not None:
            print(f"{adv.id}\t{adv.name}\t{','.join(adv.domains)}")
    return 0


def cmd_consent_add(args: argparse.Namespace, cfg: Config) -> int:
    """``spamwarden consent add ADVERTISER RECIPIENT``: record a recipient's prior consent.

    :param args: the parsed command line.
    :param cfg: the configuration.
    :returns: 0 done; 2 for bad input or an unknown advertiser (said on standard error).
    :raises StoreError: Redis failed (``spamwarden`` prints it and exits 1).
    """
    reg = registry_from_config(cfg)
    now = reg.clock()
    try:
        at = parse_time(args.at, now=now) if args.at else now
        expires = parse_time(args.expires, now=at) if args.expires else 0.0
        rec = ConsentRecord(
            advertiser=args.advertiser, recipient=args.recipient, method=args.method, at=at,
            evidence=args.evidence or "", expires_at=expires, max_per_day=args.max_per_day,
        )
        reg.add_consents([rec])
        refused = reg.refusal(args.recipient, adv=args.advertiser) or reg.refusal(args.recipient)
    except (ValueError, ConsentError) as exc:
        return _err(str(exc))
    print(f"consent recorded: {args.advertiser} -> {args.recipient} ({args.method})")
    if refused is not None:
        print(f"note: {args.recipient} refused on {iso(refused.at)} via {refused.channel}; "
              "the refusal stays in force")
    return 0


def cmd_consent_export(args: argparse.Namespace, cfg: Config) -> int:
    """``spamwarden consent export ADVERTISER``: the advertiser's consent and refusal records
    (CSV or JSON) to ``--output`` or standard output.

    :param args: the parsed command line.
    :param cfg: the configuration.
    :returns: 0 done; 2 for bad input or an unknown advertiser (said on standard error).
    :raises StoreError: Redis failed (``spamwarden`` prints it and exits 1).
    """
    reg = registry_from_config(cfg)
    adv = reg.advertiser(args.advertiser)
    if adv is None:
        return _err(f"no advertiser {args.advertiser!r}")
    if args.output:
        with open(args.output, "w", encoding="utf-8", newline="") as fh:
            n = export_records(reg, adv.id, args.format, fh)
        print(f"{n} records written to {args.output}", file=sys.stderr)
    else:
        export_records(reg, adv.id, args.format, sys.stdout)
    return 0


def cmd_refuse(args: argparse.Namespace, cfg: Config) -> int:
    """``spamwarden refuse RECIPIENT``: record a refusal of one advertiser (``--advertiser``)
    or of all advertising.

    :param args: the parsed command line.
    :param cfg: the configuration.
    :returns: 0 done; 2 for bad input or an unknown advertiser (said on standard error).
    :raises StoreError: Redis failed (``spamwarden`` prints it and exits 1).
    """
    reg = registry_from_config(cfg)
    adv = args.advertiser or GLOBAL
    try:
        if adv != GLOBAL and reg.advertiser(adv) is None:
            return _err(f"no advertiser {adv!r}")
        rec, created = reg.refuse(args.recipient, adv=adv, channel=args.channel)
    except ValueError as exc:
        return _err(str(exc))
    what = "all advertising" if adv == GLOBAL else f"advertising from {adv}"
    state = "recorded" if created else "already recorded"
    print(f"refusal of {what} by {rec.recipient} {state} ({iso(rec.at)}, {rec.channel})")
    return 0


def cmd_unsubscribe_url(args: argparse.Namespace, cfg: Config) -> int:
    """``spamwarden unsubscribe-url ADVERTISER RECIPIENT``: print the RFC 8058 one-click URL
    (or, with ``--headers``, the List-Unsubscribe headers, RFC 2369 §3.2, RFC 8058).

    :param args: the parsed command line.
    :param cfg: the configuration.
    :returns: 0 done; 2 for bad input or an unknown advertiser (said on standard error).
    :raises StoreError: Redis failed (``spamwarden`` prints it and exits 1).
    """
    try:
        adv = normalize_advertiser_id(args.advertiser)
        rcpt = normalize_recipient(args.recipient, cfg.intake.recipient_delimiter)
    except ValueError as exc:
        return _err(str(exc))
    url = unsubscribe_url(cfg, signer_from_config(cfg), adv, rcpt)
    if args.headers:
        for name, value in list_unsubscribe_headers(url):
            print(f"{name}: {value}")
    else:
        print(url)
    return 0
