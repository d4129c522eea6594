"""SpamAssassin's SPF_*, DKIM_* and auth welcome-list evals over the MTA's SPF and DKIM
results (spamwarden.rules._auth), checked against SpamAssassin 4.0's Plugin/SPF.pm,
Plugin/DKIM.pm and Conf.pm."""

from __future__ import annotations

import functools
import pickle
from pathlib import Path

import pytest

from spamwarden.mail import parse_message
from spamwarden.milter.auth import AuthResults, DkimResult, SpfResult
from spamwarden.milter.checks.sarules import auth_facts
from spamwarden.milter.interfaces import Envelope
from spamwarden.rules import (
    AuthFacts,
    DkimSignature,
    RuleEngine,
    parse_rule_files,
    parse_rule_text,
    prepare_message,
)
from spamwarden.rules._auth import address_pattern

#: the rules of 25_spf.cf, 25_dkim.cf and 60_welcomelist_{spf,dkim}.cf, with the argument
#: forms of check_dkim_* the shipped rules use and a few more
RULES = """
header   SPF_PASS              eval:check_for_spf_pass()
header   SPF_NONE              eval:check_for_spf_none()
header   SPF_SOFTFAIL          eval:check_for_spf_softfail()
header   SPF_HELO_PASS         eval:check_for_spf_helo_pass()
header   SPF_HELO_NONE         eval:check_for_spf_helo_none()
header   T_SPF_TEMPERROR       eval:check_for_spf_temperror()
full     DKIM_SIGNED           eval:check_dkim_signed()
full     DKIM_VALID            eval:check_dkim_valid()
meta     DKIM_INVALID          DKIM_SIGNED && !DKIM_VALID
full     DKIM_VALID_AU         eval:check_dkim_valid_author_sig()
full     DKIM_VALID_EF         eval:check_dkim_valid_envelopefrom()
full     __DKIM_DEPENDABLE     eval:check_dkim_dependable()
meta     DEPENDABLE            __DKIM_DEPENDABLE
full     __RESIGNER1           eval:check_dkim_valid('linkedin.com')
full     __RESIGNER2           eval:check_dkim_valid('googlegroups.com','yahoogroups.com')
meta     VIA_RESIGNER          __RESIGNER1 || __RESIGNER2
full     VALID_UNDER_BANK      eval:check_dkim_valid('*.bank.example')
full     SIGNED_BY_BANK        eval:check_dkim_signed('bank.example')
full     AU_BY_BANK            eval:check_dkim_valid_author_sig('.bank.example')
meta     SPARED                SPF_PASS && !DKIM_VALID_AU
header   USER_IN_SPF_WELCOMELIST   eval:check_for_spf_welcomelist_from()
header   USER_IN_DEF_SPF_WL        eval:check_for_def_spf_welcomelist_from()
header   USER_IN_DKIM_WELCOMELIST  eval:check_for_dkim_welcomelist_from()
header   USER_IN_DEF_DKIM_WL       eval:check_for_def_dkim_whitelist_from()
def_welcomelist_auth      *@bank.example *@*.bank.example
def_welcomelist_from_spf  news@paper.example
def_welcomelist_from_dkim *@shop.example esp.example
def_welcomelist_from_dkim *@*          paypal.example
welcomelist_from_dkim     boss@work.example *.mailhost.example
whitelist_auth            friend@pal.example
"""

#: the hop that connected to the MTA, as the milter gives it (a public address: external)
CONNECTION = ("from mail.bank.example (mail.bank.example [192.0.2.10]) by mx.example.net "
              "(Postfix) with ESMTP id 4AB12CD; Sat, 5 Dec 2026 12:00:00 +0000")
CLIENT = "192.0.2.10"


def message(from_: str = "Alice <alice@bank.example>", extra: str = "") -> bytes:
    return (f"From: {from_}\r\nTo: bob@example.net\r\nSubject: Statement\r\n{extra}"
            "Message-ID: <m1@bank.example>\r\n\r\nYour statement is ready.\r\n").encode()


@functools.cache
def engine(rules: str = RULES) -> RuleEngine:
    return RuleEngine(parse_rule_text(rules), use_hyperscan=False)


