"""Write received_lines.json: how SpamAssassin's Received.pm reads each Received value
of ``received_values.json`` (``parse_received_line``: the relay as it renders it before
trust is decided, SKIP for a line it skips, UNPARSEABLE for one it cannot read).

Run from the repository root (Debian's ``spamassassin`` installed):

    PYTHONPATH=$PWD:$PWD/bench/rules python tests/data/relays/make_received_lines.py

The values are corpus Received fields (folds kept as newlines) that spamwarden once
read otherwise, one of each client form, and a sample of the rest.
"""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import received_parity  # bench/rules/received_parity.py

HERE = Path(__file__).parent


def main() -> None:
    values = json.loads((HERE / "received_values.json").read_text())
    proc = subprocess.run(["perl", "-e", received_parity.PERL], input="".join(
        v.replace("\n", "\x01") + "\n" for v in values).encode("latin-1"),
        capture_output=True, check=True)
    read = proc.stdout.decode("latin-1").split("\n")[:len(values)]
    (HERE / "received_lines.json").write_text(
        json.dumps([[v, r] for v, r in zip(values, read)], indent=1) + "\n")


if __name__ == "__main__":
    main()
