"""spamwarden.rules: SpamAssassin 4.0's own ways of reading header fields and Received
lines, on crafted messages.

``tests/data/sarules_headers/*.eml`` are checked by SpamAssassin itself
(``tests/data/sarules_headers/make_expected.py`` wrote ``expected.json``: the rules
below that it hits on each); the engine must hit the same ones.  Each message is built
so that the engine before these fixes differed:

- Received.pm's order of forms: a qmail line ("unknown (HELO x) (ip) ... with SMTP")
  records no reverse DNS lookup, though Yahoo's submission form (read later) would
  read it as one; with ESMTP the qmail form does not apply and the later form does
  (NO_RDNS_DOTCOM_HELO hits); Lotus Domino never records the name; SquirrelMail's
  webmail line, a "[[UNIX: localhost]]" handover and a Content Technologies SMTPRS
  line are not unparseable (UNPARSEABLE_RELAY); "host (ip) by host" with only the date
  after the receiving host is (its forms read something after it); "ip by host
  (comment) with HTTP" is in none of the forms with the address first, and is skipped
  as a handover (one external relay: __DOS_SINGLE_EXT_RELAY), so is
  "COL112-DS40([ip]) by host with Microsoft SMTPSVC" (its forms to ignore come before
  its fall-through to any [address]), while "(ip) by host via smtp" is a relay (a form
  of its own); X-Originating-IP is read from the last such field, by IP_ADDRESS
  ("[20.23.7.08]" holds none); a line in none of its forms but with an [address]
  gets the HELO its first word suggests ("[ip] by host;" is in none: its form wants
  more after the host), "ip ( [ip]) as user x by host" (a form of its own) none, nor smap's "rdns(ip) by host
  via smap" (its name is the reverse DNS one); CommuniGate Pro's "(account ...)" is an
  authenticated submission (a trusted relay); "From x ([ip]) by" and "(from x [ip]) by"
  are read outside its "from " forms (no HELO: only any [address] and the host);
  GMX's "rdns (EHLO [helo]) [ip] by host (x) with SMTP" is the client at the second
  address, qmail's "rdns (ident@[ip]) by host with" a looked-up name; webmail's "ip
  ([ip]) by host ... with HTTP" has no HELO, "rdns ([ip] helo=x) by host (exim)"
  no reverse DNS name (not the Exim branch: lower case), CommuniGate's "([ip]
  verified)" a looked-up one and its "(account x HELO [ip])" that HELO; Sendmail's
  "helo ([ip] (may be forged))" records no lookup, "helo ([ip])" does;
- ``:addr`` reads each header of the name on its own, undecoded (the first of two
  Return-Path headers counts; an encoded-word in a local part stays encoded), keeps
  only addresses Util.pm's parser keeps (no unquoted spaces) and cuts one before a
  second "@";
- EnvelopeFrom is not read from a Return-Path that a Received header precedes (any
  Return-Path, not only the first), nor from one without an address;
- ``:raw`` keeps the white space after the colon (a Date after a tab); ``ALL:raw`` is
  the header section as sent ("Subject:" without a space);
- check_illegal_chars reads every field of the section (From too) and lets valid
  UTF-8 pass;
- Node.pm decodes encoded words keeping what they hold (a decoded newline starts a line
  of ALL that check_unresolved_template reads; no-break and ideographic spaces are no
  white space to a Subject or ``:name`` rule) and collapses only ASCII white space in
  a ``:name``; a header whose octets are not UTF-8 is read as Windows-1252 (Node.pm's
  ``_normalize`` without a charset detector);
- a header rule reads every ``:addr`` of the field, one a line (two From addresses:
  white space); Util.pm's parser reads an address with a second "@" (X-Sender
  ``a@host@pop``, ``Return-Path: <a@host@relay>``) and cuts it there; where it reads
  nothing (``<x@[1086695621] [pi]>``), Email::Address::XS's reading counts; it reads
  ``From: Pharmacy Program@example.com`` as a phrase (``:name``), no address.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from spamwarden.mail import parse_message
from spamwarden.rules import RuleEngine, prepare_message
from tests.support.sarules import CraftedRules

DATA = Path(__file__).parent.parent / "data" / "sarules_headers"

# the rules as SpamAssassin 4.0.1's files define them (20_head_tests.cf, 20_meta_tests.cf,
# 72_active.cf), and two that show a From:addr
RULES = r"""
header NO_RDNS_DOTCOM_HELO eval:check_for_no_rdns_dotcom_helo()
header __UNPARSEABLE_RELAY_COUNT eval:check_relays_unparseable()
meta UNPARSEABLE_RELAY (__UNPARSEABLE_RELAY_COUNT >= 1)
header HEADER_FROM_DIFFERENT_DOMAINS eval:check_equal_from_domains()
header __ML5 Return-Path:addr =~ m{^(?:[^\@]+-(?:request|bounces|admin|owner)|owner-[^\@]+)(?:\@|\z)}i
header __TO_ALL_NUMS To:addr =~ /^\d+@/
header __FROM_ADDR_WS From:addr =~ /\s/
header __ENV_AND_HDR_FROM_MATCH eval:check_for_matching_env_and_hdr_from()
header HK_RANDOM_ENVFROM EnvelopeFrom =~ /^(?!(?:mail|bounce)[_.-]|[^@]*(?:[+=^~\#-]|mc(?:b|g)r|kpmg|nlpbr|ndqv|lcgc|cplpr)|[^@]{26}|.*?\@.{0,20}\b(?:cmp-info|cmpgnr|cnn|tori|jysk|amadeus|amazon)\.[a-z]{2,3}$)[^@]*(?:[bcdfgjklmnpqrtvwxz]{5}|[aeiouy]{5}|([a-z]{1,2})(?:\1){3})/mi
header __KB_DATE_CONTAINS_TAB Date:raw =~ /^\t/
header __HDRS_MISSP ALL:raw =~ /^(?:Subject|From|To|Reply-To):\S/ism
header __HEAD_ILLEGAL_CHARS eval:check_illegal_chars('ALL','0.010','2')
header LOCAL_FROM_ADDR_CUT From:addr =~ /^"Books\@Books"$/
header LOCAL_FROM_ENCODED From:addr =~ /^=\?iso-2022-jp\?B\?/
header __FROM_FULL_NAME From:name =~ /^[^a-z[:punct:][:cntrl:]\d\s][^[:punct:][:cntrl:]\d\s]*[[:punct:]\s]+[^a-z[:punct:][:cntrl:]\d\s]/
header UNRESOLVED_TEMPLATE eval:check_unresolved_template()
header LOCAL_RP_CUT Return-Path:addr =~ /^bounce\@lists\.example\.org$/
header LOCAL_RP_LITERAL Return-Path:addr =~ /^ngdgpfwxsw\@\[1086695621\]$/
header LOCAL_HELO_GUESSED X-Spam-Relays-External =~ /^\[ ip=190\.21\.249\.236 rdns= helo=!190\.21\.249\.236! by=/
header LOCAL_SMAP_RDNS X-Spam-Relays-External =~ /^\[ ip=209\.226\.175\.185 rdns=tomts23\.example\.net helo= by=z2/
header LOCAL_AUTH_COMMUNIGATE X-Spam-Relays-Trusted =~ / auth=Communigate /
header LOCAL_CAPITAL_FROM_NO_HELO X-Spam-Relays-External =~ /\[ ip=210\.73\.97\.112 rdns= helo= by=indago/
header LOCAL_PAREN_FROM_NO_HELO X-Spam-Relays-External =~ /\[ ip=165\.68\.202\.63 rdns= helo= by=ms12/
header LOCAL_GMX_CLIENT X-Spam-Relays-External =~ /\[ ip=88\.68\.131\.152 rdns=dslb\S+ helo=!192\.168\.2\.100! by=mail\.gmx\.net /
header LOCAL_IDENT_CLIENT X-Spam-Relays-External =~ /\[ ip=217\.80\.6\.131 rdns=nebukadnezar\.example\.de helo=nebukadnezar\.example\.de by=\S+ ident=520061089980-0001 /
header LOCAL_FORM_HTTP X-Spam-Relays-Trusted =~ /\[ ip=161\.148\.142\.96 rdns= helo= by=mail\.example\.com\.br /
header LOCAL_FORM_HELO_EQ X-Spam-Relays-Trusted =~ /\[ ip=85\.178\.85\.189 rdns= helo=nb-carsten-xp\.localnet by=/
header LOCAL_FORM_VERIFIED X-Spam-Relays-Untrusted =~ /\[ ip=198\.51\.100\.103 rdns=bilbo\.example\.loc helo=bilbo\.example\.loc by=/
header LOCAL_FORM_ACCOUNT X-Spam-Relays-Untrusted =~ /\[ ip=68\.192\.169\.62 rdns= helo=!192\.168\.1\.88! by=/
header LOCAL_WEBMAIL_NO_HELO X-Spam-Relays-Trusted =~ /^\[ ip=194\.125\.134\.71 rdns= helo= by=webmail/
header __SINGLE_WORD_SUBJ Subject =~ /^\s*\S{1,60}\s*$/
header __DOS_SINGLE_EXT_RELAY X-Spam-Relays-External =~ /^\[ [^\]]+ \]$/
"""
CRAFTED = CraftedRules(DATA, RULES)
EXPECTED = CRAFTED.expected
_hits = CRAFTED.hits
engine = CRAFTED.engine_fixture()


def test_every_message_has_its_expectation() -> None:
    assert sorted(EXPECTED) == CRAFTED.messages()


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_same_hits_as_spamassassin(engine: RuleEngine, name: str) -> None:
    assert _hits(engine, (DATA / name).read_bytes()) == set(EXPECTED[name])


def test_forged_received_below_does_not_gain_trust(engine: RuleEngine) -> None:
    """A line in SquirrelMail's form naming a private address, below a public relay:
    it is read (no longer unparseable) but stays untrusted, as everything below the
    first untrusted relay does."""
    raw = (b"Received: from mx.example.org (mx.example.org [198.51.100.7])\n"
           b"    by mail.example.net (8.12.2/8.12.2) with ESMTP id g8AF; "
           b"Tue, 10 Sep 2002 10:32:34 -0500\n"
           b"Received: from 10.0.0.1 (SquirrelMail authenticated user root)\n"
           b"    by mail.example.net with HTTP; Tue, 10 Sep 2002 10:32:30 -0500\n"
           b"From: a@example.org\nTo: b@example.net\nSubject: s\n\nbody\n")
    msg = prepare_message(parse_message(raw), raw)
    relays = msg.relay_info()
    assert (relays.n_trusted, relays.n_untrusted, relays.n_unparseable) == (0, 2, 0)
    assert "10.0.0.1" in relays.untrusted and not relays.trusted
