"""Write an index for `spamwarden eval --online`: every message of some labelled corpora in
arrival order (by the Date field; a message without a usable date keeps its place after the
one before it).

    .venv/bin/python bench/classifier/online_index.py OUT ../shared/corpus/spamassassin \
        ../shared/corpus/csdmc2010
    spamwarden eval --online OUT
"""

from __future__ import annotations

import email.utils
import os
import sys
from pathlib import Path

from spamwarden.mail import parse_message
from spamwarden.training.corpus import read_labelled

ROOT = Path(__file__).resolve().parents[2]


def main(argv: list[str]) -> int:
    if len(argv) < 2:
        print(__doc__, file=sys.stderr)
        return 2
    out = Path(argv[0]).resolve()
    rows: list[tuple[float, str, str]] = []
    last = 0.0
    for corpus in argv[1:]:
        for ex in read_labelled(corpus):
            date = parse_message(ex.raw[:65536]).header("Date")
            try:
                t = email.utils.parsedate_to_datetime(date).timestamp() if date else last
            except (TypeError, ValueError, IndexError, OverflowError):
                t = last
            last = t if t > 0 else last
            rows.append((last, ex.label, ex.source))
    rows.sort(key=lambda r: r[0])  # stable: undated messages stay behind their neighbour
    with out.open("w") as fh:
        for _, label, source in rows:
            fh.write(f"{label} {os.path.relpath(source, out.parent)}\n")
    print(f"{out}: {len(rows)} messages")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
