"""Nobody gets in where they don't belong, and every input limit holds.

- API: every route that writes (and every operator route) refuses a request without a valid
  bearer token, including wrong tokens of the right length, other schemes and tokens with
  bytes outside ASCII; the comparison is constant-time (hmac.compare_digest, checked in the
  source); the only routes open to anyone are the ones meant to be.
- DNS: AXFR from an address outside rbl.transfer_allow is REFUSED (TCP and UDP, apex and
  sub-zones); an allowed address gets the zone.
- Intake: a reporter outside intake.local_domains cannot file a complaint; a report over
  intake.max_message_bytes is refused (552) and stores nothing.
- Mail: parse_message's limits on size, header count and URL count hold; the milter's
  max_message_bytes holds behind a real Postfix (the message is delivered "not scored"),
  and its max_header_bytes too, without buying an unscored message (the fields past it
  are dropped, the rest is scored).
"""

from __future__ import annotations

import ast
import asyncio
import email
import email.policy
import inspect
import smtplib
from pathlib import Path

import dns.message
import dns.query
import dns.rcode
import dns.xfr
import dns.zone
import pytest
import redis
import redis.asyncio
from aiohttp import test_utils

from spamwarden.api import _http as api_http
from spamwarden.api.app import build_app
from spamwarden.config import config_from_mapping
from spamwarden.mail import ParseLimits, parse_message
from spamwarden.reputation.complaints import COMPLAINTS_KEY
from spamwarden.reputation.listings import LISTINGS_KEY
from spamwarden.reputation.store import AsyncListingStore
from spamwarden.wiring import api_modules
from tests.support.messages import make_message
from tests.support.net import free_port
from tests.support.replies import REPORT_TOO_BIG, REPORTER_REFUSED

from .test_complaint_faults import LOCAL, REPORT_TO, make_report
from .test_dns_faults import APEX, answer_text, start_rbl

pytestmark = [pytest.mark.faults, pytest.mark.integration]

TOKEN = "operator-token-0123456789abcdef"
#: routes anyone may call with a body, by design: filing a delisting request (rate-limited
#: per client IP) and the one-click unsubscribe POST (RFC 8058; the path carries a signed token)
PUBLIC_WRITES = {("POST", "/v1/delist-requests"), ("POST", "/u/{token}"), ("POST", "/a/{token}"),
                 ("POST", "/lookup/{key}"), ("POST", "/ui/login")}
_WRITE = {"POST", "PUT", "PATCH", "DELETE"}


def _console_form(method: str, path: str) -> bool:
    """A form target of the operator console (every POST under /ui/ but the sign-in): a
    session cookie and its CSRF token guard them, route by route in
    tests/integration/test_console_security.py."""
    return method == "POST" and path.startswith("/ui/") and path != "/ui/login"


# ---- API ----------------------------------------------------------------------------------


def _routes(app) -> list[tuple[str, str, bool]]:  # type: ignore[no-untyped-def]
    out = []
    for r in app.router.routes():
        if r.method == "HEAD":
            continue
        info = r.resource.get_info() if r.resource is not None else {}
        path = info.get("path") or info.get("formatter")
        if path:
            out.append((r.method, path, bool(getattr(r.handler, "operator_only", False))))
    return out


def _concrete(path: str) -> str:
    return (path.replace("{key}", "192.0.2.1").replace("{id}", "r1").replace("{adv}", "adv1")
            .replace("{rcpt}", "user%40test.local").replace("{token}", "x" * 40)
            .replace("{target}", "example.test"))


