"""The openspf test suites (RFC 7208 and RFC 4408 editions) through ``check_spf``.

Every scenario runs through spamwarden's SPF layer with the scenario's zone data
served by :class:`SuiteZoneResolver`, a :class:`~spamwarden.resolver.Resolver`
that reads the suite's ``zonedata`` the way pyspf's own harness does
(``test/testspf.py``): ``SPF`` records are also served as ``TXT`` unless the
name has ``TXT`` data, ``NONE`` values are absent records, a ``TIMEOUT`` item
fails every type not answered before it, ``{TYPE: TIMEOUT}`` fails that type,
and an unknown name under ``error.`` fails.  A failure is ``DnsAnswer("error")``
- exactly what the production resolver returns for a timeout or SERVFAIL.

Divergences from a suite's expected result are listed in ``XFAIL`` with the
reason; everything else must pass.
"""

from __future__ import annotations

from typing import Any

import pytest
import yaml

from spamwarden.milter.auth import check_spf
from spamwarden.resolver import DnsAnswer, Resolver
from tests.conftest import DATA, data_path

SUITES = ("rfc7208-tests.yml", "rfc4408-tests.yml")

# (suite file, test id) -> why our result differs from the suite's expectation.
XFAIL: dict[tuple[str, str], str] = {}

_MAX_CNAME_CHAIN = 10


class SuiteZoneResolver:
    """A :class:`Resolver` over one scenario's ``zonedata`` (see module docstring)."""

    def __init__(self, zonedata: dict[str, Any] | None) -> None:
        self.zone: dict[str, list[Any]] = {}
        for name, items in (zonedata or {}).items():
            self.zone[str(name).lower().rstrip(".")] = _convert(items or [])
        self.queries: list[tuple[str, str]] = []

    def query(self, name: str, rdtype: str, *, timeout: float | None = None) -> DnsAnswer:
        name, rdtype = name.lower().rstrip("."), rdtype.upper()
        self.queries.append((name, rdtype))
        seen: set[str] = set()
        for _ in range(_MAX_CNAME_CHAIN):
            items = self.zone.get(name)
            if items is None:
                if name.startswith("error."):
                    return DnsAnswer("error", reason="suite: timeout")
                return DnsAnswer("nxdomain")
            records: list[Any] = []
            cname: str | None = None
            unanswered = True
            for item in items:
                if item == "TIMEOUT":
                    if unanswered:
                        return DnsAnswer("error", reason="suite: timeout")
                    break
                rtype, value = item
                if rtype == rdtype:
                    unanswered = False
                if value == "TIMEOUT":
                    if rtype == rdtype:
                        return DnsAnswer("error", reason="suite: timeout")
                    continue
                if rtype == rdtype:
                    records.append(value)
                elif rtype == "CNAME":
                    cname = str(value).lower().rstrip(".")
            if records:
                return DnsAnswer("ok", tuple(records))
            if cname is None or rdtype == "CNAME" or cname in seen:
                # A CNAME loop is no data, as in pyspf's own CNAME handling.
                return DnsAnswer("nodata")
            seen.add(name)
            name = cname
        return DnsAnswer("nodata")


def _convert(items: list[Any]) -> list[Any]:
    """Suite items -> ``"TIMEOUT"`` or ``(type, value in DnsAnswer form)``."""
    out: list[Any] = []
    generated: list[Any] = []
    has_txt = any(isinstance(i, dict) and "TXT" in i for i in items)
    for item in items:
        if not isinstance(item, dict):
            out.append(item)
            continue
        for rtype, value in item.items():
            if value == "NONE":
                continue
            if value == "TIMEOUT":
                out.append((rtype, "TIMEOUT"))
                continue
            if rtype in ("TXT", "SPF"):
                strings = value if isinstance(value, list) else [value]
                data = b"".join(str(s).encode("utf-8") for s in strings)
                out.append((rtype, data))
                if rtype == "SPF" and not has_txt:
                    generated.append(("TXT", data))
            elif rtype == "MX":
                out.append((rtype, (int(value[0]), str(value[1]).rstrip("."))))
            else:
                out.append((rtype, str(value).rstrip(".")))
    return out + generated


