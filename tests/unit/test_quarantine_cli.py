"""``spamwarden quarantine`` (spamwarden.quarantine_cli) over a fake hold queue (the
:class:`~spamwarden.quarantine.HoldQueue` Protocol the console drives), and over the real
adapter with stand-in Postfix programs where what matters is that nothing runs; and the
doctor's quarantine check and its place in the default run."""

from __future__ import annotations

import io
import json
import logging
from pathlib import Path
from typing import Any

import pytest

from spamwarden.cli import build_parser
from spamwarden.config import Config, config_from_mapping
from spamwarden.doctor import check_quarantine, default_checks, run_checks
from spamwarden.errors import QuarantineError, QuarantineUnavailable, StoreError
from spamwarden.quarantine import HeldMessage, holds_mail
from spamwarden.quarantine_cli import SHOW_BYTES, cmd_delete, cmd_list, cmd_release, cmd_show
from spamwarden.reputation.intake import LearnOutcome

ARRIVED = 1796450841.0
MSG = (b"Received: from mx.example by us\nFrom: Alice <alice@good.test>\n"
       b"Subject: hello \x1b[31mred\x1b[0m\nTo: user@test.local\n\nthe body, not shown\n")


class FakeQueue:
    """A hold queue in memory; ``calls`` is every method called, in order."""

    def __init__(self, ids: tuple[str, ...] = ("C488A20CDED", "4jhHvn5jh6zJ9cK"),
                 *, broken: Exception | None = None) -> None:
        self.messages = {qid: MSG for qid in ids}
        self.calls: list[tuple[str, str]] = []
        self.broken = broken

    def _check(self, what: str, qid: str) -> None:
        self.calls.append((what, qid))
        if self.broken is not None:
            raise self.broken

    async def held(self) -> list[HeldMessage]:
        self._check("held", "")
        return [HeldMessage(queue_id=q, arrival_time=ARRIVED, size=len(raw),
                            sender="alice@good.test", recipients=("user@test.local",),
                            rcpt_count=3) for q, raw in self.messages.items()]

    async def release(self, queue_id: str) -> None:
        self._check("release", queue_id)
        if self.messages.pop(queue_id, None) is None:
            raise QuarantineError(f"{queue_id} is not in the hold queue (nothing released)")

    async def delete(self, queue_id: str) -> None:
        self._check("delete", queue_id)
        if self.messages.pop(queue_id, None) is None:
            raise QuarantineError(f"{queue_id} is not in the hold queue (nothing deleted)")

    async def read(self, queue_id: str, *, max_bytes: int) -> bytes:
        self._check("read", queue_id)
        return self.messages[queue_id]

    async def head(self, queue_id: str, *, max_bytes: int) -> bytes:
        self._check("head", queue_id)
        return self.messages[queue_id][:max_bytes]


def _args(*argv: str) -> Any:
    return build_parser().parse_args(["quarantine", *argv])


def _cfg(**quarantine: Any) -> Config:
    return config_from_mapping({"intake": {"local_domains": ["test.local"]},
                                "quarantine": quarantine})


def _run(cmd: Any, *argv: str, **kw: Any) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    kw.setdefault("cfg", _cfg())
    cfg = kw.pop("cfg")
    status = cmd(_args(*argv), cfg, out=out, err=err, **kw)
    return status, out.getvalue(), err.getvalue()


def test_list_prints_each_held_message_and_json_has_every_field() -> None:
    status, out, err = _run(cmd_list, "list", queue=FakeQueue())
    assert status == 0
    lines = out.splitlines()
    assert len(lines) == 2 and lines[0].startswith("C488A20CDED ")
    assert "<alice@good.test> -> user@test.local,+2" in lines[0]
    assert err == "2 message(s) held\n"
    status, out, _ = _run(cmd_list, "list", "--json", queue=FakeQueue())
    rows = json.loads(out)
    assert status == 0 and [r["queue_id"] for r in rows] == ["C488A20CDED", "4jhHvn5jh6zJ9cK"]
    assert rows[0] == {"queue_id": "C488A20CDED", "arrival_time": ARRIVED,
                       "arrived": "2026-12-05T06:07:21Z", "size": len(MSG),
                       "sender": "alice@good.test", "recipients": ["user@test.local"],
                       "rcpt_count": 3}


