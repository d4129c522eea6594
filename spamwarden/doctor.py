"""``spamwarden doctor``: look at a host's set-up and say what is wrong in plain words.

Each check returns :class:`Finding` rows: ``ok``, ``warn`` (works, but not as
an operator would want) or ``fail`` (a part of the service cannot work).  The
command exits 1 when any check fails.
"""

from __future__ import annotations

import grp
import os
import pwd
import shutil
import stat
import subprocess
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Literal

from ._unixsock import unix_path
from .config import Config, parse_hostport
from .resolver import DnsPythonResolver, Resolver, resolver_from_config

__all__ = ["Finding", "run_checks", "default_checks", "CHECKS"]


@dataclass(frozen=True)
class Finding:
    level: Literal["ok", "warn", "fail"]
    check: str
    text: str


def check_config(cfg: Config) -> Iterable[Finding]:
    from .config import config_warnings

    yield Finding("ok", "config", f"{cfg.source} is valid")
    for warning in config_warnings(cfg):
        yield Finding("warn", "config", warning)
    if not cfg.api.operator_tokens:
        yield Finding("warn", "config", "api.operator_tokens is empty: operator API endpoints "
                      "are disabled (list/delist over HTTP)")
    if cfg.consent.enabled and not cfg.consent.token_key:
        yield Finding("ok", "config", "consent.token_key is empty: a key is generated under "
                      f"{cfg.service.state_dir} on first use (keep it when you move hosts)")


def check_redis(cfg: Config) -> Iterable[Finding]:
    import redis

    from .redisconn import redact_url, redis_url, sync_client

    url = redact_url(redis_url(cfg))
    try:
        client = sync_client(cfg)
        info = client.info()
    except (redis.RedisError, OSError) as exc:
        hint = ("start it with `spamwarden serve` (embedded Redis)" if not cfg.redis.url
                else "check that the server runs and redis.url is right")
        yield Finding("fail", "redis", f"cannot reach Redis at {url}: {exc}; {hint}")
        return
    used, limit = int(info.get("used_memory", 0)), int(info.get("maxmemory", 0))
    policy = str(info.get("maxmemory_policy", "noeviction"))
    memory = (f"{_mb(used)} used of maxmemory {_mb(limit)}" if limit
              else f"{_mb(used)} used, no maxmemory")
    yield Finding("ok", "redis", f"Redis {info.get('redis_version')} answers at {url}; {memory}")
    if str(info.get("aof_enabled", "0")) != "1":
        yield Finding("warn", "redis", "append-only persistence is off: acknowledged complaints "
                      "and registry records can be lost in a crash (set appendonly yes)")
    yield from _redis_memory(used, limit, policy)


def _mb(n: int) -> str:
    return f"{n / 1048576:.1f} MB"


#: share of maxmemory past which doctor warns that writes will soon be refused
_NEARLY_FULL = 0.9


def _redis_memory(used: int, limit: int, policy: str) -> Iterable[Finding]:
    """What Redis does when it fills: evicting would drop data silently, refusing writes
    is what every component handles (docs/operations.md, "Redis memory")."""
    if not limit:
        return
    if policy != "noeviction":
        yield Finding("warn", "redis", (
            f"maxmemory-policy is {policy}: when Redis reaches maxmemory it deletes keys, so "
            "listings would end early (a flood of mail could delist a spammer), complaints "
            "and, with an allkeys policy, the consent registry (kept a year by the decree) "
            "would be lost without a word. Set maxmemory-policy noeviction: at the limit "
            "Redis refuses writes, reports get 451 and are sent again, nothing is lost"))
    if used >= limit:
        yield Finding("fail", "redis", (
            f"Redis is full ({_mb(used)} of maxmemory {_mb(limit)}): writes are refused, so "
            "reports get 451, deliveries are not recorded and listings do not change. Raise "
            "maxmemory, or shorten reputation.window / history.max_entries"))
    elif used >= _NEARLY_FULL * limit:
        yield Finding("warn", "redis", (
            f"Redis is nearly full ({_mb(used)} of maxmemory {_mb(limit)}): at the limit "
            "writes are refused. Raise maxmemory, or shorten reputation.window / "
            "history.max_entries (docs/operations.md, \"Redis memory\")"))


