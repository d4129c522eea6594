"""Per-user tokens for ``POST /v1/learn``: a token that files mail as spam or not spam for
one mailbox only, for a webmail plugin or a user's own mail client, where the operator
token (any user) must not go.

A token is ``lt1.`` and the URL-safe base64 of HMAC-SHA256 over ``spamwarden-learn``, a NUL
and the user's folded address (:func:`~spamwarden.reputation.intake.reporter_identity`:
case and ``+extensions`` fold, so ``Alice+x@`` and ``alice@`` share one token), keyed by
the site's token key (``consent.token_key``, else the key file under ``state_dir``). The
prefix separates it from every other use of that key (unsubscribe tokens sign other
text). Nothing is stored: a token is checked by recomputing it, in constant time. There
is no revocation of one token; rotating the key revokes all of them (and the unsubscribe
links), which ``docs/api.md`` says.
"""

from __future__ import annotations

import base64
import hashlib
import hmac

from .intake import reporter_identity

__all__ = ["PREFIX", "learn_token", "learn_token_ok"]

#: the version prefix of a learn token
PREFIX = "lt1."
_CONTEXT = b"spamwarden-learn\x00"


def learn_token(key: bytes, user: str, *, delimiters: str) -> str:
    """The learn token of ``user``.

    :param key: the site's token key (at least 16 bytes; ``config-check`` enforces it).
    :param user: the mailbox owner's address (folded as intake folds reporters).
    :param delimiters: ``intake.recipient_delimiter``.
    :returns: ``lt1.`` and 43 URL-safe base64 characters.
    :raises ValueError: ``user`` is empty.
    """
    who = reporter_identity(user, delimiters=delimiters)
    if not who:
        raise ValueError("a learn token needs a user address")
    mac = hmac.new(key, _CONTEXT + who.encode("utf-8"), hashlib.sha256).digest()
    return PREFIX + base64.urlsafe_b64encode(mac).decode("ascii").rstrip("=")


def learn_token_ok(key: bytes, token: str, user: str, *, delimiters: str) -> bool:
    """Whether ``token`` is ``user``'s learn token (compared in constant time).

    :returns: False for an empty user, a token of another user, or anything else.
    """
    if not token.startswith(PREFIX) or len(token) > 100:
        return False
    try:
        want = learn_token(key, user, delimiters=delimiters)
    except ValueError:
        return False
    return hmac.compare_digest(token.encode("utf-8", "replace"), want.encode("ascii"))
