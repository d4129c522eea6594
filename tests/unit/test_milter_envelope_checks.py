"""Checks started at MAIL FROM (SPF, the DMARC record into the resolver's cache) and the
DKIM shortcut for unsigned mail: same verdicts as computing everything at end of message."""

from __future__ import annotations

from typing import Any

import pytest

from spamwarden.config import Config, config_from_mapping
from spamwarden.milter import _dkim
from spamwarden.milter.interfaces import Envelope
from spamwarden.milter.scanner import Scanner
from spamwarden.resolver import StaticResolver

AUTHSERV = "mx.test.example"
HAM = (
    b"From: Alice <alice@example.org>\n"
    b"To: bob@test.example\n"
    b"Subject: lunch\n"
    b"Message-ID: <m1@example.org>\n"
    b"Date: Mon, 2 Jun 2025 10:00:00 +0000\n"
    b"\n"
    b"See you at noon. The DKIM-Signature: line here is body text.\n"
)


def make_cfg() -> Config:
    return config_from_mapping(
        {"milter": {"authserv_id": AUTHSERV}, "dns": {"timeout": 0.5}}, source="<test>")


def zone() -> StaticResolver:
    return StaticResolver({
        ("example.org", "TXT"): [b"v=spf1 ip4:192.0.2.7 -all"],
        ("_dmarc.example.org", "TXT"): [b"v=DMARC1; p=reject"],
        ("mail.example.org", "TXT"): [b"v=spf1 ip4:192.0.2.7 -all"],
    })


@pytest.mark.parametrize("ip,helo,sender", [
    ("192.0.2.7", "mail.example.org", "alice@example.org"),       # pass, DMARC pass
    ("203.0.113.9", "forger.example.com", "alice@example.org"),   # fail, DMARC reject
    ("192.0.2.7", "mail.example.org", ""),                         # null sender: HELO identity
    ("203.0.113.9", "mail.example.org", "x@nothing.example"),      # no SPF record
])
def test_early_checks_give_the_same_verdict(ip: str, helo: str, sender: str) -> None:
    env = Envelope(client_ip=ip, helo=helo, mail_from=sender, rcpts=["bob@test.example"])
    at_eom = Scanner(make_cfg(), resolver=zone(), lookup_threads=0).scan(HAM, env)
    scanner = Scanner(make_cfg(), resolver=zone())
    early = scanner.start_envelope_checks(env)
    assert early is not None and early.spf is not None
    verdict = scanner.scan(HAM, env, early=early)
    assert verdict.to_dict() == at_eom.to_dict()
    scanner.close()


def test_checks_for_another_envelope_are_not_used() -> None:
    scanner = Scanner(make_cfg(), resolver=zone())
    early = scanner.start_envelope_checks(
        Envelope(client_ip="192.0.2.7", helo="mail.example.org", mail_from="alice@example.org"))
    assert early is not None and early.spf is not None
    early.spf.result(timeout=10)
    env = Envelope(client_ip="192.0.2.7", helo="mail.example.org",
                   mail_from="eve@nothing.example", rcpts=["bob@test.example"])
    verdict = scanner.scan(HAM, env, early=early)
    assert verdict.auth.spf.domain == "nothing.example"
    assert verdict.auth.spf.result == "none"
    scanner.close()


def test_no_early_checks_without_lookup_threads_or_client_ip() -> None:
    env = Envelope(client_ip="192.0.2.7", helo="h", mail_from="alice@example.org")
    assert Scanner(make_cfg(), resolver=zone(), lookup_threads=0).start_envelope_checks(env) is None
    scanner = Scanner(make_cfg(), resolver=zone())
    assert scanner.start_envelope_checks(Envelope(helo="h", mail_from="a@example.org")) is None
    scanner.close()


def test_unsigned_message_is_not_parsed_for_dkim(monkeypatch: pytest.MonkeyPatch) -> None:
    def no_parse(*args: Any, **kwargs: Any) -> Any:
        raise AssertionError("dkimpy parsed a message without a DKIM-Signature")

    monkeypatch.setattr(_dkim.dkim, "DKIM", no_parse)
    assert _dkim.verify_dkim(HAM, StaticResolver()) == ()
    assert _dkim.verify_dkim(HAM.replace(b"\n", b"\r\n"), StaticResolver()) == ()
    signed = b"DKIM-Signature: v=1; a=rsa-sha256; d=example.org; s=s; h=from; bh=x; b=y\n" + HAM
    with pytest.raises(AssertionError):
        _dkim.verify_dkim(signed, StaticResolver())  # a signed message is still verified


def test_libmilters_listening_socket_is_found_and_its_nodelay_reaches_connections(
        tmp_path: Any) -> None:
    import socket

    from spamwarden.milter.prefork import listening_socket

    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as listener:
        listener.bind(("127.0.0.1", 0))
        port = listener.getsockname()[1]
        assert listening_socket(f"inet:{port}@127.0.0.1") is None  # bound, not listening
        listener.listen(1)
        found = listening_socket(f"inet:{port}@127.0.0.1")
        assert found is not None
        with found:  # a duplicate: options set on it are the listener's
            found.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        assert listener.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY)
        assert listener.fileno() >= 0  # closing the duplicate left the listener open
        with socket.create_connection(("127.0.0.1", port)):
            accepted, _ = listener.accept()
            with accepted:  # what libmilter's accepted connections get
                assert accepted.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY)
    path = str(tmp_path / "milter.sock")
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as unix_listener:
        unix_listener.bind(path)
        unix_listener.listen(1)
        found = listening_socket(f"unix:{path}")
        assert found is not None and found.getsockname() == path
        found.close()
        assert listening_socket(f"unix:{path}.other") is None


