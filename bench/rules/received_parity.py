"""Received-line parity: each distinct Received value of the corpus read by
``spamwarden.rules._relays.parse_received`` against SpamAssassin's
``Mail::SpamAssassin::Message::Metadata::Received::parse_received_line``.

Both sides get the folded value with its folds made one space; a relay is compared as
Received.pm renders it (``[ ip=... rdns=... helo=... by=... ... ]``, before trust is
decided: intl=0, msa=0), followed by ``no_reverse_dns`` when the form is one whose MTA
looks names up and there is none (RelayEval's RDNS_NONE), a skipped line (a local handover, a mail fetcher's) as SKIP,
a line neither can read as UNPARSEABLE.  Prints how many lines differ, by kind, and
the first ``--examples`` of them; the exit status is 1 when any differs.

Usage: PYTHONPATH=$PWD python bench/rules/received_parity.py [--examples N]
"""

from __future__ import annotations

import argparse
import subprocess
import sys
from collections import Counter
from pathlib import Path

from spamwarden.rules._relays import parse_received

CORPUS = Path("/work/shared/corpus")
PERL = r"""
use strict; use warnings;
use Mail::SpamAssassin::Message::Metadata;
use Mail::SpamAssassin::Message::Metadata::Received;
binmode STDIN; binmode STDOUT;
my $self = bless { allow_mailfetch_markers => 1 }, 'Mail::SpamAssassin::Message::Metadata';
while (my $l = <STDIN>) {
  chomp $l; $l =~ s/\x01/\n/g; $l =~ s/\n[ \t]+/ /gs;
  my $r = $self->parse_received_line($l);
  print !defined $r ? "UNPARSEABLE\n" : !$r ? "SKIP\n"
    : "$r->{as_string}" . ($r->{no_reverse_dns} ? " no_reverse_dns" : "") . "\n";
}
"""


def received_values(root: Path) -> list[str]:
    """Every distinct Received value (folds kept) of the corpus messages."""
    found: set[str] = set()
    for path in sorted(p for p in root.rglob("*") if p.is_file()):
        head = path.read_bytes().split(b"\n\n", 1)[0].decode("latin-1")
        current: list[str] | None = None
        for line in head.split("\n") + [""]:
            if line[:1] in (" ", "\t") and current is not None:
                current.append(line)
                continue
            if current is not None:
                found.add("\n".join(current))
                current = None
            if line.lower().startswith("received:"):
                current = [line[9:].lstrip(" ")]
    return sorted(found)


def ours(value: str) -> str:
    got = parse_received(value)
    if got is None or got is False:
        return "SKIP"
    if got == "unparseable":
        return "UNPARSEABLE"
    return got.render(False) + (" no_reverse_dns" if got.looked_up and not got.rdns else "")


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--examples", type=int, default=20)
    args = ap.parse_args()
    values = received_values(CORPUS)
    proc = subprocess.run(["perl", "-e", PERL], input="".join(
        v.replace("\n", "\x01") + "\n" for v in values).encode("latin-1"),
        capture_output=True, check=True)
    theirs = proc.stdout.decode("latin-1").split("\n")[:len(values)]
    kinds: Counter[str] = Counter()
    shown = 0
    for value, want in zip(values, theirs):
        got = ours(value)
        if got == want:
            continue
        kinds[f"{want.split()[0] if want[0] != '[' else 'relay'} -> "
              f"{got.split()[0] if got[0] != '[' else 'relay'}"] += 1
        if shown < args.examples:
            shown += 1
            print(" ".join(value.split()))
            print(f"   SpamAssassin {want}\n   spamwarden   {got}")
    total = sum(kinds.values())
    print(f"{len(values)} distinct Received lines; {total} read otherwise: "
          + ", ".join(f"{k} {n}" for k, n in kinds.most_common()))
    return 1 if total else 0


if __name__ == "__main__":
    sys.exit(main())
