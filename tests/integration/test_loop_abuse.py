"""The complaint loop against people who would abuse it, end to end on a real Redis: what
the milter records after accepting a message (delivery ledger, volume), the reports intake
takes, and what the listing worker then lists.

Each test is one attack: a report that can never be stored, one person counted as several,
one delivery counted as several complaints, a shared platform's outbound address listed."""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import Sequence
from types import SimpleNamespace
from typing import Any

import pytest

from spamwarden.config import Config, config_from_mapping
from spamwarden.mail import parse_message
from spamwarden.milter.interfaces import Envelope
from spamwarden.redisconn import async_client, sync_client
from spamwarden.reputation.deliveries import (
    RedisDeliveryLedger,
    RedisDeliveryLookup,
    record_deliveries,
)
from spamwarden.reputation.engine import ListingEngine
from spamwarden.reputation.intake import ComplaintIntake, RedisComplaintStore
from spamwarden.reputation.store import AsyncListingStore, ListingStore
from tests.support.unicode import cp1258_spelling

pytestmark = pytest.mark.integration

USERS = ("alice@example.org", "bob@example.org", "carol@example.org")


def site(url: str, *, local_domains: Sequence[str] = ("example.org",),
         **reputation: Any) -> Config:
    return config_from_mapping({
        "redis": {"url": url},
        "intake": {"local_domains": list(local_domains)},
        "reputation": {"min_reporters": 3, "require_delivered": True, **reputation},
    })


def auth(*, spf_domain: str = "", dkim: Sequence[str] = (), from_domain: str = "") -> Any:
    """What the milter's checks proved: SPF pass for ``spf_domain``, DKIM pass for each
    of ``dkim``, DMARC pass for ``from_domain`` (each only when given)."""
    return SimpleNamespace(
        spf=SimpleNamespace(result="pass" if spf_domain else "none", scope="mailfrom",
                            domain=spf_domain),
        dkim=tuple(SimpleNamespace(result="pass", domain=d) for d in dkim),
        dmarc=SimpleNamespace(result="pass" if from_domain else "none",
                              from_domain=from_domain))


def deliver(cfg: Config, raw: bytes, *, ip: str, mail_from: str, rcpts: Sequence[str],
            proved: Any = None, queue_id: str = "4XQ1") -> None:
    """What the milter's after-reply stage records for an accepted message."""
    client = sync_client(cfg)
    try:
        env = Envelope(client_ip=ip, mail_from=mail_from, rcpts=list(rcpts), queue_id=queue_id)
        verdict = SimpleNamespace(view=parse_message(raw), auth=proved)
        skip = frozenset(cfg.intake.expand_address(cfg.intake.report_address))
        assert record_deliveries(RedisDeliveryLedger(client, ttl=7 * 86400),
                                 [(verdict, env)], skip_recipients=skip, delimiters="+") == 1
    finally:
        client.close()


def submitted(login: str, subject: str, content_type: str, body: str) -> bytes:
    """A message to report@ as our Postfix hands it to intake: ``login`` submitted it
    (SASL), our Received field on top."""
    return (
        f"Received: from client.example.net (client.example.net [203.0.113.50])\r\n"
        f"\t(Authenticated sender: {login})\r\n"
        f"\tby mail.example.org (Postfix) with ESMTPSA id 4Xr{uuid.uuid4().hex[:8]}\r\n"
        f"\tfor <report@example.org>; Mon, 04 Nov 2024 08:15:02 +0700\r\n"
        f"From: {login}\r\nTo: report@example.org\r\nSubject: {subject}\r\n"
        f"Message-ID: <{uuid.uuid4().hex}@example.org>\r\nMIME-Version: 1.0\r\n"
        f"Content-Type: {content_type}\r\n\r\n{body}"
    ).encode()


def forwarded(login: str, original: bytes) -> bytes:
    """``login``'s report with the original attached."""
    return submitted(login, "Fwd: spam", 'multipart/mixed; boundary="BB"',
                     "--BB\r\nContent-Type: text/plain\r\n\r\nspam\r\n"
                     "--BB\r\nContent-Type: message/rfc822\r\n\r\n"
                     ) + original + b"\r\n--BB--\r\n"


