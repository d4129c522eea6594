"""The floor for any pymilter-based milter: adds one header at end of message, nothing else.

Usage: python header_milter.py inet:PORT@127.0.0.1
"""

from __future__ import annotations

import sys

import Milter


class HeaderMilter(Milter.Base):  # type: ignore[misc]
    """Accepts every message and adds `X-Bench-Milter: seen` in eom."""

    def __init__(self) -> None:
        self.id = Milter.uniqueID()

    @Milter.noreply  # type: ignore[misc]
    def connect(self, hostname: str, family: int, hostaddr: object) -> int:
        return Milter.CONTINUE

    def eom(self) -> int:
        self.addheader("X-Bench-Milter", "seen")
        return Milter.ACCEPT


def main(argv: list[str]) -> int:
    if len(argv) != 2:
        print(__doc__, file=sys.stderr)
        return 2
    Milter.factory = HeaderMilter
    Milter.set_flags(Milter.ADDHDRS)
    Milter.runmilter("benchheader", argv[1], 240)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
