"""Which keys a complaint may list: allow-list, the operator's domains, shared platforms."""

from __future__ import annotations

from spamwarden.config import config_from_mapping
from spamwarden.reputation.complaints import Complaint, Indicators
from spamwarden.reputation.engine import ListingPolicy, Target

POLICY = ListingPolicy(allow=["partner.example", "192.0.2.0/24"], local_domains=["isp.example"],
                       shared_domains=["gmail.com", "yahoo.com.vn"])


def targets(kind: str = "spam", match: str = "matched", **ind: object) -> list[Target]:
    c = Complaint(id="c", kind=kind, reporter="u@isp.example", received_at=1.0,  # type: ignore[arg-type]
                  fingerprint="f", indicators=Indicators(**ind),  # type: ignore[arg-type]
                  match=match)
    return POLICY.targets(c)


def test_only_proven_complaints_list_anything() -> None:
    """A complaint whose indicators no delivery here proved (unmatched, or an entry
    written before matching existed) lists nothing, whatever it names."""
    ind = dict(source_ip="203.0.113.9", from_domain="innocent-shop.example",
               url_domains=("innocent-shop.example",))
    for match in ("", "no-delivery", "not-a-recipient", "disagree"):
        assert targets(match=match, **ind) == []  # type: ignore[arg-type]
    assert len(targets(match="fbl", **ind)) == 2  # type: ignore[arg-type]
    loose = ListingPolicy(require_delivered=False)
    c = Complaint(id="c", kind="spam", reporter="u@isp.example", received_at=1.0,
                  fingerprint="f", indicators=Indicators(source_ip="203.0.113.9"))
    assert loose.targets(c) == [Target("203.0.113.9", "ip", "complaints")]


def test_ordinary_spam_lists_ip_and_registrable_domains() -> None:
    got = targets(source_ip="203.0.113.9", from_domain="news.Spam-Shop.co.uk",
                  mail_from_domain="bounce.spam-shop.co.uk", dkim_verified=("esp.example",),
                  dkim_domains=("forged.example",), url_domains=("www.landing.example",))
    assert got == [Target("203.0.113.9", "ip", "complaints"),
                   Target("spam-shop.co.uk", "domain", "domain-complaints"),
                   Target("esp.example", "domain", "domain-complaints"),
                   Target("landing.example", "domain", "url-complaints")]


def test_unverified_dkim_domains_count_for_nothing() -> None:
    assert targets(dkim_domains=("victim.example",)) == []


def test_freemail_lists_the_address_not_the_domain() -> None:
    got = targets(from_domain="gmail.com", from_address="<Bad.Guy@Gmail.com>",
                  mail_from_domain="gmail.com", dkim_verified=("gmail.com",))
    assert got == [Target("bad.guy@gmail.com", "address", "address-complaints")]
    assert targets(from_domain="mail.yahoo.com.vn", from_address="x@mail.yahoo.com.vn") == [
        Target("x@mail.yahoo.com.vn", "address", "address-complaints")]
    # an address that does not match the From domain is not trusted
    assert targets(from_domain="gmail.com", from_address="x@other.example") == []


def test_psl_private_suffix_customers_are_listed_never_the_platform() -> None:
    assert targets(url_domains=("shop.blogspot.com", "blogspot.com")) == [
        Target("shop.blogspot.com", "domain", "url-complaints")]
    assert targets(from_domain="github.io", from_address="me@github.io") == [
        Target("me@github.io", "address", "address-complaints")]


def test_allow_list_local_domains_and_special_ips_are_never_listed() -> None:
    assert targets(source_ip="192.0.2.44", from_domain="mx.partner.example",
                   from_address="a@mx.partner.example", url_domains=("isp.example",)) == []
    for ip in ("127.0.0.1", "::1", "0.0.0.0", "fe80::1", "not-an-ip"):
        assert targets(source_ip=ip) == []


def test_ham_reports_have_no_targets() -> None:
    assert targets(kind="ham", source_ip="203.0.113.9", from_domain="spam.example") == []


def test_duplicates_collapse_to_the_first_reason() -> None:
    got = targets(from_domain="spam.example", url_domains=("spam.example", "www.spam.example"))
    assert got == [Target("spam.example", "domain", "domain-complaints")]


def test_an_ipv4_mapped_ipv6_address_is_its_ipv4_address() -> None:
    """::ffff:192.0.2.5 is 192.0.2.5: allow-listed like it, and listed under that name."""
    assert POLICY.allowed_ip("::ffff:192.0.2.5")
    assert targets(source_ip="::ffff:192.0.2.5") == []
    assert [t.key for t in targets(source_ip="::ffff:203.0.113.9")] == ["203.0.113.9"]
    assert POLICY.allowed_ip("::ffff:127.0.0.1")


def test_default_policy_never_lists_an_esp_signer_or_its_outbound_address() -> None:
    """A replayed message keeps its platform's DKIM signature (``d=amazonses.com`` is on
    all SES mail): a spammer sends one spam through the platform, replays it from its
    own addresses to three users, and their reports would list the platform's signing
    domain, and with it every message of every customer of that platform at every site
    querying the list. The defaults treat the large sending platforms as shared: their
    domains are never listed whole, nor their outbound addresses SPF vouched for; the
    spammer's own IP, domain and links still are."""
    policy = ListingPolicy.from_config(config_from_mapping({}))
    for platform, bounce in [("amazonses.com", "us-east-1.amazonses.com"),
                             ("sendgrid.net", "em123.sendgrid.net"),
                             ("mcsv.net", "mail123.atl61.mcsv.net"),
                             ("mailgun.org", "mg.mailgun.org"),
                             ("onmicrosoft.com", "contoso.onmicrosoft.com")]:
        replay = Complaint(
            id="c", kind="spam", reporter="u@isp.example", received_at=1.0, fingerprint="f",
            indicators=Indicators(source_ip="203.0.113.9", dkim_verified=(bounce, "shop.example"),
                                  mail_from_domain="shop.example",
                                  url_domains=("shop.example",)),
            match="matched")
        assert [t.key for t in policy.targets(replay)] == ["203.0.113.9", "shop.example"], platform
        sent = Complaint(
            id="c", kind="spam", reporter="u@isp.example", received_at=1.0, fingerprint="f",
            indicators=Indicators(source_ip="54.240.8.1", mail_from_domain=bounce,
                                  dkim_verified=(bounce,), url_domains=("shop.example",)),
            match="matched")
        assert [t.key for t in policy.targets(sent)] == ["shop.example"], platform


def test_default_policy_never_lists_a_redirector_a_spam_linked_through() -> None:
    """Spam linking through an open redirector or a shortener (google.com/url?q=...,
    bit.ly) is reported by three users: the redirector must not be listed, or every
    message at every site querying the list that links to it scores URIBL_OWN. The
    spammer's own target, which the message view reads out of the link, still is."""
    policy = ListingPolicy.from_config(config_from_mapping({}))
    for redirector in ("google.com", "bit.ly", "t.co", "sharepoint.com", "urldefense.com"):
        c = Complaint(id="c", kind="spam", reporter="u@isp.example", received_at=1.0,
                      fingerprint="f", match="matched",
                      indicators=Indicators(source_ip="203.0.113.9",
                                            url_domains=(redirector, "spam-shop.example")))
        assert [t.key for t in policy.targets(c)] == ["203.0.113.9", "spam-shop.example"], \
            redirector