def test_api_refuses_writes_without_a_valid_token(redis_url: str) -> None:
    cfg = config_from_mapping({"api": {"operator_tokens": [TOKEN],
                                       "public_url": "http://127.0.0.1"},
                               "redis": {"url": redis_url}})
    wrong_same_length = [
        "x" * len(TOKEN),
        TOKEN[:-1] + ("e" if TOKEN[-1] != "e" else "f"),   # differs only in the last byte
        ("e" if TOKEN[0] != "e" else "f") + TOKEN[1:],     # differs only in the first byte
        TOKEN.upper(),
    ]
    attempts = ([{}] + [{"Authorization": f"Bearer {t}"} for t in wrong_same_length]
                + [{"Authorization": f"Basic {TOKEN}"}, {"Authorization": TOKEN},
                   {"Authorization": "Bearer "}, {"Authorization": f"Bearer {TOKEN} x"},
                   {"Authorization": f"Bearer {TOKEN[:-1]}\u00e9"},
                   {"Authorization": f"Bearer {TOKEN[:-2]}\u00e9"}])

    async def main() -> list[str]:
        store = AsyncListingStore(redis.asyncio.Redis.from_url(redis_url))
        app = build_app(cfg, store, modules=api_modules())
        client = test_utils.TestClient(test_utils.TestServer(app, host="127.0.0.1"))
        await client.start_server()
        problems = []
        try:
            routes = _routes(app)
            open_writes = {(m, p) for m, p, op in routes
                           if m in _WRITE and not op and not _console_form(m, p)}
            assert open_writes == PUBLIC_WRITES, (
                f"write routes open to anyone: {sorted(open_writes - PUBLIC_WRITES)}")
            # without a console session, the console's forms only send the browser to sign in
            forms = [p.replace("{id}", "0" * 32) for m, p, _ in routes if _console_form(m, p)]
            assert "/ui/logout" in forms and len(forms) >= 2, forms
            for path in forms:
                r = await client.post(path, data={"decision": "approve"}, allow_redirects=False)
                if r.status != 303 or r.headers.get("Location") != "/ui/login":
                    problems.append(f"POST {path} without a session: {r.status}")
            guarded = [(m, p) for m, p, op in routes if op]
            assert len(guarded) >= 10, guarded
            for method, path in guarded:
                for headers in attempts:
                    r = await client.request(method, _concrete(path), headers=headers,
                                             json={"key": "192.0.2.1", "reason": "manual",
                                                   "name": "x", "domains": ["x.example"]})
                    if r.status not in (401, 403):
                        problems.append(f"{method} {path} {headers}: {r.status}")
            # A forged one-click token does not unsubscribe anyone.
            r = await client.post("/u/" + "A" * 43, data=b"List-Unsubscribe=One-Click")
            if r.status < 400:
                problems.append(f"forged one-click token: {r.status}")
            # The right token works (the refusals above are about the token, not the route).
            r = await client.post("/v1/listings", headers={"Authorization": f"Bearer {TOKEN}"},
                                  json={"key": "198.51.100.7", "reason": "manual"})
            assert r.status in (200, 201), await r.text()
        finally:
            await client.close()
            await store.aclose()
        return problems

    problems = asyncio.run(main())
    assert not problems, problems
    # Nothing the refused requests sent was written.
    client = redis.Redis.from_url(redis_url)
    try:
        listed = {k.decode() for k in client.hkeys(LISTINGS_KEY)}
    finally:
        client.close()
    assert listed == {"198.51.100.7"}, listed


def _calls(fn: object) -> set[str]:
    tree = ast.parse(inspect.getsource(fn).lstrip() if not isinstance(fn, str) else fn)
    out = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Call):
            f = node.func
            if isinstance(f, ast.Attribute) and isinstance(f.value, ast.Name):
                out.add(f"{f.value.id}.{f.attr}")
    return out


def _token_equality(source: str) -> list[str]:
    """Comparisons with == / != / in between a token-named value and anything but None or ""."""
    bad = []
    for node in ast.walk(ast.parse(source)):
        if not isinstance(node, ast.Compare):
            continue
        if not any(isinstance(op, (ast.Eq, ast.NotEq, ast.In, ast.NotIn)) for op in node.ops):
            continue
        sides = [node.left, *node.comparators]
        names = [ast.unparse(s) for s in sides
                 if isinstance(s, (ast.Name, ast.Attribute, ast.Subscript))]
        trivial = [isinstance(s, ast.Constant) and s.value in (None, "", b"") for s in sides]
        if any("token" in n.lower() and "tokens" not in n.lower() for n in names) and not any(
                trivial):
            bad.append(f"line {node.lineno}: {ast.unparse(node)}")
    return bad


