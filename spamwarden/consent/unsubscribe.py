"""One-click unsubscribe tokens (RFC 8058) bound to an advertiser and a recipient.

A token is ``<payload>.<mac>`` in base64url without padding::

    payload = base64url("v1" 0x00 purpose 0x00 advertiser 0x00 recipient)
    mac     = base64url(HMAC-SHA256(key, payload))

so the API can record a refusal from the token alone (RFC 8058 §3.1: the POST
must need no further interaction) while nobody without the key can make a token
for somebody else's address.  ``purpose`` separates the kinds so one is never
accepted as another:

``u``  unsubscribe (advertiser, recipient): refuses that advertiser only.  The
       API issues one to an advertiser only for a recipient it holds consent for.
``r``  lookup (advertiser, recipient): the records of that pair and the
       recipient's refusal of all advertising - never another advertiser's.
``a``  refusal of all advertising (no advertiser, recipient): mailed to the
       recipient only, so only the mailbox's owner refuses all advertising.

Verification is constant-time (:func:`hmac.compare_digest`).

The key is ``consent.token_key``; when that is empty, :func:`load_token_key`
generates 32 random bytes once under ``service.state_dir`` (file mode 0600) and
every process of the same configuration reads the same file.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import os
import secrets
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from ..config import Config
from ..errors import ConfigError

__all__ = [
    "TokenSigner",
    "TokenClaims",
    "InvalidToken",
    "load_token_key",
    "signer_from_config",
    "unsubscribe_url",
    "sibling_url",
    "list_unsubscribe_headers",
    "KEY_FILE",
    "MAX_TOKEN_CHARS",
]

KEY_FILE = "consent-token.key"
#: longer tokens are refused before any work is done
MAX_TOKEN_CHARS = 1024
_VERSION = b"v1"

Purpose = Literal["u", "r", "a"]


class InvalidToken(ValueError):
    """The token is malformed, forged or for another purpose."""


@dataclass(frozen=True, slots=True)
class TokenClaims:
    """What a verified token is bound to (``advertiser`` is empty for ``a`` tokens)."""

    purpose: Purpose
    advertiser: str
    recipient: str


def _b64e(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def _b64d(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


class TokenSigner:
    """Makes and checks tokens with one HMAC-SHA256 key.

    :param key: the secret; at least 16 bytes.
    :raises ValueError: the key is too short.
    """

    def __init__(self, key: bytes) -> None:
        if len(key) < 16:
            raise ValueError("the token key must be at least 16 bytes")
        self._key = key

    def _mac(self, payload: str) -> bytes:
        return hmac.new(self._key, payload.encode("ascii"), hashlib.sha256).digest()

    def make(self, advertiser: str, recipient: str, *, purpose: Purpose = "u") -> str:
        """A token binding ``advertiser`` and ``recipient`` (already normalised)."""
        for part in (advertiser, recipient):
            if "\x00" in part:
                raise ValueError("NUL in a token field")
        payload = _b64e(
            b"\x00".join(
                [_VERSION, purpose.encode(), advertiser.encode("utf-8"), recipient.encode("utf-8")]
            )
        )
        return f"{payload}.{_b64e(self._mac(payload))}"

    def lookup_token(self, advertiser: str, recipient: str) -> str:
        """A token letting the recipient see the records of ``advertiser`` about them
        (and their own refusal of all advertising); no other advertiser's."""
        return self.make(advertiser, recipient, purpose="r")

    def all_advertising_token(self, recipient: str) -> str:
        """A token refusing all advertising to ``recipient``: send it to that mailbox only."""
        return self.make("", recipient, purpose="a")

    def verify(self, token: str, *, purpose: Purpose = "u") -> TokenClaims:
        """Check a token and return what it is bound to.

        :raises InvalidToken: malformed, wrong MAC (forged or made with another
            key), wrong version or another purpose.
        """
        if not token or len(token) > MAX_TOKEN_CHARS or token.count(".") != 1:
            raise InvalidToken("malformed token")
        payload, mac_text = token.split(".")
        try:
            given = _b64d(mac_text)
        except (ValueError, TypeError) as exc:
            raise InvalidToken("malformed token") from exc
        try:
            expected = self._mac(payload)
        except UnicodeEncodeError as exc:
            raise InvalidToken("malformed token") from exc
        if not hmac.compare_digest(given, expected):
            raise InvalidToken("token signature does not match")
        try:
            fields = _b64d(payload).split(b"\x00")
            version, kind, adv, rcpt = fields
            claims = TokenClaims(
                purpose=kind.decode("ascii"),  # type: ignore[arg-type]
                advertiser=adv.decode("utf-8"),
                recipient=rcpt.decode("utf-8"),
            )
        except (ValueError, TypeError, UnicodeDecodeError) as exc:
            raise InvalidToken("malformed token") from exc
        if version != _VERSION or claims.purpose != purpose or not claims.recipient:
            raise InvalidToken("token is not valid here")
        if (purpose in ("u", "r")) != bool(claims.advertiser):
            raise InvalidToken("token is not valid here")
        return claims


