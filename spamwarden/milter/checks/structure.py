"""What the message's own structure says: a MIME tree deeper than any mail program
writes (``MIME_TOO_DEEP``).

The parser reads multiparts :data:`~spamwarden.mail.MAX_NESTING` deep and no deeper
(the email package checks every line against every boundary open around it, so depth
multiplies its cost); text further down is read by no check. Such a message is no
ordinary mail, and hiding text there must not pay: it scores over the tag threshold's
points by itself, authenticated or not.
"""

from __future__ import annotations

from collections.abc import Sequence

from ...mail import NESTED_TOO_DEEP
from ..interfaces import Symbol
from ..registry import CheckBase, CheckDecl, Components, MessageContext, Phase
from ..symbols import SymbolSpec

__all__ = ["CHECK", "SYMBOLS", "StructureCheck"]

_G = "structure"
SYMBOLS: tuple[SymbolSpec, ...] = (
    SymbolSpec("MIME_TOO_DEEP", 6.0,
               "multiparts nested deeper than the parser reads (mail.MAX_NESTING): what lies "
               "deeper is checked by nothing", _G),
)


class StructureCheck(CheckBase):
    """Symbols from the parse's own findings."""

    def __init__(self, parts: Components) -> None:
        self._make = parts.points.make

    def at_message(self, msg: MessageContext) -> Sequence[Symbol]:
        if NESTED_TOO_DEEP in msg.view.defects:
            return (self._make("MIME_TOO_DEEP", NESTED_TOO_DEEP),)
        return ()


def _build(parts: Components) -> StructureCheck:
    return StructureCheck(parts)


CHECK = CheckDecl(
    name="structure",
    order=85,
    symbols=SYMBOLS,
    phases=frozenset({Phase.MESSAGE}),
    build=_build,
)
