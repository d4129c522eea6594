"""Unicode normalization a sender cannot make slow (``spamwarden._unicode``).

``unicodedata.normalize`` sorts each run of combining marks with an insertion sort: a
run of marks of two alternating classes costs its length squared (200,000 of them, 30 s
of CPU). No timing here: the tests hold what the code hands to ``normalize``, and that
the bounded normalization gives what ``normalize`` gives on ordinary text."""

from __future__ import annotations

import unicodedata
from collections.abc import Callable
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from spamwarden._unicode import MAX_MARKS, normalized, stream_safe
from tests.support.unicode import longest_mark_run

#: two combining marks of different classes (acute 230, dot below 220): every pair is out
#: of canonical order, the costly case
ALTERNATING = "\u0301\u0323"


def test_stream_safe_cuts_long_runs_and_keeps_the_rest() -> None:
    assert stream_safe("a" + ALTERNATING * 100 + " b") == "a" + ALTERNATING * 15 + " b"
    assert stream_safe("x" + "\u0301" * MAX_MARKS) == "x" + "\u0301" * MAX_MARKS
    # a character whose decomposition is two non-starters though it is not one itself
    assert stream_safe("a" + "\u0f73" * 100) == "a" + "\u0f73" * MAX_MARKS
    viet = unicodedata.normalize("NFD", "Khuyến mãi đặc biệt hôm nay")
    assert stream_safe(viet) == viet


@given(st.text(max_size=300))
def test_normalized_is_normalize_on_text_without_long_runs(text: str) -> None:
    text = stream_safe(text)
    for form in ("NFC", "NFD"):
        assert normalized(form, text) == unicodedata.normalize(form, text)  # type: ignore[arg-type]


HOSTILE = "Mua ngay a" + ALTERNATING * 2_000 + " hôm nay " + "\u0f73" * 2_000 + " đi"


def _hostile_message() -> bytes:
    return ("From: Shop <deals@shop.example>\r\nTo: an@example.vn\r\n"
            f"Subject: {HOSTILE[:3000]}\r\nMessage-ID: <h1@shop.example>\r\n"
            "MIME-Version: 1.0\r\nContent-Type: text/plain; charset=utf-8\r\n\r\n"
            f"{HOSTILE}\r\n").encode()


@pytest.fixture
def handed(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """The longest run of non-starters in each text ``unicodedata.normalize`` is given."""
    runs: list[int] = []
    real = unicodedata.normalize

    def spy(form: Any, text: str) -> str:
        runs.append(longest_mark_run(text, real))
        return real(form, text)

    monkeypatch.setattr(unicodedata, "normalize", spy)
    return runs


@pytest.mark.parametrize("name", ["fingerprint", "inline report", "tokens", "fold_ascii"])
def test_no_text_of_a_message_reaches_normalize_with_a_long_run(name: str,
                                                               handed: list[int]) -> None:
    from spamwarden.i18n import fold_ascii
    from spamwarden.mail import parse_message
    from spamwarden.reputation.reports import delivered_fingerprint, find_original, fingerprint
    from spamwarden.training.features import MessageFeatureExtractor

    raw = _hostile_message()
    inline = ("From: an@example.vn\r\nTo: report@example.vn\r\nSubject: Fwd: x\r\n"
              "Content-Type: text/plain; charset=utf-8\r\n\r\n"
              "---------- Forwarded message ---------\r\n"
              "From: Shop <deals@shop.example>\r\nSubject: x\r\nTo: an@example.vn\r\n\r\n"
              f"{HOSTILE}\r\n").encode()
    runs: dict[str, Callable[[], object]] = {
        "fingerprint": lambda: delivered_fingerprint(parse_message(raw)),
        "inline report": lambda: fingerprint(find_original(inline)),
        "tokens": lambda: MessageFeatureExtractor().tokens(parse_message(raw)),
        "fold_ascii": lambda: fold_ascii(HOSTILE),
    }
    runs[name]()
    assert handed, "normalize was not called: the test no longer reaches it"
    assert max(handed) <= 2 * MAX_MARKS + 2  # U+0F73 decomposes to two non-starters
