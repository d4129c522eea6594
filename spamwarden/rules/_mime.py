"""One MIME leaf as the rules read it (shared by the preparation and the renderer)."""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["MimePart"]


@dataclass(frozen=True, slots=True)
class MimePart:
    """One MIME leaf: its headers (raw), content type, transfer encoding, encoded body."""

    headers: tuple[tuple[str, str], ...]
    content_type: str
    encoding: str
    encoded: bytes
    is_attachment: bool
    #: the multipart/alternative parts it is in (their order in the message, outer first)
    alternatives: tuple[int, ...] = ()
    #: how many multiparts it is in (0: the message is this one part)
    depth: int = 0