def hits(auth: AuthFacts | None, raw: bytes | None = None, *,
         envelope_from: str | None = "bounce@bank.example",
         received: str | None = CONNECTION, rules: str = RULES) -> set[str]:
    """Every rule the message hits, ``__`` ones included."""
    raw = message() if raw is None else raw
    msg = prepare_message(parse_message(raw), raw, envelope_from=envelope_from,
                          received=received, auth=auth)
    return set(engine(rules).counts(msg))


def spf(result: str, *, mail_from: str = "bounce@bank.example", client: str = CLIENT,
        dkim: tuple[DkimSignature, ...] = ()) -> AuthFacts:
    return AuthFacts(client_ip=client, spf_mailfrom=result, mail_from=mail_from, dkim=dkim)


def sig(domain: str, *, valid: bool = True, identity: str = "",
        selector: str = "s1") -> DkimSignature:
    return DkimSignature(domain, identity or f"@{domain}", selector, valid)


def dkim(*sigs: DkimSignature, dependable: bool = True) -> AuthFacts:
    return AuthFacts(client_ip=CLIENT, dkim=sigs, dkim_dependable=dependable)


ALL_AUTH_RULES = {"SPF_PASS", "SPF_NONE", "SPF_SOFTFAIL", "SPF_HELO_PASS", "SPF_HELO_NONE",
                  "T_SPF_TEMPERROR", "DKIM_SIGNED", "DKIM_VALID", "DKIM_INVALID",
                  "DKIM_VALID_AU", "DKIM_VALID_EF", "__DKIM_DEPENDABLE", "DEPENDABLE",
                  "__RESIGNER1", "__RESIGNER2", "VIA_RESIGNER", "VALID_UNDER_BANK",
                  "SIGNED_BY_BANK", "AU_BY_BANK", "SPARED", "USER_IN_SPF_WELCOMELIST",
                  "USER_IN_DEF_SPF_WL", "USER_IN_DKIM_WELCOMELIST", "USER_IN_DEF_DKIM_WL"}


def test_every_eval_is_read_and_runs() -> None:
    ruleset = parse_rule_text(RULES)
    assert not {n: why for n, why in ruleset.skipped.items()}
    assert ALL_AUTH_RULES <= set(ruleset.rules)


# -- offline: no facts -----------------------------------------------------------------------


def test_without_facts_nothing_hits_as_in_spamassassin_with_network_tests_off() -> None:
    """A stored message checked offline: even a DKIM-Signature field and a Received-SPF
    line do not make DKIM_SIGNED or SPF_PASS (SpamAssassin skips its net evals, and
    DKIM.pm's __DKIM_DEPENDABLE is false without a verifier)."""
    raw = message(extra="DKIM-Signature: v=1; a=rsa-sha256; d=bank.example; s=s1; "
                        "h=from; bh=x; b=y\r\nReceived-SPF: pass (bank.example)\r\n")
    assert hits(None, raw) & ALL_AUTH_RULES == set()
    assert hits(None, raw, received=None, envelope_from=None) & ALL_AUTH_RULES == set()


# -- SPF ---------------------------------------------------------------------------------


@pytest.mark.parametrize(("result", "rule"), [
    ("pass", "SPF_PASS"), ("none", "SPF_NONE"), ("softfail", "SPF_SOFTFAIL"),
    ("temperror", "T_SPF_TEMPERROR")])
def test_spf_result_of_the_mail_from(result: str, rule: str) -> None:
    got = hits(spf(result)) & {"SPF_PASS", "SPF_NONE", "SPF_SOFTFAIL", "T_SPF_TEMPERROR",
                               "SPF_HELO_PASS", "SPF_HELO_NONE"}
    assert got == {rule}


def test_spf_pass_feeds_the_metas() -> None:
    assert "SPARED" in hits(spf("pass"))
    assert "SPARED" not in hits(spf("pass", dkim=(sig("bank.example"),)))


def test_spf_of_another_client_than_the_first_external_relay_is_not_used() -> None:
    """SpamAssassin evaluates SPF for the first external relay: a result for another
    address (here the connection is not the hop the rules see) is no result."""
    assert "SPF_PASS" not in hits(spf("pass", client="198.51.100.7"))
    assert "SPF_PASS" not in hits(spf("pass"), received=None)  # no relay at all


def test_spf_of_an_ipv6_client() -> None:
    received = CONNECTION.replace("[192.0.2.10]", "[IPv6:2001:db8::10]")
    assert "SPF_PASS" in hits(spf("pass", client="2001:0db8:0::10"), received=received)
    assert "SPF_PASS" not in hits(spf("pass", client="2001:db8::11"), received=received)


