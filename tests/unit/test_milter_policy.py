"""Scoring (symbols → points → action) and header rendering, as pure functions."""

from __future__ import annotations

import re
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from spamwarden.config import config_from_mapping
from spamwarden.milter.auth import AuthResults, DkimResult, DmarcResult, SpfResult
from spamwarden.milter.headers import (
    fold,
    forged_header_removals,
    header_safe,
    plain_authserv_id,
    pvalue,
    render_authentication_results,
    render_spam_status,
    spam_headers,
)
from spamwarden.milter.interfaces import Envelope, Symbol
from spamwarden.milter.policy import (
    DEFAULT_POINTS,
    SymbolPoints,
    action_rank,
    auth_symbols,
    bayes_symbols,
    decide,
)

CFG = config_from_mapping({})


def names(symbols: Any) -> list[str]:
    return [s.name for s in symbols]


@pytest.mark.parametrize(("p", "expected"), [
    (0.0, ["BAYES_00"]),
    (0.009, ["BAYES_00"]),
    (0.01, ["BAYES_05"]),
    (0.3, ["BAYES_40"]),
    (0.5, ["BAYES_50"]),
    (0.7, ["BAYES_60"]),
    (0.9, ["BAYES_80"]),
    (0.96, ["BAYES_95"]),
    (0.995, ["BAYES_99"]),
    (0.9995, ["BAYES_99", "BAYES_999"]),
    (1.7, ["BAYES_99", "BAYES_999"]),   # clamped
    (-1.0, ["BAYES_00"]),
    (float("nan"), ["BAYES_50"]),       # no opinion
])
def test_bayes_buckets(p: float, expected: list[str]) -> None:
    assert names(bayes_symbols(p, SymbolPoints())) == expected


def test_points_overrides_apply_to_builtin_and_foreign_symbols() -> None:
    points = SymbolPoints({"bayes_99": 9.0, "AD_NO_CONSENT": 7.0})
    assert points.points("BAYES_99") == 9.0
    assert points.points("BAYES_95") == DEFAULT_POINTS["BAYES_95"]
    assert points.apply(Symbol("AD_NO_CONSENT", 1.0, "x")).points == 7.0
    assert points.apply(Symbol("OTHER", 1.5)).points == 1.5
    assert points.points("UNKNOWN", 0.25) == 0.25


def auth(spf: str = "pass", dkim: tuple[str, ...] = ("pass",), dmarc: str = "pass",
         policy: str = "reject", applied: str = "none", scope: str = "mailfrom") -> AuthResults:
    return AuthResults(
        spf=SpfResult(spf, scope, "example.org", "a@example.org"),
        dkim=tuple(DkimResult(r, "example.org", "s1", "ed25519-sha256", "AAAA") for r in dkim),
        dmarc=DmarcResult(dmarc, "example.org", "example.org", policy, applied, True, True),
    )


def test_auth_symbols_pass() -> None:
    syms = auth_symbols(auth(), SymbolPoints(), reject_spf_fail=False)
    assert names(syms) == ["SPF_PASS", "DKIM_VALID", "DMARC_PASS"]
    assert all(not s.action for s in syms)


def test_dmarc_reject_demands_reject_whatever_the_points() -> None:
    points = SymbolPoints({"DMARC_REJECT": 0.0})
    syms = auth_symbols(auth(spf="fail", dkim=("fail",), dmarc="fail", applied="reject"),
                        points, reject_spf_fail=False)
    assert names(syms) == ["SPF_FAIL", "DKIM_INVALID", "DMARC_REJECT"]
    d = decide(syms, CFG.policy, CFG.milter)
    assert d.action == "reject"
    assert d.main is not None and d.main.name == "DMARC_REJECT"
    assert d.reason == (
        "DMARC policy of example.org is reject and the message fails it (DMARC_REJECT)"
    )


def test_dmarc_outside_pct_sample_follows_applied_policy() -> None:
    syms = auth_symbols(auth(dmarc="fail", policy="reject", applied="quarantine"),
                        SymbolPoints(), reject_spf_fail=False)
    assert "DMARC_QUARANTINE" in names(syms)
    assert decide(syms, CFG.policy, CFG.milter).action == "quarantine"
    syms = auth_symbols(auth(dmarc="fail", policy="none", applied="none"),
                        SymbolPoints(), reject_spf_fail=False)
    assert "DMARC_FAIL_NONE" in names(syms)


def test_temperror_never_rejects() -> None:
    syms = auth_symbols(auth(spf="temperror", dkim=("temperror",), dmarc="temperror",
                             applied=""), SymbolPoints(), reject_spf_fail=True)
    assert names(syms) == ["SPF_TEMPERROR", "DKIM_TEMPERROR", "DMARC_TEMPERROR"]
    assert decide(syms, CFG.policy, CFG.milter).action == "accept"


