"""The relays' trust: SpamAssassin's trusted_networks, internal_networks and msa_networks.

tests/data/relays/spamassassin.json holds, for four small Received chains
(tests/data/relays/*.eml) and a set of network lines, the X-Spam-Relays-* values
SpamAssassin 4.0 itself gave (``spamassassin -L -t --cf='trusted_networks ...'`` with
``add_header all RT _RELAYSTRUSTED_`` and the like for the other three).
"""

from __future__ import annotations

import ipaddress
import json
from pathlib import Path

import pytest

from spamwarden.mail import parse_message
from spamwarden.rules import RuleEngine, parse_rule_text, prepare_message
from spamwarden.rules._relays import NetSet, RelayNetworks, parse_net, parse_relays

DATA = Path(__file__).resolve().parents[1] / "data" / "relays"
CASES = json.loads((DATA / "spamassassin.json").read_text())


def relays(message: str, config: str):
    raw = (DATA / f"{message}.eml").read_bytes()
    return parse_relays(parse_message(raw).headers, parse_rule_text(config).networks)


@pytest.mark.parametrize("case", CASES, ids=lambda c: f"{c['message']}:{'|'.join(c['config'])}")
def test_relays_are_split_as_spamassassin_splits_them(case) -> None:
    got = relays(case["message"], "\n".join(case["config"]) + "\n")
    assert (got.trusted, got.untrusted, got.internal, got.external) == (
        case["trusted"], case["untrusted"], case["internal"], case["external"])


def net(text: str) -> ipaddress.IPv6Network:
    return ipaddress.IPv6Network(text)


@pytest.mark.parametrize(("word", "expected"), [
    ("192.0.2.0/24", [(net("::ffff:192.0.2.0/120"), False)]),
    ("192.0.2.7", [(net("::ffff:192.0.2.7/128"), False)]),
    ("192.0.2.", [(net("::ffff:192.0.2.0/120"), False)]),
    ("192.0.2", [(net("::ffff:192.0.2.0/120"), False)]),
    ("10.", [(net("::ffff:10.0.0.0/104"), False)]),
    ("10", [(net("::ffff:10.0.0.0/104"), False)]),
    ("172.16", [(net("::ffff:172.16.0.0/112"), False)]),
    ("10.1/16", [(net("::ffff:10.1.0.0/112"), False)]),
    ("198.51.100.9/255.255.255.0", [(net("::ffff:198.51.100.0/120"), False)]),
    ("!192.0.2.5", [(net("::ffff:192.0.2.5/128"), True)]),
    ("2001:db8::/32", [(net("2001:db8::/32"), False)]),
    ("[2001:db8::1]", [(net("2001:db8::1/128"), False)]),
    ("fe80::1%eth0", [(net("fe80::1/128"), False)]),
    ("192.0.2.8-192.0.2.11", [(net("::ffff:192.0.2.8/126"), False)]),
    ("192.0.2.300", []),
    ("example.com", []),
    ("1.2.3.4.5", []),
])
def test_network_words_are_read_as_netset_reads_them(word, expected) -> None:
    assert parse_net(word) == expected


def test_the_first_entry_holding_an_address_decides() -> None:
    """NetSet.pm without Net::Patricia searches in order: an exclusion works only
    before the wider entry it cuts from."""
    first = NetSet(tuple(parse_net("!192.0.2.5") + parse_net("192.0.2.0/24")))
    later = NetSet(tuple(parse_net("192.0.2.0/24") + parse_net("!192.0.2.5")))
    assert not first.contains_ip("192.0.2.5") and first.contains_ip("192.0.2.6")
    assert later.contains_ip("192.0.2.5")
    assert not first.contains_ip("198.51.100.1") and not first.contains_ip("nonsense")
    v6 = NetSet(tuple(parse_net("2001:db8::/32")))
    assert v6.contains_ip("2001:db8::25") and v6.contains_ip("IPv6:2001:db8::25")
    assert not v6.contains_ip("192.0.2.5")


def test_settings_default_clear_and_loopback() -> None:
    assert parse_rule_text("").networks == RelayNetworks()
    assert not RelayNetworks().configured
    cleared = parse_rule_text("trusted_networks 192.0.2.0/24\nclear_trusted_networks\n").networks
    assert cleared == RelayNetworks()
    # a clear line with a value, and a list line without one, are ignored (Conf.pm)
    kept = parse_rule_text("trusted_networks 192.0.2.0/24\nclear_trusted_networks now\n"
                           "internal_networks\n").networks
    assert kept.trusted_configured and not kept.internal_configured
    # 127/8 and ::1 are always trusted and internal; msa_networks has no default
    assert kept.trusted.contains_ip("127.0.0.1") and kept.trusted.contains_ip("::1")
    assert kept.internal.contains_ip("127.8.9.10") and not kept.msa.contains_ip("127.0.0.1")
    # lines add up
    both = parse_rule_text("trusted_networks 192.0.2.0/24\ntrusted_networks 198.51.100.7\n")
    assert both.networks.trusted.contains_ip("198.51.100.7")
    assert both.networks.trusted.contains_ip("192.0.2.200")


