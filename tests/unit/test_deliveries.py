"""The delivery ledger (spamwarden.reputation.deliveries) and matching reports to it in
intake: a report counts only for a message delivered here to the reporter, and carries
what that delivery proved instead of what the report's copy claims."""

from __future__ import annotations

import asyncio
import dataclasses
import json
from types import SimpleNamespace
from typing import Any

import pytest

from spamwarden.config import config_from_mapping
from spamwarden.mail import parse_message
from spamwarden.milter.interfaces import Envelope
from spamwarden.reputation.complaints import Complaint
from spamwarden.reputation.deliveries import (
    MAX_RECIPIENTS,
    MAX_URL_DOMAINS,
    CopyEvidence,
    Delivery,
    Match,
    decide_among,
    delivery_of,
    record_deliveries,
)
from spamwarden.reputation.engine import ListingPolicy
from spamwarden.reputation.intake import (
    REPLIES,
    UNMATCHED_WHY,
    ComplaintIntake,
    ReportKind,
    StoreOutcome,
)
from spamwarden.reputation.reports import (
    delivered_fingerprint,
    delivered_html_fingerprint,
    find_originals,
    fingerprint,
    html_fingerprint,
)
from tests.conftest import DATA
from tests.support.ledger import MemoryDeliveryLedger

REPORTS = DATA / "reports"
ORIGINAL = (REPORTS / "original-signed.eml").read_bytes()
VIEW = parse_message(ORIGINAL)
FP = delivered_fingerprint(VIEW)
MID = "20241103140107.4f2a9c@mail.promo-shop.example"


def auth(*, spf: str = "none", dkim: tuple[tuple[str, str], ...] = (), dmarc: str = "none",
         from_domain: str = "promo-shop.example") -> Any:
    return SimpleNamespace(
        spf=SimpleNamespace(result=spf, scope="mailfrom", domain="mailer.promo-shop.example"),
        dkim=tuple(SimpleNamespace(result=r, domain=d) for d, r in dkim),
        dmarc=SimpleNamespace(result=dmarc, from_domain=from_domain),
    )


def delivered(*rcpts: str, a: Any = None, ip: str = "192.0.2.77", delimiters: str = "+",
              **kw: Any) -> Delivery:
    d = delivery_of(VIEW, fingerprint=FP, client_ip=ip,
                    mail_from="bounce-8812@mailer.promo-shop.example", rcpts=rcpts, auth=a,
                    at=1_700_000_000.0, queue_id="4XyZ1Q2w3e", delimiters=delimiters, **kw)
    assert d is not None
    return d


# -- what a delivery proves ---------------------------------------------------------------


def test_a_delivery_proves_only_names_that_authenticated() -> None:
    d = delivered("<Alice@Example.VN>", a=auth())
    assert (d.client_ip, d.mail_from_domain, d.from_domain, d.dkim_domains) == (
        "192.0.2.77", None, None, ())
    assert d.recipients == ("alice@example.vn",) and d.message_id == MID
    assert d.names() == ()
    assert "promo-shop.example" in d.url_domains  # links are in the message as delivered

    d = delivered("alice@example.vn", a=auth(spf="pass", dkim=(("promo-shop.example", "pass"),
                                                               ("forged.example", "fail")),
                                             dmarc="pass"))
    assert d.mail_from_domain == "mailer.promo-shop.example"
    assert d.dkim_domains == ("promo-shop.example",)
    assert d.from_domain == "promo-shop.example"
    assert d.from_address == "deals@promo-shop.example"
    assert d.names() == ("promo-shop.example",)


def test_spf_softfail_and_dmarc_fail_prove_nothing() -> None:
    d = delivered("alice@example.vn", a=auth(spf="softfail", dmarc="fail",
                                             dkim=(("promo-shop.example", "neutral"),)))
    assert d.names() == () and d.from_address is None


def test_recipients_are_bounded_and_intake_addresses_left_out() -> None:
    many = [f"u{i}@example.vn" for i in range(MAX_RECIPIENTS + 50)]
    assert len(delivered(*many).recipients) == MAX_RECIPIENTS
    assert delivery_of(VIEW, fingerprint=FP, client_ip="192.0.2.77", mail_from="", auth=None,
                       rcpts=["report@example.vn"], at=1.0,
                       skip_recipients=frozenset({"report@example.vn"}), delimiters="+") is None
    assert len(delivered("a@example.vn").url_domains) <= MAX_URL_DOMAINS


def test_a_submission_records_no_client_address() -> None:
    assert delivered("a@example.vn", authenticated_client=True).client_ip is None


def test_the_record_survives_storage() -> None:
    d = delivered("a@example.vn", "b@example.vn", a=auth(spf="pass", dmarc="pass"))
    assert Delivery.from_json(d.to_json()) == d
    with pytest.raises(ValueError):
        Delivery.from_json("{}")