def test_spf_fail_demands_reject_only_when_configured() -> None:
    fail = auth(spf="fail", dmarc="none")
    assert decide(auth_symbols(fail, SymbolPoints(), reject_spf_fail=False),
                  CFG.policy, CFG.milter).action == "accept"
    d = decide(auth_symbols(fail, SymbolPoints(), reject_spf_fail=True), CFG.policy, CFG.milter)
    assert d.action == "reject" and "SPF_FAIL" in d.reason


def test_helo_scope_and_unsigned() -> None:
    syms = auth_symbols(auth(scope="helo", dkim=()), SymbolPoints(), reject_spf_fail=False)
    assert names(syms) == ["SPF_HELO_PASS", "DKIM_NONE", "DMARC_PASS"]
    assert auth_symbols(None, SymbolPoints(), reject_spf_fail=False) == []


@pytest.mark.parametrize(("score", "action"), [
    (4.9, "accept"), (5.0, "tag"), (9.9, "tag"), (10.0, "quarantine"), (14.96, "reject"),
    (15.0, "reject"), (-3.0, "accept"),
])
def test_thresholds(score: float, action: str) -> None:
    d = decide([Symbol("X", score)], CFG.policy, CFG.milter)
    assert d.action == action
    if action == "accept":
        assert d.main is None
    else:
        assert d.main is not None and d.main.name == "X"


def test_score_is_rounded_like_the_header_shows_it() -> None:
    d = decide([Symbol("A", 2.44), Symbol("B", 2.52)], CFG.policy, CFG.milter)
    assert d.score == 5.0 and d.action == "tag"


def test_score_reason_names_top_symbols() -> None:
    syms = [Symbol("LOW", 1.0), Symbol("HIGH", 8.0), Symbol("MID", 3.0), Symbol("NEG", -1.0)]
    d = decide(syms, CFG.policy, CFG.milter)
    assert d.action == "quarantine"
    assert d.reason == "spam score 11.0 >= 10.0 (HIGH,MID,LOW)"


def test_forced_action_below_score_action_keeps_score_action() -> None:
    d = decide([Symbol("Q", 1.0, action="quarantine"), Symbol("BIG", 20.0)],
               CFG.policy, CFG.milter)
    assert d.action == "reject" and d.main is not None and d.main.name == "BIG"


def test_tempfail_symbol() -> None:
    d = decide([Symbol("REGISTRY_DOWN", 0.0, "consent registry unreachable",
                       action="tempfail")], CFG.policy, CFG.milter)
    assert d.action == "tempfail"
    assert action_rank("tempfail") < action_rank("reject")


def test_quarantine_setting_tag() -> None:
    cfg = config_from_mapping({"milter": {"quarantine": "tag"}})
    assert decide([Symbol("X", 12.0)], cfg.policy, cfg.milter).action == "tag"


# -- headers ----------------------------------------------------------------------------------


def test_spam_status_is_spamassassin_form() -> None:
    assert render_spam_status(
        flagged=True, score=17.25, required=5.0, tests=["DMARC_REJECT", "BAYES_99"],
        version="spamwarden-0.1.0",
    ) == ("Yes, score=17.2 required=5.0 tests=BAYES_99,DMARC_REJECT\n"
          "\tautolearn=no version=spamwarden-0.1.0")
    assert render_spam_status(flagged=False, score=-0.04, required=5.0, tests=[],
                              version="v").startswith("No, score=-0.0 required=5.0 tests=none ")


def test_spam_status_is_folded_as_spamassassin_folds_it() -> None:
    """A spam hitting many rules: no line of the field over 78 characters (RFC 5322
    §2.1.1; unfolded it went past the 998-octet limit), broken after commas, and
    unfolding gives every rule name back whole."""
    names = [f"SITE_RULE_NUMBER_{i:03d}" for i in range(60)]
    value = render_spam_status(flagged=True, score=99.0, required=5.0, tests=names,
                               version="spamwarden-0.1.0")
    lines = f"X-Spam-Status: {value}".split("\n")
    assert len(lines) > 10
    assert max(map(len, lines)) <= 78
    assert all(line.startswith("\t") for line in lines[1:])
    unfolded = value.replace("\n", "")
    listed = unfolded.split("tests=", 1)[1].split(" autolearn=")[0]
    assert [n.strip() for n in listed.split(",")] == names
    assert " ".join(unfolded.split()).endswith(" autolearn=no version=spamwarden-0.1.0")
    assert " ".join(unfolded.split()).startswith("Yes, score=99.0 required=5.0 tests=")