def test_internal_entries_outside_trusted_are_dropped_and_linted(tmp_path) -> None:
    from spamwarden.rules import parse_rule_files
    from spamwarden.rules._lint import lint

    local = tmp_path / "local.cf"
    local.write_text("trusted_networks 192.0.2.0/24\n"
                     "internal_networks 192.0.2.0/25 198.51.100.0/24\n"
                     "msa_networks 192.0.2.9 nonsense\n")
    rs = parse_rule_files([local])
    assert rs.networks.internal.contains_ip("192.0.2.1")
    assert not rs.networks.internal.contains_ip("198.51.100.1")
    assert rs.networks.msa.contains_ip("192.0.2.9")
    assert [str(p) for p in lint(rs, [str(local)])] == [
        f"{local}:2: internal_networks 198.51.100.0/24 is not in trusted_networks:"
        " the entry is dropped",
        f"{local}:3: msa_networks: nonsense is not an IP address or network",
    ]


#: a site's own Postfix behind a front MX (192.0.2.5) that received from the world
FRONT_MX = (b"Received: from mx.example.org (mx.example.org [192.0.2.5])\r\n"
            b"\tby mail.ours.test (Postfix) with ESMTP id 4ABCDEF12;\r\n"
            b"\tSat, 5 Dec 2026 12:00:03 +0000 (UTC)\r\n"
            b"Received: from helo.example.net (unknown [198.51.100.7])\r\n"
            b"\tby mx.example.org (Postfix) with ESMTP id 5BCDEF123;\r\n"
            b"\tSat, 5 Dec 2026 12:00:02 +0000 (UTC)\r\n"
            b"From: a@example.net\r\nTo: b@ours.test\r\nSubject: x\r\n\r\nHello.\r\n")
RULES = ("header LOCAL_RDNS_NONE X-Spam-Relays-Untrusted =~ /^[^\\]]+ rdns= /\n"
         "header LOCAL_EXT_HEADERS ALL-EXTERNAL =~ /198\\.51\\.100\\.7/\n"
         "header LOCAL_EXT_FRONT ALL-EXTERNAL =~ /192\\.0\\.2\\.5/\n")


@pytest.mark.parametrize(("config", "expected"), [
    # the front MX is judged as the hop from outside: its rDNS is fine
    ("", {"LOCAL_EXT_HEADERS", "LOCAL_EXT_FRONT"}),
    # with the front MX trusted, the hop from the world (no rDNS) is the one judged
    ("trusted_networks 192.0.2.0/24\n", {"LOCAL_RDNS_NONE", "LOCAL_EXT_HEADERS"}),
])
def test_the_engine_judges_relays_by_its_rule_files_networks(config, expected) -> None:
    engine = RuleEngine(parse_rule_text(RULES + config), use_hyperscan=False)
    msg = prepare_message(parse_message(FRONT_MX), FRONT_MX)
    assert {n for n, c in engine.counts(msg).items() if c and n.startswith("LOCAL_")} == expected


def test_a_given_received_field_is_the_first_header_the_rules_read() -> None:
    """The receiving MTA's own field for the connection (a milter does not see it)."""
    line = ("from helo.example.net (unknown [198.51.100.7]) by mx.example.org (Postfix)"
            " with ESMTP id 5BCDEF123; Sat, 05 Dec 2026 12:00:02 -0000")
    body = b"From: a@example.net\r\nSubject: x\r\n\r\nHello.\r\n"
    msg = prepare_message(parse_message(body), body, received=line)
    assert msg.headers[0] == ("Received", line)
    assert msg.full.startswith(b"Received: " + line.encode() + b"\r\nFrom: ")
    assert msg.header_text("ALL", raw=True).startswith("Received: from helo.example.net")
    assert msg.relay_info().untrusted.startswith(
        "[ ip=198.51.100.7 rdns= helo=helo.example.net by=mx.example.org ")
    assert msg.raw_body_length == len(b"Hello.\r\n")
    plain = prepare_message(parse_message(body), body)
    assert plain.headers == parse_message(body).headers and plain.full == body


def test_the_rules_report_says_how_trust_is_decided() -> None:
    from spamwarden.rules.commands import format_stats

    assert "relay trust: inferred" in format_stats(parse_rule_text(""))
    report = format_stats(parse_rule_text("trusted_networks 192.0.2.0/24\n"
                                          "internal_networks 198.51.100.0/24\n"))
    assert "relay trust: trusted_networks 3 entries, internal_networks 2 entries" in report


RECEIVED_LINES = json.loads((DATA / "received_lines.json").read_text())


@pytest.mark.parametrize(("value", "expected"), RECEIVED_LINES,
                         ids=range(len(RECEIVED_LINES)))
def test_received_lines_read_as_received_pm_reads_them(value: str, expected: str) -> None:
    """tests/data/relays/received_lines.json (make_received_lines.py beside it): corpus
    Received values as SpamAssassin 4.0.1's parse_received_line reads them, the relay
    as it renders it before trust is decided, and whether its MTA looked the name up
    and found none (``no_reverse_dns``, RelayEval's NO_RDNS_DOTCOM_HELO); among them
    every line an earlier reading here got wrong (the client forms of Received.pm in
    its order, the lines it skips)."""
    from spamwarden.rules._relays import parse_received
    found = parse_received(value)
    if found is None or found is False:
        got = "SKIP"
    elif found == "unparseable":
        got = "UNPARSEABLE"
    else:
        got = found.render(False) + (" no_reverse_dns" if found.looked_up and not found.rdns
                                     else "")
    assert got == expected
