"""Corpus readers (folder, mbox, Maildir, npm package layout) and duplicate removal."""

from __future__ import annotations

import json
import mailbox
from pathlib import Path

import pytest

from spamwarden.training.corpus import CorpusError, deduplicate, read_labelled, read_path


def _msg(subject: str, body: str, *, extra: str = "") -> bytes:
    return (f"From: a@example.com\nTo: b@example.org\nSubject: {subject}\n{extra}\n{body}\n"
            ).encode()


def test_folder_with_ham_and_spam(tmp_path: Path) -> None:
    (tmp_path / "ham").mkdir()
    (tmp_path / "spam" / "sub").mkdir(parents=True)
    (tmp_path / "ham" / "b").write_bytes(_msg("two", "b"))
    (tmp_path / "ham" / "a").write_bytes(b"From someone Mon Jan  1 00:00:00 2002\n" + _msg("one", "a"))
    (tmp_path / "spam" / "sub" / "c").write_bytes(_msg("three", "c"))
    (tmp_path / "spam" / "MANIFEST.tsv").write_text("file\tlabel\n")
    got = [(e.label, Path(e.source).name) for e in read_labelled(tmp_path)]
    assert got == [("ham", "a"), ("ham", "b"), ("spam", "c")]


def test_mbox_file(tmp_path: Path) -> None:
    path = tmp_path / "box.mbox"
    box = mailbox.mbox(str(path))
    for i in range(3):
        box.add(_msg(f"subject {i}", f"body {i}"))
    box.flush()
    box.close()
    got = list(read_path(path, "spam"))
    assert [e.label for e in got] == ["spam"] * 3
    assert [e.source.rsplit("#", 1)[1] for e in got] == ["0", "1", "2"]
    assert b"Subject: subject 1" in got[1].raw
    assert not got[1].raw.startswith(b"From ")


def test_maildir(tmp_path: Path) -> None:
    md = mailbox.Maildir(str(tmp_path / "Mail"), create=True)
    md.add(_msg("hello", "x"))
    md.add(_msg("again", "y"))
    got = list(read_path(tmp_path / "Mail", "ham"))
    assert len(got) == 2
    assert {e.raw.split(b"Subject: ")[1].split(b"\n")[0] for e in got} == {b"hello", b"again"}


def test_npm_package_layout(tmp_path: Path) -> None:
    data = tmp_path / "package" / "data"
    for group in ("easy-ham-1", "spam-2"):
        (data / group).mkdir(parents=True)
    (data / "easy-ham-1" / "00001.aa.txt").write_text(_msg("ham one", "h").decode())
    (data / "easy-ham-1" / "00001.aa.json").write_text(json.dumps({"text": "ignored"}))
    (data / "spam-2" / "00002.bb.json").write_text(
        json.dumps({"id": "00002", "group": "spam-2", "text": _msg("cheap pills", "s").decode()}))
    (data / "file_list.json").write_text("[]")
    got = list(read_labelled(tmp_path))
    assert [(e.label, b"ham one" in e.raw or b"cheap pills" in e.raw) for e in got] == [
        ("ham", True), ("spam", True)]


def test_single_file_and_missing_path(tmp_path: Path) -> None:
    f = tmp_path / "one.eml"
    f.write_bytes(_msg("x", "y"))
    assert [e.label for e in read_path(f, "ham")] == ["ham"]
    with pytest.raises(CorpusError, match="no such file"):
        list(read_path(tmp_path / "nope", "ham"))
    with pytest.raises(CorpusError, match="not a corpus"):
        list(read_labelled(tmp_path))


def test_deduplicate_exact_and_near(tmp_path: Path) -> None:
    from spamwarden.training.corpus import Example

    body = "Dear friend, this is a long enough body to be compared as a near duplicate. " * 2
    a = Example("spam", _msg("Offer 12", body), "a")
    exact = Example("spam", b"From x Mon Jan  1 00:00:00 2002\n" + _msg("Offer 12", body), "b")
    near = Example("spam", _msg("offer 99", body.replace(" ", "  "), extra="Received: x\n"), "c")
    conflict = Example("ham", _msg("OFFER 7", body), "d")
    other = Example("ham", _msg("Offer", "something else entirely, different words here " * 2), "e")
    kept, views, rep = deduplicate([a, exact, near, conflict, other])
    assert [e.source for e in kept] == ["a", "e"]
    assert len(views) == 2
    assert (rep.read, rep.kept, rep.exact, rep.near, rep.conflicting) == (5, 2, 1, 2, 1)


def test_short_messages_only_exact_dedup() -> None:
    from spamwarden.training.corpus import Example

    kept, _, rep = deduplicate([Example("ham", _msg("a", "hi"), "1"),
                                Example("ham", _msg("b", "hi"), "2")])
    assert len(kept) == 2 and rep.near == 0
