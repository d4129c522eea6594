"""`spamwarden doctor` says what is wrong in plain words, and exits 1 on failures."""

from __future__ import annotations

import grp
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest

from spamwarden._unixsock import bind_unix
from spamwarden.config import Config, config_from_mapping
from spamwarden.doctor import run_checks

pytestmark = pytest.mark.integration


def test_redis_check_against_a_real_server(redis_url: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SPAMWARDEN_REDIS_URL", redis_url)
    cfg = config_from_mapping({})
    findings = run_checks(cfg, ["redis"])
    assert [f.level for f in findings] == ["ok"], findings
    assert "answers at unix://" in findings[0].text


def test_redis_memory_limit_and_eviction_policy(redis_url: str, redis_server: object,
                                               monkeypatch: pytest.MonkeyPatch) -> None:
    """Evicting keys at maxmemory would drop listings, complaints or consent records
    without a word; a Redis at or near its limit refuses writes. doctor says both."""
    import redis

    monkeypatch.setenv("SPAMWARDEN_REDIS_URL", redis_url)
    cfg = config_from_mapping({})
    client = redis.Redis.from_url(redis_url)
    try:
        (f,) = run_checks(cfg, ["redis"])
        assert f.level == "ok" and "no maxmemory" in f.text, f
        client.config_set("maxmemory", str(1 << 30))
        client.config_set("maxmemory-policy", "allkeys-lru")
        findings = run_checks(cfg, ["redis"])
        assert [f.level for f in findings] == ["ok", "warn"], findings
        assert "allkeys-lru" in findings[1].text and "noeviction" in findings[1].text
        assert "of maxmemory 1024.0 MB" in findings[0].text
        client.config_set("maxmemory-policy", "noeviction")
        assert [f.level for f in run_checks(cfg, ["redis"])] == ["ok"]
        used = int(client.info("memory")["used_memory"])
        client.config_set("maxmemory", str(int(used / 0.95)))
        findings = run_checks(cfg, ["redis"])
        assert [f.level for f in findings] == ["ok", "warn"] and "nearly full" in findings[1].text
        client.config_set("maxmemory", str(used // 2))
        findings = run_checks(cfg, ["redis"])
        assert [f.level for f in findings] == ["ok", "fail"], findings
        assert "Redis is full" in findings[1].text and "451" in findings[1].text
    finally:
        client.config_set("maxmemory", "0")
        client.close()


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


# -- who can reach the milter and intake ---------------------------------------------------


def _sockets(cfg: Config) -> list[tuple[str, str]]:
    return [(f.level, f.text) for f in run_checks(cfg, ["sockets"])]


def test_sockets_check_warns_about_a_tcp_intake() -> None:
    [(level, text)] = _sockets(config_from_mapping({}))
    assert level == "warn" and text.startswith("intake.listen is '127.0.0.1:8025': every "
                                               "local process can connect and report")
    # without require_auth intake believes envelope senders anyway: nothing more to say
    assert _sockets(config_from_mapping({"intake": {"require_auth": False}})) == []


@pytest.mark.skipif(os.geteuid() != 0, reason="sets sockets' owners")
def test_sockets_check_reads_what_postfix_may_do(tmp_path: Path) -> None:
    try:
        postfix_gid = grp.getgrnam("postfix").gr_gid
    except KeyError:
        pytest.skip("no postfix group on this host")
    base = Path(tempfile.mkdtemp(prefix="sw-doctor-"))  # pytest's tmp_path is 0700
    os.chmod(base, 0o755)
    path = base / "run" / "milter.sock"
    cfg = config_from_mapping({"milter": {"listen": f"unix:{path}"},
                               "intake": {"require_auth": False}})
    try:
        [(level, text)] = _sockets(cfg)
        assert level == "warn" and "no socket at" in text
        with bind_unix(str(path), 0o660, postfix_gid):
            assert _sockets(cfg) == [("ok", f"milter.listen: postfix can connect to {path}; "
                                            "besides it, only the socket's owner and group "
                                            "(postfix) can")]
            os.chown(path, -1, 0)  # root's group: postfix is neither owner nor member
            [(level, text)] = _sockets(cfg)
            assert level == "fail" and "the postfix user has no write permission" in text
            assert "adduser postfix root" in text
            os.chmod(path, 0o666)
            [(level, text)] = _sockets(cfg)
            assert level == "warn" and "writable by every local user" in text
            os.chmod(base / "run", 0o700)
            [(level, text)] = _sockets(cfg)
            assert level == "fail" and f"cannot pass through {base / 'run'}" in text
        path.parent.chmod(0o755)
        path.unlink()
        path.write_text("not a socket")
        assert _sockets(cfg) == [("fail", f"milter.listen: {path} is not a socket")]
    finally:
        shutil.rmtree(base)


def test_postfix_check_knows_the_chrooted_socket_name(tmp_path: Path,
                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    """Debian's smtpd runs chrooted in the queue directory: main.cf names the milter's
    socket from inside it."""
    if not shutil.which("postconf"):
        pytest.skip("no postconf here")
    (tmp_path / "main.cf").write_text(
        "compatibility_level = 3.6\nqueue_directory = /var/spool/postfix\n"
        "smtpd_milters = unix:/spamwarden/milter.sock\nmilter_default_action = tempfail\n")
    (tmp_path / "master.cf").write_text("")
    monkeypatch.setenv("MAIL_CONFIG", str(tmp_path))
    listen = "unix:/var/spool/postfix/spamwarden/milter.sock"
    cfg = config_from_mapping({"milter": {"listen": listen}})
    assert [(f.level, f.text) for f in run_checks(cfg, ["postfix"])] == [
        ("ok", "smtpd_milters includes unix:/spamwarden/milter.sock")]
    cfg = config_from_mapping({"milter": {"listen": "unix:/run/spamwarden/milter.sock"}})
    [(level, text)] = [(f.level, f.text) for f in run_checks(cfg, ["postfix"])]
    assert level == "warn" and text.endswith("add unix:/run/spamwarden/milter.sock so Postfix "
                                             "uses spamwarden")
    cfg = config_from_mapping({"milter": {"listen": "unix:/var/spool/postfix/other.sock"}})
    [(level, text)] = [(f.level, f.text) for f in run_checks(cfg, ["postfix"])]
    assert text.endswith("add unix:/other.sock or unix:/var/spool/postfix/other.sock so "
                         "Postfix uses spamwarden")


def test_postfix_check_says_when_postconf_cannot_read_main_cf(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Without a main.cf postconf prints nothing and fails: that is not "smtpd_milters is
    empty"."""
    if not shutil.which("postconf"):
        pytest.skip("no postconf here")
    monkeypatch.setenv("MAIL_CONFIG", str(tmp_path / "nowhere"))
    [(level, text)] = [(f.level, f.text)
                       for f in run_checks(config_from_mapping({}), ["postfix"])]
    assert level == "warn" and text.startswith("postconf failed (") and "fatal: " in text
    assert text.endswith("cannot check Postfix settings here")
