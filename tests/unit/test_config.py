"""The configuration loader: defaults, the shipped file, and clear errors."""

from __future__ import annotations

from pathlib import Path

import pytest

from spamwarden.config import (
    Config,
    config_from_mapping,
    default_config_path,
    load_config,
    parse_duration,
    parse_hostport,
)
from spamwarden.errors import ConfigError

ROOT = Path(__file__).resolve().parents[2]


def test_shipped_config_loads_and_matches_defaults_where_it_should() -> None:
    cfg = load_config(ROOT / "conf" / "spamwarden.toml")
    defaults = Config()
    # The decree's numbers are the defaults, and the shipped file keeps them.
    assert cfg.consent.max_ads_per_day == defaults.consent.max_ads_per_day == 3
    assert cfg.consent.labels == ("QC", "ADV")
    assert cfg.consent.retention == 365 * 86400
    assert cfg.milter.listen == "inet:127.0.0.1:8890"
    assert cfg.redis.url is None  # embedded Redis by default
    assert cfg.service.state_dir == "var"
    assert cfg.source.endswith("spamwarden.toml")


def test_every_dataclass_field_is_documented_in_the_shipped_file() -> None:
    """conf/spamwarden.toml lists every option: a new field must be added there too."""
    import dataclasses
    import tomllib

    data = tomllib.loads((ROOT / "conf" / "spamwarden.toml").read_text())
    text = (ROOT / "conf" / "spamwarden.toml").read_text()
    missing = []
    for section in dataclasses.fields(Config):
        if section.name == "source":
            continue
        cls = section.default_factory  # type: ignore[misc]
        for f in dataclasses.fields(cls):  # type: ignore[arg-type]
            present = f.name in data.get(section.name, {}) or f"# {f.name} =" in text
            if not present:
                missing.append(f"{section.name}.{f.name}")
    assert missing == []


@pytest.mark.parametrize(
    ("data", "needle"),
    [
        ({"milter": {"listen": "8890"}}, "milter.listen = '8890': expected a Postfix milter address"),
        ({"nosuch": {}}, "unknown section [nosuch]"),
        ({"dns": {"timeout": "soon"}}, "dns.timeout = 'soon': expected a duration"),
        ({"dns": {"nameservers": ["not-an-ip"]}}, "dns.nameservers"),
        ({"dns": {"nameserver": ["127.0.0.1"]}}, "unknown key dns.nameserver"),
        ({"policy": {"tag_threshold": "high"}}, "policy.tag_threshold = 'high': expected a number"),
        ({"policy": {"tag_threshold": 20.0}}, "tag_threshold <= quarantine_threshold"),
        ({"milter": {"max_message_bytes": 0}}, "expected a number greater than 0"),
        ({"milter": {"on_error": "drop"}}, "one of 'tempfail', 'accept', 'reject'"),
        ({"reputation": {"min_complaint_rate": 2}}, "a fraction between 0 and 1"),
        ({"consent": {"max_ads_per_day": True}}, "expected a whole number"),
        ({"intake": {"trusted_relays": ["10.0.0.0/33"]}}, "intake.trusted_relays"),
        ({"policy": {"symbols": {"X": "many"}}}, "policy.symbols"),
        ({"milter": 3}, "[milter] must be a table"),
    ],
)
def test_bad_values_name_file_key_and_expectation(data: dict, needle: str) -> None:
    with pytest.raises(ConfigError) as err:
        config_from_mapping(data, source="/etc/x.toml")
    assert str(err.value).startswith("/etc/x.toml: ")
    assert needle in str(err.value)


def test_values_are_converted() -> None:
    cfg = config_from_mapping(
        {
            "dns": {"nameservers": ["127.0.0.1:5300", "::1"], "timeout": "2s"},
            "rbl": {"listen": "127.0.0.1:5300"},  # a single string where a list is allowed
            "reputation": {"window": "24h"},
            "policy": {"symbols": {"SPF_FAIL": 3}},
        }
    )
    assert cfg.dns.nameservers == ("127.0.0.1:5300", "::1")
    assert cfg.dns.timeout == 2.0
    assert cfg.rbl.listen == ("127.0.0.1:5300",)
    assert cfg.reputation.window == 86400.0
    assert cfg.policy.symbols["SPF_FAIL"] == 3.0
    with pytest.raises(TypeError):
        cfg.policy.symbols["SPF_FAIL"] = 1.0  # type: ignore[index]


def test_missing_file_and_bad_toml(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="configuration file not found"):
        load_config(tmp_path / "none.toml")
    bad = tmp_path / "bad.toml"
    bad.write_text("[milter\nlisten = 1\n")
    with pytest.raises(ConfigError, match="not valid TOML"):
        load_config(bad)