def test_fold_keeps_unbreakable_pieces_whole() -> None:
    long = "X" * 120
    assert fold(f"a {long} b", first=15) == f"a\n\t{long}\n\tb"
    assert fold("short value", first=15) == "short value"
    assert fold("aa,bb,cc", width=6) == "aa,bb,\n\tcc"


def test_spam_headers_flag_level_reasons_unavailable() -> None:
    hdrs = dict(spam_headers(
        score=6.3, required=5.0, flagged=True,
        symbols=[Symbol("BAYES_99", 5.0, "spam probability 0.995"), Symbol("SPF_NONE", 1.3)],
        reason="spam score 6.3 >= 5.0 (BAYES_99,SPF_NONE)", action="tag",
        unavailable=["listings (redis: connection refused)"], version="spamwarden-0.1.0",
    ))
    assert hdrs["X-Spam-Flag"] == "YES"
    assert hdrs["X-Spam-Score"] == "6.3"
    assert hdrs["X-Spam-Level"] == "******"
    assert hdrs["X-Spam-Reasons"] == (
        "action=tag; spam score 6.3 >= 5.0 (BAYES_99,SPF_NONE); "
        "BAYES_99=5 [spam probability 0.995], SPF_NONE=1.3"
    )
    assert hdrs["X-Spam-Unavailable"] == "listings (redis: connection refused)"
    calm = dict(spam_headers(score=0.5, required=5.0, flagged=False, symbols=[], reason="r",
                             action="accept", unavailable=[], version="v"))
    assert "X-Spam-Flag" not in calm and "X-Spam-Level" not in calm
    assert "X-Spam-Unavailable" not in calm


def test_authentication_results_full() -> None:
    a = AuthResults(
        spf=SpfResult("fail", "mailfrom", "example.org", "a@example.org", "not permitted"),
        dkim=(
            DkimResult("pass", "example.org", "s1", "rsa-sha256", "abcd/efg"),
            DkimResult("fail", "esp.example", "k", "ed25519-sha256", "ZZZZ",
                       reason="body hash mismatch"),
        ),
        dmarc=DmarcResult("fail", "example.org", "example.org", "reject", "reject",
                          False, False),
    )
    value = render_authentication_results(
        "mx.example.net", a, Envelope(helo="mail.example.org", mail_from="a@example.org"))
    assert value == (
        "mx.example.net;\n"
        "\tspf=fail (not permitted) smtp.mailfrom=a@example.org smtp.helo=mail.example.org;\n"
        '\tdkim=pass header.d=example.org header.s=s1 header.a=rsa-sha256 header.b="abcd/efg";\n'
        "\tdkim=fail (body hash mismatch) header.d=esp.example header.s=k "
        "header.a=ed25519-sha256 header.b=ZZZZ;\n"
        "\tdmarc=fail (p=reject dis=reject) header.from=example.org"
    )


def test_every_line_of_our_authentication_results_fits_in_998_octets() -> None:
    """A signature dkimpy cannot read is reported with the d=, s= and a= it wrote; values
    of quotes doubled when escaped, past the per-value limit, and an SPF explanation of
    parentheses did too: lines of 1,753 octets, which a downstream MTA breaks anywhere."""
    q, p = '"' * 600, ")" * 600
    a = AuthResults(
        spf=SpfResult("fail", "mailfrom", "example.org", "a" * 60 + "@" + "b" * 250, p),
        dkim=(DkimResult("permerror", q, q, q, q, reason=p),),
        dmarc=DmarcResult("fail", q, q, "reject", "reject", False, False, reason=p),
    )
    value = render_authentication_results(
        "mx.example.net", a, Envelope(helo="h" * 255, mail_from="x" * 300))
    lines = value.split("\n")
    assert len(lines) == 4
    assert all(len(line.encode()) <= 998 for line in lines), [len(x) for x in lines]
    assert '\\"' in lines[2]  # escaped, and no escape cut in two:
    for line in lines:
        for quoted in re.findall(r'"((?:[^"\\]|\\.)*)"', line):
            assert not quoted.endswith("\\") or quoted.endswith("\\\\")


def test_authentication_results_null_sender_and_unavailable() -> None:
    a = AuthResults(spf=SpfResult("pass", "helo", "mail.example.org",
                                  "postmaster@mail.example.org"), dkim=(), dmarc=None)
    value = render_authentication_results("mx", a, Envelope(helo="mail.example.org"))
    assert value == ("mx;\n\tspf=pass smtp.mailfrom=postmaster@mail.example.org "
                     "smtp.helo=mail.example.org")
    assert render_authentication_results("mx", None, Envelope(),
                                         unavailable="authentication unavailable") == (
        "mx; none (authentication unavailable)"
    )