def check_dns(cfg: Config) -> Iterable[Finding]:
    resolver = resolver_from_config(cfg.dns)
    servers = ", ".join(cfg.dns.nameservers) or "the servers in /etc/resolv.conf"
    ans = resolver.query("_dmarc.example.com", "TXT")
    if ans.failed:
        yield Finding("fail", "dns", f"the resolver ({servers}) did not answer: {ans.reason}. "
                      "SPF, DKIM and DMARC results will be temperror until it does")
    else:
        yield Finding("ok", "dns", f"the resolver ({servers}) answers ({ans.status})")


def check_model(cfg: Config) -> Iterable[Finding]:
    from .errors import ModelError
    from .training.classifier import load_classifier

    try:
        classifier = load_classifier(cfg.training.model or None)
    except ModelError as exc:
        yield Finding("fail", "model", str(exc))
        return
    yield Finding("ok", "model", f"model {cfg.training.model or '(shipped default)'} loads")
    yield from _site_finding(cfg, classifier)


def _site_finding(cfg: Config, classifier: object) -> Iterable[Finding]:
    """How much of this site's mail the classifier has learned (training.min_site_*)."""
    from .training.classifier import site_counts

    t = cfg.training
    site = site_counts(classifier, t.min_site_ham, t.min_site_spam)
    if site is None:
        return
    counts = (f"learned {site.ham} ham (training.min_site_ham {site.min_ham}) and "
              f"{site.spam} spam (training.min_site_spam {site.min_spam}) of this site's mail")
    if site.established:
        yield Finding("ok", "model", f"{counts}: classifier points count in full")
    else:
        yield Finding("warn", "model", f"{counts}: classifier points scaled down (it cannot "
                      "tag by itself) until both are reached; send ham to ham@ and spam to "
                      "report@, or `spamwarden train --feedback`")


def check_postfix(cfg: Config) -> Iterable[Finding]:
    postconf = shutil.which("postconf") or "/usr/sbin/postconf"
    if not shutil.which(postconf):
        yield Finding("warn", "postfix", "postconf not found: cannot check Postfix settings here")
        return
    try:
        out = subprocess.run(
            [postconf, "-h", "smtpd_milters", "milter_default_action", "milter_protocol",
             "queue_directory"],
            capture_output=True, text=True, timeout=10,
        )
    except (OSError, subprocess.TimeoutExpired) as exc:
        yield Finding("warn", "postfix", f"postconf failed: {exc}")
        return
    if out.returncode != 0:  # e.g. no main.cf: its settings are not Postfix's
        said = " ".join(out.stderr.split())[:300] or f"exit status {out.returncode}"
        yield Finding("warn", "postfix", f"postconf failed ({said}): cannot check Postfix "
                      "settings here")
        return
    lines = (out.stdout.splitlines() + ["", "", "", ""])[:4]
    milters, default_action, protocol, queue_dir = (x.strip() for x in lines)
    # a chrooted smtpd (Debian's default) names a socket from inside the queue directory
    names = [cfg.milter.listen]
    path = unix_path(cfg.milter.listen)
    queue_dir = queue_dir.rstrip("/")
    if path is not None and queue_dir and path.startswith(queue_dir + "/"):
        names.append("unix:" + path[len(queue_dir):])
    listed = set(milters.replace(",", " ").split())
    found = [name for name in names if name in listed]
    if found:
        yield Finding("ok", "postfix", f"smtpd_milters includes {found[0]}")
    else:
        yield Finding("warn", "postfix", f"smtpd_milters is {milters!r}; add "
                      f"{' or '.join(reversed(names))} so Postfix uses spamwarden")
    if default_action != "tempfail":
        yield Finding("warn", "postfix", f"milter_default_action is {default_action!r}: set "
                      "tempfail so mail waits instead of passing unfiltered when the milter is down")
    if protocol and protocol != "6":
        yield Finding("warn", "postfix", f"milter_protocol is {protocol}; 6 is expected")


def _may_connect(path: str, uid: int, gids: set[int]) -> str | None:
    """Why the user ``uid`` with groups ``gids`` cannot connect to the unix socket
    ``path`` (search permission on each directory, write permission on the socket), or
    None when it can."""
    def allowed(st: os.stat_result, bit: int) -> bool:
        if uid == 0:
            return True
        if st.st_uid == uid:
            return bool(st.st_mode & (bit << 6))
        if st.st_gid in gids:
            return bool(st.st_mode & (bit << 3))
        return bool(st.st_mode & bit)

    parent = os.path.dirname(os.path.abspath(path))
    directories = []
    while True:
        directories.append(parent)
        if parent == "/":
            break
        parent = os.path.dirname(parent)
    for directory in reversed(directories):
        if not allowed(os.stat(directory), 0o1):
            return f"cannot pass through {directory}"
    if not allowed(os.stat(path), 0o2):
        return "has no write permission on it"
    return None


