"""``[[rbl.external]]`` lists against a real DNS server (unbound on loopback) answering
listings, unconfigured codes, 127.255.255.x refusals, REFUSED and silence; scored by
the milter's pipeline through `spamwarden check`, and `spamwarden doctor`'s test points.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from prometheus_client import REGISTRY

from spamwarden.cli import main
from tests.conftest import need_binary
from tests.support.dnszone import DnsZone, UnboundServer
from tests.support.net import LOOPBACK, free_port, pid_alive, read_pidfile

from .conftest import DnsServerFactory, _stopped_at_exit

pytestmark = pytest.mark.integration

MESSAGE = Path(__file__).parent.parent / "data" / "dnsbl" / "external-lists.eml"
LISTED_IP = "203.0.113.2"      # ZEN answers 127.0.0.2 and 127.0.0.4
REFUSED_IP = "203.0.113.254"   # ZEN answers 127.255.255.254 (public resolver refused)
ODD_IP = "203.0.113.9"         # ZEN answers 127.0.0.9, a code the entry does not score
CLEAN_IP = "203.0.113.10"


def _rev(ip: str) -> str:
    return ".".join(reversed(ip.split(".")))


@pytest.fixture(scope="module")
def lists() -> Iterator[UnboundServer]:
    zone = DnsZone()
    # An IP list with RFC 5782 §5 test points.
    zone.add_a("2.0.0.127.zen.test", "127.0.0.2")
    zone.add_a(f"{_rev(LISTED_IP)}.zen.test", "127.0.0.2")
    zone.add_a(f"{_rev(LISTED_IP)}.zen.test", "127.0.0.4")
    zone.add_a(f"{_rev(REFUSED_IP)}.zen.test", "127.255.255.254")
    zone.add_a(f"{_rev(ODD_IP)}.zen.test", "127.0.0.9")
    # Domain lists (dbl style): test / invalid points.
    zone.add_a("test.dbl.test", "127.0.1.2")
    zone.add_a("listed-sender.test.dbl.test", "127.0.1.2")
    zone.add_a("test.uribl.test", "127.0.1.4")
    zone.add_a("listed-url.test.uribl.test", "127.0.1.4")
    # A DQS-style zone: <name>.<key>.<zone>.
    zone.add_a(f"{_rev(LISTED_IP)}.k3y0123456789.zen.dq.test", "127.0.0.3")
    zone.add_a("2.0.0.127.k3y0123456789.zen.dq.test", "127.0.0.2")
    # A list that refuses this resolver: every name answers 127.255.255.254.
    zone.add_local_zone("refusing.test", "redirect")
    zone.add_a("refusing.test", "127.255.255.254")
    # A list whose server refuses (REFUSED), one that never answers (timeout).
    zone.add_local_zone("broken.test", "always_refuse")
    zone.add_local_zone("silent.test", "deny")
    with _stopped_at_exit(DnsServerFactory()) as factory:
        yield factory(zone)


def _config(tmp_path: Path, server: UnboundServer | str, entries: str,
            name: str = "sw.toml") -> str:
    """A config asking DNS of ``server`` (a server, or its "127.0.0.1:PORT")."""
    address = server if isinstance(server, str) else server.address
    path = tmp_path / name
    path.write_text(
        f'[service]\nstate_dir = "{tmp_path / "state"}"\n'
        '[redis]\nurl = "redis://127.0.0.1:1/0"\ntimeout = 0.2\n'
        f'[dns]\nnameservers = ["{address}"]\ntimeout = 0.5\n'
        '[consent]\nenabled = false\n'
        '[rbl]\n' + entries
    )
    return str(path)


ENTRIES = '''
[[rbl.external]]
name = "TEST_ZEN"
zone = "zen.test"
kind = "ip"
codes = { "127.0.0.2" = 4.0, "127.0.0.4" = 3.0 }

[[rbl.external]]
name = "TEST_ZEN_DQS"
zone = "zen.dq.test"
dqs_key = "k3y0123456789"
codes = { "127.0.0.3" = 1.5 }

[[rbl.external]]
name = "TEST_DBL"
zone = "dbl.test"
kind = "sender"
codes = { "127.0.1.2" = 3.0 }

[[rbl.external]]
name = "TEST_URIBL"
zone = "uribl.test"
kind = "url"
codes = { "127.0.1.0/24" = 2.5 }

[[rbl.external]]
name = "TEST_BROKEN"
zone = "broken.test"
codes = { "127.0.0.2" = 5.0 }

[[rbl.external]]
name = "TEST_SILENT"
zone = "silent.test"
codes = { "127.0.0.2" = 5.0 }
'''


def check(capsys: pytest.CaptureFixture[str], config: str, ip: str) -> dict[str, float]:
    code = main(["check", str(MESSAGE), "--client-ip", ip, "--json", "--config", config])
    out, err = capsys.readouterr()
    assert code == 0, err
    verdict = json.loads(out)
    return {s["name"]: s["points"] for s in verdict["symbols"]}


def unscored(zone: str, code: str) -> float:
    return REGISTRY.get_sample_value("spamwarden_dnsbl_unscored_answers_total",
                                     {"zone": zone, "code": code}) or 0.0


def test_listing_codes_score_their_points(capsys: Any, tmp_path: Path, lists: Any) -> None:
    symbols = check(capsys, _config(tmp_path, lists, ENTRIES), LISTED_IP)
    assert symbols["TEST_ZEN"] == 4.0           # 127.0.0.2 and .4 answered: the highest wins
    assert symbols["TEST_ZEN_DQS"] == 1.5       # asked under <key>.<zone>
    assert symbols["TEST_DBL"] == 3.0           # From / envelope domain listed-sender.test
    assert symbols["TEST_URIBL"] == 2.5         # link www.listed-url.test -> listed-url.test
    # REFUSED and silence are failed lookups: never listed, never clean
    assert symbols["TEST_BROKEN_LOOKUP_FAILED"] == 0.0 and "TEST_BROKEN" not in symbols
    assert symbols["TEST_SILENT_LOOKUP_FAILED"] == 0.0 and "TEST_SILENT" not in symbols
    assert "TEST_ZEN_LOOKUP_FAILED" not in symbols


def test_refusal_and_unknown_codes_score_nothing_and_are_counted(
    capsys: Any, tmp_path: Path, lists: Any
) -> None:
    config = _config(tmp_path, lists, ENTRIES)
    refused_before = unscored("zen.test", "127.255.255.254")
    odd_before = unscored("zen.test", "127.0.0.9")
    symbols = check(capsys, config, REFUSED_IP)
    assert "TEST_ZEN" not in symbols
    assert symbols["TEST_ZEN_LOOKUP_FAILED"] == 0.0  # the list said nothing about the IP
    assert unscored("zen.test", "127.255.255.254") == refused_before + 1
    symbols = check(capsys, config, ODD_IP)
    assert "TEST_ZEN" not in symbols and "TEST_ZEN_LOOKUP_FAILED" not in symbols
    assert unscored("zen.test", "127.0.0.9") == odd_before + 1
    symbols = check(capsys, config, CLEAN_IP)
    assert not {"TEST_ZEN", "TEST_ZEN_LOOKUP_FAILED"} & set(symbols)


def test_policy_symbols_override_a_configured_list(capsys: Any, tmp_path: Path,
                                                   lists: Any) -> None:
    config = _config(tmp_path, lists, ENTRIES + '[policy]\nsymbols = { TEST_ZEN = 9.0 }\n')
    assert check(capsys, config, LISTED_IP)["TEST_ZEN"] == 9.0


def test_config_check_refuses_a_built_in_name_and_warns_about_third_party_zones(
    capsys: Any, tmp_path: Path, lists: Any
) -> None:
    bad = _config(tmp_path, lists, '[[rbl.external]]\nname = "RBL_OWN"\nzone = "zen.test"\n'
                  'codes = { "127.0.0.2" = 1.0 }\n', "bad.toml")
    assert main(["config-check", "--config", bad]) == 2
    assert "RBL_OWN, a built-in symbol" in capsys.readouterr().err
    old = _config(tmp_path, lists, 'third_party_zones = ["zen.test"]\n', "old.toml")
    assert main(["config-check", "--config", old]) == 0
    err = capsys.readouterr().err
    assert "rbl.third_party_zones is deprecated" in err and "[[rbl.external]]" in err


def test_doctor_test_points(capsys: Any, tmp_path: Path, lists: Any) -> None:
    sane = _config(tmp_path, lists, ENTRIES.split("[[rbl.external]]\nname = \"TEST_BROKEN\"")[0],
                   "sane.toml")
    assert main(["doctor", "--check", "external", "--config", sane]) == 0
    out = capsys.readouterr().out
    assert out.count("OK") >= 4 and "TEST_DBL (dbl.test) answers its RFC 5782 test points" in out
    refusing = _config(tmp_path, lists, '[[rbl.external]]\nname = "TEST_REFUSING"\n'
                       'zone = "refusing.test"\ncodes = { "127.0.0.2" = 1.0 }\n', "r.toml")
    assert main(["doctor", "--check", "external", "--config", refusing]) == 1
    out = capsys.readouterr().out
    assert "TEST_REFUSING (refusing.test): your resolver is refused by this list" in out
    # a list that lists nothing (no 127.0.0.2 test point) is not answering sanely
    empty = _config(tmp_path, lists, '[[rbl.external]]\nname = "TEST_EMPTY"\n'
                    'zone = "uribl.test"\nkind = "ip"\ncodes = { "127.0.0.2" = 1.0 }\n',
                    "e.toml")
    assert main(["doctor", "--check", "external", "--config", empty]) == 1
    assert "2.0.0.127 is not listed" in capsys.readouterr().out


SCRIPT = Path(__file__).resolve().parent.parent / "data" / "miltertest" / "dnsbl.lua"


def test_through_a_real_milter(spamwarden_milter: Any, lists: UnboundServer,
                               tmp_path: Path) -> None:
    """`spamwarden milter` with the lists, driven by miltertest: the ip lookups start at
    MAIL FROM, sender and url ones at end of message; the symbols reach the headers."""
    miltertest = "/usr/bin/miltertest"
    if not Path(miltertest).exists():
        pytest.fail("miltertest is not installed; run `make test`, which installs it")
    external = [
        {"name": "TEST_ZEN", "zone": "zen.test", "kind": "ip",
         "codes": {"127.0.0.2": 4.0, "127.0.0.4": 3.0}},
        {"name": "TEST_DBL", "zone": "dbl.test", "kind": "sender",
         "codes": {"127.0.1.2": 3.0}},
        {"name": "TEST_URIBL", "zone": "uribl.test", "kind": "url",
         "codes": {"127.0.1.4": 2.5}},
        {"name": "TEST_SILENT", "zone": "silent.test", "kind": "ip",
         "codes": {"127.0.0.2": 5.0}},
    ]
    milter = spamwarden_milter(nameservers=[lists.address], redis_url=None,
                               overrides={"redis": {"url": "redis://127.0.0.1:1/0"},
                                          "consent": {"enabled": False},
                                          "dns": {"timeout": "0.5s"},
                                          "rbl": {"external": external}})

    def reasons(ip: str) -> str:
        args = [miltertest, "-s", str(SCRIPT), "-D", f"socket={milter.libmilter_socket}",
                "-D", f"client_ip={ip}", "-D", "mail_from=news@mail.listed-sender.test",
                "-D", "hdr_from=Shop <news@mail.listed-sender.test>",
                "-D", "link=https://www.listed-url.test/offer"]
        done = subprocess.run(args, capture_output=True, text=True, timeout=60, check=False)
        out = done.stdout + done.stderr
        assert done.returncode == 0 and "miltertest: ok" in out, (
            f"{out}\nmilter log:\n{milter.log()[-3000:]}")
        return out.split("X-Spam-Reasons: ", 1)[1].split("\n", 1)[0]

    listed = reasons(LISTED_IP)
    zen = listed.split("TEST_ZEN=4 [zen.test 203.0.113.2 ", 1)[1].split("]", 1)[0]
    assert sorted(zen.split(",")) == ["127.0.0.2", "127.0.0.4"]  # the highest points win
    assert "TEST_DBL=3 [dbl.test listed-sender.test 127.0.1.2]" in listed
    assert "TEST_URIBL=2.5 [uribl.test listed-url.test 127.0.1.4]" in listed
    assert "TEST_SILENT_LOOKUP_FAILED=0" in listed and "TEST_SILENT=" not in listed
    refused = reasons(REFUSED_IP)
    assert "TEST_ZEN=" not in refused and "TEST_ZEN_LOOKUP_FAILED=0" in refused
    assert "dnsbl_refused" in milter.log()


@pytest.fixture(scope="module")
def file_list(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """rbldnsd serving a list from its data files, as a small ISP or a partner publishes
    one: an ip4set with its 127.0.0.2 test point, a listing, a refusal code and an
    unscored code, and a dnset of domains. Yields "127.0.0.1:PORT"."""
    rbldnsd = need_binary("rbldnsd")
    d = tmp_path_factory.mktemp("rbldnsd-list")
    os.chmod(d, 0o755)  # rbldnsd reads its files as user rbldns
    (d / "ips").write_text(
        ":127.0.0.2:Listed, see http://lists.test/$\n"
        "127.0.0.2\n"
        f"{LISTED_IP}\n"
        f"{REFUSED_IP} :127.255.255.254:query refused\n"
        f"{ODD_IP} :127.0.0.9:a code nobody scores\n")
    (d / "names").write_text(":127.0.1.2:Listed domain $\n.listed-sender.test\ntest\n")
    for f in ("ips", "names"):
        os.chmod(d / f, 0o644)
    port = free_port(udp_too=True)
    pidfile = d / "rbldnsd.pid"
    subprocess.run([rbldnsd, "-q", "-b", f"{LOOPBACK}/{port}", "-w", str(d), "-p", str(pidfile),
                    "lists.test:ip4set:ips", "names.lists.test:dnset:names"],
                   check=True, timeout=30)
    pid = None
    deadline = time.monotonic() + 10
    while pid is None and time.monotonic() < deadline:
        pid = read_pidfile(pidfile)
        time.sleep(0.05)
    assert pid is not None, "rbldnsd wrote no pidfile"
    try:
        yield f"{LOOPBACK}:{port}"
    finally:
        if pid_alive(pid):
            os.kill(pid, signal.SIGTERM)


FILE_ENTRIES = '''
[[rbl.external]]
name = "FILE_IPS"
zone = "lists.test"
kind = "ip"
codes = { "127.0.0.2" = 3.5 }

[[rbl.external]]
name = "FILE_NAMES"
zone = "names.lists.test"
kind = "sender"
codes = { "127.0.1.2" = 2.0 }
'''


def test_a_list_rbldnsd_serves_from_files(capsys: Any, tmp_path: Path, file_list: str) -> None:
    """The same rules hold against rbldnsd's answers as against any resolver's: a listed
    code scores, the refusal code and an unscored code score nothing and are counted,
    and a dnset domain list matches the sender's parent domain."""
    config = _config(tmp_path, file_list, FILE_ENTRIES, "file.toml")
    symbols = check(capsys, config, LISTED_IP)
    assert symbols["FILE_IPS"] == 3.5
    assert symbols["FILE_NAMES"] == 2.0        # mail.listed-sender.test under .listed-sender.test
    refused_before = unscored("lists.test", "127.255.255.254")
    odd_before = unscored("lists.test", "127.0.0.9")
    symbols = check(capsys, config, REFUSED_IP)
    assert "FILE_IPS" not in symbols and symbols["FILE_IPS_LOOKUP_FAILED"] == 0.0
    assert unscored("lists.test", "127.255.255.254") == refused_before + 1
    symbols = check(capsys, config, ODD_IP)
    assert "FILE_IPS" not in symbols and "FILE_IPS_LOOKUP_FAILED" not in symbols
    assert unscored("lists.test", "127.0.0.9") == odd_before + 1
    assert "FILE_IPS" not in check(capsys, config, CLEAN_IP)
    # doctor asks the test points: 127.0.0.2 listed, 127.0.0.1 not
    assert main(["doctor", "--check", "external", "--config", config]) == 0
    out = capsys.readouterr().out
    assert "FILE_IPS (lists.test) answers its RFC 5782 test points" in out