def test_one_batch_is_one_ledger_call() -> None:
    ledger = MemoryDeliveryLedger()
    verdict = SimpleNamespace(view=VIEW, auth=None)
    items = [(verdict, Envelope(client_ip="192.0.2.77", rcpts=[f"<u{i}@example.vn>"],
                                queue_id=f"Q{i}")) for i in range(5)]
    items.append((SimpleNamespace(view=None, auth=None), Envelope(rcpts=["x@example.vn"])))
    assert record_deliveries(ledger, items, delimiters="+") == 5
    assert ledger.batches == [5]
    assert len({d.id for d in ledger.deliveries}) == 5


# -- the same fingerprint for the delivered message and every forward of it ----------------


@pytest.mark.parametrize("name", [
    "gmail-attached.eml", "gmail-inline.eml", "outlook-attached.eml", "outlook-inline.eml",
    "thunderbird-attached.eml", "thunderbird-inline.eml", "mutt-bounced.eml",
])
def test_forwarded_copies_have_the_delivered_fingerprint(name: str) -> None:
    [original] = find_originals((REPORTS / name).read_bytes(), local_domains=["example.vn"])
    assert fingerprint(original) == FP


# -- matching -----------------------------------------------------------------------------


def decide_match(*, fingerprint: str | None, message_id: str | None,
                 by_content: Delivery | None, by_message_id: Delivery | None,
                 any_recipient: bool) -> Match:
    """decide_among with at most one delivery of each kind."""
    return decide_among(fingerprint=fingerprint, message_id=message_id,
                        by_content=[] if by_content is None else [by_content],
                        by_message_id=[] if by_message_id is None else [by_message_id],
                        any_recipient=any_recipient)


def test_decide_match() -> None:
    d = delivered("a@example.vn")
    other = Delivery(id="other", at=1.0, fingerprint="0" * 32, message_id="x@y")
    m = decide_match(fingerprint=FP, message_id=f"<{MID}>", by_content=d, by_message_id=d,
                     any_recipient=True)
    assert m == Match("matched", d)
    # inline forwards have no Message-ID; headers-only ARF copies have no content
    assert decide_match(fingerprint=FP, message_id=None, by_content=d, by_message_id=None,
                        any_recipient=True).status == "matched"
    assert decide_match(fingerprint=None, message_id=MID, by_content=None, by_message_id=d,
                        any_recipient=True).status == "matched"
    # a real Message-ID on fabricated content, or the other way round
    assert decide_match(fingerprint="f" * 32, message_id=MID, by_content=None,
                        by_message_id=d, any_recipient=True).status == "disagree"
    assert decide_match(fingerprint=FP, message_id="fabricated@x", by_content=d,
                        by_message_id=None, any_recipient=True).status == "disagree"
    # the content's own delivery has another Message-ID than the copy claims: disagree
    elsewhere = dataclasses.replace(d, message_id="elsewhere@x")
    assert decide_match(fingerprint=FP, message_id=MID, by_content=elsewhere,
                        by_message_id=other, any_recipient=True).status == "disagree"
    # a sender that reuses one Message-ID: the index points at its newest delivery, but the
    # delivery whose content was reported carries that Message-ID too, and is the one reported
    # (else reusing a Message-ID would make every earlier message unreportable)
    assert decide_match(fingerprint=FP, message_id=MID, by_content=d, by_message_id=other,
                        any_recipient=True) == Match("matched", d)
    assert decide_match(fingerprint=FP, message_id=MID, by_content=None, by_message_id=None,
                        any_recipient=True).status == "not-a-recipient"
    assert decide_match(fingerprint=FP, message_id=MID, by_content=None, by_message_id=None,
                        any_recipient=False).status == "no-delivery"


def test_several_deliveries_of_one_text_are_told_apart_by_the_copy_or_count_in_common() -> None:
    """A spam and a look-alike (the same fingerprint) to one reporter: the copy's queue id,
    then its links, pick the delivery; else only what both proved counts."""
    spam = dataclasses.replace(delivered("a@example.vn"), id="s", client_ip="203.0.113.66",
                               mail_from_domain="spammer.example", dkim_domains=(
                                   "spammer.example", "esp.example"),
                               url_domains=("spam-shop.example", "cdn.example"),
                               queue_id="4XQS1", at=1.0)
    look_alike = dataclasses.replace(spam, id="l", client_ip="198.51.100.99",
                                     mail_from_domain=None, dkim_domains=("esp.example",),
                                     url_domains=("victim.example", "cdn.example"),
                                     queue_id="4XQS2", at=2.0)

    def decide(copy: CopyEvidence | None) -> Match:
        return decide_among(fingerprint=FP, message_id=None, by_content=[spam, look_alike],
                            by_message_id=(), any_recipient=True, copy=copy)

    header = "Received: from x\n\tby mail.example.vn (Postfix) with ESMTP id 4XQS1;"
    assert decide(CopyEvidence(header=header)) == Match("matched", spam)
    # a queue id inside a longer word names nothing
    assert decide(CopyEvidence(header=header.replace("4XQS1", "4XQS12"))).delivery not in (
        spam, look_alike)
    assert decide(CopyEvidence(url_domains=("victim.example",))) == Match("matched", look_alike)
    both = decide(CopyEvidence(url_domains=("cdn.example",))).delivery
    assert both is not None and both.id not in ("s", "l")
    assert (both.client_ip, both.mail_from_domain, both.dkim_domains, both.url_domains) == (
        None, None, ("esp.example",), ("cdn.example",))
    assert decide(None) == Match("matched", both, candidates=2)  # one id for one set
    # a link the copy has and no candidate had (the reporter's own) narrows nothing
    assert decide(CopyEvidence(url_domains=("reporter.example",))).delivery == both
    # the same delivery found twice is one candidate
    assert decide_among(fingerprint=FP, message_id=None, by_content=[spam, spam],
                        by_message_id=[spam], any_recipient=True) == Match("matched", spam)