def _group_name(gid: int) -> str:
    try:
        return grp.getgrgid(gid).gr_name
    except KeyError:
        return str(gid)


def _socket_findings(setting: str, listen: str, user: str,
                     tcp_risk: str | None) -> Iterable[Finding]:
    path = unix_path(listen)
    if path is None:
        if tcp_risk is not None:
            yield Finding("warn", "sockets", f"{setting} is {listen!r}: {tcp_risk}")
        return
    try:
        st = os.stat(path)
    except OSError as exc:
        yield Finding("warn", "sockets", f"{setting}: no socket at {path} ({exc.strerror}); "
                      "is the service running?")
        return
    if not stat.S_ISSOCK(st.st_mode):
        yield Finding("fail", "sockets", f"{setting}: {path} is not a socket")
        return
    try:
        pw = pwd.getpwnam(user)
    except KeyError:
        yield Finding("warn", "sockets", f"{setting}: no user {user!r} here to check {path} for")
        return
    gids = {pw.pw_gid} | {g.gr_gid for g in grp.getgrall() if user in g.gr_mem}
    try:
        why = _may_connect(path, pw.pw_uid, gids)
    except OSError as exc:
        yield Finding("warn", "sockets", f"{setting}: cannot read the permissions of {path}: "
                      f"{exc.strerror}")
        return
    group = _group_name(st.st_gid)
    if why is not None:
        yield Finding("fail", "sockets", f"{setting}: the {user} user {why} ({path}): its "
                      f"connections are refused; with socket_mode \"0660\", add it to the "
                      f"socket's group (adduser {user} {group}) and restart it, or make "
                      "socket_group one of its groups; every directory above the socket "
                      "must let it through")
    elif st.st_mode & 0o002:
        yield Finding("warn", "sockets", f"{setting}: {path} is writable by every local user, "
                      "so any of them can connect; socket_mode \"0660\" lets in the "
                      f"socket's owner and group ({group}) alone")
    else:
        yield Finding("ok", "sockets", f"{setting}: {user} can connect to {path}; besides "
                      f"it, only the socket's owner and group ({group}) can")


def check_sockets(cfg: Config) -> Iterable[Finding]:
    """Who can reach the milter and intake: Postfix (as the ``postfix`` user) must, the
    host's other users must not."""
    yield from _socket_findings("milter.listen", cfg.milter.listen, "postfix", None)
    yield from _socket_findings(
        "intake.listen", cfg.intake.listen, "postfix",
        "every local process can connect and report under any login (intake believes the "
        "Received field its Postfix adds); on a host with other users or web applications "
        "listen on a unix socket (conf/spamwarden.toml, [intake] listen)"
        if cfg.intake.require_auth else None)


def check_blocklist(cfg: Config) -> Iterable[Finding]:
    """RFC 5782 §5 test points against our own DNS server."""
    host, port = parse_hostport(cfg.rbl.listen[0])
    r = DnsPythonResolver([f"{host}:{port}"], timeout=cfg.dns.timeout, cache=False)
    zone = cfg.rbl.zone
    points = [
        (f"2.0.0.127.ip.{zone}", True),
        (f"1.0.0.127.ip.{zone}", False),
        (f"test.dbl.{zone}", True),
        (f"invalid.dbl.{zone}", False),
    ]
    bad = []
    for name, listed in points:
        ans = r.query(name, "A")
        if ans.failed:
            yield Finding("fail", "blocklist", f"the DNS server at {host}:{port} did not answer "
                          f"for {name}: {ans.reason} (is `spamwarden rbl` running?)")
            return
        if ans.found != listed:
            bad.append(f"{name} should {'be' if listed else 'not be'} listed")
    if bad:
        yield Finding("fail", "blocklist", "RFC 5782 test points wrong: " + "; ".join(bad))
    else:
        yield Finding("ok", "blocklist", f"RFC 5782 test points answer correctly at {host}:{port}")