def _load(filename: str) -> list[tuple[str, str, dict[str, Any], dict[str, Any]]]:
    """(file, test id, test, zonedata) for every scenario of a suite file."""
    path = DATA / "suites" / "spf" / filename
    if not path.exists():
        return []  # test_suites_are_all_loaded fails
    cases = []
    with path.open("rb") as fh:
        for doc in yaml.safe_load_all(fh):
            for test_id, test in doc["tests"].items():
                cases.append((filename, str(test_id), test, doc.get("zonedata") or {}))
    return cases


CASES = [c for name in SUITES for c in _load(name)]


def _params() -> list[Any]:
    params = []
    for filename, test_id, test, zone in CASES:
        marks = []
        reason = XFAIL.get((filename, test_id))
        if reason:
            marks.append(pytest.mark.xfail(reason=reason, strict=True))
        params.append(pytest.param(filename, test, zone, id=f"{filename}::{test_id}", marks=marks))
    return params


@pytest.mark.parametrize(("filename", "test", "zone"), _params())
def test_suite_scenario(filename: str, test: dict[str, Any], zone: dict[str, Any]) -> None:
    resolver = SuiteZoneResolver(zone)
    assert isinstance(resolver, Resolver)
    got = check_spf(
        resolver,
        ip=str(test["host"]),
        mail_from=str(test["mailfrom"]),
        helo=str(test["helo"]),
        default_explanation="DEFAULT",
    )
    expected = test["result"] if isinstance(test["result"], list) else [test["result"]]
    assert got.result in expected, (test.get("spec"), test.get("description"), got)
    if "explanation" in test:
        assert got.explanation == test["explanation"]


def test_suites_are_all_loaded() -> None:
    """The whole of both suites runs: a missing or truncated file fails here."""
    for name in SUITES:
        data_path("suites", "spf", name)
    by_file = {name: sum(1 for c in CASES if c[0] == name) for name in SUITES}
    assert by_file == {"rfc7208-tests.yml": 203, "rfc4408-tests.yml": 191}
    assert all(key in {(c[0], c[1]) for c in CASES} for key in XFAIL)


def test_suite_resolver_timeout_forms() -> None:
    """The harness conventions this resolver mirrors, checked on their own."""
    r = SuiteZoneResolver(
        {
            "a.example": ["TIMEOUT"],
            "b.example": [{"TXT": "v=spf1 -all"}, "TIMEOUT"],
            "c.example": [{"SPF": "v=spf1 -all"}, {"TXT": "NONE"}, "TIMEOUT"],
            "d.example": [{"SPF": "v=spf1 ?all"}, {"A": "192.0.2.1"}],
            "e.example": [{"CNAME": "d.example"}],
        }
    )
    assert r.query("a.example", "TXT").status == "error"
    assert r.query("b.example", "TXT") == DnsAnswer("ok", (b"v=spf1 -all",))
    assert r.query("b.example", "A").status == "error"
    assert r.query("c.example", "TXT").status == "error"
    assert r.query("d.example", "TXT") == DnsAnswer("ok", (b"v=spf1 ?all",))
    assert r.query("d.example", "MX").status == "nodata"
    assert r.query("e.example", "A") == DnsAnswer("ok", ("192.0.2.1",))
    assert r.query("nope.example", "A").status == "nxdomain"
    assert r.query("error.nope.example", "A").status == "error"


def test_pyspf_global_lookup_is_not_used(monkeypatch: pytest.MonkeyPatch) -> None:
    """No lookup may go through pyspf's process-wide DNSLookup (shared by threads)."""
    import spf

    def forbidden(*args: Any, **kwargs: Any) -> Any:
        raise AssertionError("spf.DNSLookup called")

    monkeypatch.setattr(spf, "DNSLookup", forbidden)
    zone = {
        "example.org": [{"TXT": "v=spf1 a mx include:inc.example.org -all"},
                        {"A": "192.0.2.1"}, {"MX": [10, "mx.example.org"]}],
        "mx.example.org": [{"A": "192.0.2.2"}],
        "9.2.0.192.in-addr.arpa": [{"PTR": "h.example.org"}],
        "inc.example.org": [{"TXT": "v=spf1 ptr exists:%{i}.x.example.org -all"}],
    }
    got = check_spf(SuiteZoneResolver(zone), ip="192.0.2.9", mail_from="a@example.org",
                    helo="h.example.org")
    assert got.result == "fail"

