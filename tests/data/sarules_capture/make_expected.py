"""Write expected.json: the rules SpamAssassin hits on each message here.

Run from the repository root (Debian's ``spamassassin`` installed):

    PYTHONPATH=$PWD:$PWD/bench/rules SPAMWARDEN_SHARED=/work/shared \
        python tests/data/sarules_capture/make_expected.py

Each message is checked by SpamAssassin's Perl API, offline, with the site configuration
bench/rules/parity uses (no Bayes, no network) and the test rules of ``SITE_RULES`` added
to it, in a process of its own: SpamAssassin compiles a template rule's pattern once per
process (Perl's ``/o``), so in one process every message after the first would be
matched with the first message's tag.  Only the rules of ``RULES`` are kept.
"""

from __future__ import annotations

import json
from pathlib import Path

import parity  # bench/rules/parity.py

HERE = Path(__file__).parent
# capture and template rules of the test's own, beside Debian's GB_* (72_active.cf)
SITE_RULES = r"""
body __SWT_CODES /\bcode:? (?<SWT_CODE>[a-z0-9]{3,12})\b/i
tflags __SWT_CODES multiple
uri SWT_CODE_URI m{[?&]c=%{SWT_CODE}(?:&|$)}
uri SWT_CODE_URI_I m{[?&]c=%{SWT_CODE}(?:&|$)}i
header SWT_SUBJ_NO_CODE Subject !~ /%{SWT_CODE}/
header SWT_TO_HAS_CODE To =~ /%{SWT_CODE}/i
"""
RULES = frozenset({
    "__GB_TO_ADDR", "__GB_CUSTOM_HTM_URI0", "__GB_CUSTOM_HTM_URI1", "__GB_CUSTOM_HTM_URI2",
    "__GB_DRUPAL_URI", "GB_CUSTOM_HTM_URI", "T_GB_STORAGE_GOOGLE_EMAIL", "T_GB_YOUTUBE_EMAIL",
    "__SWT_CODES", "SWT_CODE_URI", "SWT_CODE_URI_I", "SWT_SUBJ_NO_CODE", "SWT_TO_HAS_CODE"})


def main() -> None:
    parity.SITE_CF += SITE_RULES
    out: dict[str, list[str]] = {}
    for f in sorted(HERE.glob("*.eml")):
        found = parity.sa_hits([f])
        out[f.name] = sorted(found.get(str(f), set()) & RULES)
    (HERE / "expected.json").write_text(json.dumps(out, indent=1, sort_keys=True) + "\n")


if __name__ == "__main__":
    main()