def test_default_path_prefers_environment(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("SPAMWARDEN_CONFIG", str(tmp_path / "a.toml"))
    assert default_config_path() == tmp_path / "a.toml"


@pytest.mark.parametrize(
    ("text", "seconds"), [(30, 30.0), ("90s", 90.0), ("15m", 900.0), ("24h", 86400.0), ("7d", 604800.0), ("1.5", 1.5)]
)
def test_durations(text: object, seconds: float) -> None:
    assert parse_duration(text) == seconds


@pytest.mark.parametrize("bad", ["", "5x", -1, True, "h", None])
def test_bad_durations(bad: object) -> None:
    with pytest.raises(ValueError):
        parse_duration(bad)


def test_hostport() -> None:
    assert parse_hostport("127.0.0.1:53") == ("127.0.0.1", 53)
    assert parse_hostport("[::1]:5353") == ("::1", 5353)
    assert parse_hostport("::1", default_port=53) == ("::1", 53)
    with pytest.raises(ValueError):
        parse_hostport("127.0.0.1:99999")
    with pytest.raises(ValueError):
        parse_hostport("127.0.0.1")


@pytest.mark.parametrize(
    ("data", "needle"),
    [
        ({"api": {"operator_tokens": [""]}}, "api.operator_tokens"),
        ({"api": {"operator_tokens": ["a" * 40, "short"]}}, "api.operator_tokens"),
        ({"api": {"operator_tokens": ["has a space in it 0123456789"]}}, "api.operator_tokens"),
        ({"consent": {"token_key": "short"}}, "consent.token_key"),
        ({"consent": {"token_key": "a" * 32}}, "consent.token_key"),
    ],
)
def test_secrets_too_weak_are_refused_without_echoing_them(data: dict, needle: str) -> None:
    """An empty operator token authorised an empty bearer; a short token key passed
    config-check and then stopped the service at start. Both are refused here, and the
    message names the key but never prints the secret."""
    with pytest.raises(ConfigError) as err:
        config_from_mapping(data, source="/etc/x.toml")
    text = str(err.value)
    assert text.startswith(f"/etc/x.toml: {needle} ") and "expected" in text
    assert "short" not in text and "a" * 32 not in text and "space in it" not in text


def test_strong_secrets_and_an_empty_key_are_accepted() -> None:
    cfg = config_from_mapping({"api": {"operator_tokens": ["0123456789abcdef0123"]},
                               "consent": {"token_key": "0123456789abcdef"}})
    assert cfg.api.operator_tokens == ("0123456789abcdef0123",)
    assert config_from_mapping({"consent": {"token_key": ""}}).consent.token_key == ""


@pytest.mark.parametrize("url", [
    "http://127.0.0.1:8891",             # no /u/: the printed links would answer 404
    "https://mail.example.net/unsubscribe/",
    "mail.example.net/u/",
    "https://mail.example.net/u/?lang=vi",
    "ftp://mail.example.net/u/",
])
def test_unsubscribe_base_url_must_end_where_the_api_serves_tokens(url: str) -> None:
    with pytest.raises(ConfigError) as exc:
        config_from_mapping({"consent": {"unsubscribe_base_url": url}})
    assert "consent.unsubscribe_base_url" in str(exc.value)
    assert "ending in /u/" in str(exc.value)


@pytest.mark.parametrize("url", [
    "http://127.0.0.1:8891/u/", "https://mail.example.net/u", "https://example.net/sw/u/",
])
def test_unsubscribe_base_urls_the_api_serves(url: str) -> None:
    assert config_from_mapping({"consent": {"unsubscribe_base_url": url}})


@pytest.mark.parametrize("url", ["https://mail.example.net/v1", "mail.example.net",
                                 "https://mail.example.net/?x=1"])
def test_api_public_url_is_the_api_root(url: str) -> None:
    with pytest.raises(ConfigError, match=r"api\.public_url .*the API's public root"):
        config_from_mapping({"api": {"public_url": url}})


@pytest.mark.parametrize("url", ["https://bl.example.net/lookup", "bl.example.net/lookup/",
                                 "https://bl.example.net/lookup/#x"])
def test_rbl_lookup_url_takes_the_key_at_its_end(url: str) -> None:
    # "https://bl.example.net/lookup" + "192.0.2.7" would name a page nobody serves
    with pytest.raises(ConfigError, match=r"rbl\.lookup_url .*appended to"):
        config_from_mapping({"rbl": {"lookup_url": url}})
    assert config_from_mapping({"rbl": {"lookup_url": "https://example.net/bl?key="}})


def test_engine_processes_wait_longer_than_a_messages_time_limit() -> None:
    """A message may match until ``rules.time_limit`` and then still be answered: the
    engine process's ``rules.timeout`` is longer by default, and a configuration where
    it is not (the process would be killed and the message lose every rule point) is
    warned about, with engine processes on."""
    from spamwarden.config import config_warnings

    d = Config().rules
    assert d.timeout > d.time_limit
    assert config_warnings(config_from_mapping(
        {"rules": {"processes": 2}}, source="<t>")) == []
    same = config_from_mapping(
        {"rules": {"processes": 2, "timeout": "10s", "time_limit": "10s"}}, source="<t>")
    (warning,) = config_warnings(same)
    assert "rules.timeout" in warning and "rules.time_limit" in warning
    assert config_warnings(config_from_mapping(
        {"rules": {"timeout": "10s", "time_limit": "10s"}}, source="<t>")) == []


def test_held_unverified_ads_that_would_be_delivered_are_warned_about() -> None:
    """With milter.quarantine = "tag" a held message is delivered: an unauthenticated ad
    to a recipient who refused it would reach them."""
    from spamwarden.config import config_warnings

    assert config_warnings(Config()) == []
    (warning,) = config_warnings(config_from_mapping(
        {"milter": {"quarantine": "tag"}}, source="<t>"))
    assert "consent.unverified_action" in warning and "milter.quarantine" in warning
    for fine in ({"milter": {"quarantine": "tag"}, "consent": {"unverified_action": "reject"}},
                 {"milter": {"quarantine": "tag"}, "consent": {"enabled": False}}):
        assert config_warnings(config_from_mapping(fine, source="<t>")) == [], fine


def test_cpu_affinity_takes_auto_off_or_a_cpu_list() -> None:
    """``milter.cpu_affinity``: a wrong value is refused with what it takes, and a list
    naming cores this process may not use loads but is warned about."""
    import os

    from spamwarden.config import config_warnings

    assert Config().milter.cpu_affinity == "auto"
    for ok in ("auto", "on", "off", "0", "0-1,3"):
        assert config_from_mapping({"milter": {"cpu_affinity": ok}}).milter.cpu_affinity == ok
    for bad in ("yes", "1-", "3-1", ""):
        with pytest.raises(ConfigError, match=r'milter\.cpu_affinity .*"auto", "on", "off" or a list'):
            config_from_mapping({"milter": {"cpu_affinity": bad}})
    usable = sorted(os.sched_getaffinity(0))
    assert config_warnings(config_from_mapping(
        {"milter": {"cpu_affinity": str(usable[0])}}, source="<t>")) == []
    (warning,) = config_warnings(config_from_mapping(
        {"milter": {"cpu_affinity": f"{usable[0]},4000"}}, source="<t>"))
    assert "milter.cpu_affinity" in warning and "(4000;" in warning


def test_max_lookups_per_message_is_read_but_ignored_and_warned_about() -> None:
    """``dns.max_lookups_per_message`` never limited anything: a file that sets it still
    loads (upgrades keep working), and is told the setting does nothing."""
    from spamwarden.config import config_warnings

    assert config_warnings(Config()) == []
    cfg = config_from_mapping({"dns": {"max_lookups_per_message": 40}}, source="<t>")
    (warning,) = config_warnings(cfg)
    assert "dns.max_lookups_per_message" in warning and "ignored" in warning
    import tomllib

    shipped = tomllib.loads((ROOT / "conf" / "spamwarden.toml").read_text())
    assert "max_lookups_per_message" not in shipped["dns"]


@pytest.mark.parametrize("section,key,bad", [
    ("reputation", "allow", "https://partner.example/"),
    ("reputation", "allow", "partner .example"),
    ("reputation", "allow", "192.0.2.0/33"),
    ("reputation", "shared_domains", "gmail .com"),
    ("reputation", "shared_domains", "mail@gmail.com"),
    ("intake", "local_domains", "exa mple.vn"),
    ("intake", "local_domains", "@example.vn"),
])
def test_a_list_entry_no_lookup_can_use_is_refused(section: str, key: str, bad: str) -> None:
    """An entry the listing policy or intake cannot read was dropped without a word: a
    partner written as a URL in reputation.allow was then listable. Each is refused
    at load, naming the option and what it takes."""
    with pytest.raises(ConfigError) as err:
        config_from_mapping({section: {key: ["example.org", bad]}}, source="<t>")
    assert f"{section}.{key}" in str(err.value) and "such as" in str(err.value)


def test_list_entries_in_every_spelling_a_lookup_reads_are_taken() -> None:
    """Domains in either IDN spelling, upper case or with a trailing dot, and (for
    reputation.allow) addresses and networks."""
    cfg = config_from_mapping({
        "reputation": {"allow": ["Partner.Example.", "ví-dụ.vn", "192.0.2.0/24", "2001:db8::1"],
                       "shared_domains": ["xn--v-d-rma6749a.vn", "GMAIL.COM"]},
        "intake": {"local_domains": ["ví-dụ.vn", "Example.VN."]},
        "milter": {"arc_trusted_sealers": ["lists.ví-dụ.vn"]},
    }, source="<t>")
    assert cfg.reputation.allow[1] == "ví-dụ.vn"
    assert cfg.milter.arc_trusted_sealers == ("lists.ví-dụ.vn",)
