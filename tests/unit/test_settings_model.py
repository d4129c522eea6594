"""Recipient settings and sender lists, the pure part (spamwarden/settings/model.py) and
the milter's cached snapshot (SettingsCache) over a fake store."""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable

import pytest

from spamwarden.errors import StoreError
from spamwarden.settings.model import (
    Identity,
    Overrides,
    SettingsError,
    SettingsSnapshot,
    Thresholds,
    parse_entry,
    parse_overrides,
    parse_target,
)
from spamwarden.settings.store import SettingsCache

BASE = Thresholds(5.0, 10.0, 15.0)


# -- entries and targets -----------------------------------------------------------------------


@pytest.mark.parametrize(("text", "parsed"), [
    ("192.0.2.7", ("cidr", "192.0.2.7/32")),
    ("192.0.2.7/24", ("cidr", "192.0.2.0/24")),
    ("cidr:2001:DB8::1/32", ("cidr", "2001:db8::/32")),
    ("2001:db8::5", ("cidr", "2001:db8::5/128")),
    ("dkim:Partner.EXAMPLE.", ("dkim", "partner.example")),
    ("partner.example", ("domain", "partner.example")),
    ("domain:bücher.example", ("domain", "xn--bcher-kva.example")),
    ("News@Shop.Example", ("address", "news@shop.example")),
    ("address:<news@shop.example>", ("address", "news@shop.example")),
])
def test_entries_are_normalised(text: str, parsed: tuple[str, str]) -> None:
    assert parse_entry(text) == parsed


@pytest.mark.parametrize(("text", "why"), [
    ("cidr:300.1.2.3/8", "not an IP address or network"),
    ("cidr:10.0.0.0/33", "not an IP address or network"),
    ("cidr:partner.example", "not an IP address or network"),
    ("2001:db8::/129", "not an IP address or network"),
    ("300.1.2.3", "not an IP address or network"),
    ("dkim:not a domain", "not a domain name"),
    ("dkim:localhost", "not a domain name"),
    ("foo:bar", "unknown entry kind 'foo'"),
    ("", "required"),
    ("a" * 65 + "@example.org", "local part"),
    ("a@" + "b" * 300 + ".example", "longer than"),
    ("x" * 60 + "@" + ".".join(["d" * 60] * 4) + ".example", "longer than 254"),
])
def test_bad_entries_say_what_was_expected(text: str, why: str) -> None:
    with pytest.raises(SettingsError, match=why):
        parse_entry(text)


def test_targets_are_addresses_or_domains() -> None:
    assert parse_target("<CEO@Example.ORG>") == "ceo@example.org"
    assert parse_target("Example.org.") == "example.org"
    for bad, why in (("", "required"), ("no spaces.example org", "not a domain"),
                     ("@example.org", "not a mail address"),
                     ("a" * 250 + "@example.org", "longer than 254")):
        with pytest.raises(SettingsError, match=why):
            parse_target(bad)


def test_overrides_are_bounded_numbers() -> None:
    assert parse_overrides({"tag_threshold": 3, "reject_threshold": None}) == Overrides(3.0)
    for bad, why in (({}, "at least one"), ({"tag": 3}, "unknown setting 'tag'"),
                     ({"tag_threshold": True}, "must be a number"),
                     ({"tag_threshold": "3"}, "must be a number"),
                     ({"tag_threshold": float("nan")}, "from -1000 to 1000"),
                     ({"reject_threshold": float("inf")}, "from -1000 to 1000"),
                     ({"reject_threshold": 1e6}, "from -1000 to 1000")):
        with pytest.raises(SettingsError, match=why):
            parse_overrides(bad)  # type: ignore[arg-type]


# -- recipient thresholds ----------------------------------------------------------------------