class Store:
    def __init__(self) -> None:
        self.added: list[tuple[Complaint, bytes, bool]] = []

    async def add(self, complaint: Complaint, *, example: bytes, reporter_limit: int,
                  unmatched: bool = False, example_limit: int = 1) -> StoreOutcome:
        self.added.append((complaint, example, unmatched))
        return ("added", f"{len(self.added)}-0")


def intake(ledger: MemoryDeliveryLedger | None, **reputation: Any) -> tuple[ComplaintIntake, Store]:
    # reports without a login: identity is tested in test_reports_intake/test_intake
    cfg = config_from_mapping({"intake": {"local_domains": ["example.vn"], "require_auth": False},
                               "reputation": reputation})
    store = Store()
    return ComplaintIntake(cfg, store, deliveries=ledger, clock=lambda: 1_700_000_500.0), store


def report(name: str, reporter: str, ledger: MemoryDeliveryLedger | None, *,
           kind: ReportKind = "spam", **reputation: Any) -> tuple[str, Complaint, bytes, bool]:
    handler, store = intake(ledger, **reputation)
    reply = asyncio.run(handler.accept_report(kind, reporter, (REPORTS / name).read_bytes()))
    [(c, example, unmatched)] = store.added
    return reply, c, example, unmatched


@pytest.mark.parametrize("name", ["gmail-attached.eml", "gmail-inline.eml",
                                  "outlook-inline.eml", "thunderbird-attached.eml"])
def test_a_matched_report_carries_what_the_delivery_proved(name: str) -> None:
    ledger = MemoryDeliveryLedger([delivered("alice@example.vn", ip="192.0.2.77",
                                             a=auth(spf="pass"))])
    reply, c, example, unmatched = report(name, "alice@example.vn", ledger)
    assert reply == REPLIES["accepted"].format(id=c.id) and not unmatched
    assert (c.match, c.delivery, c.proven) == ("matched", ledger.deliveries[0].id, True)
    ind = c.indicators
    # the milter's client address, not the report's Received 198.51.100.23
    assert ind.source_ip == "192.0.2.77"
    assert ind.mail_from_domain == "promo-shop.example"
    assert ind.from_domain is None and ind.from_address is None  # DMARC did not pass
    # a training example only from an identified reporter (outlook-inline.eml has no login)
    assert bool(example) == (name != "outlook-inline.eml")


def test_a_report_of_a_message_never_delivered_here_is_kept_but_lists_nothing() -> None:
    reply, c, example, unmatched = report("gmail-attached.eml", "alice@example.vn",
                                          MemoryDeliveryLedger())
    assert reply == REPLIES["unmatched"].format(id=c.id, why=UNMATCHED_WHY["no-delivery"])
    assert unmatched and c.match == "no-delivery" and not c.proven
    assert example == b""  # never learned from either
    assert c.indicators.source_ip == "198.51.100.23"  # what it claims, for the operator
    assert ListingPolicy().targets(c) == []


def test_a_ham_report_teaches_only_a_message_delivered_here_to_the_reporter() -> None:
    """A message "wrongly filtered" here was delivered here: ham@ about anything else
    (a campaign its sender wants to pass as ham) is kept unmatched and teaches nothing."""
    reply, c, example, unmatched = report("gmail-attached.eml", "alice@example.vn",
                                          MemoryDeliveryLedger(), kind="ham")
    assert reply == REPLIES["unmatched_ham"].format(id=c.id, why=UNMATCHED_WHY["no-delivery"])
    assert unmatched and c.kind == "ham" and c.match == "no-delivery" and example == b""
    ledger = MemoryDeliveryLedger([delivered("bob@example.vn")])
    reply, c, example, unmatched = report("gmail-attached.eml", "alice@example.vn", ledger,
                                          kind="ham")
    assert unmatched and c.match == "not-a-recipient" and example == b""
    assert UNMATCHED_WHY["not-a-recipient"] in reply
    ledger = MemoryDeliveryLedger([delivered("alice@example.vn")])
    reply, c, example, unmatched = report("gmail-attached.eml", "alice@example.vn", ledger,
                                          kind="ham")
    assert reply == REPLIES["accepted"].format(id=c.id) and not unmatched
    assert (c.match, c.delivered_to) == ("matched", "alice@example.vn") and example
    # without require_delivered ham is learned as before
    reply, c, example, unmatched = report("gmail-attached.eml", "alice@example.vn",
                                          MemoryDeliveryLedger(), kind="ham",
                                          require_delivered=False)
    assert reply == REPLIES["accepted"].format(id=c.id) and not unmatched and example