class RememberingResolver(StaticResolver):
    """A StaticResolver with a memory like DnsPythonResolver's: answers looked up once are
    kept, and `kept` answers from memory only (the Resolver Protocol plus `kept`)."""

    def __init__(self, zone_: StaticResolver) -> None:
        super().__init__()
        self.zone = zone_.zone
        self.memory: dict[tuple[str, str], Any] = {}
        self.expires = float("inf")
        self.lookups = 0

    def query(self, name: str, rdtype: str, *, timeout: float | None = None) -> Any:
        self.lookups += 1
        answer = super().query(name, rdtype, timeout=timeout)
        self.memory[(name.lower().rstrip("."), rdtype.upper())] = answer
        return answer

    def kept(self, name: str, rdtype: str) -> Any:
        answer = self.memory.get((name.lower().rstrip("."), rdtype.upper()))
        return None if answer is None else (answer, self.expires)


@pytest.mark.parametrize("ip,helo,sender", [
    ("192.0.2.7", "mail.example.org", "alice@example.org"),
    ("203.0.113.9", "forger.example.com", "alice@example.org"),
    ("192.0.2.7", "mail.example.org", ""),
])
def test_spf_from_the_resolvers_memory_runs_at_once_with_the_same_result(
        ip: str, helo: str, sender: str) -> None:
    env = Envelope(client_ip=ip, helo=helo, mail_from=sender, rcpts=["bob@test.example"])
    resolver = RememberingResolver(zone())
    scanner = Scanner(make_cfg(), resolver=resolver)
    try:
        first = scanner.start_envelope_checks(env)
        assert first is not None and first.spf is not None
        on_thread = first.spf.result(timeout=5)
        asked = resolver.lookups
        assert asked > 0  # nothing in memory yet: looked up on a lookup thread
        second = scanner.start_envelope_checks(env)
        assert second is not None and second.spf is not None and second.spf.done()
        assert second.spf.result() == on_thread
        assert resolver.lookups == asked  # answered from memory, in this thread
    finally:
        scanner.close()


def test_a_miss_that_pyspf_swallows_still_sends_spf_to_the_lookup_threads() -> None:
    # The explanation (exp=) of a failing record is fetched inside a bare `except:` in
    # pyspf; a record kept without its explanation must not give a result from memory.
    zone_ = StaticResolver({
        ("example.org", "TXT"): [b"v=spf1 ip4:192.0.2.7 exp=why.example.org -all"],
        ("why.example.org", "TXT"): [b"Not authorized"],
    })
    resolver = RememberingResolver(zone_)
    resolver.memory[("example.org", "TXT")] = zone_.query("example.org", "TXT")
    env = Envelope(client_ip="203.0.113.9", helo="x.example", mail_from="a@example.org")
    scanner = Scanner(make_cfg(), resolver=resolver)
    try:
        assert scanner._spf_from_memory("203.0.113.9", "x.example", "a@example.org") is None
        early = scanner.start_envelope_checks(env)
        assert early is not None and early.spf is not None
        result = early.spf.result(timeout=5)
        assert result.result == "fail" and "Not authorized" in result.explanation
        again = scanner._spf_from_memory("203.0.113.9", "x.example", "a@example.org")
        assert again is not None and again.result() == result
    finally:
        scanner.close()


def test_spf_result_is_remembered_until_its_first_answer_expires(
        monkeypatch: pytest.MonkeyPatch) -> None:
    import spamwarden.milter.scanner as scanner_module

    resolver = RememberingResolver(zone())
    asked: list[tuple[str, str]] = []
    inner = resolver.kept

    def counting(name: str, rdtype: str) -> Any:
        asked.append((name, rdtype))
        return inner(name, rdtype)

    monkeypatch.setattr(resolver, "kept", counting)
    scanner = Scanner(make_cfg(), resolver=resolver)
    now = [1000.0]
    monkeypatch.setattr(scanner_module.time, "monotonic", lambda: now[0])
    try:
        resolver.query("example.org", "TXT")
        resolver.query("_dmarc.example.org", "TXT")
        resolver.expires = 1030.0  # the kept answers expire at t=1030
        first = scanner._spf_from_memory("192.0.2.7", "mail.example.org", "alice@example.org")
        assert first is not None and first.result().result == "pass"
        spf_asks = [a for a in asked if a[0] == "example.org"]
        assert spf_asks
        asked.clear()
        now[0] = 1029.0
        again = scanner._spf_from_memory("192.0.2.7", "mail.example.org", "alice@example.org")
        assert again is not None and again.result() == first.result()
        assert ("example.org", "TXT") not in asked  # remembered: not evaluated again
        other = scanner._spf_from_memory("203.0.113.9", "mail.example.org", "alice@example.org")
        assert other is not None and other.result().result == "fail"  # another client IP
        asked.clear()
        now[0] = 1031.0  # past the first expiry: evaluated again
        later = scanner._spf_from_memory("192.0.2.7", "mail.example.org", "alice@example.org")
        assert later is not None and ("example.org", "TXT") in asked
    finally:
        scanner.close()
