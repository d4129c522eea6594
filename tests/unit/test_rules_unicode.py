"""MIMEEval's check_abundant_unicode_ratio (PP_TOO_MUCH_UNICODE02 / 05): plain text written
in HTML's ``&#xHHHH;`` entities, which no mail reader decodes in a text/plain part.

The expected hits are what SpamAssassin 4.0.1 itself hit on tests/data/sarules_unicode/*.eml
(``spamassassin -L -t`` with Debian's ``*.pre`` and a ``local.cf`` of LOCAL_U02 / LOCAL_U05,
metas on the two rules, as below): ``at_ratio`` has 3 entities over 150 other octets, the
0.02 ratio exactly, ``under_ratio`` one octet more; lower-case hex is not counted, and a
quoted-printable part is not read.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from spamwarden.mail import parse_message
from spamwarden.rules import RuleEngine, parse_rule_files, parse_rule_text

DATA = Path(__file__).resolve().parents[1] / "data" / "sarules_unicode"
ACTIVE = Path("/usr/share/spamassassin/72_active.cf")
LOCAL = """\
meta LOCAL_U02 PP_TOO_MUCH_UNICODE02
score LOCAL_U02 0.01
meta LOCAL_U05 PP_TOO_MUCH_UNICODE05
score LOCAL_U05 0.01
"""
EXPECTED = {
    "at_ratio": {"LOCAL_U02"},
    "under_ratio": set(),
    "few": {"LOCAL_U02", "LOCAL_U05"},
    "many": {"LOCAL_U02", "LOCAL_U05"},
    "lowerhex": set(),
    "none": set(),
    "qp": set(),
}


@pytest.fixture(scope="module")
def engine(tmp_path_factory: pytest.TempPathFactory) -> RuleEngine:
    if not ACTIVE.exists():
        pytest.skip("SpamAssassin's rules are not installed (apt-get install spamassassin)")
    local = tmp_path_factory.mktemp("unicode") / "local.cf"
    local.write_text(LOCAL)
    return RuleEngine(parse_rule_files([ACTIVE, local]), use_hyperscan=False)


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_as_spamassassin_hits_it(engine: RuleEngine, name: str) -> None:
    raw = (DATA / f"{name}.eml").read_bytes()
    hits = {h.name for h in engine.check(parse_message(raw), raw)}
    assert hits & {"LOCAL_U02", "LOCAL_U05"} == EXPECTED[name]


def test_a_ratio_spamassassin_would_not_read_skips_the_rule() -> None:
    rs = parse_rule_text("body LOCAL_BAD eval:check_abundant_unicode_ratio('1e-3')\n"
                         "body LOCAL_OK eval:check_abundant_unicode_ratio(0.5)\n")
    assert "LOCAL_BAD" in rs.skipped and "LOCAL_OK" in rs.rules
