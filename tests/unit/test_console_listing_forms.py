"""The console's listing search and duration checks (pure functions)."""

from __future__ import annotations

import pytest

from spamwarden.api.console.listings import MAX_PAGE_SIZE, ListingQuery, form_ttl
from spamwarden.reputation.listings import Listing


def test_durations_are_the_api_s_and_bounded() -> None:
    assert form_ttl("7d", required=True) == 7 * 86400
    assert form_ttl(" 36h ", required=False) == 36 * 3600
    assert form_ttl("90", required=True) == 90
    assert form_ttl("365d", required=True) == 365 * 86400
    assert form_ttl("", required=False) is None
    for text, message in (("", "a duration is required"), ("366d", "at most 365 days"),
                          ("0", "more than 0"), ("-1d", "ttl: expected"),
                          ("forever", "ttl: expected"), ("1y", "ttl: expected")):
        with pytest.raises(ValueError, match=message):
            form_ttl(text, required=True)


def test_search_is_bounded_and_ignores_what_it_does_not_know() -> None:
    q = ListingQuery.from_query({"q": "  Shop.EXAMPLE " + "x" * 400, "kind": "bogus",
                                 "reason": "<script>", "page": "0", "size": "100000"})
    assert len(q.q) == 300 and q.q.startswith("shop.example")
    assert (q.kind, q.reason, q.page, q.size) == ("", "", 1, MAX_PAGE_SIZE)
    q = ListingQuery.from_query({"page": "x", "size": "-5"})
    assert (q.page, q.size) == (1, 1)
    assert ListingQuery.from_query({"size": "junk"}).size == 100


def test_search_matches_key_substring_kind_and_reason() -> None:
    shop = Listing("shop.example", "domain", "domain-manual", 0.0, 10.0)
    ip = Listing("192.0.2.1", "ip", "manual", 0.0, 10.0)
    assert ListingQuery(q="shop").matches(shop) and not ListingQuery(q="shop").matches(ip)
    assert ListingQuery(kind="ip").matches(ip) and not ListingQuery(kind="ip").matches(shop)
    assert not ListingQuery(q="shop", reason="manual").matches(shop)
    assert ListingQuery().url(page=3) == "/ui/listings?page=3"
    assert ListingQuery(q="a b", kind="ip", size=50).url() == "/ui/listings?q=a+b&kind=ip&size=50"


@pytest.mark.parametrize("text", ["192.0.2.1", "2001:DB8::1", "::ffff:192.0.2.1", "2001:db8::/32",
                                  "10.0.0.0/8", "192.0.2.7/32", "shop.example", "1.2.3.4.5",
                                  "1.2.3.example", "0x7f.1.example", "user@shop.example",
                                  "Bücher.example", "999.1.1.1"])
def test_key_kind_reads_the_kind_normalize_key_gives(text: str) -> None:
    from spamwarden.api.console.listings import key_kind
    from spamwarden.reputation.listings import normalize_key

    key, kind = normalize_key(text)
    assert key_kind(key) == kind