def report(cfg: Config, reporter: str, raw: bytes) -> str:
    """``reporter``'s report through intake: the reply."""
    async def go() -> str:
        client = async_client(cfg)
        try:
            store = RedisComplaintStore(client, seen_ttl=cfg.reputation.window,
                                        training_ttl=cfg.reputation.training_ttl)
            intake = ComplaintIntake(cfg, store, deliveries=RedisDeliveryLookup(client))
            return await intake.accept_report("spam", reporter, raw)
        finally:
            await client.aclose()
    return asyncio.run(go())


def listed(cfg: Config) -> set[str]:
    """What the listing worker lists from the complaints so far."""
    async def drain() -> None:
        store = AsyncListingStore.from_config(cfg)
        try:
            engine = ListingEngine.from_config(cfg, store, consumer="t1")
            await engine.setup()
            for _ in range(100):
                if await engine.run_once(block_ms=50) == 0:
                    break
        finally:
            await store.aclose()
    asyncio.run(drain())
    return {x.key for x in ListingStore.from_config(cfg).all(now=time.time())}


def test_a_raw_8bit_octet_in_the_message_id_does_not_make_the_spam_unreportable(
    redis_url: str
) -> None:
    """The parser keeps a raw octet as a lone surrogate, which Redis cannot take: every
    report of such a spam was answered 451, the MTA retried it until it bounced, and the
    sender was never listed."""
    cfg = site(redis_url)
    spam = (b"From: Deals <deals@spammer.example>\r\nTo: undisclosed-recipients:;\r\n"
            b"Subject: Cheap \xe9watches\r\nMessage-ID: <\xff1234@spammer.example>\r\n"
            b"Date: Mon, 04 Nov 2024 08:00:00 +0000\r\nContent-Type: text/plain\r\n\r\n"
            b"Buy now at https://www.spam-shop.example/shop and save big today\r\n")
    deliver(cfg, spam, ip="203.0.113.66", mail_from="b@spammer.example", rcpts=USERS)
    replies = [report(cfg, u, forwarded(u, spam)) for u in USERS]
    assert all(r.startswith("250 ") for r in replies), replies
    assert {"203.0.113.66", "spam-shop.example"} <= listed(cfg)


def test_spam_from_one_freemail_account_does_not_list_the_platforms_outbound_address(
    redis_url: str
) -> None:
    """SPF passed for gmail.com: the client address is one Google's record names, which
    every other account sends from too. The account is listed, not the address."""
    cfg = site(redis_url)
    google = "209.85.220.41"
    ListingStore.from_config(cfg).record_volume_counts({google: 1000, "gmail.com": 1000},
                                                       now=time.time())
    spam = (b"From: Joe <spammer.joe@gmail.com>\r\nTo: undisclosed-recipients:;\r\n"
            b"Subject: Investment opportunity\r\nMessage-ID: <CAF1@mail.gmail.com>\r\n"
            b"Date: Mon, 04 Nov 2024 08:00:00 +0000\r\nContent-Type: text/plain\r\n\r\n"
            b"Double your money, reply now.\r\n")
    deliver(cfg, spam, ip=google, mail_from="spammer.joe@gmail.com", rcpts=USERS,
            proved=auth(spf_domain="gmail.com", dkim=["gmail.com"], from_domain="gmail.com"))
    assert all(report(cfg, u, forwarded(u, spam)).startswith("250 ") for u in USERS)
    assert listed(cfg) == {"spammer.joe@gmail.com"}
    # the same spam from an address no shared platform's SPF names is listed by address
    other = spam.replace(b"CAF1", b"CAF2").replace(b"Double", b"Triple")
    deliver(cfg, other, ip="198.51.100.7", mail_from="spammer.joe@gmail.com", rcpts=USERS,
            proved=auth(dkim=["gmail.com"], from_domain="gmail.com"), queue_id="4XQ2")
    assert all(report(cfg, u, forwarded(u, other)).startswith("250 ") for u in USERS)
    assert listed(cfg) == {"spammer.joe@gmail.com", "198.51.100.7"}