def check_lookup(cfg: Config) -> Iterable[Finding]:
    """The lookup page that TXT answers and 550 texts link to (``rbl.lookup_url``,
    ``milter.lookup_url``) answers: a listed sender must not land on a dead link."""
    import urllib.error
    import urllib.request

    for url in dict.fromkeys((cfg.rbl.lookup_url, cfg.milter.lookup_url)):
        try:
            with urllib.request.urlopen(url, timeout=max(cfg.dns.timeout, 2.0)) as resp:  # noqa: S310
                status = resp.status
        except urllib.error.HTTPError as exc:
            status = exc.code
        except (OSError, ValueError) as exc:
            yield Finding("fail", "lookup", f"the lookup page {url} does not answer: {exc} "
                          "(is `spamwarden api` running, and api.public_url right?)")
            continue
        if status >= 400:
            yield Finding("fail", "lookup", f"the lookup page {url} answers HTTP {status}")
        else:
            yield Finding("ok", "lookup", f"the lookup page {url} answers")


def _test_points(kind: str, zone: str) -> list[tuple[str, bool]]:
    """RFC 5782 §5 test points of a list: (name, must be listed)."""
    if kind == "ip":
        return [(f"2.0.0.127.{zone}", True), (f"1.0.0.127.{zone}", False)]
    return [(f"test.{zone}", True), (f"invalid.{zone}", False)]


def check_external(cfg: Config, *, resolver: Resolver | None = None) -> Iterable[Finding]:
    """Ask each ``[[rbl.external]]`` list its RFC 5782 §5 test points through the
    configured resolver: 127.0.0.2 (``test``) must be listed, 127.0.0.1 (``invalid``)
    must not.  A 127.255.255.x answer means the list refuses this resolver.

    :param resolver: the resolver to ask (default: ``[dns]``'s).
    """
    if not cfg.rbl.external:
        return
    from .milter.dnsbl import is_refusal

    r = resolver if resolver is not None else resolver_from_config(cfg.dns)
    servers = ", ".join(cfg.dns.nameservers) or "the servers in /etc/resolv.conf"
    for entry in cfg.rbl.external:
        zone = entry.query_zone()
        shown = entry.zone + (" (DQS)" if entry.dqs_key else "")
        problems: list[str] = []
        refused = ""
        for name, must in _test_points(entry.kind, zone):
            ans = r.query(name, "A")
            codes = [str(c) for c in ans.records]
            point = name[: -len(zone) - 1]
            if ans.failed:
                reason = (ans.reason.replace(entry.dqs_key, "<dqs_key>") if entry.dqs_key
                          else ans.reason)
                problems.append(f"{point} did not answer ({reason})")
            elif any(is_refusal(c) for c in codes):
                refused = ",".join(codes)
            elif ans.found != must:
                problems.append(f"{point} is {'not ' if must else ''}listed "
                                f"({','.join(codes) or ans.status}), it must "
                                f"{'' if must else 'not '}be")
        if refused:
            yield Finding("fail", "external", f"{entry.name} ({shown}): your resolver is "
                          f"refused by this list (answer {refused}, 127.255.255.x): use a "
                          f"recursive resolver of your own, not a public one ({servers}), "
                          "or the list's paid access (Spamhaus DQS: dqs_key); until then "
                          f"every lookup counts as {entry.name}_LOOKUP_FAILED")
        elif problems:
            yield Finding("fail", "external", f"{entry.name} ({shown}) does not answer its "
                          "RFC 5782 test points sanely through " + servers + ": "
                          + "; ".join(problems))
        else:
            yield Finding("ok", "external", f"{entry.name} ({shown}) answers its RFC 5782 "
                          "test points correctly")