def test_a_ham_learn_teaches_only_a_message_delivered_here_to_the_user() -> None:
    raw = ORIGINAL
    handler, store = intake(MemoryDeliveryLedger())
    out = asyncio.run(handler.learn("ham", "alice@example.vn", raw))
    [(c, example, unmatched)] = store.added
    assert (out.status, out.match, unmatched, example) == ("unmatched", "no-delivery", True, b"")
    assert "nothing is learned" in out.message
    handler, store = intake(MemoryDeliveryLedger([delivered("alice@example.vn")]))
    out = asyncio.run(handler.learn("ham", "alice@example.vn", raw))
    [(c, example, unmatched)] = store.added
    assert (out.status, out.match, unmatched) == ("added", "matched", False) and example
    # a message the operator releases from our own hold queue arrived here
    handler, store = intake(MemoryDeliveryLedger())
    out = asyncio.run(handler.learn("ham", "postmaster@example.vn", raw, held_here=True))
    [(c, example, unmatched)] = store.added
    assert (out.status, c.match, unmatched) == ("added", "held", False) and example
    handler, store = intake(MemoryDeliveryLedger())  # never for spam
    out = asyncio.run(handler.learn("spam", "postmaster@example.vn", raw, held_here=True))
    assert out.status == "unmatched"


def test_a_reporter_who_was_not_a_recipient_matches_nothing() -> None:
    ledger = MemoryDeliveryLedger([delivered("bob@example.vn")])
    reply, c, _, unmatched = report("gmail-attached.eml", "alice@example.vn", ledger)
    assert unmatched and c.match == "not-a-recipient"
    assert UNMATCHED_WHY["not-a-recipient"] in reply


def test_arf_source_ip_is_not_believed() -> None:
    _, c, _, unmatched = report("arf-forged-source-ip.eml", "mallory@example.vn",
                                MemoryDeliveryLedger([delivered("mallory@example.vn")]))
    assert unmatched and c.match == "no-delivery"
    assert ListingPolicy().targets(c) == []


def test_without_require_delivered_the_report_headers_count() -> None:
    reply, c, _, unmatched = report("gmail-attached.eml", "alice@example.vn",
                                    MemoryDeliveryLedger(), require_delivered=False)
    assert reply == REPLIES["accepted"].format(id=c.id) and not unmatched
    loose = ListingPolicy(require_delivered=False)
    assert "198.51.100.23" in [t.key for t in loose.targets(c)]


# -- feedback loops -------------------------------------------------------------------------

ARF = (REPORTS / "arf-forged-source-ip.eml").read_bytes()


def fbl_report(*, sign: bool) -> bytes:
    import dkim

    raw = ARF.replace(b"mallory@example.vn", b"fbl@promo-shop.example")
    if not sign:
        return raw
    key = (REPORTS / "dkim-private.pem").read_bytes()
    return bytes(dkim.sign(raw, b"sel1", b"promo-shop.example", key,
                           include_headers=[b"from", b"to", b"subject", b"date",
                                            b"message-id"])) + raw


def fbl_intake(loops: list[str], *, require_auth: bool = True
               ) -> tuple[ComplaintIntake, Store]:
    from spamwarden.milter.auth import verify_dkim
    from spamwarden.resolver import StaticResolver

    cfg = config_from_mapping({"intake": {"local_domains": ["example.vn"],
                                          "feedback_loops": loops,
                                          "require_auth": require_auth}})
    store = Store()
    dns = StaticResolver({("sel1._domainkey.promo-shop.example", "TXT"):
                          [(REPORTS / "dkim-sel1.txt").read_bytes().strip()]})
    return ComplaintIntake(cfg, store, deliveries=MemoryDeliveryLedger(), dkim_verifier=verify_dkim,
                           resolver=dns, clock=lambda: 1_700_000_500.0), store