def _arf(login: str, original: bytes, arrival: int) -> bytes:
    """``login``'s ARF report of ``original`` with its header section only, the
    Arrival-Date (which the reporter writes) ``arrival`` seconds past 08:00."""
    header = original.split(b"\r\n\r\n")[0].decode()
    return submitted(
        login, "abuse report", 'multipart/report; report-type=feedback-report; boundary="R"',
        f"--R\r\nContent-Type: text/plain\r\n\r\nspam\r\n"
        f"--R\r\nContent-Type: message/feedback-report\r\n\r\nFeedback-Type: abuse\r\n"
        f"Version: 1\r\nArrival-Date: Mon, 04 Nov 2024 08:{arrival // 60:02d}:{arrival % 60:02d}"
        f" +0000\r\n\r\n--R\r\nContent-Type: text/rfc822-headers\r\n\r\n{header}\r\n\r\n--R--\r\n")


def test_one_reporter_counts_one_complaint_per_delivery_however_the_copy_is_sent(
    redis_url: str
) -> None:
    """Three users each received one newsletter of a large sender (10,000 messages here
    this week). Their three reports stay under the complaint rate; sending the same
    delivery again as headers-only ARF reports with other Arrival-Dates made a complaint
    of each variant, and twelve more listed the sender."""
    cfg = site(redis_url)
    ip = "192.0.2.25"
    ListingStore.from_config(cfg).record_volume_counts({ip: 10_000, "bigbank.example": 10_000},
                                                       now=time.time())
    news = (b"From: BigBank <news@bigbank.example>\r\nSubject: Your November statement\r\n"
            b"Message-ID: <nov-2024-123@bigbank.example>\r\n"
            b"Date: Mon, 04 Nov 2024 08:00:00 +0000\r\nContent-Type: text/plain\r\n\r\n"
            b"Your statement is ready at https://www.bigbank.example/login\r\n")
    deliver(cfg, news, ip=ip, mail_from="bounce@bigbank.example", rcpts=USERS,
            proved=auth(spf_domain="bigbank.example", dkim=["bigbank.example"],
                        from_domain="bigbank.example"))
    first = [report(cfg, u, forwarded(u, news)) for u in USERS]
    assert all(r.startswith("250 2.0.0 Report accepted as ") for r in first), first
    assert listed(cfg) == set()
    again = [report(cfg, u, _arf(u, news, n)) for u in USERS for n in range(4)]
    assert all(r.startswith("250 2.0.0 Report already received as ") for r in again), again
    assert listed(cfg) == set()


def test_a_login_without_a_domain_is_one_reporter_at_every_local_domain(
    redis_url: str
) -> None:
    """One SASL login ("mallory") owns mallory@ at three local domains. She sends herself
    one spam linking to a competitor at all three and reports each copy: she was counted
    once per domain, three reporters, and the competitor was listed."""
    domains = ("example.org", "example.net", "example.com")
    cfg = site(redis_url, local_domains=domains)
    spam = (b"From: Deals <deals@throwaway.example>\r\nTo: mallory@example.org\r\n"
            b"Subject: Cheap watches\r\nMessage-ID: <m1@throwaway.example>\r\n"
            b"Date: Mon, 04 Nov 2024 08:00:00 +0000\r\nContent-Type: text/plain\r\n\r\n"
            b"Buy now at https://www.victim.example/shop and save big today\r\n")
    mailboxes = [f"mallory@{d}" for d in domains]
    deliver(cfg, spam, ip="198.51.100.23", mail_from="deals@throwaway.example", rcpts=mailboxes)
    replies = [report(cfg, m, forwarded("mallory", spam)) for m in mailboxes]
    assert replies[0].startswith("250 2.0.0 Report accepted as "), replies
    assert all(r.startswith("250 2.0.0 Report already received as ") for r in replies[1:]), replies
    assert listed(cfg) == set()


