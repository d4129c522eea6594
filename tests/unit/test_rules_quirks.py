"""spamwarden.rules: SpamAssassin 4.0's own ways of reading dates, header white space,
the body after FreeMail, the body's length and its capitals, and its valid top-level
domains, on crafted messages.

``tests/data/sarules_quirks/*.eml`` are checked by SpamAssassin itself
(``tests/data/sarules_quirks/make_expected.py`` wrote ``expected.json``: the rules below
that it hits on each); the engine must hit the same ones.  Each message is built so
that the engine before these fixes differed: a Date zone without its sign, a Received
zone of three digits and a Date in "PM", a run of spaces in a Subject and in a field
holding "from:", a body of exactly 128 octets, a list footer's address after a
freemail From (FreeMail's ``_parse_body`` strips it from the body lines before the body
rules run), digits among capitals, capitals in KOI8-R, host names and addresses under
``.za`` (in SpamAssassin's ``util_rb_tld`` list, not in the Public Suffix List) and
``.web`` (the other way round), an envelope sender and a relay under
``blogspot.com`` (a ``util_rb_2tld`` name, private in the Public Suffix List), and
envelope senders naming the To address's registered domain as RATWARE_EFROM reads it
(RegistryBoundaries' ``trim_domain`` by the ``util_rb_2tld`` lines, ``is_domain_valid``
by the ``util_rb_tld`` ones: a host under the domain, ``.co.uk``, ``.za``, ``.web``).
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from spamwarden.mail import parse_message
from spamwarden.rules import RuleEngine, parse_rule_text, prepare_message
from spamwarden.rules._headereval import _parse_date

DATA = Path(__file__).parent.parent / "data" / "sarules_quirks"

# the rules as SpamAssassin 4.0.1's files define them (20_head_tests.cf, 20_meta_tests.cf,
# 20_freemail.cf, 72_active.cf)
RULES = """
header DATE_IN_PAST_03_06 eval:check_for_shifted_date('-6', '-3')
header DATE_IN_PAST_06_12 eval:check_for_shifted_date('-12', '-6')
header DATE_IN_PAST_12_24 eval:check_for_shifted_date('-24', '-12')
header DATE_IN_PAST_24_48 eval:check_for_shifted_date('-48', '-24')
header DATE_IN_PAST_96_XX eval:check_for_shifted_date('undef', '-96')
header __FROM_LOWER ALL =~ /from: \\S{5}/
header __SUBJ_NOT_SHORT Subject =~ /^.{16}/
body __HAS_ANY_EMAIL /\\w@\\S+\\.\\w/
body __KAM_BODY_LENGTH_LT_128 eval:check_body_length('128')
body __UPPERCASE_25_50 eval:check_for_uppercase('25', '50')
body __UPPERCASE_50_75 eval:check_for_uppercase('50', '75')
body __UPPERCASE_75_100 eval:check_for_uppercase('75', '100')
header __freemail_reply eval:check_freemail_replyto('reply')
freemail_domains hotmail.com
uri LOCAL_URI_ZA /^http:\\/\\/shop\\.example\\.za/
uri LOCAL_URI_WEB /^http:\\/\\/shop\\.example\\.web/
uri LOCAL_MAILTO_ZA /^mailto:sales\\@example\\.za/
uri LOCAL_MAILTO_WEB /^mailto:sales\\@example\\.web/
header __RP_MATCHES_RCVD eval:check_mailfrom_matches_rcvd()
header RATWARE_EFROM eval:check_ratware_envelope_from()
"""
NAMES = frozenset(line.split()[1] for line in RULES.splitlines()
                  if line.strip() and not line.startswith("freemail_domains")
                  and not line.split()[1].startswith("__freemail"))
# SpamAssassin's valid top-level domains (RegistryBoundaries' util_rb_tld lines)
AUX_TLDS = Path("/usr/share/spamassassin/20_aux_tlds.cf")
NEEDS_AUX = {"top_level_domains.eml", "freemail_from_quoted_web.eml",
             "freemail_from_quoted_za.eml", "relay_domain_other.eml", "relay_domain_same.eml",
             "ratware_dots_case.eml", "ratware_srs.eml", "ratware_subdomain.eml",
             "ratware_tld_web.eml", "ratware_tld_za.eml", "ratware_two_level.eml"}
EXPECTED: dict[str, list[str]] = json.loads((DATA / "expected.json").read_text())


@pytest.fixture(scope="module")
def engine() -> RuleEngine:
    aux = AUX_TLDS.read_text(encoding="utf-8") if AUX_TLDS.exists() else ""
    return RuleEngine(parse_rule_text(RULES + aux), use_hyperscan=False)


def _hits(engine: RuleEngine, raw: bytes) -> set[str]:
    return set(engine.counts(prepare_message(parse_message(raw), raw))) & NAMES


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_same_hits_as_spamassassin(engine: RuleEngine, name: str) -> None:
    if name in NEEDS_AUX and not AUX_TLDS.exists():
        pytest.skip("SpamAssassin's rules are not installed (apt-get install spamassassin)")
    assert _hits(engine, (DATA / name).read_bytes()) == set(EXPECTED[name])


def test_the_expected_hits_cover_each_rule_that_differed() -> None:
    hit = {r for rules in EXPECTED.values() for r in rules}
    assert {"DATE_IN_PAST_06_12", "__KAM_BODY_LENGTH_LT_128", "__HAS_ANY_EMAIL",
            "__UPPERCASE_75_100", "__SUBJ_NOT_SHORT", "LOCAL_URI_ZA",
            "LOCAL_MAILTO_ZA", "__RP_MATCHES_RCVD", "RATWARE_EFROM"} <= hit


@pytest.mark.parametrize(("text", "when"), [
    # each checked with Mail::SpamAssassin::Util::parse_rfc822_date (4.0.1)
    ("Fri, 02 Aug 2002 23:37:59 0530", 1028331479),  # no sign: no zone
    (" 29 Jul 2001 23:30:41 -400", 996449441),  # three digits: no zone
    ("29 Jul 01 11:30:41 PM", 996406241),  # "PM" is no zone and changes nothing
    ("Thu, 1 Jan 1970 00:00:00 +0100", 0),  # never before the epoch
    ("Sat, 31 Feb 2003 25:61:61 EST", 1046581199),  # 1 March, 23:59:59 EST
    ("Jan  3 10:00:00 2002", 1010016000),  # ctime form: its time is not read
    ("3 jan 2002 10:00 est", 1010052000),  # a zone name in lower case is none
    ("Mon, 3 Dec 1969 10:00:00 EST-DST", 29066400),  # 1969 read as 1970
])
def test_dates_read_as_parse_rfc822_date_reads_them(text: str, when: int) -> None:
    assert _parse_date(text) == when


def test_a_date_without_day_month_and_year_is_none() -> None:
    assert _parse_date("yesterday at noon") is None
    assert _parse_date("0 Jan 2002 10:00:00 +0000") is None  # Time::Local refuses day 0


def test_util_rb_tld_lines_are_the_valid_top_level_domains() -> None:
    ruleset = parse_rule_text(RULES + "util_rb_tld za Example xn--p1ai\nutil_rb_tld \u0440\u0444\n")
    assert ruleset.valid_tlds == {"za", "example", "xn--p1ai"}
    engine = RuleEngine(ruleset, use_hyperscan=False)
    assert engine.tlds == frozenset({"za", "example", "xn--p1ai"})
    raw = (DATA / "top_level_domains.eml").read_bytes()
    msg = prepare_message(parse_message(raw), raw, tlds=engine.tlds)
    assert b"http://shop.example.za" in msg.uris
    assert not any(b"example.web" in u for u in msg.uris)
    # prepared without them (the Public Suffix List's): the engine reads the URIs again
    plain = prepare_message(parse_message(raw), raw)
    assert not any(b"example.za" in u for u in plain.uris)
    assert {"LOCAL_URI_ZA", "LOCAL_MAILTO_ZA"} <= set(engine.counts(plain))


def test_clear_util_rb_forgets_the_lines_before_it() -> None:
    assert parse_rule_text("util_rb_tld za\nclear_util_rb\n").valid_tlds is None
    assert parse_rule_text("util_rb_tld za\nclear_util_rb\nutil_rb_tld web\n").valid_tlds == {
        "web"}


def test_util_rb_2tld_and_3tld_lines_cut_registered_domains() -> None:
    ruleset = parse_rule_text("util_rb_2tld blogspot.com co.uk\nutil_rb_3tld demon.co.uk\n")
    assert ruleset.two_level_domains == {"blogspot.com", "co.uk"}
    assert ruleset.three_level_domains == {"demon.co.uk"}
    assert parse_rule_text("util_rb_2tld co.uk com\n").two_level_domains is None  # refused
    assert parse_rule_text("util_rb_2tld co.uk\nclear_util_rb\n").two_level_domains is None


@pytest.mark.parametrize(("name", "domain"), [
    # each checked with RegistryBoundaries' trim_domain (SpamAssassin 4.0.1, Debian's lists)
    ("www.foo.co.uk", "foo.co.uk"), ("co.uk", "co.uk"), ("a.b.demon.co.uk", "b.demon.co.uk"),
    ("x.blogspot.com", "x.blogspot.com"), ("www..foo.com.", "foo.com"), ("com", "com"),
    ("a.b.ny.us", "a.b.ny.us"), ("x.ci.la.ca.us", "x.ci.la.ca.us"),
    ("y.pvt.k12.ca.us", "y.pvt.k12.ca.us"), ("z.b.c.d.ca.us", "c.d.ca.us"),
    ("a.b.foo.invalidtld", "foo.invalidtld"),
])
def test_trim_domain_as_registryboundaries(name: str, domain: str) -> None:
    from spamwarden.rules._uris import trim_domain

    assert trim_domain(name, {"co.uk", "blogspot.com"}, {"demon.co.uk"}) == domain
