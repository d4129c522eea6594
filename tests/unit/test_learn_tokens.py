"""Per-user learn tokens (spamwarden/reputation/learn_tokens.py)."""

from __future__ import annotations

import pytest

from spamwarden.reputation.learn_tokens import PREFIX, learn_token, learn_token_ok

KEY = b"k" * 32


def test_one_token_per_folded_user_and_key() -> None:
    alice = learn_token(KEY, "alice@example.org", delimiters="+")
    assert alice.startswith(PREFIX) and len(alice) == len(PREFIX) + 43
    # case and extension fold
    assert learn_token(KEY, "Alice+news@EXAMPLE.org", delimiters="+") == alice
    assert learn_token(KEY, "alice-news@example.org", delimiters="+-") == alice
    assert learn_token(KEY, "bob@example.org", delimiters="+") != alice
    # another site's key
    assert learn_token(b"x" * 32, "alice@example.org", delimiters="+") != alice
    with pytest.raises(ValueError):
        learn_token(KEY, "", delimiters="+")


def test_a_token_is_good_only_for_its_user() -> None:
    alice = learn_token(KEY, "alice@example.org", delimiters="+")
    assert learn_token_ok(KEY, alice, "ALICE+x@example.org", delimiters="+")
    assert not learn_token_ok(KEY, alice, "bob@example.org", delimiters="+")
    assert not learn_token_ok(KEY, alice, "", delimiters="+")
    # no prefix
    assert not learn_token_ok(KEY, alice[len(PREFIX):], "alice@example.org", delimiters="+")
    assert not learn_token_ok(KEY, alice + "A", "alice@example.org", delimiters="+")
    assert not learn_token_ok(KEY, alice + "A" * 100, "alice@example.org", delimiters="+")
    assert not learn_token_ok(b"x" * 32, alice, "alice@example.org", delimiters="+")
