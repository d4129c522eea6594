"""Write expected.json: the rules SpamAssassin hits on each message here.

Run from the repository root (Debian's ``spamassassin`` installed):

    PYTHONPATH=$PWD:$PWD/bench/rules SPAMWARDEN_SHARED=/work/shared \
        python tests/data/sarules_evals/make_expected.py

Each message is checked twice by SpamAssassin's Perl API, offline, with the site
configuration bench/rules/parity uses (no Bayes, no network): as configured, and with
``ok_locales en`` added (the faraway-charset tests are false with the default "all").
Only the rules of ``RULES`` (the evals these messages test) are kept.
"""

from __future__ import annotations

import json
from pathlib import Path

import parity  # bench/rules/parity.py

HERE = Path(__file__).parent
RULES = frozenset({
    "MIME_HTML_MOSTLY", "LOCALPART_IN_SUBJECT", "HTTPS_HTTP_MISMATCH", "URI_TRUNCATED",
    "NO_RDNS_DOTCOM_HELO", "CHARSET_FARAWAY", "CHARSET_FARAWAY_HEADER",
    "__MIME_CHARSET_FARAWAY", "MIMEPART_LIMIT_EXCEEDED", "__HTML_CHARSET_FARAWAY",
    "__DC_IMG_HTML_RATIO", "__DC_IMG_TEXT_RATIO", "__GIF_ATTACH_1", "__GIF_ATTACH_2P",
    "__PNG_ATTACH_1", "__PNG_ATTACH_2P", "__JPEG_ATTACH_1", "__JPEG_ATTACH_2P",
    "__GIF_AREA_180K", "__PNG_AREA_180K", "__IMG_LE_300K", "__ONE_IMG",
    "HTML_FONT_LOW_CONTRAST"})


def main() -> None:
    files = sorted(HERE.glob("*.eml"))
    out: dict[str, dict[str, list[str]]] = {}
    base_cf = parity.SITE_CF
    for setting, cf in (("default", base_cf), ("ok_locales_en", base_cf + "\nok_locales en\n")):
        parity.SITE_CF = cf
        found = parity.sa_hits(files)
        for f in files:
            out.setdefault(f.name, {})[setting] = sorted(found.get(str(f), set()) & RULES)
    (HERE / "expected.json").write_text(json.dumps(out, indent=1, sort_keys=True) + "\n")


if __name__ == "__main__":
    main()