def test_spf_of_a_trusted_client_is_not_used() -> None:
    """A client on a private address is trusted (and internal): SpamAssassin checks SPF
    for the external hop below it, which the milter did not evaluate."""
    inner = ("from gw.example.net (gw.example.net [10.1.2.3]) by mx.example.net (Postfix) "
             "with ESMTP id 9ZZ; Sat, 5 Dec 2026 12:00:01 +0000")
    raw = message(extra=f"Received: {CONNECTION}\r\n")
    assert "SPF_PASS" not in hits(spf("pass", client="10.1.2.3"), raw, received=inner)
    # nor for the external hop below it: after a trusted relay SPF.pm has no envelope
    # sender it can trust (_get_sender), so no MAIL FROM result at all
    assert "SPF_PASS" not in hits(spf("pass"), raw, received=inner)


def test_spf_for_another_sender_than_the_envelope_from_is_not_used() -> None:
    assert "SPF_PASS" not in hits(spf("pass", mail_from="other@evil.example"))
    assert "SPF_PASS" in hits(spf("pass", mail_from="Bounce@Bank.Example"))


def test_a_null_sender_has_a_helo_result_and_no_mail_from_result() -> None:
    facts = AuthFacts(client_ip=CLIENT, spf_helo="pass", helo="mail.bank.example")
    got = hits(facts, envelope_from="")
    assert "SPF_HELO_PASS" in got and "SPF_PASS" not in got
    none = AuthFacts(client_ip=CLIENT, spf_helo="none", helo="mail.bank.example")
    assert "SPF_HELO_NONE" in hits(none, envelope_from="")


def test_no_helo_result_is_claimed_when_the_helo_was_not_evaluated() -> None:
    got = hits(spf("pass"))
    assert not got & {"SPF_HELO_PASS", "SPF_HELO_NONE"}


@pytest.mark.parametrize("helo", ["localhost", "[192.0.2.10]", "192.0.2.10"])
def test_a_helo_spf_py_does_not_check_has_no_result(helo: str) -> None:
    received = CONNECTION.replace("from mail.bank.example (", f"from {helo} (")
    facts = AuthFacts(client_ip=CLIENT, spf_helo="pass", helo=helo)
    assert "SPF_HELO_PASS" not in hits(facts, envelope_from="", received=received)


def test_a_helo_result_for_another_name_is_not_used() -> None:
    facts = AuthFacts(client_ip=CLIENT, spf_helo="pass", helo="other.example")
    assert "SPF_HELO_PASS" not in hits(facts, envelope_from="")


# -- DKIM --------------------------------------------------------------------------------


def test_a_valid_author_signature() -> None:
    got = hits(dkim(sig("bank.example")))
    assert {"DKIM_SIGNED", "DKIM_VALID", "DKIM_VALID_AU", "DKIM_VALID_EF",
            "__DKIM_DEPENDABLE", "DEPENDABLE", "SIGNED_BY_BANK", "VALID_UNDER_BANK",
            "AU_BY_BANK"} <= got
    assert "DKIM_INVALID" not in got


def test_a_signature_that_failed_is_signed_but_never_valid() -> None:
    got = hits(dkim(sig("bank.example", valid=False)))
    assert {"DKIM_SIGNED", "DKIM_INVALID", "SIGNED_BY_BANK"} <= got
    assert not got & {"DKIM_VALID", "DKIM_VALID_AU", "DKIM_VALID_EF", "VALID_UNDER_BANK",
                      "AU_BY_BANK", "USER_IN_DEF_DKIM_WL", "USER_IN_DKIM_WELCOMELIST"}


def test_a_valid_signature_of_an_unrelated_domain_is_not_the_authors() -> None:
    """Anyone can sign with their own domain: From bank.example signed by evil.example
    is DKIM_VALID but not DKIM_VALID_AU, and no def_welcomelist_auth for the brand."""
    got = hits(dkim(sig("evil.example")))
    assert "DKIM_VALID" in got
    assert not got & {"DKIM_VALID_AU", "AU_BY_BANK", "USER_IN_DEF_DKIM_WL",
                      "USER_IN_DKIM_WELCOMELIST", "VALID_UNDER_BANK"}
    # nor a signature by a domain that merely ends like the brand's
    assert "DKIM_VALID_AU" not in hits(dkim(sig("notbank.example")))


