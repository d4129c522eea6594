"""Write expected.json: the rules SpamAssassin hits on each message here.

Run from the repository root (Debian's ``spamassassin`` installed):

    PYTHONPATH=$PWD:$PWD/bench/rules SPAMWARDEN_SHARED=/work/shared \
        python tests/data/sarules_mime/make_expected.py

Each message is checked by SpamAssassin's Perl API, offline, with the site
configuration bench/rules/parity uses (no Bayes, no network), plus the body, rawbody
and uri rules of ``LOCAL_CF`` (what text and links the parts give).  Only the rules of
``RULES`` (those whose computation these messages test) are kept.
"""

from __future__ import annotations

from pathlib import Path

import parity  # bench/rules/parity.py

HERE = Path(__file__).parent
RULES = frozenset({
    "HTML_MESSAGE", "HTML_EXTRA_CLOSE", "HTML_FONT_SIZE_HUGE", "HTML_FONT_LOW_CONTRAST",
    "HTML_TAG_BALANCE_BODY", "__HTML_TAG_BALANCE_CENTER", "__HTML_LENGTH_0000_1024",
    "__HTML_LENGTH_1024_1536", "__TAG_EXISTS_HTML", "__NONEMPTY_BODY",
    "T_TVD_MIME_NO_HEADERS", "LOCAL_BODY_OFFER", "LOCAL_RAW_OFFER", "LOCAL_URI_SHOP",
    "LOCAL_RAW_REPORT", "LOCAL_FONT_INVALID", "__ISO_2022_JP_DELIM",
    "__SINGLE_WORD_LINE", "__freemail_replyto", "__HAS_URI", "MIME_HTML_ONLY", "__MIME_HTML",
    "BASE64_LENGTH_78_79", "BASE64_LENGTH_79_INF", "__TAG_EXISTS_BODY",
    "HTML_IMAGE_ONLY_04", "HTML_IMAGE_ONLY_08"})
LOCAL_CF = """
body LOCAL_BODY_OFFER /Premium offer/
rawbody LOCAL_RAW_OFFER /<b>Premium offer/i
uri LOCAL_URI_SHOP /^http:\\/\\/shop\\.example\\.com/
rawbody LOCAL_RAW_REPORT /^(?:Action: failure|Feedback-Type: abuse)$/m
body LOCAL_FONT_INVALID eval:html_test('font_invalid_color')
"""


def main() -> None:
    parity.write_expected(HERE, RULES, LOCAL_CF)


if __name__ == "__main__":
    main()