def test_token_comparisons_are_constant_time() -> None:
    from spamwarden.api import consent as api_consent
    from spamwarden.consent import registry as consent
    from spamwarden.consent import unsubscribe

    assert "hmac.compare_digest" in _calls(api_http.token_ok)
    # the consent routes check operator tokens with the shared helpers only
    assert "token_ok(" in inspect.getsource(api_consent.ConsentApi._who)
    assert "operator_denied(" in inspect.getsource(api_consent.ConsentApi._operator)
    for module in (api_http, api_consent, consent, unsubscribe):
        source = Path(module.__file__).read_text()  # type: ignore[arg-type]
        assert not _token_equality(source), (module.__name__, _token_equality(source))
    # Every configured token is compared (no early exit that tells which one matched).
    assert api_http.token_ok("b" * 8, ["a" * 8, "b" * 8]) is True
    assert api_http.token_ok("b" * 8, ["a" * 8, "c" * 8]) is False
    assert api_http.token_ok("", ["a" * 8]) is False


# ---- DNS zone transfers -----------------------------------------------------------------


def _axfr_rcode(port: int, zone: str, *, source: str, tcp: bool = True) -> int:
    q = dns.message.make_query(zone, "AXFR")
    if tcp:
        r = dns.query.tcp(q, "127.0.0.1", port=port, timeout=5, source=source)
    else:
        r = dns.query.udp(q, "127.0.0.1", port=port, timeout=5, source=source)
    return r.rcode()


def test_axfr_refused_outside_transfer_allow(spamwarden_service, restartable_redis) -> None:  # type: ignore[no-untyped-def]
    rbl = start_rbl(spamwarden_service, restartable_redis.url, transfer_allow=["127.0.0.2"])
    for zone in (APEX, f"ip.{APEX}", f"dbl.{APEX}"):
        assert _axfr_rcode(rbl.port, zone, source="127.0.0.1") == dns.rcode.REFUSED, zone
        assert _axfr_rcode(rbl.port, zone, source="127.0.0.3") == dns.rcode.REFUSED, zone
        assert _axfr_rcode(rbl.port, zone, source="127.0.0.1", tcp=False) == dns.rcode.REFUSED
    ixfr = dns.message.make_query(f"ip.{APEX}", "IXFR")
    r = dns.query.tcp(ixfr, "127.0.0.1", port=rbl.port, timeout=5, source="127.0.0.1")
    assert r.rcode() == dns.rcode.REFUSED
    # The allowed secondary gets the whole zone, listings included.
    z = dns.zone.from_xfr(dns.query.xfr("127.0.0.1", f"ip.{APEX}", port=rbl.port, timeout=10,
                                        source="127.0.0.2"))
    names = {str(n) for n in z.nodes}
    assert "99.2.0.192" in names, sorted(names)[:20]
    # Ordinary queries from anyone are still answered.
    assert answer_text(rbl.ask(f"99.2.0.192.ip.{APEX}", source="127.0.0.3")) == "127.0.0.2"


# ---- intake: who may report, how big ----------------------------------------------------


