"""Write expected.json: the rules SpamAssassin hits on each message here.

Run from the repository root (Debian's ``spamassassin`` installed):

    PYTHONPATH=$PWD:$PWD/bench/rules SPAMWARDEN_SHARED=/work/shared \
        python tests/data/sarules_headers/make_expected.py

Each message is checked by SpamAssassin's Perl API, offline, with the site
configuration bench/rules/parity uses (no Bayes, no network), plus the rules of
``LOCAL_CF`` (which show a header's ``:addr``).  Only the rules of ``RULES`` (those
whose computation these messages test) are kept.
"""

from __future__ import annotations

from pathlib import Path

import parity  # bench/rules/parity.py

HERE = Path(__file__).parent
RULES = frozenset({
    "NO_RDNS_DOTCOM_HELO", "__UNPARSEABLE_RELAY_COUNT", "UNPARSEABLE_RELAY",
    "HEADER_FROM_DIFFERENT_DOMAINS", "__ML5", "__TO_ALL_NUMS", "__FROM_ADDR_WS",
    "__ENV_AND_HDR_FROM_MATCH", "HK_RANDOM_ENVFROM", "__KB_DATE_CONTAINS_TAB",
    "__HDRS_MISSP", "__HEAD_ILLEGAL_CHARS", "LOCAL_FROM_ADDR_CUT", "LOCAL_FROM_ENCODED",
    "__FROM_FULL_NAME", "UNRESOLVED_TEMPLATE", "LOCAL_RP_CUT",
    "__SINGLE_WORD_SUBJ", "LOCAL_RP_LITERAL", "__DOS_SINGLE_EXT_RELAY",
    "LOCAL_HELO_GUESSED", "LOCAL_WEBMAIL_NO_HELO", "LOCAL_SMAP_RDNS",
    "LOCAL_AUTH_COMMUNIGATE", "LOCAL_CAPITAL_FROM_NO_HELO", "LOCAL_PAREN_FROM_NO_HELO",
    "LOCAL_GMX_CLIENT", "LOCAL_IDENT_CLIENT",
    "LOCAL_FORM_HTTP", "LOCAL_FORM_HELO_EQ", "LOCAL_FORM_VERIFIED", "LOCAL_FORM_ACCOUNT"})
LOCAL_CF = """
header LOCAL_FROM_ADDR_CUT From:addr =~ /^"Books\\@Books"$/
header LOCAL_FROM_ENCODED From:addr =~ /^=\\?iso-2022-jp\\?B\\?/
header LOCAL_RP_CUT Return-Path:addr =~ /^bounce\\@lists\\.example\\.org$/
header LOCAL_RP_LITERAL Return-Path:addr =~ /^ngdgpfwxsw\\@\\[1086695621\\]$/
header LOCAL_HELO_GUESSED X-Spam-Relays-External =~ /^\\[ ip=190\\.21\\.249\\.236 rdns= helo=!190\\.21\\.249\\.236! by=/
header LOCAL_SMAP_RDNS X-Spam-Relays-External =~ /^\\[ ip=209\\.226\\.175\\.185 rdns=tomts23\\.example\\.net helo= by=z2/
header LOCAL_AUTH_COMMUNIGATE X-Spam-Relays-Trusted =~ / auth=Communigate /
header LOCAL_CAPITAL_FROM_NO_HELO X-Spam-Relays-External =~ /\\[ ip=210\\.73\\.97\\.112 rdns= helo= by=indago/
header LOCAL_PAREN_FROM_NO_HELO X-Spam-Relays-External =~ /\\[ ip=165\\.68\\.202\\.63 rdns= helo= by=ms12/
header LOCAL_GMX_CLIENT X-Spam-Relays-External =~ /\\[ ip=88\\.68\\.131\\.152 rdns=dslb\\S+ helo=!192\\.168\\.2\\.100! by=mail\\.gmx\\.net /
header LOCAL_IDENT_CLIENT X-Spam-Relays-External =~ /\\[ ip=217\\.80\\.6\\.131 rdns=nebukadnezar\\.example\\.de helo=nebukadnezar\\.example\\.de by=\\S+ ident=520061089980-0001 /
header LOCAL_FORM_HTTP X-Spam-Relays-Trusted =~ /\\[ ip=161\\.148\\.142\\.96 rdns= helo= by=mail\\.example\\.com\\.br /
header LOCAL_FORM_HELO_EQ X-Spam-Relays-Trusted =~ /\\[ ip=85\\.178\\.85\\.189 rdns= helo=nb-carsten-xp\\.localnet by=/
header LOCAL_FORM_VERIFIED X-Spam-Relays-Untrusted =~ /\\[ ip=198\\.51\\.100\\.103 rdns=bilbo\\.example\\.loc helo=bilbo\\.example\\.loc by=/
header LOCAL_FORM_ACCOUNT X-Spam-Relays-Untrusted =~ /\\[ ip=68\\.192\\.169\\.62 rdns= helo=!192\\.168\\.1\\.88! by=/
header LOCAL_WEBMAIL_NO_HELO X-Spam-Relays-Trusted =~ /^\\[ ip=194\\.125\\.134\\.71 rdns= helo= by=webmail/
"""


def main() -> None:
    parity.write_expected(HERE, RULES, LOCAL_CF)


if __name__ == "__main__":
    main()
