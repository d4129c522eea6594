"""The quarantine's pure core (spamwarden.quarantine): postqueue -j parsing and queue id
checks, on output captured from Postfix 3.7 (tests/data/postqueue/)."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from spamwarden.config import QuarantineConfig
from spamwarden.errors import QuarantineError, QuarantineUnavailable
from spamwarden.quarantine import PostfixQueue, check_queue_id, is_queue_id, parse_postqueue_json

DATA = Path(__file__).resolve().parents[1] / "data" / "postqueue"


def _sample() -> list[bytes]:
    return (DATA / "hold-and-deferred.jsonl").read_bytes().splitlines()


def test_only_hold_entries_are_listed_with_their_fields() -> None:
    held = parse_postqueue_json(_sample(), limit=100)
    assert [m.queue_id for m in held] == ["C488A20CDED", "C625F20C0CD", "C6A1B20C0CE",
                                          "4jhHvn5jh6zJ9cK"]  # not the deferred one
    first = held[0]
    assert first.sender == "alice@example.org" and first.size == 294
    assert first.recipients == ("user@test.local", "nobody@elsewhere.example")
    assert first.arrival_time == 1796450841 and first.rcpt_count == 2
    assert held[1].sender == ""  # MAILER-DAEMON: the null sender
    assert held[2].sender == '"odd \\"name\\""@example.org'


def test_the_count_is_bounded_and_garbage_lines_are_skipped() -> None:
    lines = [b"", b"not json", b"[1,2]", b'{"queue_name":"hold","queue_id":"ALL"}',
             b'{"queue_name":"hold","queue_id":"../x"}',
             b'{"queue_name":"hold","queue_id":"ABCDEF12","recipients":"x",'
             b'"arrival_time":"soon","message_size":-1e400}', b"\xff\xfe", *_sample()]
    held = parse_postqueue_json(lines, limit=2)
    assert [m.queue_id for m in held] == ["ABCDEF12", "C488A20CDED"]
    assert held[0].recipients == () and held[0].arrival_time == 0 and held[0].size == 0
    assert parse_postqueue_json(_sample(), limit=0) == []


@pytest.mark.parametrize("good", ["C488A20CDED", "4jhHvn5jh6zJ9cK", "4jhHvn5kb2zJ9FS", "ABCDEF"])
def test_real_queue_ids_pass(good: str) -> None:
    assert is_queue_id(good) and check_queue_id(good) == good


@pytest.mark.parametrize("bad", [
    "ALL", "-d", "-d ALL", "../x", "../../etc/passwd", "C488A20CDED ALL", "C488A20CDED\n",
    "c488a20cded", "", "deferred", "4jhHvn5jh6zJ9cK/..", "ABCDE", "x" * 100, "hold",
    "4jhHvn5jh6z", "AEIOUaeiouzJ9cK"])
def test_anything_else_is_refused_before_a_command_runs(bad: str) -> None:
    assert not is_queue_id(bad)
    with pytest.raises(QuarantineError):
        check_queue_id(bad)


def test_a_bad_queue_id_never_reaches_postsuper(tmp_path: Path) -> None:
    # postsuper is a script that records that it ran: it must not run at all
    ran = tmp_path / "ran"
    fake = tmp_path / "postsuper"
    fake.write_text(f"#!/bin/sh\necho \"$@\" > {ran}\n")
    fake.chmod(0o755)
    q = PostfixQueue(QuarantineConfig(postsuper=str(fake), postcat=str(fake)))
    for bad in ("ALL", "-d ALL", "../x"):
        for call in (q.release(bad), q.delete(bad), q.read(bad, max_bytes=10)):
            with pytest.raises(QuarantineError):
                asyncio.run(call)
    assert not ran.exists()


def test_missing_postfix_is_unavailable_not_a_crash(tmp_path: Path) -> None:
    q = PostfixQueue(QuarantineConfig(postqueue=str(tmp_path / "no-such-postqueue")))
    with pytest.raises(QuarantineUnavailable):
        asyncio.run(q.held())
    q = PostfixQueue(QuarantineConfig(postfix_config_dir=str(tmp_path)))  # no main.cf
    with pytest.raises(QuarantineUnavailable):
        asyncio.run(q.held())


def test_a_command_that_hangs_is_stopped_at_the_timeout(tmp_path: Path) -> None:
    fake = tmp_path / "postqueue"
    fake.write_text("#!/bin/sh\nexec sleep 30\n")
    fake.chmod(0o755)
    q = PostfixQueue(QuarantineConfig(postqueue=str(fake), timeout=0.3))
    with pytest.raises(QuarantineError, match="did not finish"):
        asyncio.run(q.held())


def test_postsuper_that_released_nothing_is_an_error(tmp_path: Path) -> None:
    fake = tmp_path / "postsuper"
    fake.write_text("#!/bin/sh\necho 'postsuper: Released from hold: 0 messages' >&2\n")
    fake.chmod(0o755)
    q = PostfixQueue(QuarantineConfig(postsuper=str(fake)))
    with pytest.raises(QuarantineError, match="not in the hold queue"):
        asyncio.run(q.release("C488A20CDED"))


def test_output_larger_than_the_bound_is_refused(tmp_path: Path) -> None:
    fake = tmp_path / "postcat"
    fake.write_text("#!/bin/sh\nhead -c 300000 /dev/zero\n")
    fake.chmod(0o755)
    q = PostfixQueue(QuarantineConfig(postcat=str(fake)))
    with pytest.raises(QuarantineError, match="more than"):
        asyncio.run(q.read("C488A20CDED", max_bytes=1000))