def test_a_signed_report_from_a_configured_feedback_loop_counts() -> None:
    handler, store = fbl_intake(["promo-shop.example"])
    reply = asyncio.run(handler.accept_report("spam", "fbl@promo-shop.example",
                                              fbl_report(sign=True)))
    [(c, _, unmatched)] = store.added
    assert reply == REPLIES["accepted"].format(id=c.id) and not unmatched
    assert (c.match, c.proven) == ("fbl", True)
    assert c.reporter == "fbl:promo-shop.example:<alice@example.vn>"
    ind = c.indicators
    assert ind.source_ip == "8.8.8.8"  # the loop vouches for its own MTA's view
    # the copy is not signed: neither its From nor its MAIL FROM is proven
    assert (ind.from_domain, ind.mail_from_domain) == (None, None)
    assert [t.key for t in ListingPolicy().targets(c)] == ["8.8.8.8", "innocent-shop.example"]


@pytest.mark.parametrize("loops", [[], ["other-provider.example"], ["promo-shop.example"]])
def test_an_unverified_or_unconfigured_feedback_loop_counts_for_nothing(loops: list[str]) -> None:
    # with the default require_auth, an outsider's ARF that proves no loop is refused at once
    handler, store = fbl_intake(loops)
    reply = asyncio.run(handler.accept_report("spam", "fbl@promo-shop.example",
                                              fbl_report(sign=False)))
    assert reply == REPLIES["auth_required"] and store.added == []
    # and where require_auth is off it is kept, but counts for nothing
    handler, store = fbl_intake(loops, require_auth=False)
    asyncio.run(handler.accept_report("spam", "fbl@promo-shop.example", fbl_report(sign=False)))
    [(c, _, unmatched)] = store.added
    assert unmatched and c.match == "no-delivery" and ListingPolicy().targets(c) == []


def test_a_feedback_loop_may_be_known_by_its_network() -> None:
    handler, store = fbl_intake(["promo-shop.example 192.0.2.0/24"])
    hop = (b"Received: from fbl-out.promo-shop.example (fbl-out.promo-shop.example "
           b"[192.0.2.44])\r\n\tby mx1.example.vn (Postfix) with ESMTP id 4XyZ1Q9999\r\n"
           b"\tfor <report@example.vn>; Sun, 03 Nov 2024 15:00:01 +0700 (+07)\r\n")
    asyncio.run(handler.accept_report("spam", "fbl@promo-shop.example",
                                      hop + fbl_report(sign=False)))
    [(c, _, unmatched)] = store.added
    assert not unmatched and c.match == "fbl"


FBL_HOPS = {
    # the client chose an address literal of the loop's network as its HELO name
    "helo literal": b"Received: from [192.0.2.5] (unknown [198.51.100.66])\r\n"
                    b"\tby mx1.example.vn (Postfix) with ESMTP id 4XyZ1Q9991\r\n"
                    b"\tfor <report@example.vn>; Sun, 03 Nov 2024 15:00:01 +0700 (+07)\r\n",
    # a client on the LAN, with a field below that claims the loop's network
    "lan client": b"Received: from pc7.lan (pc7.lan [10.1.2.3])\r\n"
                  b"\tby mx1.example.vn (Postfix) with ESMTP id 4XyZ1Q9992\r\n"
                  b"\tfor <report@example.vn>; Sun, 03 Nov 2024 15:00:01 +0700 (+07)\r\n"
                  b"Received: from fbl-out.promo-shop.example (fbl-out.promo-shop.example "
                  b"[192.0.2.44])\r\n\tby pc7.lan with ESMTP; Sun, 03 Nov 2024 15:00:00 +0700\r\n",
    # a local pickup (sendmail -f), with a field below that claims the loop's network
    "local pickup": b"Received: by mx1.example.vn (Postfix, from userid 33)\r\n"
                    b"\tid 4XyZ1Q9993; Sun, 03 Nov 2024 15:00:01 +0700 (+07)\r\n"
                    b"Received: from fbl-out.promo-shop.example (fbl-out.promo-shop.example "
                    b"[192.0.2.44])\r\n\tby x with ESMTP; Sun, 03 Nov 2024 15:00:00 +0700\r\n",
}


@pytest.mark.parametrize("hop", sorted(FBL_HOPS))
def test_a_feedback_loop_network_is_only_the_client_our_mta_recorded(hop: str) -> None:
    """Only the client address in Postfix's own clause of our topmost Received field says
    where a report came from: never a HELO literal, never a field further down."""
    handler, store = fbl_intake(["promo-shop.example 192.0.2.0/24"], require_auth=False)
    asyncio.run(handler.accept_report("spam", "fbl@promo-shop.example",
                                      FBL_HOPS[hop] + fbl_report(sign=False)))
    [(c, _, unmatched)] = store.added
    assert unmatched and c.match == "no-delivery" and ListingPolicy().targets(c) == []
    handler, store = fbl_intake(["promo-shop.example 192.0.2.0/24"])
    reply = asyncio.run(handler.accept_report("spam", "fbl@promo-shop.example",
                                              FBL_HOPS[hop] + fbl_report(sign=False)))
    assert reply == REPLIES["auth_required"] and store.added == []