def test_a_failed_author_signature_beside_a_valid_foreign_one() -> None:
    got = hits(dkim(sig("bank.example", valid=False), sig("evil.example")))
    assert {"DKIM_SIGNED", "DKIM_VALID"} <= got
    assert not got & {"DKIM_VALID_AU", "USER_IN_DEF_DKIM_WL"}


def test_the_auid_domain_is_what_is_compared_with_the_author() -> None:
    """DKIM.pm compares the domain of i= (the AUID), which defaults to @d=."""
    by_sub = sig("bank.example", identity="@mail.bank.example")
    assert "DKIM_VALID_AU" not in hits(dkim(by_sub))
    assert "DKIM_VALID_AU" in hits(dkim(by_sub), message("A <a@mail.bank.example>"))
    assert "DKIM_VALID_AU" in hits(dkim(sig("bank.example", identity="alice@bank.example")))


def test_every_from_address_is_an_author() -> None:
    raw = message("Alice <alice@bank.example>, Eve <eve@evil.example>")
    assert "DKIM_VALID_AU" in hits(dkim(sig("evil.example")), raw)


def test_a_signature_without_selector_is_not_valid() -> None:
    got = hits(dkim(sig("bank.example", selector="")))
    assert "DKIM_SIGNED" in got and "DKIM_VALID" not in got and "DKIM_VALID_AU" not in got


def test_dkim_valid_with_domains() -> None:
    assert "__RESIGNER1" in hits(dkim(sig("linkedin.com")))
    assert "__RESIGNER1" not in hits(dkim(sig("mail.linkedin.com")))  # the domain alone
    assert "__RESIGNER2" in hits(dkim(sig("yahoogroups.com")))
    assert "VIA_RESIGNER" in hits(dkim(sig("googlegroups.com")))
    assert "VIA_RESIGNER" not in hits(dkim(sig("googlegroups.com", valid=False)))
    # "*.d" and ".d": d itself or any subdomain of it
    assert "VALID_UNDER_BANK" in hits(dkim(sig("news.bank.example")))
    assert "VALID_UNDER_BANK" not in hits(dkim(sig("bank.example.evil")))
    assert "SIGNED_BY_BANK" not in hits(dkim(sig("news.bank.example")))


def test_a_failed_signature_of_the_listed_domain_beside_a_valid_other_one() -> None:
    """With a valid signature somewhere, the (domains) forms still need the listed
    domain's own signature to be valid (DKIM.pm _check_dkim_signed_by)."""
    forged = dkim(sig("linkedin.com", valid=False), sig("evil.example"))
    got = hits(forged, message("L <x@linkedin.com>"), envelope_from="x@linkedin.com")
    assert "DKIM_VALID" in got
    assert not got & {"__RESIGNER1", "VIA_RESIGNER", "DKIM_VALID_EF", "DKIM_VALID_AU"}


def test_dkim_valid_envelopefrom() -> None:
    assert "DKIM_VALID_EF" in hits(dkim(sig("bank.example")), message("A <a@other.example>"))
    assert "DKIM_VALID_EF" not in hits(dkim(sig("bank.example")),
                                       envelope_from="bounce@esp.example")
    assert "DKIM_VALID_EF" not in hits(dkim(sig("bank.example")), envelope_from="")


def test_dkim_dependable() -> None:
    assert "__DKIM_DEPENDABLE" in hits(dkim())  # verified, unsigned: dependable
    assert "__DKIM_DEPENDABLE" in hits(dkim(sig("bank.example", valid=False)))
    assert "__DKIM_DEPENDABLE" not in hits(
        dkim(sig("bank.example", valid=False), dependable=False))


def test_an_unsigned_message_with_facts() -> None:
    got = hits(dkim())
    assert not got & {"DKIM_SIGNED", "DKIM_VALID", "DKIM_INVALID", "DKIM_VALID_AU"}


# -- welcome-lists -----------------------------------------------------------------------


def test_def_welcomelist_auth_by_a_valid_author_signature() -> None:
    got = hits(dkim(sig("bank.example")))
    assert "USER_IN_DEF_DKIM_WL" in got and "USER_IN_DKIM_WELCOMELIST" not in got
    sub = message("Alice <alice@news.bank.example>")
    assert "USER_IN_DEF_DKIM_WL" in hits(dkim(sig("news.bank.example")), sub)
    # a signature by the parent domain is not the author's own domain
    assert "USER_IN_DEF_DKIM_WL" not in hits(dkim(sig("bank.example")), sub)


