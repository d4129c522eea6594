"""Pure parts of the listing store and model: key kinds, addresses, candidate keys,
volume buckets, import lines, change entries."""

from __future__ import annotations

from dataclasses import replace

import pytest

from spamwarden.reputation.complaints import Complaint, Indicators
from spamwarden.reputation.engine import MAX_URL_DOMAINS, ListingPolicy
from spamwarden.reputation.listings import (
    ListingChange,
    normalize_address,
    normalize_key,
    operator_reason,
    reason_code,
)
from spamwarden.reputation.store import VOLUME_BUCKETS, candidate_keys, iter_lines, volume_keys


@pytest.mark.parametrize("text,expected", [
    ("192.0.2.1", ("192.0.2.1", "ip")),
    ("192.0.2.9/24", ("192.0.2.0/24", "cidr")),
    ("2001:DB8::1/128", ("2001:db8::1", "ip")),
    ("Example.COM.", ("example.com", "domain")),
    ("<Joe.Bloggs@Gmail.COM>", ("joe.bloggs@gmail.com", "address")),
    ("ü@bücher.example", None),
    ("a b@example.com", None),
    ("@example.com", None),
    ("x@@example.com", None),
    ("localhost", None),
])
def test_normalize_key(text: str, expected: tuple[str, str] | None) -> None:
    if expected is None:
        with pytest.raises(ValueError):
            normalize_key(text)
    else:
        assert normalize_key(text) == expected


def test_address_domain_is_idna() -> None:
    assert normalize_address("Info@Bücher.example") == "info@xn--bcher-kva.example"


def test_operator_reasons_and_codes() -> None:
    assert [operator_reason(k) for k in ("ip", "cidr", "domain", "address")] == [
        "manual", "manual", "domain-manual", "address-manual"]
    assert operator_reason("domain", imported=True) == "domain-imported"
    assert reason_code("address-complaints", "address") == "127.0.2.2"
    assert reason_code("whatever", "address") == "127.0.2.3"


def test_candidate_keys_ipv6_covers_every_prefix() -> None:
    c = candidate_keys("2001:db8::1")
    assert c[0] == "2001:db8::1" and "2001:db8::/32" in c and "2001::/16" in c
    assert len(c) == 1 + 112
    assert candidate_keys("10.0.0.0/8") == ["10.0.0.0/8"]


def test_volume_keys_cover_the_window_in_buckets() -> None:
    window = 24 * 3600.0
    keys = volume_keys("x.example", 1_800_000_000.0, window)
    assert len(keys) == VOLUME_BUCKETS
    assert all(k.startswith("sw:{sw}:vol:x.example:") for k in keys)
    later = volume_keys("x.example", 1_800_000_000.0 + 3600, window)
    assert later[:-1] == keys[1:]


def test_import_lines_skip_comments_and_trailing_text() -> None:
    lines = ["# list", "", "  192.0.2.1  ", "spam.example :127.0.0.2:why", "x.example # note"]
    assert list(iter_lines(lines)) == ["192.0.2.1", "spam.example", "x.example"]


def test_change_fields_round_trip() -> None:
    ch = ListingChange("listed", "spam.example", "domain", "domain-manual", "127.0.1.5",
                       1.5, 2.25, 7, note="why")
    back = ListingChange.from_fields(b"1-0", {k.encode(): v.encode() for k, v in ch.to_fields().items()})
    assert back == ListingChange("listed", "spam.example", "domain", "domain-manual", "127.0.1.5",
                                 1.5, 2.25, 7, stream_id="1-0", note="why")
    with pytest.raises(ValueError):
        ListingChange.from_fields("1-0", {"op": "listed"})
    with pytest.raises(ValueError):
        ListingChange.from_fields("1-0", {**ch.to_fields(), "op": "bogus"})


def test_targets_are_bounded() -> None:
    urls = tuple(f"d{i}.example" for i in range(1000))
    c = Complaint(id="c", kind="spam", reporter="u@x.example", received_at=1.0, fingerprint="f",
                  indicators=Indicators(url_domains=urls), match="matched")
    assert len(ListingPolicy().targets(c)) == MAX_URL_DOMAINS


def test_the_from_a_reporter_saw_is_never_a_listing_target() -> None:
    """A phish claiming a brand: the delivery proved only its client address; the From
    the reporter saw rides along for their own refusal of an advertiser, and lists nothing."""
    seen = Indicators(source_ip="203.0.113.99", seen_from_domain="brand.test",
                      ad_label="[QC]")
    c = Complaint(id="c1", kind="spam", reporter="alice@example.vn", received_at=1.0,
                  fingerprint="f", indicators=seen, match="matched", delivery="d1")
    assert [t.key for t in ListingPolicy().targets(c)] == ["203.0.113.99"]
    back = Complaint.from_fields(c.to_fields())
    assert back.indicators.seen_from_domain == "brand.test"


def test_complaint_fields_are_text_redis_can_take() -> None:
    """A raw 8-bit octet of the reported copy's Message-ID or Subject is kept by the parser
    as a lone surrogate: the stream entry has ``?`` there, and reads back."""
    c = Complaint(id="c1", kind="spam", reporter="alice@example.vn", received_at=1.0,
                  fingerprint="f", indicators=Indicators(subject="Cheap \udce9watches",
                                                         url_domains=("shop\udcff.example",)),
                  match="matched", message_id="\udcff1234@spammer.example")
    fields = c.to_fields()
    for value in fields.values():
        value.encode("utf-8")  # (raises for a lone surrogate)
    back = Complaint.from_fields({k.encode(): v.encode("utf-8") for k, v in fields.items()})
    assert back.message_id == "?1234@spammer.example"
    assert back.indicators.subject == "Cheap ?watches"
    assert back.indicators.url_domains == ("shop?.example",)


def test_a_shared_platforms_spf_authorised_address_is_not_a_target_only_when_proven() -> None:
    """SPF passed at delivery for gmail.com: the address is Google's, the account is the
    target. A copy that only claims a gmail.com envelope (unproven) keeps its address."""
    ind = Indicators(source_ip="209.85.220.41", mail_from_domain="gmail.com",
                     from_domain="gmail.com", from_address="joe@gmail.com")
    proven = Complaint(id="c1", kind="spam", reporter="alice@example.vn", received_at=1.0,
                       fingerprint="f", indicators=ind, match="matched", delivery="d1")
    policy = ListingPolicy(shared_domains=["gmail.com"])
    assert [t.key for t in policy.targets(proven)] == ["joe@gmail.com"]
    sub = Indicators(source_ip="209.85.220.41", mail_from_domain="bounce.mail.gmail.com")
    assert policy.targets(replace(proven, indicators=sub)) == []
    claimed = replace(proven, match="no-delivery")
    unproven = ListingPolicy(shared_domains=["gmail.com"], require_delivered=False)
    assert [t.key for t in unproven.targets(claimed)] == [
        "209.85.220.41", "joe@gmail.com"]
    # any other SPF-authorised sender's address counts as before
    own = Indicators(source_ip="192.0.2.25", mail_from_domain="bigbank.example")
    assert [t.key for t in policy.targets(replace(proven, indicators=own))] == [
        "192.0.2.25", "bigbank.example"]