@pytest.mark.parametrize("action", [("release",), ("release", "--learn-ham"), ("delete",),
                                    ("show",)])
@pytest.mark.parametrize("bad", ["ALL", "-d", "../x", "-d ALL", "C488A20CDED ALL", "hold"])
def test_a_bad_queue_id_is_exit_2_in_one_line_and_nothing_runs(action: tuple[str, ...],
                                                                bad: str) -> None:
    q = FakeQueue()
    cmd = {"release": cmd_release, "delete": cmd_delete, "show": cmd_show}[action[0]]
    ids = [bad] if action[0] == "show" else ["C488A20CDED", bad]  # a good one first
    status, out, err = _run(cmd, *action, "--", *ids, queue=q)
    assert status == 2 and out == ""
    assert err.count("\n") == 1 and "not a Postfix queue id" in err and "nothing was done" in err
    assert q.calls == []


def test_an_option_given_as_queue_id_is_refused_by_the_parser(capsys: Any) -> None:
    for argv in (["release", "-d"], ["delete", "-d", "ALL"], ["show", "-d"]):
        with pytest.raises(SystemExit) as stop:
            _args(*argv)
        assert stop.value.code == 2
    capsys.readouterr()


def test_bad_ids_never_reach_the_real_postfix_commands(tmp_path: Path) -> None:
    # the real adapter over stand-ins that record whether they ran at all
    ran = tmp_path / "ran"
    fake = tmp_path / "prog"
    fake.write_text(f"#!/bin/sh\necho \"$0 $@\" >> {ran}\n")
    fake.chmod(0o755)
    cfg = _cfg(postqueue=str(fake), postsuper=str(fake), postcat=str(fake))
    for cmd, argv in ((cmd_release, ["release", "--", "ALL"]),
                      (cmd_release, ["release", "--learn-ham", "--", "../x"]),
                      (cmd_delete, ["delete", "--", "C488A20CDED", "-d"]),
                      (cmd_show, ["show", "--", "../x"])):
        status, _, _ = _run(cmd, *argv, cfg=cfg)
        assert status == 2
    assert not ran.exists()


def test_release_goes_on_past_a_failure_logs_each_id_and_exits_1(
        caplog: pytest.LogCaptureFixture) -> None:
    q = FakeQueue()
    caplog.set_level(logging.INFO, logger="spamwarden.quarantine")
    status, out, err = _run(cmd_release, "release", "ABCDEF0123", "C488A20CDED",
                            "C488A20CDED", queue=q)
    assert status == 1
    assert out == "C488A20CDED: released\n"
    assert err == ("spamwarden quarantine: ABCDEF0123: ABCDEF0123 is not in the hold queue "
                   "(nothing released)\n")
    assert q.calls == [("release", "ABCDEF0123"), ("release", "C488A20CDED")]  # once each
    logged = [(r.getMessage(), r.fields["queue_id"]) for r in caplog.records]  # type: ignore[attr-defined]
    assert logged == [("quarantine_release_failed", "ABCDEF0123"),
                      ("quarantine_release", "C488A20CDED")]
    assert all(r.fields["by"] for r in caplog.records)  # type: ignore[attr-defined]


def test_delete_deletes_each_and_logs_it(caplog: pytest.LogCaptureFixture) -> None:
    q = FakeQueue()
    caplog.set_level(logging.INFO, logger="spamwarden.quarantine")
    status, out, _ = _run(cmd_delete, "delete", "4jhHvn5jh6zJ9cK", queue=q)
    assert (status, out) == (0, "4jhHvn5jh6zJ9cK: deleted\n")
    assert list(q.messages) == ["C488A20CDED"]
    assert [r.fields["queue_id"] for r in caplog.records] == ["4jhHvn5jh6zJ9cK"]  # type: ignore[attr-defined]