def test_thresholds_cascade_from_policy_to_domain_to_address() -> None:
    snap = SettingsSnapshot({
        "example.org": Overrides(reject_threshold=12.0),
        "sales.example.org": Overrides(tag_threshold=4.0),
        "ceo@sales.example.org": Overrides(tag_threshold=2.0),
    })
    assert snap.thresholds("someone@other.example", BASE, delimiters="+") == BASE
    assert snap.thresholds("a@example.org", BASE, delimiters="+") == Thresholds(5.0, 10.0, 12.0)
    t = snap.thresholds("a@sales.example.org", BASE, delimiters="+")
    assert t == Thresholds(4.0, 10.0, 12.0)
    assert t.sources == ("example.org", "sales.example.org")
    ceo = snap.thresholds("<CEO+news@Sales.Example.org>", BASE, delimiters="+")
    assert ceo == Thresholds(2.0, 10.0, 12.0)
    assert ceo.sources == ("example.org", "sales.example.org", "ceo@sales.example.org")
    # a subdomain below a setting inherits it; a sibling does not
    assert snap.thresholds("x@deep.sales.example.org", BASE, delimiters="+").tag_threshold == 4.0
    assert snap.thresholds("x@notsales.example.org", BASE, delimiters="+").tag_threshold == 5.0
    # a bare domain: what its addresses get, an address's own settings left out
    assert snap.thresholds("sales.example.org", BASE, delimiters="+") == Thresholds(4.0, 10.0, 12.0)
    postmaster = SettingsSnapshot({"postmaster@example.org": Overrides(tag_threshold=1.0)})
    assert postmaster.thresholds("example.org", BASE, delimiters="+") == BASE


def test_an_idn_recipient_finds_its_a_label_target() -> None:
    snap = SettingsSnapshot({parse_target("bücher.example"): Overrides(tag_threshold=1.0),
                             parse_target("anna@bücher.example"): Overrides(reject_threshold=9.0)})
    assert (snap.thresholds("anna@Bücher.example", BASE, delimiters="+")
            == Thresholds(1.0, 10.0, 9.0))


def test_equal_thresholds_from_different_entries_compare_equal() -> None:
    snap = SettingsSnapshot({"a.example": Overrides(tag_threshold=3.0),
                             "b.example": Overrides(tag_threshold=3.0)})
    def at(rcpt: str) -> Thresholds:
        return snap.thresholds(rcpt, BASE, delimiters="+")

    assert at("x@a.example") == at("y@b.example")
    assert at("x@a.example") != at("y@c.example")


# -- allow and deny ----------------------------------------------------------------------------


def lists(allow: Iterable[str] = (), deny: Iterable[str] = ()) -> SettingsSnapshot:
    return SettingsSnapshot(allow=[parse_entry(a) for a in allow],
                            deny=[parse_entry(d) for d in deny])


FORGED = Identity(client_ip="203.0.113.9", mail_from="bounce@spammer.example",
                  from_address="billing@partner.example", from_domain="partner.example",
                  from_authenticated=False, dkim_domains=())


def test_forged_from_of_an_allowed_domain_or_address_is_not_allowed() -> None:
    snap = lists(allow=["domain:partner.example", "billing@partner.example"])
    assert snap.allowed(FORGED) == ""
    real = dataclasses.replace(FORGED, mail_from="bounce@partner.example",
                               from_authenticated=True)
    assert snap.allowed(real) == "address:billing@partner.example"
    only_domain = lists(allow=["partner.example"])
    assert only_domain.allowed(real) == "domain:partner.example"


def test_allow_by_verified_dkim_and_by_client_network() -> None:
    snap = lists(allow=["dkim:partner.example", "192.0.2.0/24", "2001:db8::/32"])
    assert snap.allowed(Identity(dkim_domains=("mail.partner.example",))) == (
        "dkim:partner.example")
    assert snap.allowed(Identity(dkim_domains=("partner.example.evil",))) == ""
    assert snap.allowed(Identity(client_ip="192.0.2.200")) == "cidr:192.0.2.0/24"
    assert snap.allowed(Identity(client_ip="192.0.3.1")) == ""
    assert snap.allowed(Identity(client_ip="2001:db8:ffff::1")) == "cidr:2001:db8::/32"
    assert snap.allowed(Identity(client_ip="not-an-ip")) == ""