def test_def_welcomelist_from_dkim_with_a_signing_domain() -> None:
    shop = message("Shop <offers@shop.example>")
    assert "USER_IN_DEF_DKIM_WL" in hits(dkim(sig("esp.example")), shop)
    assert "USER_IN_DEF_DKIM_WL" not in hits(dkim(sig("shop.example")), shop)
    assert "USER_IN_DEF_DKIM_WL" not in hits(dkim(sig("esp.example", valid=False)), shop)
    # "*@* paypal.example": any author, signed by that domain exactly
    anyone = message("X <x@anything.example>")
    assert "USER_IN_DEF_DKIM_WL" in hits(dkim(sig("paypal.example")), anyone)
    assert "USER_IN_DEF_DKIM_WL" not in hits(dkim(sig("mail.paypal.example")), anyone)


def test_welcomelist_from_dkim_with_subdomains_of_a_signing_domain() -> None:
    boss = message("Boss <boss@work.example>")
    assert "USER_IN_DKIM_WELCOMELIST" in hits(dkim(sig("a.mailhost.example")), boss)
    # "*.d" in a welcome-list is a subdomain only (DKIM.pm _wlcheck_list)
    assert "USER_IN_DKIM_WELCOMELIST" not in hits(dkim(sig("mailhost.example")), boss)
    assert "USER_IN_DKIM_WELCOMELIST" not in hits(dkim(sig("a.mailhost.example")),
                                                  message("B <other@work.example>"))


def test_spf_welcomelists_match_the_envelope_sender_with_an_spf_pass() -> None:
    """SPF.pm matches the envelope sender SPF was checked for, not From."""
    assert "USER_IN_DEF_SPF_WL" in hits(spf("pass"))  # def_welcomelist_auth *@bank.example
    # an SPF pass for the envelope domain does not welcome-list a brand's From
    evil = spf("pass", mail_from="bounce@evil.example")
    assert "USER_IN_DEF_SPF_WL" not in hits(evil, envelope_from="bounce@evil.example")
    # nor does the brand's envelope without a pass
    assert "USER_IN_DEF_SPF_WL" not in hits(spf("softfail"))
    assert "USER_IN_DEF_SPF_WL" not in hits(spf("pass", client="198.51.100.7"))
    # def_welcomelist_from_spf, and the user's list (whitelist_auth is welcomelist_auth)
    paper = spf("pass", mail_from="news@paper.example")
    assert "USER_IN_DEF_SPF_WL" in hits(paper, envelope_from="news@paper.example")
    pal = spf("pass", mail_from="friend@pal.example")
    got = hits(pal, envelope_from="friend@pal.example")
    assert "USER_IN_SPF_WELCOMELIST" in got and "USER_IN_DEF_SPF_WL" not in got


def test_welcomelist_auth_is_also_a_dkim_welcomelist() -> None:
    raw = message("Friend <friend@pal.example>")
    assert "USER_IN_DKIM_WELCOMELIST" in hits(dkim(sig("pal.example")), raw)
    assert "USER_IN_DKIM_WELCOMELIST" not in hits(dkim(sig("evil.example")), raw)


def test_unwelcomelist_lines_remove_entries() -> None:
    rules = RULES + ("unwelcomelist_auth *@bank.example\n"
                     "unwelcomelist_from_dkim *@shop.example esp.example\n"
                     "unwhitelist_from_spf news@paper.example\n")
    ruleset = parse_rule_text(rules)
    lists = ruleset.auth_lists
    assert "*@bank.example" not in lists.addresses["def_welcomelist_auth"]
    assert "*@*.bank.example" in lists.addresses["def_welcomelist_auth"]
    assert "*@shop.example" not in lists.dkim["def_welcomelist_from_dkim"]
    assert lists.dkim["def_welcomelist_from_dkim"]["*@*"] == ["paypal.example"]
    assert "news@paper.example" not in lists.addresses["def_welcomelist_from_spf"]
    assert "USER_IN_DEF_DKIM_WL" not in hits(dkim(sig("bank.example")), rules=rules)
    assert "USER_IN_DEF_DKIM_WL" not in hits(dkim(sig("esp.example")),
                                             message("S <offers@shop.example>"), rules=rules)