def test_release_learn_ham_learns_then_releases_and_refused_keeps_it_held() -> None:
    learned: list[bytes] = []

    async def learn(raw: bytes) -> LearnOutcome:
        learned.append(raw)
        return LearnOutcome("added", complaint_id="1-0")

    q = FakeQueue()
    status, out, _ = _run(cmd_release, "release", "--learn-ham", "C488A20CDED", queue=q,
                          learn=learn)
    assert status == 0 and out == "C488A20CDED: learned as not spam and released\n"
    assert learned == [MSG]
    assert q.calls == [("held", ""), ("read", "C488A20CDED"), ("release", "C488A20CDED")]

    async def refuse(raw: bytes) -> LearnOutcome:
        return LearnOutcome("rate_limited", message="reporter rate reached")

    q = FakeQueue()
    status, out, err = _run(cmd_release, "release", "--learn-ham", "C488A20CDED", queue=q,
                            learn=refuse)
    assert status == 1 and out == ""
    assert "C488A20CDED: not learned, not released: reporter rate reached" in err
    assert "C488A20CDED" in q.messages and ("release", "C488A20CDED") not in q.calls


def test_release_learn_ham_of_a_message_not_on_hold_reads_nothing() -> None:
    async def learn(raw: bytes) -> LearnOutcome:
        raise AssertionError("must not learn")

    q = FakeQueue()
    status, _, err = _run(cmd_release, "release", "--learn-ham", "ABCDEF0123", queue=q,
                          learn=learn)
    assert status == 1 and "ABCDEF0123 is not in the hold queue" in err
    assert q.calls == [("held", "")]


def _entry(**kw: Any) -> dict[str, Any]:
    entry = {"time": ARRIVED + 1, "queue_id": "C488A20CDED", "action": "quarantine",
             "score": 11.5, "required": 10.0, "reason": "spam score 11.5 >= 10.0 (BAYES_99)",
             "symbols": [{"name": "BAYES_99", "points": 3.5, "detail": ""},
                         {"name": "URIBL_BLACK", "points": 8, "detail": ""}]}
    entry.update(kw)
    return entry


def test_show_prints_envelope_header_and_verdict_but_not_the_body() -> None:
    asked: list[str] = []

    def history(qid: str) -> list[dict[str, Any]]:
        asked.append(qid)
        return [_entry()]

    status, out, _ = _run(cmd_show, "show", "C488A20CDED", queue=FakeQueue(), history=history)
    assert status == 0 and asked == ["C488A20CDED"]
    assert "queue id:   C488A20CDED\n" in out and "recipients: user@test.local,+2\n" in out
    assert ("verdict:    quarantine score 11.5/10.0: spam score 11.5 >= 10.0 (BAYES_99)\n"
            "symbols:    BAYES_99(3.5), URIBL_BLACK(8)\n") in out
    assert "From: Alice <alice@good.test>\n" in out
    # the header's escape sequences are shown, not sent to the terminal
    assert "Subject: hello \\x1b[31mred\\x1b[0m" in out and "\x1b" not in out
    assert "the body" not in out


def test_show_ignores_an_older_message_with_the_same_queue_id_and_a_history_outage() -> None:
    old = _entry(time=ARRIVED - 86400, action="accept")
    status, out, _ = _run(cmd_show, "show", "C488A20CDED", queue=FakeQueue(),
                          history=lambda qid: [old])
    assert status == 0 and "verdict:    no history entry" in out and "accept" not in out

    def down(qid: str) -> list[dict[str, Any]]:
        raise StoreError("Redis unavailable: connection refused")

    status, out, _ = _run(cmd_show, "show", "C488A20CDED", queue=FakeQueue(), history=down)
    assert status == 0 and "verdict:    not read: Redis unavailable" in out
    status, out, _ = _run(cmd_show, "show", "--json", "C488A20CDED", queue=FakeQueue(),
                          history=lambda qid: [_entry()])
    shown = json.loads(out)
    assert shown["history"]["score"] == 11.5 and shown["message"]["queue_id"] == "C488A20CDED"
    assert shown["header"].endswith("To: user@test.local") and shown["header_cut"] is False