def test_a_feedback_loop_network_is_read_past_our_reinjection_hops() -> None:
    from spamwarden.reputation.feedback_loops import arrived_from, parse_feedback_loop

    loop = parse_feedback_loop("promo-shop.example 192.0.2.0/24")
    ours = ("Received", "from fbl-out.promo-shop.example (fbl-out.promo-shop.example "
                        "[192.0.2.44]) by mx1.example.vn (Postfix) with ESMTP id 4XyZ1Q9994")
    filt = ("Received", "from localhost (localhost [127.0.0.1]) by mx1.example.vn "
                        "(Postfix) with ESMTP id 4XyZ1Q9995")
    assert arrived_from(loop, [ours], own_hops=0)
    assert arrived_from(loop, [filt, ours], own_hops=1)
    assert not arrived_from(loop, [filt, ours], own_hops=0)  # never the next field down
    assert not arrived_from(loop, [], own_hops=0)
    assert not arrived_from(parse_feedback_loop("promo-shop.example"), [ours], own_hops=0)


def test_feedback_loop_entries_are_checked() -> None:
    from spamwarden.errors import ConfigError

    with pytest.raises(ConfigError):
        config_from_mapping({"intake": {"feedback_loops": ["fbl.example 300.0.0.0/8"]}})
    with pytest.raises(ConfigError):
        config_from_mapping({"intake": {"feedback_loops": [""]}})


def test_with_require_auth_only_a_verified_feedback_loop_needs_no_login() -> None:
    handler, store = fbl_intake(["promo-shop.example"], require_auth=True)
    unsigned = asyncio.run(handler.accept_report("spam", "fbl@promo-shop.example",
                                                 fbl_report(sign=False)))
    assert unsigned == REPLIES["auth_required"] and not store.added
    signed = asyncio.run(handler.accept_report("spam", "fbl@promo-shop.example",
                                               fbl_report(sign=True)))
    [(c, _, _)] = store.added
    assert signed == REPLIES["accepted"].format(id=c.id) and c.match == "fbl"


def test_a_login_without_a_domain_reports_as_its_mailbox_does() -> None:
    """report@ from the SASL login "alice" and a learn (IMAP move) by alice@example.vn of
    one delivered message are one person: one complaint, one rate limit, one quota."""
    ledger = MemoryDeliveryLedger([delivered("alice@example.vn")])
    handler, store = intake(ledger)
    raw = (REPORTS / "gmail-attached.eml").read_bytes()
    login = raw.replace(b"(Authenticated sender: alice@example.vn)",
                        b"(Authenticated sender: Alice)", 1)
    assert login != raw and handler.identify("alice@example.vn", login).id == "alice"
    asyncio.run(handler.accept_report("spam", "alice@example.vn", login))
    asyncio.run(handler.learn("spam", "alice@example.vn", ORIGINAL))
    [(a, _, _), (b, _, _)] = store.added
    assert a.match == b.match == "matched"
    assert a.reporter == b.reporter == "alice@example.vn" and a.id == b.id


def test_recipients_fold_like_reporters() -> None:
    """Intake folds a reporter's address extension and case (Alice+1@ is alice@), and a
    SASL login without a domain is the user at one of the local domains."""
    d = delivered("<Alice+News@Example.VN>", "report@example.vn",
                  skip_recipients=frozenset({"report@example.vn"}))
    assert d.recipients == ("alice@example.vn",)
    for reporter in ("alice@example.vn", "alice"):
        _, c, _, unmatched = report("gmail-attached.eml", reporter, MemoryDeliveryLedger([d]))
        assert c.match == "matched" and not unmatched, reporter
        # the complaint names the address the delivery was made to, for the login too
        assert c.delivered_to == "alice@example.vn", reporter


def test_a_delivery_keeps_every_link_domain_the_message_view_holds() -> None:
    """A spam whose own link comes after links to many other sites: the delivery keeps
    every link domain of the message (up to ParseLimits.max_urls), so reports of it
    still count against the spammer's. It kept the first 50."""
    body = " ".join([*(f"https://site{i}.example/" for i in range(79)),
                     "https://spam-shop.example/buy"])
    view = parse_message(b"From: a@promo-shop.example\r\nSubject: x\r\n\r\n" + body.encode())
    assert len(view.url_domains) == 80
    d = delivery_of(view, fingerprint=FP, client_ip="192.0.2.77", mail_from="", auth=None,
                    rcpts=["alice@example.vn"], at=1.0, delimiters="+")
    assert d is not None and d.url_domains == view.url_domains
    assert "spam-shop.example" in d.url_domains


def recorded(view: Any, *, ip: str = "192.0.2.77", at: float = 1_700_000_000.0,
             queue_id: str = "") -> Delivery:
    """The delivery the milter records for ``view`` to alice@example.vn
    (:func:`record_deliveries`: both fingerprints, as after a real reply)."""
    ledger = MemoryDeliveryLedger()
    env = Envelope(client_ip=ip, mail_from="bounce@promo-shop.example",
                   rcpts=["alice@example.vn"], queue_id=queue_id)
    assert record_deliveries(ledger, [(SimpleNamespace(view=view, auth=None), env)], now=at,
                             delimiters="+") == 1
    [d] = ledger.deliveries
    return d


