"""Feedback from a real Redis laid out as the complaint intake writes it: reading in report
order, resuming, skipping expired originals, and `train --feedback`."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import redis

from spamwarden.reputation.complaints import TRAINING_KEY
from spamwarden.training.feedback import FeedbackFollower, RedisFeedbackSource, read_all
from spamwarden.training.model import load_model, untrained_model

pytestmark = pytest.mark.integration

HAM = b"From: a@lists.example.org\nSubject: meeting notes %d\n\nnotes from the meeting, agenda\n"
SPAM = b"From: x@pills.example\nSubject: cheap pills %d\n\nbuy cheap pills now http://pills.example\n"


WORDS = ["alpha", "bravo", "charlie", "delta", "echo", "foxtrot", "golf", "hotel", "india",
         "juliett"]


def _store(client: redis.Redis, label: str, fp: str, t: float, raw: bytes | None) -> None:
    """What the intake's Lua script writes for one accepted report."""
    client.zadd(f"{TRAINING_KEY}:{label}", {fp: t})
    if raw is not None:
        client.set(f"{TRAINING_KEY}:{label}:{fp}", raw, ex=3600)


def test_reads_both_labels_in_report_order_and_resumes(redis_url: str) -> None:
    client = redis.Redis.from_url(redis_url)
    _store(client, "spam", "s1", 100.0, SPAM % 1)
    _store(client, "ham", "h1", 101.0, HAM % 1)
    _store(client, "spam", "s2", 102.0, None)  # expired original
    _store(client, "spam", "s3", 102.0, SPAM % 3)
    _store(client, "ham", "h2", 103.0, HAM % 2)
    source = RedisFeedbackSource(client)
    first = source.read(count=2)
    assert [(e.label, e.id.rsplit("/", 1)[1]) for e in first] == [("spam", "s1"), ("ham", "h1")]
    rest = source.read(after=first[-1].id, count=10)
    assert [e.id.rsplit("/", 1)[1] for e in rest] == ["s3", "h2"]
    assert rest[0].raw == SPAM % 3
    assert source.read(after=rest[-1].id) == []
    assert [e.label for e in read_all(source, batch=1)] == ["spam", "ham", "spam", "ham"]


def test_follower_teaches_new_reports_to_the_model(redis_url: str) -> None:
    client = redis.Redis.from_url(redis_url)
    model = untrained_model()
    follower = FeedbackFollower(model, RedisFeedbackSource(client), interval=3600)
    assert follower.poll_once() == 0
    for i in range(3):
        _store(client, "spam", f"s{i}", 200.0 + i, SPAM % i)
    assert follower.poll_once() == 3
    assert follower.poll_once() == 0
    assert model.metadata["learned_online"] == 3
    assert model.site_counts() == (0, 3)  # the site's own mail, per class


def test_train_feedback_adds_reports_to_the_base_corpus(
    redis_url: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from spamwarden.cli import main

    client = redis.Redis.from_url(redis_url)
    corpus = tmp_path / "corpus"
    for label, raw in (("ham", HAM), ("spam", SPAM)):
        (corpus / label).mkdir(parents=True)
        for i, word in enumerate(WORDS[:6]):
            (corpus / label / f"{i}").write_bytes(raw.replace(b"%d", word.encode())
                                                  + f"only {word} here\n".encode())
    for i, word in enumerate(WORDS[6:10]):
        _store(client, "spam", f"fp{i}", 300.0 + i,
               SPAM.replace(b"%d", word.encode()) + f"reported {word}\n".encode())
    out = tmp_path / "model.skops"
    cfg = tmp_path / "sw.toml"
    cfg.write_text(f'[redis]\nurl = "{redis_url}"\n[training]\nmodel = "{out}"\n'
                   f'corpus = ["{corpus}"]\n')
    assert main(["train", "--config", str(cfg), "--feedback", "-q"]) == 0
    assert "4 from feedback" in capsys.readouterr().out
    md = load_model(out).metadata
    assert md["corpus"]["feedback"] == 4
    assert md["corpus"]["n_spam"] == 10 and md["corpus"]["n_ham"] == 6
    assert md["feedback_cursor"].endswith("/spam/fp3")
    assert md["site"] == {"ham": 0, "spam": 4}  # reports count as this site's mail, the corpus not
    assert "--feedback" in md["command"]
    json.dumps(md)
