"""`spamwarden doctor` says what is wrong in plain words, and exits 1 on failures."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from spamwarden.config import config_from_mapping
from spamwarden.doctor import run_checks

pytestmark = pytest.mark.integration


def test_redis_check_against_a_real_server(redis_url: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SPAMWARDEN_REDIS_URL", redis_url)
    cfg = config_from_mapping({})
    findings = run_checks(cfg, ["redis"])
    assert [f.level for f in findings] == ["ok"], findings
    assert "answers at unix://" in findings[0].text


def test_redis_down_is_a_failure_with_a_hint(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SPAMWARDEN_REDIS_URL", f"unix://{tmp_path}/none.sock")
    cfg = config_from_mapping({"redis": {"url": f"unix://{tmp_path}/none.sock"}})
    (f,) = run_checks(cfg, ["redis"])
    assert f.level == "fail"
    assert "cannot reach Redis" in f.text and "redis.url" in f.text


def test_blocklist_down_and_exit_status(tmp_path: Path, redis_url: str) -> None:
    cfg = tmp_path / "sw.toml"
    cfg.write_text(
        f'[service]\nstate_dir = "{tmp_path}"\n[redis]\nurl = "{redis_url}"\n'
        '[rbl]\nlisten = ["127.0.0.1:9"]\n[dns]\ntimeout = "0.3s"\n'
    )
    res = subprocess.run(
        [sys.executable, "-m", "spamwarden", "doctor", "--config", str(cfg),
         "--check", "redis", "--check", "blocklist"],
        capture_output=True, text=True, timeout=60,
        env={k: v for k, v in os.environ.items() if k != "SPAMWARDEN_REDIS_URL"},
    )
    assert res.returncode == 1, res.stdout + res.stderr
    assert "OK    redis" in res.stdout
    assert "FAIL  blocklist  the DNS server at 127.0.0.1:9 did not answer" in res.stdout
    assert res.stdout.strip().endswith("1 failed, 0 warnings")


def test_model_check_loads_the_shipped_model_and_refuses_a_corrupt_one(tmp_path: Path) -> None:
    f, site = run_checks(config_from_mapping({}), ["model"])
    assert (f.level, f.text) == ("ok", "model (shipped default) loads")
    # the shipped model has learned none of this site's mail: its points are scaled down
    assert site.level == "warn" and site.text.startswith(
        "learned 0 ham (training.min_site_ham 200) and 0 spam (training.min_site_spam 200)")
    bad = tmp_path / "model.skops"
    bad.write_bytes(b"not a model")
    (f,) = run_checks(config_from_mapping({"training": {"model": str(bad)}}), ["model"])
    assert f.level == "fail" and str(bad) in f.text


SECRET = "s3cret-Passw0rd"


@pytest.mark.parametrize("url", [
    f"redis://:{SECRET}@127.0.0.1:9/0",
    f"redis://default:{SECRET}@127.0.0.1:9/0",
    f"redis+sentinel://:{SECRET}@127.0.0.1:9/mymaster",
    f"redis://127.0.0.1:9/0?password={SECRET}",
])
def test_doctor_never_prints_the_redis_password(tmp_path: Path, url: str) -> None:
    cfg = tmp_path / "sw.toml"
    cfg.write_text(f'[service]\nstate_dir = "{tmp_path}"\n[redis]\nurl = "{url}"\n'
                   'timeout = "0.5s"\n')
    res = subprocess.run(
        [sys.executable, "-m", "spamwarden", "doctor", "--config", str(cfg), "--check", "redis"],
        capture_output=True, text=True, timeout=60,
        env={k: v for k, v in os.environ.items() if k != "SPAMWARDEN_REDIS_URL"},
    )
    out = res.stdout + res.stderr
    assert "FAIL  redis" in out and "127.0.0.1:9" in out, out
    assert SECRET not in out
    assert "***" in out