def test_every_auth_list_line_is_read_without_a_note() -> None:
    """None of them is reported as a setting this engine does not act on."""
    from spamwarden.rules._auth import AUTH_LIST_DIRECTIVES

    text = "".join(f"{d} a@b.example{' c.example' if 'dkim' in d else ''}\n"
                   for d in sorted(AUTH_LIST_DIRECTIVES))
    assert parse_rule_text(text).notes == []


def test_a_dkim_list_line_with_too_many_words_is_a_note() -> None:
    ruleset = parse_rule_text("welcomelist_from_dkim a@b.example c.example d.example\n"
                              "def_welcomelist_auth\n")
    assert [n for _, n in ruleset.notes] == [
        "welcomelist_from_dkim: expected an address and at most one signing domain",
        "def_welcomelist_auth: expected an address"]
    assert ruleset.auth_lists.dkim["welcomelist_from_dkim"] == {}


@pytest.mark.parametrize(("entry", "addr", "matches"), [
    ("*@bank.example", "alice@bank.example", True),
    ("*@bank.example", "alice@bank.example.evil", False),
    ("*@*.bank.example", "a@news.bank.example", True),
    ("*@*.bank.example", "a@bank.example", False),
    ("us?r@x.example", "user@x.example", True),
    ("a[b]@x.example", "a[b]@x.example", True),  # no character classes: literal
    ("a[b]@x.example", "ab@x.example", False),
    ("a.b@x.example", "axb@x.example", False),
])
def test_address_patterns_are_spamassassins(entry: str, addr: str, matches: bool) -> None:
    import re

    assert (re.match(address_pattern(entry), addr) is not None) is matches


def test_the_domain_index_finds_what_trying_every_entry_finds() -> None:
    """AuthLists tries an address against the entries of its domain (and of the domains
    above it, for "*.d" entries) only: the same matches as every pattern in turn."""
    import re

    from spamwarden.rules._auth import _Entries

    entries = ["*@bank.example", "*@*.bank.example", "us?r@x.example", "*@*", "*bank.example",
               "a@*.b?.example", "*@.dot.example", "x@y(z.example", "*@*.*.example",
               "news@paper.example", "*@example"]
    addrs = ["alice@bank.example", "a@news.bank.example", "a@b@x.bank.example", "a@.bank.example",
             "a@bank.example.evil", "user@x.example", "usr@x.example", "nobody", "a@bq.example",
             "a@c.bq.example", "q@.dot.example", "q@a.dot.example", "x@y(z.example",
             "x@y_z.example", "news@paper.example", "a@b.c.example", "a@example", "@bank.example",
             "a@bank..example", "a@x..bank.example"]
    index = _Entries({e: e for e in entries})
    for addr in addrs:
        every = [e for e in entries if re.match(address_pattern(e), addr)]
        assert sorted(index.matching(addr)) == sorted(every), addr


def test_debians_default_lists_are_read() -> None:
    files = [Path(f"/usr/share/spamassassin/60_welcomelist_{n}.cf")
             for n in ("auth", "spf", "dkim")]
    if not all(f.exists() for f in files):
        pytest.skip("SpamAssassin's rule files are not installed")
    lists = parse_rule_files(files).auth_lists
    assert "*@*.amazon.com" in lists.addresses["def_welcomelist_auth"]
    assert len(lists.addresses["def_welcomelist_auth"]) > 800
    assert lists.dkim["def_welcomelist_from_dkim"]["*@*"] == ["paypal.com"]
    assert lists.listed("def_welcomelist_auth", "ship-confirm@ship.amazon.com")
    assert not lists.listed("def_welcomelist_auth", "ship-confirm@ship.amazon.com.evil.example")
    assert not lists.listed("def_welcomelist_auth", "ship-confirm@evilamazon.com")


# -- from the milter's results -----------------------------------------------------------


ENV = Envelope(client_ip=CLIENT, helo="mail.bank.example", mail_from="bounce@bank.example")


def results(spf_result: SpfResult | None, *sigs: DkimResult) -> AuthResults:
    return AuthResults(spf=spf_result, dkim=sigs, dmarc=None)


def dkim_result(result: str, domain: str = "bank.example") -> DkimResult:
    return DkimResult(result, domain, "s1", "rsa-sha256", "abcdefgh", identity=f"@{domain}",
                      key_bits=2048)


