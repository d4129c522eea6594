"""Rule-hit parity: the rules spamwarden.rules hits against those Debian's SpamAssassin hits.

Both read the same rule files (SpamAssassin's installed rules).  SpamAssassin runs through
its Perl API, the rules compiled once and each message checked in a child process forked
from that one (as ``spamassassin -t`` checks one message: Perl's ``/o`` patterns compiled
afresh), with network tests off (``local_tests_only``), Bayes, the
auto-welcomelist and TxRep off, a private site and home folder (nothing under /etc or ~ is
read or written), in score set 2 (Bayes on, network off) as spamwarden: a rule scored 0
in that set is not run by either.  spamwarden runs ``RuleEngine.counts`` on the same files.  Rule names
are compared per message, ``__`` sub-rules included.

Rules SpamAssassin hits that spamwarden does not read (network, Bayes, plugins not
implemented, skipped evals) are counted apart: they are not a difference of the rules
both run.

Prints, for each rule that differs on any message: hits by SpamAssassin, hits by
spamwarden, the messages hit only by one of them (first few names); then how many
messages hit exactly the same rules.  ``--json FILE`` writes the per-message sets.

Sample: every ``--step``-th ham and spam of each corpus (default about 150 ham and 100
spam per corpus), plus any ``--files``.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
from collections import Counter
from pathlib import Path

# bench/rules/bench.py, beside this script: the same corpus folder and the same
# SpamAssassin site configuration (no Bayes, no network) as the speed benchmark
from bench import SHARED, SITE_CF
from spamwarden.mail import parse_message
from spamwarden.rules import RuleEngine, parse_rule_files, prepare_message, rule_files

# One SpamAssassin object, its rules read and compiled once; each file is checked in a
# child forked from it (names of the rules hit, then of the sub-rules), so each message
# meets the rules as ``spamassassin -t`` on that one message does: a rule whose regex has
# Perl's /o (the template capture rules, %{NAME} in GB_CUSTOM_HTM_URI's) compiles it with
# the tags of the message it first runs on and keeps it for the life of the process.
SA_SCRIPT = r"""
use strict; use warnings;
use POSIX ();
use Mail::SpamAssassin;
my ($site, $home) = @ARGV[0,1];
my $sa = Mail::SpamAssassin->new({
  site_rules_filename => $site, userprefs_filename => "$home/user_prefs",
  dont_copy_prefs => 1, local_tests_only => 1, home_dir_for_helpers => $home,
  LOCAL_RULES_DIR => $site, userstate_dir => $home,
});
# score set 2 (Bayes on, network off), the one spamwarden reads: rules scored 0 there
# are not run (with use_bayes 0 SpamAssassin would take set 0; no Bayes rule can hit)
$sa->init(1);
$sa->{conf}->set_score_set(2);
$sa->compile_now(0, 1);
$| = 1;
while (my $file = <STDIN>) {
  chomp $file;
  my $text;
  if (open(my $fh, '<:raw', $file)) { local $/; $text = <$fh>; close $fh; }
  else { print "$file\t\t\n"; next; }
  my $pid = fork();
  die "fork: $!" unless defined $pid;
  if ($pid == 0) {
    my $msg = $sa->parse($text);
    my $st = $sa->check($msg);
    printf "%s\t%s\t%s\n", $file, $st->get_names_of_tests_hit, $st->get_names_of_subtests_hit;
    POSIX::_exit(0);  # no destructors: the parent's objects are the parent's
  }
  waitpid($pid, 0);
  print "$file\t\t\n" if $? != 0;
}
"""


def sample(per_ham: int, per_spam: int) -> list[Path]:
    out: list[Path] = []
    for corpus in ("spamassassin", "csdmc2010"):
        for label, n in (("ham", per_ham), ("spam", per_spam)):
            if n <= 0:
                continue
            files = sorted((SHARED / "corpus" / corpus / label).iterdir())
            step = max(1, len(files) // n)
            out.extend(files[::step][:n])
    return out


def sa_hits(files: list[Path]) -> dict[str, set[str]]:
    """SpamAssassin's rules and sub-rules hit, by file."""
    with tempfile.TemporaryDirectory(prefix="sw-parity-") as tmp:
        site, home = Path(tmp) / "site", Path(tmp) / "home"
        site.mkdir()
        home.mkdir()
        (site / "local.cf").write_text(SITE_CF)
        for pre in Path("/etc/spamassassin").glob("*.pre"):
            shutil.copy(pre, site / pre.name)
        (Path(tmp) / "hits.pl").write_text(SA_SCRIPT)
        proc = subprocess.run(
            ["perl", str(Path(tmp) / "hits.pl"), str(site), str(home)],
            input="".join(f"{f}\n" for f in files), capture_output=True, text=True,
            env=dict(os.environ, HOME=str(home)), check=True)
    out: dict[str, set[str]] = {}
    for line in proc.stdout.splitlines():
        name, tests, subs = (line.split("\t") + ["", ""])[:3]
        out[name] = {t for t in (tests + "," + subs).split(",") if t}
    return out


