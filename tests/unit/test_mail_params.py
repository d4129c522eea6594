"""MIME parameters read in linear time from a bounded piece of the field
(spamwarden.mail._params): the same parameters as the email package, each value read
once, nothing past MAX_PARAM_CHARS."""

from __future__ import annotations

import email
import email.message
import email.policy
import random
from typing import Any

import pytest

from spamwarden.mail import MAX_PARAM_CHARS, ParamsMessage, _params, parse_message
from spamwarden.mail._params import params_cut
from spamwarden.rules import prepare_message
from tests.conftest import corpus_message_files, corpus_paths

# the email package's own cutter: the oracle the linear one must agree with
_STDLIB_SPLIT = email.message._parseparam  # type: ignore[attr-defined]

FIELDS = [
    "text/plain",
    "",
    ";",
    "text/plain;",
    "text/plain; charset=us-ascii; format=flowed",
    'text/plain; charset="utf-8"; name="a;b.txt"',
    'multipart/mixed; boundary="----=_NextPart_000_0000_01C2"',
    'text/plain; name="unclosed; boundary=b',
    'text/plain; name="a\\";b"; charset=koi8-r',
    'text/plain; a="x" ; b = "y;z" ;; c',
    "attachment; filename*0*=utf-8''%E2%82%AC%20rates; filename*1=\".pdf\"",
    "attachment; filename*=iso-8859-1'en'%A3rates.pdf; filename=plain.pdf",
    "text/html; CHARSET=Windows-1252; Name=Foo.HTM",
    'text/plain; ="x"; =; x=; "y"',
    "text/html ;" + " ;" * 50,
]


def _random_fields(n: int) -> list[str]:
    rng = random.Random(7)
    alphabet = ['"', "\\", ";", "=", " ", "a", "B", "*", "'", "\t", "0", '"', ";"]
    return ["".join(rng.choice(alphabet) for _ in range(rng.randint(0, 40))) for _ in range(n)]


@pytest.mark.parametrize("value", FIELDS)
def test_fields_are_cut_as_the_email_package_cuts_them(value: str) -> None:
    assert _params.split_params(value) == _STDLIB_SPLIT(value)


def test_random_fields_are_cut_as_the_email_package_cuts_them() -> None:
    """Quotes, escapes, semicolons and equals signs in every order."""
    for value in _random_fields(20_000):
        assert _params.split_params(value) == _STDLIB_SPLIT(value), value


def _both(head: str) -> tuple[email.message.Message, email.message.Message]:
    raw = (head + "\n\nbody\n").encode("utf-8")
    ours = email.message_from_bytes(raw, ParamsMessage, policy=email.policy.compat32)
    theirs = email.message_from_bytes(raw, policy=email.policy.compat32)
    assert isinstance(ours, ParamsMessage) and not isinstance(theirs, ParamsMessage)
    return ours, theirs


def _readings(m: email.message.Message) -> list[Any]:
    out: list[Any] = [m.get_params(), m.get_params(header="content-disposition"),
                      m.get_filename(), m.get_boundary(), m.get_content_charset()]
    for name in ("charset", "name", "boundary", "format", "a", "b", "c", ""):
        out.append(m.get_param(name))
        out.append(m.get_param(name, unquote=False))
        out.append(m.get_param(name, header="content-disposition"))
    return out


@pytest.mark.parametrize("value", FIELDS[4:])
def test_parameters_read_as_the_email_package_reads_them(value: str) -> None:
    ours, theirs = _both(f"Content-Type: {value}\nContent-Disposition: {value}")
    assert _readings(ours) == _readings(theirs)


def test_corpus_fields_read_as_the_email_package_reads_them() -> None:
    files = [f for root in corpus_paths().values() for f in corpus_message_files(root)][::7]
    compared = 0
    for path in files:
        raw = path.read_bytes()
        ours = email.message_from_bytes(raw, ParamsMessage, policy=email.policy.compat32)
        theirs = email.message_from_bytes(raw, policy=email.policy.compat32)
        for a, b in zip(ours.walk(), theirs.walk(), strict=True):
            if params_cut(b):  # (read only up to the bound: the test below)
                continue
            assert _readings(a) == _readings(b), path
            compared += 1
    assert compared > 1000


def _spy(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """The values :func:`split_params` is given from now on."""
    seen: list[str] = []
    real = _params.split_params

    def spy(value: str) -> list[str]:
        seen.append(value)
        return real(value)

    monkeypatch.setattr(_params, "split_params", spy)
    return seen


def test_each_value_is_read_once(monkeypatch: pytest.MonkeyPatch) -> None:
    seen = _spy(monkeypatch)
    ours, _ = _both("Content-Type: text/plain; charset=utf-8; name=a.txt\n"
                    "Content-Disposition: attachment; filename=b.txt")
    for _ in range(3):
        assert ours.get_content_charset() == "utf-8"
        assert ours.get_filename() == "b.txt"
        assert ours.get_param("name") == "a.txt"
    assert sorted(seen) == ["attachment; filename=b.txt", "text/plain; charset=utf-8; name=a.txt"]
    ours.replace_header("Content-Type", "text/plain; charset=koi8-r")
    assert ours.get_content_charset() == "koi8-r"  # a new value is read afresh
    assert len(seen) == 3


def test_only_the_first_max_param_chars_are_read(monkeypatch: pytest.MonkeyPatch) -> None:
    seen = _spy(monkeypatch)
    junk = "x=1; " * (MAX_PARAM_CHARS // 5 + 10)
    late, _ = _both(f"Content-Type: multipart/mixed; {junk}boundary=b")
    early, _ = _both(f"Content-Type: multipart/mixed; boundary=b; {junk}")
    assert late.get_boundary() is None
    assert early.get_boundary() == "b"
    assert seen and max(map(len, seen)) == MAX_PARAM_CHARS


def _hostile(parts: int, field: str) -> bytes:
    body = b"".join(b"--b\r\nContent-Type: text/plain; " + field.encode() + b"\r\n\r\nhello\r\n"
                    for _ in range(parts))
    return (b"From: a@example.com\r\nTo: b@example.org\r\nSubject: x\r\nMIME-Version: 1.0\r\n"
            b"Content-Type: multipart/mixed; boundary=b\r\n\r\n" + body + b"--b--\r\n")


@pytest.mark.parametrize("field", [" ;" * 50_000, 'a="' + " ;" * 50_000, "charset=utf-8"])
def test_the_parsers_read_parts_with_huge_parameter_fields(
        field: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """Each part's field (100 KB of ";", the same inside an open quote) is read once per
    parser, bounded; the parts and their text are all there."""
    seen = _spy(monkeypatch)
    raw = _hostile(5, field)
    view = parse_message(raw)
    assert len(view.parts) == 5 and view.text.count("hello") == 5
    assert ("content parameters over limit" in view.defects) == (len(field) > MAX_PARAM_CHARS)
    prepared = prepare_message(view, raw)
    assert sum(b"hello" in line for line in prepared.body) == 5
    assert seen and max(map(len, seen)) <= MAX_PARAM_CHARS
    # a part's Content-Type once in each parser, the top one a few times (charset, name,
    # boundary of several objects), never once per get_param
    assert len(seen) <= 2 * 5 + 8


def test_a_message_with_ordinary_fields_has_no_parameter_defect() -> None:
    view = parse_message(_hostile(2, "charset=utf-8; format=flowed"))
    assert "content parameters over limit" not in view.defects
    assert len(view.parts) == 2