def _watches(href: str, message_id: str | None) -> bytes:
    return (
        "From: Deals <deals@spammer.example>\r\nTo: undisclosed-recipients:;\r\n"
        "Subject: Cheap watches today\r\n"
        + (f"Message-ID: <{message_id}>\r\n" if message_id else "")
        + "Date: Mon, 04 Nov 2024 08:00:00 +0000\r\nMIME-Version: 1.0\r\n"
        "Content-Type: text/html; charset=utf-8\r\n\r\n"
        "<html><body><p>Genuine replica watches, 90% off.</p>"
        f"<p><a href=\"https://{href}/buy\">Click here to order</a></p></body></html>\r\n"
    ).encode()


def _inline(login: str) -> bytes:
    """``login`` forwards the watches spam inline as plain text: the links are gone."""
    return submitted(
        login, "Fwd: Cheap watches today", "text/plain; charset=utf-8",
        f"\r\n---------- Forwarded message ---------\r\n"
        f"From: Deals <deals@spammer.example>\r\nDate: Mon, 4 Nov 2024 at 08:00\r\n"
        f"Subject: Cheap watches today\r\nTo: <{login}>\r\n\r\n"
        f"Genuine replica watches, 90% off.\r\n\r\nClick here to order\r\n")


SPAMMER = auth(spf_domain="spammer.example", dkim=["spammer.example"],
               from_domain="spammer.example")
SPAMMERS_NAMES = {"203.0.113.66", "spam-shop.example", "spammer.example"}


@pytest.mark.parametrize("how", ["attached", "attached, no Message-ID",
                                 "look-alike reuses the Message-ID", "inline"])
def test_a_look_alike_sent_after_the_spam_does_not_take_its_complaints(
    redis_url: str, how: str
) -> None:
    """The spam S comes from the spammer's own address and domain, linking to its shop. A
    minute later a look-alike S' reaches the same people: the same text, From and Subject
    (so the same fingerprint), from a throwaway address, linking to a victim's site. The
    ledger kept the newest delivery per fingerprint and recipient, so reports of S counted
    against S': the throwaway address and the victim were listed, the spammer never."""
    cfg = site(redis_url)
    mid = None if how == "attached, no Message-ID" else "s-1@spammer.example"
    spam = _watches("www.spam-shop.example", mid)
    look_alike = _watches("www.victim.example", mid if how.startswith("look-alike") or mid is None
                          else "s-2@spammer.example")
    deliver(cfg, spam, ip="203.0.113.66", mail_from="b@spammer.example", rcpts=USERS,
            proved=SPAMMER, queue_id="4XQS1")
    deliver(cfg, look_alike, ip="198.51.100.99", mail_from="x@throwaway.example", rcpts=USERS,
            queue_id="4XQS2")
    replies = [report(cfg, u, _inline(u) if how == "inline" else forwarded(u, spam))
               for u in USERS]
    assert all(r.startswith("250 2.0.0 Report accepted as ") for r in replies), replies
    got = listed(cfg)
    assert not got & {"198.51.100.99", "victim.example", "throwaway.example"}
    if how == "inline":  # nothing in the copy tells the two apart: what both proved counts
        assert got == set()
    else:  # the copy's link tells
        assert got == SPAMMERS_NAMES


def test_our_queue_id_in_an_attached_copy_tells_apart_deliveries_of_one_message(
    redis_url: str
) -> None:
    """The same spam, links and all, from two addresses: the copies users attach carry
    the Received field our MTA wrote at delivery, which names the queue id."""
    cfg = site(redis_url)
    spam = _watches("www.spam-shop.example", None)
    deliver(cfg, spam, ip="203.0.113.66", mail_from="b@spammer.example", rcpts=USERS,
            proved=SPAMMER, queue_id="4XQS1ab")
    deliver(cfg, spam, ip="198.51.100.99", mail_from="x@throwaway.example", rcpts=USERS,
            queue_id="4XQS2cd")
    ours = (b"Received: from mx.spammer.example (mx.spammer.example [203.0.113.66])\r\n"
            b"\tby mail.example.org (Postfix) with ESMTPS id 4XQS1ab\r\n"
            b"\tfor <alice@example.org>; Mon, 04 Nov 2024 08:00:02 +0700\r\n")
    assert all(report(cfg, u, forwarded(u, ours + spam)).startswith("250 ") for u in USERS)
    assert listed(cfg) == SPAMMERS_NAMES