def write_expected(folder: Path, rules: frozenset[str], site_cf: str = "") -> None:
    """Write ``folder/expected.json``: for each ``*.eml`` there, the rules of ``rules``
    SpamAssassin hits on it (``site_cf`` added to the site configuration), sorted; the
    tests' crafted messages are regenerated with it (``tests/data/sarules_*``)."""
    global SITE_CF
    files = sorted(folder.glob("*.eml"))
    saved, SITE_CF = SITE_CF, SITE_CF + site_cf
    try:
        found = sa_hits(files)
    finally:
        SITE_CF = saved
    out = {f.name: sorted(found.get(str(f), set()) & rules) for f in files}
    (folder / "expected.json").write_text(json.dumps(out, indent=1, sort_keys=True) + "\n")


def our_hits(engine: RuleEngine, files: list[Path]) -> dict[str, set[str]]:
    out: dict[str, set[str]] = {}
    for f in files:
        raw = f.read_bytes()
        out[str(f)] = set(engine.counts(prepare_message(parse_message(raw), raw)))
    return out


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--ham", type=int, default=150, help="ham per corpus (default 150)")
    ap.add_argument("--spam", type=int, default=100, help="spam per corpus (default 100)")
    ap.add_argument("--files", nargs="*", default=[], help="more message files")
    ap.add_argument("--files-from", help="a file listing more message files, one a line")
    ap.add_argument("--cache-dir", help="compiled rule databases (default: none, compiles)")
    ap.add_argument("--no-hyperscan", action="store_true", help="run every pattern in re")
    ap.add_argument("--examples", type=int, default=3, help="message names shown per rule")
    ap.add_argument("--rule", action="append", default=[], help="show only these rules")
    ap.add_argument("--json", help="write per-message sets here")
    ap.add_argument("--costly-patterns", action=argparse.BooleanOptionalAction, default=True,
                    help="run the patterns rules.costly_patterns runs (__FILL_THIS_FORM_*), "
                    "as the milter does by default")
    args = ap.parse_args()
    files = sample(args.ham, args.spam) + [Path(f) for f in args.files]
    if args.files_from:
        files += [Path(x) for x in Path(args.files_from).read_text().split() if x]
    files = list(dict.fromkeys(files))
    ruleset = parse_rule_files(rule_files(), costly=args.costly_patterns)
    engine = RuleEngine(ruleset, use_hyperscan=not args.no_hyperscan, cache_dir=args.cache_dir)
    print(f"{len(files)} messages; running SpamAssassin ...", file=sys.stderr, flush=True)
    theirs = sa_hits(files)
    ours = our_hits(engine, files)
    known = set(ruleset.rules)
    only_sa: dict[str, list[str]] = {}
    only_us: dict[str, list[str]] = {}
    sa_n: Counter[str] = Counter()
    us_n: Counter[str] = Counter()
    not_run: Counter[str] = Counter()
    same = 0
    for f in map(str, files):
        t = set(theirs.get(f, set()))
        o = ours.get(f, set())
        for r in t - known:
            not_run[r] += 1
        t &= known
        sa_n.update(t)
        us_n.update(o)
        if t == o:
            same += 1
        for r in t - o:
            only_sa.setdefault(r, []).append(f)
        for r in o - t:
            only_us.setdefault(r, []).append(f)
    differ = sorted(set(only_sa) | set(only_us),
                    key=lambda r: (-(len(only_sa.get(r, [])) + len(only_us.get(r, []))), r))
    if args.rule:
        differ = [r for r in differ if r in args.rule]
    print(f"{'rule':<32} {'SA':>5} {'ours':>5} {'SA only':>7} {'ours only':>9}  examples")
    for r in differ:
        a, b = only_sa.get(r, []), only_us.get(r, [])
        ex = [("SA:" + Path(x).parent.name + "/" + Path(x).name[:28]) for x in a[:args.examples]]
        ex += [("us:" + Path(x).parent.name + "/" + Path(x).name[:28]) for x in b[:args.examples]]
        print(f"{r:<32} {sa_n[r]:5d} {us_n[r]:5d} {len(a):7d} {len(b):9d}  {' '.join(ex)}")
    reported = [r for r in differ if not r.startswith("__")]
    print(f"\nmessages: {len(files)}; identical rule sets (sub-rules included): {same} "
          f"({100.0 * same / max(1, len(files)):.1f} %)")
    same_rep = sum(1 for f in map(str, files)
                   if {r for r in theirs.get(f, set()) & known if not r.startswith("__")}
                   == {r for r in ours.get(f, set()) if not r.startswith("__")})
    print(f"identical reported rules (no __ sub-rules): {same_rep} "
          f"({100.0 * same_rep / max(1, len(files)):.1f} %)")
    print(f"rules differing: {len(differ)} ({len(reported)} reported, "
          f"{len(differ) - len(reported)} sub-rules); rule-message differences: "
          f"{sum(map(len, only_sa.values())) + sum(map(len, only_us.values()))}")
    print("hit by SpamAssassin, not read or not run here: " + ", ".join(
        f"{r} {n}" for r, n in not_run.most_common(40)))
    if args.json:
        Path(args.json).write_text(json.dumps(
            {f: {"sa": sorted(theirs.get(f, set())), "ours": sorted(ours.get(f, set()))}
             for f in map(str, files)}, indent=0))
    return 0


if __name__ == "__main__":
    sys.exit(main())