@pytest.mark.parametrize(("value", "quoted"), [
    ("example.org", "example.org"),
    ("user@example.org", "user@example.org"),
    ("a/b+c=", '"a/b+c="'),
    ('we"ird value', '"we\\"ird value"'),
    ("", '""'),
])
def test_pvalue(value: str, quoted: str) -> None:
    assert pvalue(value) == quoted


def test_header_safe_never_breaks_a_header() -> None:
    assert header_safe("a\r\nX-Injected: 1\tb") == "a X-Injected: 1 b"
    assert header_safe("Tiếng Việt") == "Ti?ng Vi?t"
    assert len(header_safe("x" * 5000, limit=100)) == 100


@pytest.mark.parametrize(("value", "aid"), [
    ("mx.example.net; spf=pass", "mx.example.net"),
    ("  MX.Example.NET 1; none", "mx.example.net"),
    ("(comment) mx.example.net; dkim=pass", "mx.example.net"),
    ('"mx.example.net"; none', ""),  # quoted: not written plainly
    ("mx.example.net.;none", "mx.example.net"),
    ("", ""),
    ("(a (b) c) mx.example.net; spf=pass", "mx.example.net"),
    ("(a \\) (b) c)(d) mx.example.net; spf=pass", "mx.example.net"),
    ("(x)" * 11 + " mx.example.net; spf=pass", "mx.example.net"),
    ("(((deep))) (more) MX.example.net.; none", "mx.example.net"),
    ("(unterminated mx.example.net; spf=pass", ""),
])
def test_plain_authserv_id(value: str, aid: str) -> None:
    assert plain_authserv_id(value) == aid


@pytest.mark.parametrize("value", [
    # spellings OpenDMARC's tokenizer reads as mx.example.net: all removed as ours
    "mx .example.net; dkim=pass header.d=bank.example",
    "mx. example .net; dkim=pass",
    "mx (x) .example.net; dkim=pass",
    "mx\\.example.net; dkim=pass",
    '"mx.example\\.net"; dkim=pass',
    '"mx.example.net; dkim=pass',
    '"other.example"; dkim=pass',  # quoted: not plainly written, whoever it names
    "mx.example.net 1 x; dkim=pass",
    "(unterminated mx.example.net; spf=pass",
    "",
])
def test_authentication_results_not_written_plainly_are_removed(value: str) -> None:
    assert plain_authserv_id(value) in ("", "mx.example.net")
    assert forged_header_removals([("Authentication-Results", value)], "mx.example.net") == [
        ("Authentication-Results", 1)]


@pytest.mark.parametrize(("value", "aid"), [
    ("other.example; dkim=pass", "other.example"),
    ("  (c) Other.Example. 1 (v); spf=pass", "other.example"),
    ("other.example", "other.example"),
    ("other.example 1", "other.example"),
])
def test_another_servers_plain_authentication_results_are_kept(value: str, aid: str) -> None:
    assert plain_authserv_id(value) == aid
    assert forged_header_removals([("Authentication-Results", value)], "mx.example.net") == []


def test_forged_removals_index_per_name_highest_first() -> None:
    headers = [
        ("Received", "x"),
        ("Authentication-Results", "other.example; spf=pass"),
        ("X-Spam-Status", "No"),
        ("authentication-results", "mx.example.net; dkim=pass"),
        ("X-SPAM-Flag", "NO"),
        ("Authentication-Results", "mx.example.net 1; spf=pass"),
        ("X-Spam-Status", "Yes"),
        ("X-Spamwarden-Other", "kept"),
        ("X-Spam", "kept too? no: removed"),
    ]
    assert forged_header_removals(headers, "MX.example.net") == [
        ("Authentication-Results", 3),
        ("authentication-results", 2),
        ("X-Spam", 1),
        ("X-SPAM-Flag", 1),
        ("X-Spam-Status", 2),
        ("X-Spam-Status", 1),
    ]


@settings(max_examples=300, deadline=None)
@given(st.text(max_size=400), st.integers(min_value=10, max_value=500))
def test_header_safe_property(text: str, limit: int) -> None:
    out = header_safe(text, limit=limit)
    assert len(out) <= limit
    assert all(32 <= ord(c) < 127 for c in out)
    assert "  " not in out and out == out.strip()


def test_forged_removals_nested_comment_and_unreadable_claims_go() -> None:
    """A comment nested before the authserv-id, or a value with no readable authserv-id,
    must not keep a field a lenient reader downstream could take for ours."""
    headers = [
        ("Authentication-Results", "(a (b) c) mx.example.net; spf=pass"),
        ("Authentication-Results", "other.example; spf=pass"),
        ("Authentication-Results", "(never closed mx.example.net; spf=pass"),
    ]
    assert forged_header_removals(headers, "mx.example.net") == [
        ("Authentication-Results", 3),
        ("Authentication-Results", 1),
    ]