def load_token_key(cfg: Config) -> bytes:
    """The HMAC key: ``consent.token_key``, else the key file under
    ``service.state_dir`` (created once, mode 0600, by whichever process comes first).

    :raises ConfigError: the key file cannot be created or read.
    """
    if cfg.consent.token_key:
        return cfg.consent.token_key.encode("utf-8")
    path = cfg.state_path(KEY_FILE)
    try:
        return _read_key(path)
    except FileNotFoundError:
        pass
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read the token key: {exc.strerror}") from exc
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        return _read_key(path)  # another process won the race
    except OSError as exc:
        raise ConfigError(f"{path}: cannot create the token key: {exc.strerror}") from exc
    with os.fdopen(fd, "w") as fh:
        fh.write(secrets.token_hex(32) + "\n")
        fh.flush()
        os.fsync(fh.fileno())
    return _read_key(path)


def _read_key(path: Path) -> bytes:
    for _ in range(50):  # a writer that just created the file may not have written yet
        text = path.read_text().strip()
        if text:
            return text.encode("ascii")
        import time

        time.sleep(0.01)
    raise ConfigError(f"{path}: the token key file is empty")


def signer_from_config(cfg: Config) -> TokenSigner:
    """A :class:`TokenSigner` with the configured (or generated) key.

    :raises ConfigError: the key is unusable.
    """
    try:
        return TokenSigner(load_token_key(cfg))
    except ValueError as exc:
        raise ConfigError(f"{cfg.source}: consent.token_key: {exc}") from exc


def unsubscribe_url(cfg: Config, signer: TokenSigner, advertiser: str, recipient: str) -> str:
    """The one-click URL for ``List-Unsubscribe`` (``consent.unsubscribe_base_url`` + token)."""
    base = cfg.consent.unsubscribe_base_url
    if not base.endswith("/"):
        base += "/"
    return base + signer.make(advertiser, recipient)


def sibling_url(cfg: Config, kind: str, token: str) -> str:
    """The URL of another token route beside the unsubscribe one: ``kind`` ``a`` gives
    ``https://host/a/TOKEN`` for ``consent.unsubscribe_base_url = "https://host/u/"``."""
    base = cfg.consent.unsubscribe_base_url.rstrip("/")
    parent = base.rsplit("/", 1)[0] if "/" in base.split("://", 1)[-1] else base
    return f"{parent}/{kind}/{token}"


def list_unsubscribe_headers(url: str) -> list[tuple[str, str]]:
    """The two RFC 8058 §3.1 headers an advertiser adds (and must DKIM-sign)."""
    return [
        ("List-Unsubscribe", f"<{url}>"),
        ("List-Unsubscribe-Post", "List-Unsubscribe=One-Click"),
    ]
