"""SPF and DKIM rule parity: the engine over AuthFacts against SpamAssassin's own plugins.

SpamAssassin runs through its Perl API with network tests on but no usable DNS (its
resolver points at a closed port, so nothing leaves the machine), and is given each
case's results the way it reuses them from the MTA: the SPF result as a Received-SPF
field added above the receiving MTA's Received field (SPF.pm reads it from the internal
headers), the DKIM results as Mail::DKIM signature objects through ``parse``'s
``dkim_signatures`` (DKIM.pm's "signatures provided by the caller"), each with a 2048-bit
RSA key so DKIM.pm knows its size.  spamwarden runs ``RuleEngine.counts`` with the same
results as :class:`~spamwarden.rules.AuthFacts`.  Both read SpamAssassin's installed rules
plus a few test welcome-list lines.

Prints, per case, the SPF/DKIM/welcome-list rules each side hits and whether they agree;
the exit status is 1 when any case differs.  For an identity (MAIL FROM, HELO) a case
gives no SPF result for, SpamAssassin evaluates SPF itself and its DNS fails: its
T_SPF_TEMPERROR or T_SPF_HELO_TEMPERROR is then left out of the comparison.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

from spamwarden.mail import parse_message
from spamwarden.rules import (
    AuthFacts,
    DkimSignature,
    RuleEngine,
    parse_rule_files,
    prepare_message,
    rule_files,
)

SITE_CF = """\
dns_available yes
dns_server 127.0.0.1:9
skip_rbl_checks 1
use_bayes 0
use_txrep 0
spf_timeout 1
dkim_timeout 1
def_welcomelist_auth      *@bank.example *@*.bank.example
def_welcomelist_from_spf  news@paper.example
def_welcomelist_from_dkim *@shop.example esp.example
welcomelist_from_dkim     boss@work.example *.mailhost.example
whitelist_auth            friend@pal.example
"""

#: the rules compared: those both sides run
RULES = frozenset({
    "SPF_PASS", "SPF_NONE", "SPF_HELO_PASS", "SPF_HELO_NONE", "T_SPF_PERMERROR",
    "T_SPF_TEMPERROR", "T_SPF_HELO_PERMERROR", "T_SPF_HELO_TEMPERROR", "DKIM_SIGNED",
    "DKIM_VALID", "DKIM_VALID_AU", "DKIM_VALID_EF", "DKIM_INVALID", "__DKIM_DEPENDABLE",
    "__RESIGNER1", "__RESIGNER2", "__VIA_RESIGNER", "USER_IN_SPF_WELCOMELIST",
    "USER_IN_DEF_SPF_WL", "USER_IN_DKIM_WELCOMELIST", "USER_IN_DEF_DKIM_WL",
    "USER_IN_SPF_WHITELIST", "USER_IN_DKIM_WHITELIST", "ENV_AND_HDR_SPF_MATCH"})

CLIENT = "192.0.2.10"
CONNECTION = (f"Received: from mail.bank.example (mail.bank.example [{CLIENT}]) by "
              "mx.example.net (Postfix) with ESMTP id 4AB12CD; Sat, 5 Dec 2026 12:00:00 +0000\n")

#: name -> (envelope sender, From, SPF result, its identity, [(d, i, s, DKIM result)])
CASES: dict[str, tuple[str, str, str | None, str, list[tuple[str, str, str, str]]]] = {
    "brand_signed": ("bounce@bank.example", "Alice <alice@bank.example>", "pass", "mailfrom",
                     [("bank.example", "@bank.example", "s1", "pass")]),
    "foreign_signature_brand_from": ("bounce@evil.example", "Alice <alice@bank.example>",
                                     "pass", "mailfrom",
                                     [("evil.example", "@evil.example", "s1", "pass")]),
    "brand_signature_failed": ("bounce@bank.example", "Alice <alice@bank.example>",
                               "softfail", "mailfrom",
                               [("bank.example", "@bank.example", "s1", "fail"),
                                ("evil.example", "@evil.example", "s1", "pass")]),
    "listed_signing_domain": ("b@esp.example", "Shop <offers@shop.example>", "none",
                              "mailfrom", [("esp.example", "@esp.example", "s1", "pass")]),
    "subdomain_of_listed": ("boss@work.example", "Boss <boss@work.example>", None, "",
                            [("a.mailhost.example", "@a.mailhost.example", "s1", "pass")]),
    "parent_of_listed": ("boss@work.example", "Boss <boss@work.example>", None, "",
                         [("mailhost.example", "@mailhost.example", "s1", "pass")]),
    "user_list_spf": ("friend@pal.example", "Friend <friend@pal.example>", "pass",
                      "mailfrom", []),
    "user_list_dkim": ("x@other.example", "Friend <friend@pal.example>", "neutral",
                       "mailfrom", [("pal.example", "@pal.example", "s1", "pass")]),
    "auid_subdomain": ("bounce@bank.example", "Alice <alice@bank.example>", "pass",
                       "mailfrom", [("bank.example", "@mail.bank.example", "s1", "pass")]),
    "resigners": ("l@lists.example", "L <x@other.example>", None, "",
                  [("linkedin.com", "@linkedin.com", "s1", "pass"),
                   ("googlegroups.com", "@googlegroups.com", "s1", "fail")]),
    "envelope_domain_forged": ("x@linkedin.com", "L <x@linkedin.com>", "temperror",
                               "mailfrom", [("linkedin.com", "@linkedin.com", "s1", "fail"),
                                            ("evil.example", "@evil.example", "s1", "pass")]),
    "null_sender_helo": ("", "MAILER-DAEMON <mailer-daemon@bank.example>", "pass", "helo", []),
    "two_from_addresses": ("b@evil.example", "Alice <alice@bank.example>, Eve <eve@evil.example>",
                           "pass", "mailfrom", [("evil.example", "@evil.example", "s1", "pass")]),
    "listed_envelope_other_from": ("news@paper.example", "Alice <alice@bank.example>", "pass",
                                   "mailfrom", []),
    "unsigned_permerror": ("bounce@bank.example", "Alice <alice@bank.example>", "permerror",
                           "mailfrom", []),
}

# One SpamAssassin object; per line of stdin a JSON case: the message file and its DKIM
# signatures; out: the names of the rules and sub-rules hit.
SA_SCRIPT = r"""
use strict; use warnings;
use JSON::PP; use Mail::SpamAssassin; use Mail::DKIM::Signature; use Mail::DKIM::PublicKey;
my ($site, $home, $keyfile) = @ARGV;
open my $kf, '<', $keyfile or die; my $pub = <$kf>; close $kf; chomp $pub;
my $sa = Mail::SpamAssassin->new({
  site_rules_filename => $site, userprefs_filename => "$home/user_prefs",
  dont_copy_prefs => 1, local_tests_only => 0, home_dir_for_helpers => $home,
  LOCAL_RULES_DIR => $site, userstate_dir => $home,
});
$sa->init(1);
# DKIM.pm verifies caller-provided signatures only once it has loaded Mail::DKIM
for my $p (@{$sa->{plugins}->{plugins}}) {
  $p->_dkim_load_modules() if ref($p) eq 'Mail::SpamAssassin::Plugin::DKIM';
}
$| = 1;
while (my $line = <STDIN>) {
  my $case = decode_json($line);
  open(my $fh, '<:raw', $case->{file}) or die; my $text = do { local $/; <$fh> }; close $fh;
  my @sigs;
  for my $s (@{$case->{dkim}}) {
    my ($d, $i, $sel, $res) = @$s;
    my $sig = Mail::DKIM::Signature->new(Algorithm => 'rsa-sha256', Domain => $d,
                                         Selector => $sel, Identity => $i, Headers => 'from');
    $sig->result($res);
    $sig->{public_key_query} = 0;
    $sig->{public} = Mail::DKIM::PublicKey->parse("v=DKIM1; k=rsa; p=$pub");
    push @sigs, $sig;
  }
  my $msg = $sa->parse($text, 0, { dkim_signatures => \@sigs });
  my $st = $sa->check($msg);
  printf "%s\t%s,%s\n", $case->{name}, scalar $st->get_names_of_tests_hit,
         scalar $st->get_names_of_subtests_hit;
  $st->finish; $msg->finish;
}
"""


def message(env: str, from_: str, spf: str | None, identity: str) -> str:
    received_spf = ""
    if spf:
        received_spf = (f"Received-SPF: {spf} (mx.example.net: test) client-ip={CLIENT}; "
                        f"envelope-from={env or '<>'}; helo=mail.bank.example; "
                        f"identity={identity};\n")
    return (f"Return-Path: <{env}>\n{received_spf}{CONNECTION}From: {from_}\n"
            "To: bob@example.net\nSubject: Statement\nMessage-ID: <m1@bank.example>\n"
            "Date: Sat, 5 Dec 2026 12:00:00 +0000\n\nYour statement is ready.\n")


def facts(env: str, spf: str | None, identity: str,
          sigs: list[tuple[str, str, str, str]]) -> AuthFacts:
    helo = identity == "helo"
    return AuthFacts(client_ip=CLIENT,
                     spf_mailfrom=None if helo else spf, mail_from="" if helo else env,
                     spf_helo=spf if helo else None, helo="mail.bank.example" if helo else "",
                     dkim=tuple(DkimSignature(d, i, s, r == "pass") for d, i, s, r in sigs))


def sa_hits(work: Path) -> dict[str, set[str]]:
    site, home = work / "site", work / "home"
    site.mkdir()
    home.mkdir()
    (site / "local.cf").write_text(SITE_CF)
    for pre in Path("/etc/spamassassin").glob("*.pre"):
        shutil.copy(pre, site / pre.name)
    key = subprocess.run(
        "openssl genrsa 2048 2>/dev/null | openssl rsa -pubout 2>/dev/null",
        shell=True, capture_output=True, text=True, check=True).stdout  # noqa: S602
    (work / "key.b64").write_text("".join(line for line in key.splitlines()
                                          if not line.startswith("-----")))
    (work / "hits.pl").write_text(SA_SCRIPT)
    lines = []
    for name, (env, from_, spf, identity, sigs) in CASES.items():
        path = work / f"{name}.eml"
        path.write_text(message(env, from_, spf, identity))
        lines.append(json.dumps({"name": name, "file": str(path), "dkim": sigs}) + "\n")
    proc = subprocess.run(
        ["perl", str(work / "hits.pl"), str(site), str(home), str(work / "key.b64")],
        input="".join(lines), capture_output=True, text=True,
        env=dict(os.environ, HOME=str(home)), check=True)
    out: dict[str, set[str]] = {}
    for line in proc.stdout.splitlines():
        name, names = (line.split("\t") + [""])[:2]
        out[name] = {n for n in names.split(",") if n} & RULES
    return out


def our_hits(engine: RuleEngine) -> dict[str, set[str]]:
    out: dict[str, set[str]] = {}
    for name, (env, from_, spf, identity, sigs) in CASES.items():
        raw = message(env, from_, spf, identity).encode()
        msg = prepare_message(parse_message(raw), raw, envelope_from=env,
                              auth=facts(env, spf, identity, sigs))
        out[name] = set(engine.counts(msg)) & RULES
    return out


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--cache-dir", help="compiled rule databases (default: none, compiles)")
    args = ap.parse_args()
    with tempfile.TemporaryDirectory(prefix="sw-auth-parity-") as tmp:
        work = Path(tmp)
        (work / "local.cf").write_text(SITE_CF)
        engine = RuleEngine(parse_rule_files([*rule_files(), work / "local.cf"]),
                            cache_dir=args.cache_dir)
        print(f"{len(CASES)} cases; running SpamAssassin ...", file=sys.stderr, flush=True)
        theirs = sa_hits(work)
    ours = our_hits(engine)
    differ = 0
    for name, (_, _, spf, identity, _) in CASES.items():
        a, b = theirs.get(name, set()), ours[name]
        # without a result for an identity SpamAssassin evaluates it itself: its DNS fails
        a -= {"T_SPF_TEMPERROR"} if spf is None or identity != "mailfrom" else set()
        a -= {"T_SPF_HELO_TEMPERROR"} if spf is None or identity != "helo" else set()
        differ += a != b
        print(f"{'same' if a == b else 'DIFF'} {name}: {' '.join(sorted(a)) or '-'}")
        if a != b:
            print(f"     only SpamAssassin: {' '.join(sorted(a - b)) or '-'}; "
                  f"only spamwarden: {' '.join(sorted(b - a)) or '-'}")
    print(f"{len(CASES) - differ} of {len(CASES)} cases the same")
    return 1 if differ else 0


if __name__ == "__main__":
    sys.exit(main())