def test_show_says_when_the_header_is_longer_than_it_reads() -> None:
    q = FakeQueue()
    q.messages["C488A20CDED"] = b"X-Long: " + b"a" * (SHOW_BYTES * 2) + b"\n\nbody\n"
    status, out, _ = _run(cmd_show, "show", "C488A20CDED", queue=q, history=lambda qid: [])
    assert status == 0 and out.endswith(f"a\n[header cut at {SHOW_BYTES} bytes]\n")
    assert out.count("a" * 1000) == 65 and "body" not in out


def test_show_of_a_message_not_held_is_exit_1() -> None:
    q = FakeQueue()
    status, out, err = _run(cmd_show, "show", "ABCDEF0123", queue=q, history=lambda qid: [])
    assert (status, out) == (1, "")
    assert err == "spamwarden quarantine: ABCDEF0123 is not in the hold queue\n"
    assert ("head", "ABCDEF0123") not in q.calls


@pytest.mark.parametrize("cmd,argv", [(cmd_list, ["list"]), (cmd_delete, ["delete", "ABCDEF0123"]),
                                      (cmd_release, ["release", "ABCDEF0123"]),
                                      (cmd_show, ["show", "ABCDEF0123"])])
def test_postfix_not_configured_is_exit_1_with_the_reason(cmd: Any, argv: list[str]) -> None:
    q = FakeQueue(broken=QuarantineUnavailable("no main.cf in /nowhere"))
    status, out, err = _run(cmd, *argv, queue=q)
    assert status == 1 and out == ""
    assert err.startswith("spamwarden quarantine: the quarantine is not configured: "
                          "no main.cf in /nowhere")


def test_not_configured_with_the_real_adapter(tmp_path: Path) -> None:
    status, _, err = _run(cmd_list, "list", cfg=_cfg(postfix_config_dir=str(tmp_path)))
    assert status == 1 and f"no main.cf in quarantine.postfix_config_dir {tmp_path}" in err


def test_show_reads_a_bounded_head_of_a_huge_message(tmp_path: Path) -> None:
    # postcat stand-in: a header, then far more body than show reads
    fake = tmp_path / "postcat"
    fake.write_text("#!/bin/sh\nprintf 'Subject: big\\n\\n'; head -c 5000000 /dev/zero\n")
    fake.chmod(0o755)
    from spamwarden.quarantine import PostfixQueue

    class Held(PostfixQueue):
        async def held(self) -> list[HeldMessage]:
            return [HeldMessage("C488A20CDED", ARRIVED, 5000000, "", (), 0)]

    status, out, _ = _run(cmd_show, "show", "C488A20CDED", queue=Held(_cfg(
        postcat=str(fake)).quarantine), history=lambda qid: [])
    assert status == 0 and out.endswith("\nSubject: big\n")


def test_quarantine_help_text(capsys: Any) -> None:
    with pytest.raises(SystemExit):
        build_parser().parse_args(["quarantine", "--help"])
    text = capsys.readouterr().out
    assert "Exit status: 0 done; 1 a command failed" in text
    assert "example: spamwarden quarantine release --learn-ham 4jhHvn5jh6zJ9cK" in text
    for action in ("list", "show", "release", "delete"):
        assert action in text


# -- doctor -----------------------------------------------------------------------------


def test_the_quarantine_check_is_in_the_default_run_only_when_mail_can_be_held() -> None:
    hold = config_from_mapping({})
    assert holds_mail(hold)[0] and "quarantine" in default_checks(hold)
    # no score band, but DMARC p=quarantine failures still hold
    band = config_from_mapping({"policy": {"quarantine_threshold": 15.0}})
    can, why = holds_mail(band)
    assert can and "DMARC p=quarantine" in why and "quarantine" in default_checks(band)
    tag = config_from_mapping({"milter": {"quarantine": "tag"}})
    assert not holds_mail(tag)[0] and "quarantine" not in default_checks(tag)
    assert default_checks(tag) == [n for n in default_checks(hold) if n != "quarantine"]