def check_quarantine(cfg: Config, *, euid: int | None = None) -> Iterable[Finding]:
    """Whether the quarantine (Postfix's hold queue: the console's page, ``spamwarden
    quarantine``) works for the user running this: its programs are there,
    ``postqueue -j`` reads the queue of ``quarantine.postfix_config_dir``, and postsuper
    and postcat can run (as root, or ``sudo -n -l`` allows the exact command lines when
    ``quarantine.sudo`` is set).

    :param euid: the effective user id to judge (default: this process's).
    """
    import asyncio
    import os

    from .errors import QuarantineError, QuarantineUnavailable
    from .quarantine import PostfixQueue

    q = cfg.quarantine
    programs = [("postqueue", q.postqueue), ("postsuper", q.postsuper), ("postcat", q.postcat)]
    if q.sudo:
        programs.append(("sudo", q.sudo))
    missing = [f"quarantine.{name} = {path}" for name, path in programs
               if not (os.path.isfile(path) and os.access(path, os.X_OK))]
    if missing:
        yield Finding("fail", "quarantine", "not found or not executable: " + ", ".join(missing)
                      + " (install Postfix, or set the paths in [quarantine])")
        return
    yield Finding("ok", "quarantine", "found " + ", ".join(path for _, path in programs))
    where = q.postfix_config_dir or "Postfix's default configuration directory"
    queue = PostfixQueue(q)
    try:
        held = asyncio.run(queue.held())
    except QuarantineUnavailable as exc:
        yield Finding("fail", "quarantine", f"the quarantine is not configured: {exc} (set "
                      "quarantine.postfix_config_dir to the directory of Postfix's main.cf)")
        return
    except QuarantineError as exc:
        yield Finding("fail", "quarantine", f"postqueue -j fails against {where}: {exc}")
        return
    yield Finding("ok", "quarantine", f"postqueue -j reads the queue of {where}: "
                  f"{len(held)} message(s) on hold")
    if q.sudo:
        try:
            refused = asyncio.run(queue.sudo_refusals())
        except QuarantineError as exc:
            yield Finding("fail", "quarantine", f"cannot ask sudo: {exc}")
            return
        if refused:
            yield Finding("fail", "quarantine", "sudo -n does not allow "
                          + "; ".join(refused) + ": add the sudoers lines of "
                          "docs/operations.md (Quarantine) for this user")
        else:
            yield Finding("ok", "quarantine", "sudo -n allows postsuper -H, postsuper -d ... "
                          "hold and postcat -bh -q")
        return
    uid = os.geteuid() if euid is None else euid
    if uid == 0:
        yield Finding("ok", "quarantine", "running as root: postsuper and postcat -q can run")
    else:
        yield Finding("fail", "quarantine", f"postsuper and postcat -q need root and this user "
                      f"(uid {uid}) is not root: set quarantine.sudo and the sudoers lines of "
                      "docs/operations.md (Quarantine)")


def check_rules(cfg: Config) -> Iterable[Finding]:
    """SpamAssassin's rules: what was read, and the problems of the site's own files."""
    if not cfg.rules.enabled:
        yield Finding("ok", "rules", "rules.enabled is false: SpamAssassin's rules are not run")
        return
    from .rules import parse_configured, site_problems

    ruleset = parse_configured(cfg)
    if not ruleset.rules:
        yield Finding("fail", "rules", "rules.enabled is true but no rule was read: install "
                      "spamassassin or set rules.paths")
        return
    yield Finding("ok", "rules", f"{len(ruleset.rules)} rules from {len(ruleset.files)} files "
                  f"({len(ruleset.skipped)} not run: spamwarden rules --stats says why)")
    problems = site_problems(cfg, ruleset)
    for p in problems[:10]:
        yield Finding("warn", "rules", str(p))
    if len(problems) > 10:
        yield Finding("warn", "rules", f"and {len(problems) - 10} more: spamwarden rules --lint")


CHECKS: dict[str, Callable[[Config], Iterable[Finding]]] = {
    "config": check_config,
    "redis": check_redis,
    "dns": check_dns,
    "model": check_model,
    "rules": check_rules,
    "postfix": check_postfix,
    "sockets": check_sockets,
    "blocklist": check_blocklist,
    "external": check_external,
    "lookup": check_lookup,
    "quarantine": check_quarantine,
}


def default_checks(cfg: Config) -> list[str]:
    """The checks a plain ``spamwarden doctor`` runs: all, but ``quarantine`` only when
    the milter can hold mail (:func:`~spamwarden.quarantine.holds_mail`)."""
    from .quarantine import holds_mail

    can_hold, _ = holds_mail(cfg)
    return [name for name in CHECKS if name != "quarantine" or can_hold]


def run_checks(cfg: Config, names: Iterable[str] | None = None) -> list[Finding]:
    """Run the named checks (:func:`default_checks` by default, which says so when it
    leaves the quarantine out); a crashing check is itself a finding."""
    from .quarantine import holds_mail

    findings: list[Finding] = []
    skipped: list[Finding] = []
    if not names:
        names = default_checks(cfg)
        can_hold, why = holds_mail(cfg)
        if not can_hold:
            skipped.append(Finding("ok", "quarantine", f"not checked: {why} (--check "
                                   "quarantine checks it anyway)"))
    for name in names:
        try:
            findings.extend(CHECKS[name](cfg))
        except Exception as exc:  # noqa: BLE001 - doctor must report, not crash
            findings.append(Finding("fail", name, f"check crashed: {type(exc).__name__}: {exc}"))
    return findings + skipped