@pytest.mark.parametrize(("rate", "names"), [
    (0.001, {"watch-shop.example"}),
    (0.0, {"watch-shop.example", "203.0.113.77", "padder.example"}),
])
def test_volume_padding_keeps_the_sender_unlisted_but_not_its_links(
    redis_url: str, rate: float, names: set[str]
) -> None:
    """A sender pads its client address's and domain's volume with 10,000 harmless
    messages this week, then sends its spam to three users, who report it. Three
    complaints over 10,000 messages stay under ``reputation.min_complaint_rate``: the
    address and domain are not listed (the limit docs/operations.md states). The shop the
    spam links to has no volume (a link is not a sender), so it is listed on the three
    reporters alone: padding the sender does not shield what the spam sells. A site that
    sees padding sets the rate to 0, and lists on reporters alone."""
    cfg = site(redis_url, min_complaint_rate=rate)
    ip = "203.0.113.77"
    ListingStore.from_config(cfg).record_volume_counts({ip: 10_000, "padder.example": 10_000},
                                                       now=time.time())
    spam = (b"From: Deals <deals@padder.example>\r\nTo: undisclosed-recipients:;\r\n"
            b"Subject: Cheap watches\r\nMessage-ID: <pad1@padder.example>\r\n"
            b"Date: Mon, 04 Nov 2024 08:00:00 +0000\r\nContent-Type: text/plain\r\n\r\n"
            b"Buy now at https://www.watch-shop.example/buy and save big today\r\n")
    deliver(cfg, spam, ip=ip, mail_from="b@padder.example", rcpts=USERS,
            proved=auth(spf_domain="padder.example", dkim=["padder.example"],
                        from_domain="padder.example"))
    assert all(report(cfg, u, forwarded(u, spam)).startswith("250 ") for u in USERS)
    assert listed(cfg) == names


def test_a_windows_1258_spam_forwarded_inline_as_composed_text_is_matched(
    redis_url: str
) -> None:
    """A Vietnamese spam in windows-1258 (tone marks as combining characters after the
    letter), forwarded inline by each user as UTF-8 with composed letters: the same
    text, spelled the other way. The words split at every combining mark of the
    delivered text, the fingerprints differed, and no report matched: nothing was
    listed."""
    import base64

    cfg = site(redis_url)
    subject = "Khuyến mãi đặc biệt"
    text = ("Giảm giá 90% tất cả đồng hồ. Đặt hàng ngay tại "
            "https://www.dong-ho-re.example/mua hôm nay.\r\n")
    encoded = base64.b64encode(cp1258_spelling(subject).encode("cp1258")).decode()
    spam = ("From: Deals <deals@spammer.example>\r\nTo: undisclosed-recipients:;\r\n"
            f"Subject: =?windows-1258?B?{encoded}?=\r\nMessage-ID: <vn1@spammer.example>\r\n"
            "Date: Mon, 04 Nov 2024 08:00:00 +0000\r\nMIME-Version: 1.0\r\n"
            "Content-Type: text/plain; charset=windows-1258\r\n"
            "Content-Transfer-Encoding: 8bit\r\n\r\n").encode() + cp1258_spelling(
                text).encode("cp1258")
    deliver(cfg, spam, ip="203.0.113.66", mail_from="b@spammer.example", rcpts=USERS,
            proved=SPAMMER)

    def inline(login: str) -> bytes:
        return submitted(
            login, "Fwd: spam", "text/plain; charset=utf-8",
            f"\r\n---------- Forwarded message ---------\r\n"
            f"From: Deals <deals@spammer.example>\r\nDate: Mon, 4 Nov 2024 at 08:00\r\n"
            f"Subject: {subject}\r\nTo: <{login}>\r\n\r\n{text}")

    replies = [report(cfg, u, inline(u)) for u in USERS]
    assert all(r.startswith("250 2.0.0 Report accepted as ") for r in replies), replies
    assert listed(cfg) == {"203.0.113.66", "spammer.example", "dong-ho-re.example"}
