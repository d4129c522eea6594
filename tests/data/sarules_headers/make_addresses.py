"""Write addresses.json: how SpamAssassin's Util.pm reads each header text of
``VALUES`` (``parse_header_addresses``: its own parser, else Email::Address::XS).

Run from the repository root (Debian's ``spamassassin`` and
``libemail-address-xs-perl`` installed):

    python tests/data/sarules_headers/make_addresses.py

The texts are header values from the corpus where the stdlib's reading and
SpamAssassin's differ, and crafted ones; ``addresses.json`` holds, for each, the list
of (phrase, address) pairs, ``null`` where Util.pm leaves one undefined.
"""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

HERE = Path(__file__).parent
PERL = r"""
use strict; use warnings;
use Mail::SpamAssassin::Util;
use JSON::PP;
binmode STDIN; binmode STDOUT;
my @out;
while (my $l = <STDIN>) {
  chomp $l;
  my @a = Mail::SpamAssassin::Util::parse_header_addresses($l);
  push @out, [$l, [map { [$_->{phrase}, $_->{address}] } @a]];
}
print JSON::PP->new->canonical->pretty->encode(\@out);
"""


def main() -> None:
    values = json.loads((HERE / "address_values.json").read_text())
    proc = subprocess.run(["perl", "-e", PERL], input="".join(v + "\n" for v in values),
                          capture_output=True, text=True, check=True)
    (HERE / "addresses.json").write_text(proc.stdout)


if __name__ == "__main__":
    main()