# -- what a client forwards inline is its own text of the HTML -----------------------------


def _samples() -> Any:
    import importlib.util

    spec = importlib.util.spec_from_file_location("build_samples", REPORTS / "build_samples.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


#: the plain text Gmail (like Outlook and Thunderbird) writes from the HTML it forwards:
#: the HTML's text with each link's target after it, never the original's plain part
GMAIL_PLAIN_OF_HTML = (
    "*KHUYẾN MÃI LỚN* - giảm 50% tất cả sản phẩm!\n\n"
    "Mua ngay <https://promo-shop.example/sale?id=1>\n"
    "Xem thêm <http://click.tracker-net.example/c/abc123>\n"
)


def _alternative(plain: str | None) -> bytes:
    samples = _samples()
    if plain is None:
        ctype, body = "text/html; charset=UTF-8", samples.crlf(samples.HTML)
    else:
        ctype = 'multipart/alternative; boundary="b"'
        body = (b"--b\r\nContent-Type: text/plain; charset=UTF-8\r\n\r\n"
                + samples.crlf(plain) + b"\r\n--b\r\nContent-Type: text/html; charset=UTF-8"
                b"\r\n\r\n" + samples.crlf(samples.HTML) + b"\r\n--b--\r\n")
    head = samples.crlf(
        "From: Shop Deals <deals@promo-shop.example>\nTo: alice@example.vn\n"
        f"Subject: {samples.SUBJECT_RAW}\nMessage-ID: <alt-1@promo-shop.example>\n"
        f"MIME-Version: 1.0\nContent-Type: {ctype}\n")
    return head + b"\r\n" + body


@pytest.mark.parametrize("plain", [
    # the offer only in the HTML, filler in the plain part every client ignores
    "Xin chào quý khách, cảm ơn bạn đã đăng ký bản tin của chúng tôi.\n",
    # an honest plain part: the same offer, written with its links as text
    _samples().PLAIN,
    # no plain part at all
    None,
])
def test_an_inline_forward_of_the_html_matches_the_delivery(plain: str | None) -> None:
    """A client forwarding inline forwards the HTML it showed, and writes the forward's plain
    part from it itself: the report matches through the forward's HTML, whatever the
    delivered message's plain alternative said."""
    samples = _samples()
    view = parse_message(_alternative(plain))
    d = recorded(view, queue_id="4XALT1")
    handler, store = intake(MemoryDeliveryLedger([d]))
    raw = samples.gmail_inline(plain=GMAIL_PLAIN_OF_HTML, html=samples.HTML)
    reply = asyncio.run(handler.accept_report("spam", "alice@example.vn", raw))
    [(c, _, unmatched)] = store.added
    assert (c.match, c.delivery, unmatched) == ("matched", d.id, False), reply
    assert c.indicators.source_ip == "192.0.2.77"


@pytest.mark.parametrize("name", ["gmail-inline.eml", "outlook-inline.eml",
                                  "thunderbird-inline.eml"])
def test_an_inline_forward_read_from_its_html_has_the_delivered_html_fingerprint(
        name: str) -> None:
    """The sample's plain alternative has its links written out and a line its HTML lacks:
    read from the forward's HTML, the copy has the delivered HTML's fingerprint."""
    html_fp = delivered_html_fingerprint(VIEW)
    assert html_fp and html_fp != FP
    [original] = find_originals((REPORTS / name).read_bytes(), local_domains=["example.vn"])
    assert html_fingerprint(original) == html_fp
    assert fingerprint(original) == FP


def test_a_look_alike_sharing_only_the_html_takes_no_complaint_of_the_spam() -> None:
    """The HTML fingerprint is a content like the plain one: a later delivery with the same
    HTML (another plain part, other client) to the reporter is a candidate too, and only
    what both proved counts."""
    samples = _samples()
    spam_view = parse_message(_alternative("Xin chào.\n"))
    look_view = parse_message(_alternative("Một bản tin khác.\n"))
    assert delivered_html_fingerprint(spam_view) == delivered_html_fingerprint(look_view)

    spam = recorded(spam_view, ip="203.0.113.66", at=1.0)
    look = recorded(look_view, ip="198.51.100.99", at=2.0)
    handler, store = intake(MemoryDeliveryLedger([spam, look]))
    raw = samples.gmail_inline(plain=GMAIL_PLAIN_OF_HTML, html=samples.HTML)
    asyncio.run(handler.accept_report("spam", "alice@example.vn", raw))
    [(c, _, _)] = store.added
    assert c.match == "matched" and c.delivery not in (spam.id, look.id)
    assert c.indicators.source_ip is None


def test_ledger_records_of_other_versions_are_read() -> None:
    d = delivered("a@example.vn")
    old = {k: v for k, v in json.loads(d.to_json()).items() if k != "html_fingerprint"}
    assert Delivery.from_json(json.dumps(old)) == d
    newer = dict(json.loads(d.to_json()), some_later_field=1)
    assert Delivery.from_json(json.dumps(newer)) == d


def test_an_inline_forward_of_a_message_without_words_matches_the_delivery() -> None:
    """An image and a link, no text: the delivered fingerprint holds the Message-ID, which
    an inline forward loses; read from the forward's HTML the copy still matches."""
    samples = _samples()
    markup = ('<html><body><a href="https://promo-shop.example/sale"><img '
              'src="https://img.promo-shop.example/offer.png"></a></body></html>\n')
    raw = samples.crlf(
        "From: Shop Deals <deals@promo-shop.example>\nTo: alice@example.vn\nSubject: Offer\n"
        "Message-ID: <img-1@promo-shop.example>\nMIME-Version: 1.0\n"
        "Content-Type: text/html; charset=UTF-8\n\n" + markup)
    view = parse_message(raw)
    d = recorded(view)
    handler, store = intake(MemoryDeliveryLedger([d]))
    report_raw = samples.gmail_inline(
        plain="[image: offer.png] <https://promo-shop.example/sale>\n", html=markup,
        subject="Offer")
    reply = asyncio.run(handler.accept_report("spam", "alice@example.vn", report_raw))
    [(c, _, _)] = store.added
    assert (c.match, c.delivery) == ("matched", d.id), reply


@pytest.mark.parametrize("subject_words,name_words", [(160, 2), (2, 160), (160, 160)])
def test_an_inline_forward_of_a_long_subject_or_sender_name_matches(
        subject_words: int, name_words: int) -> None:
    """A spammer writes a Subject, or a From display name, of over 998 characters (folded,
    as RFC 5322 allows): the header block of an inline forward keeps it whole, and the
    report still matches its delivery. The copy rebuilt from the block cut each field at
    998 characters, so the subject, or the From address after the name, differed."""
    samples = _samples()
    subject = " ".join(f"Khuyến mãi {i}" for i in range(subject_words))
    name = " ".join(f"Shop{i}" for i in range(name_words))

    def folded(text: str) -> str:
        words = text.split()
        return "\n ".join(" ".join(words[i:i + 8]) for i in range(0, len(words), 8))

    raw = samples.crlf(
        f'From: "{folded(name)}" <deals@promo-shop.example>\nTo: alice@example.vn\n'
        f"Subject: {folded(subject)}\nMessage-ID: <long-1@promo-shop.example>\n"
        "MIME-Version: 1.0\nContent-Type: text/html; charset=UTF-8\n\n") + samples.crlf(
        samples.HTML)
    view = parse_message(raw)
    assert len(view.subject) > 998 or len(name) > 998
    d = recorded(view, queue_id="4XLONG1")
    handler, store = intake(MemoryDeliveryLedger([d]))
    forward = samples.gmail_inline(plain=GMAIL_PLAIN_OF_HTML, html=samples.HTML,
                                   subject=subject, sender=name)
    reply = asyncio.run(handler.accept_report("spam", "alice@example.vn", forward))
    [(c, _, unmatched)] = store.added
    assert (c.match, c.delivery, unmatched) == ("matched", d.id, False), reply


def test_an_inline_forward_of_a_long_encoded_subject_matches() -> None:
    """A Subject of encoded words longer than the 8,192 characters the parser decodes: the
    delivered view has the start of it, the forward's header block all of it, decoded.
    The fingerprint reads the first 256 characters of a subject, which both have."""
    import email.header

    samples = _samples()
    subject = " ".join(f"Khuyến mãi lớn số {i}" for i in range(400))
    encoded = email.header.Header(subject, "utf-8").encode(maxlinelen=76)
    assert len(encoded) > 8192
    raw = samples.crlf(
        "From: Shop Deals <deals@promo-shop.example>\nTo: alice@example.vn\n"
        f"Subject: {encoded}\nMessage-ID: <long-2@promo-shop.example>\n"
        "MIME-Version: 1.0\nContent-Type: text/html; charset=UTF-8\n\n") + samples.crlf(
        samples.HTML)
    view = parse_message(raw)
    assert 256 < len(view.subject) < len(subject)
    d = recorded(view, queue_id="4XLONG2")
    handler, store = intake(MemoryDeliveryLedger([d]))
    forward = samples.gmail_inline(plain=GMAIL_PLAIN_OF_HTML, html=samples.HTML, subject=subject)
    reply = asyncio.run(handler.accept_report("spam", "alice@example.vn", forward))
    [(c, _, unmatched)] = store.added
    assert (c.match, c.delivery, unmatched) == ("matched", d.id, False), reply