def test_intake_refuses_outside_reporters_and_oversized_reports(
        spamwarden_service, restartable_redis) -> None:  # type: ignore[no-untyped-def]
    port = free_port()
    limit = 20_000
    intake = spamwarden_service("intake", {
        "redis": {"url": restartable_redis.url},
        "dns": {"nameservers": [f"127.0.0.1:{free_port(udp_too=True)}"], "timeout": "0.5s"},
        "intake": {"listen": f"127.0.0.1:{port}", "local_domains": [LOCAL],
                   "max_message_bytes": limit},
        # the report below was never delivered here; matching is tested in test_trust_postfix
        "reputation": {"require_delivered": False},
    }, port=port)
    outsiders = ["spammer@evil.example", f"user@sub.{LOCAL}", f"user@{LOCAL}.evil.example",
                 "", f"{LOCAL}@evil.example", f"user@{LOCAL.upper()}x"]
    for reporter in outsiders:
        with smtplib.SMTP("127.0.0.1", port, timeout=10) as s:
            s.ehlo("client.test")
            assert s.mail(reporter)[0] == 250
            code, msg = s.rcpt(REPORT_TO)
            assert REPORTER_REFUSED.matches(code, msg), (reporter, code, msg)
            # Nor with DATA sent anyway (pipelining clients do).
            code, _ = s.docmd("DATA")
            assert code in (503, 554), (reporter, code)
    # A local reporter with an oversized report: 552, nothing stored.
    big = make_report(1, f"user@{LOCAL}").replace(b"This is spam.",
                                                    b"spam spam spam\r\n" * (limit // 10))
    with smtplib.SMTP("127.0.0.1", port, timeout=10) as s:
        s.ehlo("client.test")
        s.mail(f"user@{LOCAL}")
        assert s.rcpt(REPORT_TO)[0] == 250
        code, msg = s.data(big)
        assert REPORT_TOO_BIG.matches(code, msg), (code, msg)
    # The same reporter's small report is accepted: the refusals above were the rules, and
    # the stream holds that one complaint only.
    with smtplib.SMTP("127.0.0.1", port, timeout=10) as s:
        s.ehlo("client.test")
        s.mail(f"user@{LOCAL}")
        assert s.rcpt(REPORT_TO)[0] == 250
        code, msg = s.data(make_report(2, f"user@{LOCAL}"))
        assert code == 250, (code, msg, intake.log()[-2000:])
    client = redis.Redis.from_url(restartable_redis.url)
    try:
        entries = client.xrange(COMPLAINTS_KEY)
    finally:
        client.close()
    assert [f[b"reporter"] for _, f in entries] == [f"user@{LOCAL}".encode()]


# ---- mail limits --------------------------------------------------------------------------


def test_parse_message_limits_on_size_headers_and_urls() -> None:
    limits = ParseLimits()
    many_headers = b"".join(b"X-H%d: v\r\n" % i for i in range(limits.max_headers * 5))
    view = parse_message(many_headers + b"From: a@example.com\r\n\r\nbody\r\n")
    # the fields past the limit are not read, but for From (DMARC must see the author)
    assert len(view.headers) == limits.max_headers + 1
    assert view.headers[-1] == ("From", "a@example.com")
    assert "too many headers" in view.defects
    urls = b" ".join(b"http://h%d.example.com/" % i for i in range(limits.max_urls * 50))
    view = parse_message(b"From: a@example.com\r\nSubject: x\r\n\r\n" + urls)
    assert len(view.urls) == limits.max_urls
    assert len(view.url_domains) <= limits.max_urls
    huge = b"From: a@example.com\r\nSubject: big\r\n\r\n" + b"word " * (limits.max_bytes // 4)
    view = parse_message(huge)
    assert view.truncated and view.size == len(huge)
    assert len(view.text) <= limits.max_text_chars
    header_bomb = b"Subject: " + b"a" * (limits.max_header_bytes * 2) + b"\r\n\r\nbody"
    view = parse_message(header_bomb)
    assert "header section over limit" in view.defects
    assert sum(len(v) for _, v in view.headers) <= limits.max_header_bytes


def test_milter_max_message_bytes_holds_behind_postfix(
        postfix_instance, spamwarden_milter, dns_server, auth_zone) -> None:  # type: ignore[no-untyped-def]
    limit = 50_000
    milter = spamwarden_milter(nameservers=[dns_server.address], redis_url=None,
                               authserv_id="mx.test",
                               overrides={"milter": {"max_message_bytes": limit,
                                                     "max_header_bytes": 8_000},
                                          "redis": {"url": "unix:///nonexistent/redis.sock"}})
    postfix = postfix_instance(listeners={"mx": milter.postfix_socket})
    port = postfix.smtp["mx"].port
    sent = {}
    cases = {
        "big body": make_message(from_addr="alice@good.test", subject="big body",
                                 body="spam spam http://x.example/\r\n" * (limit // 10)),
        "big header": make_message(from_addr="alice@good.test", subject="big header",
                                   extra_headers=tuple(("X-Pad", "p" * 900) for _ in range(20))),
        "small": make_message(from_addr="alice@good.test", subject="small"),
    }
    for name, (raw, msgid) in cases.items():
        with smtplib.SMTP("127.0.0.1", port, timeout=60) as s:
            s.ehlo("client.test")
            s.sendmail("alice@good.test", ["user@test.local"], raw)
        sent[msgid] = name
    postfix.wait_for_delivery(len(cases), timeout=60)
    notes, status = {}, {}
    for path in postfix.delivered():
        msg = email.message_from_bytes(path.read_bytes(), policy=email.policy.compat32)
        name = sent[(msg.get("Message-ID") or "").strip()]
        notes[name] = " ".join((msg.get("X-Spam-Note") or "").split())
        status[name] = msg.get("X-Spam-Status")
    assert f"message larger than {limit} bytes" in notes["big body"], notes
    assert status["big body"] is None
    assert notes["big header"] == ("header section larger than 8000 bytes: scored on the "
                                   "fields before that"), notes
    assert status["big header"] is not None and status["small"] is not None
    assert notes["small"] == "", notes
