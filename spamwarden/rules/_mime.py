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
