"""Write expected.json: the rules SpamAssassin hits on each message here.

Run from the repository root (Debian's ``spamassassin`` installed):

    PYTHONPATH=$PWD:$PWD/bench/rules SPAMWARDEN_SHARED=/work/shared \
        python tests/data/sarules_quirks/make_expected.py

Each message is checked by SpamAssassin's Perl API, offline, with the site
configuration bench/rules/parity uses (no Bayes, no network), plus the ``uri`` rules
of ``LOCAL_CF`` (which URIs the list holds: its valid top-level domains).  Only the
rules of ``RULES`` (those whose computation these messages test) are kept.
"""

from __future__ import annotations

from pathlib import Path

import parity  # bench/rules/parity.py

HERE = Path(__file__).parent
RULES = frozenset({
    "DATE_IN_PAST_03_06", "DATE_IN_PAST_06_12", "DATE_IN_PAST_12_24",
    "DATE_IN_PAST_24_48", "DATE_IN_PAST_96_XX", "__FROM_LOWER", "__SUBJ_NOT_SHORT",
    "__HAS_ANY_EMAIL", "__KAM_BODY_LENGTH_LT_128", "__UPPERCASE_25_50",
    "__UPPERCASE_50_75", "__UPPERCASE_75_100",
    "LOCAL_URI_ZA", "LOCAL_URI_WEB", "LOCAL_MAILTO_ZA", "LOCAL_MAILTO_WEB", "__RP_MATCHES_RCVD",
    "RATWARE_EFROM"})
LOCAL_CF = """
uri LOCAL_URI_ZA /^http:\\/\\/shop\\.example\\.za/
uri LOCAL_URI_WEB /^http:\\/\\/shop\\.example\\.web/
uri LOCAL_MAILTO_ZA /^mailto:sales\\@example\\.za/
uri LOCAL_MAILTO_WEB /^mailto:sales\\@example\\.web/
"""


def main() -> None:
    parity.write_expected(HERE, RULES, LOCAL_CF)


if __name__ == "__main__":
    main()