def test_a_default_run_says_why_it_skipped_the_quarantine(monkeypatch: Any) -> None:
    import spamwarden.doctor as doctor

    monkeypatch.setattr(doctor, "CHECKS", {"quarantine": doctor.check_quarantine})
    (f,) = run_checks(config_from_mapping({"milter": {"quarantine": "tag"}}))
    assert f.level == "ok" and f.text.startswith('not checked: milter.quarantine is "tag"')


def _script(path: Path, body: str) -> str:
    path.write_text("#!/bin/sh\n" + body)
    path.chmod(0o755)
    return str(path)


def test_doctor_fails_on_missing_programs(tmp_path: Path) -> None:
    cfg = _cfg(postsuper=str(tmp_path / "postsuper"))
    (f,) = check_quarantine(cfg)
    assert f.level == "fail" and f"quarantine.postsuper = {tmp_path}/postsuper" in f.text


def _postfix_stand_ins(tmp_path: Path) -> dict[str, str]:
    (tmp_path / "main.cf").write_text("")
    empty = _script(tmp_path / "postqueue", "exit 0\n")
    return {"postfix_config_dir": str(tmp_path), "postqueue": empty,
            "postsuper": _script(tmp_path / "postsuper", "exit 9\n"),
            "postcat": _script(tmp_path / "postcat", "exit 9\n")}


def test_doctor_without_sudo_needs_root(tmp_path: Path) -> None:
    cfg = _cfg(**_postfix_stand_ins(tmp_path))
    found, listed, root = check_quarantine(cfg, euid=0)
    assert [found.level, listed.level, root.level] == ["ok", "ok", "ok"]
    assert listed.text == f"postqueue -j reads the queue of {tmp_path}: 0 message(s) on hold"
    *_, user = check_quarantine(cfg, euid=1000)
    assert user.level == "fail" and "need root" in user.text and "quarantine.sudo" in user.text


def test_doctor_asks_sudo_for_the_exact_command_lines(tmp_path: Path) -> None:
    asked = tmp_path / "asked"
    # a sudo that allows postsuper -H only
    sudo = _script(tmp_path / "sudo", f'echo "$@" >> {asked}\n'
                   'case "$*" in *postsuper\\ -c\\ *\\ -H\\ *) exit 0;; esac\nexit 1\n')
    cfg = _cfg(sudo=sudo, **_postfix_stand_ins(tmp_path))
    *_, f = check_quarantine(cfg, euid=1000)
    assert f.level == "fail" and "sudo -n does not allow" in f.text
    assert f"postsuper -c {tmp_path} -d ABCDEF0123 hold" in f.text
    assert f"postcat -c {tmp_path} -bh -q ABCDEF0123" in f.text
    assert "-H ABCDEF0123" not in f.text
    assert asked.read_text().splitlines() == [
        f"-l -n {tmp_path}/postsuper -c {tmp_path} -H ABCDEF0123",
        f"-l -n {tmp_path}/postsuper -c {tmp_path} -d ABCDEF0123 hold",
        f"-l -n {tmp_path}/postcat -c {tmp_path} -bh -q ABCDEF0123"]
    _script(tmp_path / "sudo", "exit 0\n")
    *_, f = check_quarantine(cfg, euid=1000)
    assert f.level == "ok" and f.text.startswith("sudo -n allows")


def test_doctor_fails_clearly_on_a_wrong_config_dir(tmp_path: Path) -> None:
    cfg = _cfg(**{**_postfix_stand_ins(tmp_path), "postfix_config_dir": str(tmp_path / "no")})
    found, f = check_quarantine(cfg)
    assert found.level == "ok" and f.level == "fail"
    assert f.text.startswith("the quarantine is not configured: no main.cf in "
                             f"quarantine.postfix_config_dir {tmp_path}/no")
