"""Every text the settings send to SMTP clients or put into headers, in one place so
that each can be translated without touching the code that uses it.

Keys are stable names; values are ASCII (SMTP replies, RFC 5321 §4.2) and may hold
``str.format`` fields named in the comment above each.
"""

from __future__ import annotations

import types
from collections.abc import Mapping

__all__ = ["TEXTS", "text"]

TEXTS: Mapping[str, str] = types.MappingProxyType({
    # 452 4.5.3 at RCPT TO (RFC 5321 §4.5.3.1.10, RFC 3463 4.5.3): this recipient's
    # settings differ from those of the transaction's first recipient; the client
    # delivers it in another transaction.
    "split": "Too many recipients for one policy; send this recipient in another transaction",
    # ALLOWLIST detail: {entry} is the matching entry, e.g. "dkim:partner.example"
    "allowed": "allow-listed {entry}",
    # DENYLIST detail and reject reason
    "denied": "deny-listed {entry}",
})


def text(name: str, **fields: str) -> str:
    """The text ``name`` with its ``fields`` filled in.

    :raises KeyError: no such text.
    """
    return TEXTS[name].format(**fields)