def test_the_milters_results_become_facts() -> None:
    mailfrom = SpfResult("pass", "mailfrom", "bank.example", "bounce@bank.example")
    facts = auth_facts(results(mailfrom, dkim_result("pass"), dkim_result("fail", "x.example")),
                       ENV)
    assert facts == AuthFacts(
        client_ip=CLIENT, spf_mailfrom="pass", mail_from="bounce@bank.example",
        dkim=(DkimSignature("bank.example", "@bank.example", "s1", True),
              DkimSignature("x.example", "@x.example", "s1", False)))
    assert auth_facts(None, ENV) is None


def test_a_null_senders_spf_is_the_helos() -> None:
    helo = SpfResult("pass", "helo", "mail.bank.example", "postmaster@mail.bank.example")
    facts = auth_facts(results(helo), ENV)
    assert facts is not None
    assert (facts.spf_mailfrom, facts.spf_helo, facts.helo) == (None, "pass",
                                                                "mail.bank.example")


@pytest.mark.parametrize("result", ["policy", "neutral", "temperror", "permerror", "fail"])
def test_only_a_pass_is_a_valid_signature(result: str) -> None:
    facts = auth_facts(results(None, dkim_result(result), dkim_result("fail", "x.example")),
                       ENV)
    assert facts is not None and facts.dkim[0].valid is False
    assert not hits(facts) & {"DKIM_VALID", "DKIM_VALID_AU", "USER_IN_DEF_DKIM_WL"}


def test_no_dns_answer_at_all_is_no_result() -> None:
    """Every lookup failed (a DNS outage, or eval --pipeline's resolver): SpamAssassin's
    is_dns_available() then turns DKIM and SPF off, so no DKIM_SIGNED, no DKIM_INVALID,
    no __DKIM_DEPENDABLE; one answer is enough for the results to count."""
    temp = SpfResult("temperror", "mailfrom", "bank.example", "bounce@bank.example")
    assert auth_facts(results(temp, dkim_result("temperror")), ENV) is None
    assert auth_facts(results(None), ENV) is None
    partial = auth_facts(results(SpfResult("pass", "mailfrom", "bank.example",
                                           "bounce@bank.example"), dkim_result("temperror")),
                         ENV)
    assert partial is not None
    assert {"DKIM_SIGNED", "DKIM_INVALID", "__DKIM_DEPENDABLE", "SPF_PASS"} <= hits(partial)


def test_a_truncated_message_is_not_dependable() -> None:
    facts = auth_facts(results(None, dkim_result("neutral")), ENV, truncated=True)
    assert facts is not None and facts.dkim_dependable is False
    none = SpfResult("none", "mailfrom", "bank.example", "bounce@bank.example")
    unsigned = auth_facts(results(none), ENV, truncated=True)
    assert unsigned is not None and unsigned.dkim_dependable is True


def test_facts_survive_the_pipe_to_the_engine_processes() -> None:
    facts = spf("pass", dkim=(sig("bank.example"),))
    raw = message()
    msg = prepare_message(parse_message(raw), raw, envelope_from="bounce@bank.example",
                          received=CONNECTION, auth=facts)
    back = pickle.loads(pickle.dumps(msg, protocol=pickle.HIGHEST_PROTOCOL))  # noqa: S301
    assert back.auth == facts
    assert set(engine().counts(back)) == set(engine().counts(msg))


def test_the_engine_processes_are_given_the_facts() -> None:
    from spamwarden.rules.processes import EngineProcesses

    eng = engine()
    procs = EngineProcesses(eng, processes=1, timeout=30)
    try:
        raw = message()
        names = {h.name for h in procs.check(
            parse_message(raw), raw, envelope_from="bounce@bank.example",
            received=CONNECTION, auth=dkim(sig("bank.example")))}
    finally:
        procs.close()
    assert {"DKIM_VALID", "DKIM_VALID_AU", "USER_IN_DEF_DKIM_WL"} <= names


def test_a_star_heavy_entry_does_not_backtrack_over_a_long_sender_address() -> None:
    """SpamAssassin's own pattern for ``*a*a...*b@d`` backtracks exponentially over a long
    From address, which the sender writes; the index matches each entry without going
    back into a star (SpamAssassin's pattern, run here, would not return)."""
    from spamwarden.rules._auth import _Entries

    entry = "*a" * 12 + "*b@x.example"
    index = _Entries({entry: entry})
    assert index.matching("a" * 4000 + "@x.example") == []
    assert index.matching("a" * 4000 + "b@x.example") == [entry]