def test_deny_matches_unauthenticated_names_too() -> None:
    snap = lists(deny=["dkim:bulk.example", "spammer.example", "boss@victim.example",
                       "198.51.100.0/24"])
    assert snap.denied(Identity(dkim_domains=("bulk.example",))) == "dkim:bulk.example"
    assert snap.denied(FORGED) == "domain:spammer.example"  # the MAIL FROM domain
    assert snap.denied(Identity(from_address="boss@victim.example")) == (
        "address:boss@victim.example")
    assert snap.denied(Identity(client_ip="198.51.100.9")) == "cidr:198.51.100.0/24"
    assert snap.denied(Identity(from_domain="clean.example")) == ""


def test_stored_garbage_is_skipped_not_fatal() -> None:
    snap, bad = SettingsSnapshot.from_raw(
        {"example.org": '{"tag_threshold": 3}', "bad target": '{"tag_threshold": 3}',
         "ok.example": "not json"},
        ["dkim:partner.example", "cidr:999.0.0.0/8"], ["spam.example"],
        version=7, static_allow=["10.0.0.0/8"])
    assert bad == 3
    assert list(snap.policies) == ["example.org"] and snap.version == 7
    assert snap.entries("allow") == ("cidr:10.0.0.0/8", "dkim:partner.example")
    assert snap.entries("deny") == ("domain:spam.example",)


# -- the milter's cache ------------------------------------------------------------------------


class FakeStore:
    def __init__(self) -> None:
        self.ver = 1
        self.policies = {"example.org": '{"tag_threshold": 2}'}
        self.down = False
        self.reads = 0
        self.polls = 0

    def version(self) -> int:
        self.polls += 1
        if self.down:
            raise StoreError("connection refused")
        return self.ver

    def snapshot(self, *, static_allow: Iterable[str] = (),
                 static_deny: Iterable[str] = ()) -> tuple[SettingsSnapshot, int]:
        self.reads += 1
        return SettingsSnapshot.from_raw(self.policies, [], [], version=self.ver,
                                         static_allow=static_allow, static_deny=static_deny)


def test_cache_polls_the_version_and_reloads_only_on_change() -> None:
    now = [100.0]
    store = FakeStore()
    cache = SettingsCache(store, refresh=5.0, static_allow=["10.0.0.0/8"],
                          clock=lambda: now[0])
    first = cache.current()
    assert first.thresholds("a@example.org", BASE, delimiters="+").tag_threshold == 2.0
    assert first.entries("allow") == ("cidr:10.0.0.0/8",)
    assert (store.polls, store.reads) == (1, 1)
    now[0] += 4.9
    assert cache.current() is first and store.polls == 1  # within refresh: no poll
    now[0] += 0.2
    assert cache.current() is first and (store.polls, store.reads) == (2, 1)  # unchanged
    store.ver, store.policies = 2, {"example.org": '{"tag_threshold": 1}'}
    now[0] += 5.1
    assert cache.current().thresholds("a@example.org", BASE, delimiters="+").tag_threshold == 1.0
    assert store.reads == 2


def test_cache_keeps_the_last_settings_while_the_store_is_down() -> None:
    now = [0.0]
    store = FakeStore()
    store.down = True
    cache = SettingsCache(store, refresh=1.0, static_deny=["198.51.100.0/24"],
                          clock=lambda: now[0])
    # never read: [policy] and the static entries
    assert cache.current().thresholds("a@example.org", BASE, delimiters="+") == BASE
    assert cache.current().entries("deny") == ("cidr:198.51.100.0/24",)
    store.down = False
    now[0] += 1.5
    assert cache.current().thresholds("a@example.org", BASE, delimiters="+").tag_threshold == 2.0
    store.down = True
    now[0] += 1.5
    assert cache.current().thresholds("a@example.org", BASE, delimiters="+").tag_threshold == 2.0


def test_cache_refuses_invalid_static_entries() -> None:
    with pytest.raises(SettingsError):
        SettingsCache(None, refresh=1.0, static_allow=["cidr:nonsense"])
