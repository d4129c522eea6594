"""One MIME leaf as the rules read it (shared by the preparation and the renderer)."""

from __future__ import annotations

import re
from dataclasses import dataclass

__all__ = ["MimePart"]

# Node.pm's effective_type: a part named like a web page is rendered as HTML (bugs 6260, 6439)
_HTML_NAME = re.compile(r"\.s?html?$", re.IGNORECASE)


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
    #: its file name as Message.pm's ``_parse_normal`` reads it ("" for none)
    name: str = ""

    @property
    def effective_type(self) -> str:
        """Node.pm's ``effective_type``: text/html when the part's name ends in
        ``.htm``, ``.html``, ``.shtm`` or ``.shtml`` (an HTML page sent as
        application/octet-stream is still rendered, scanned and parsed as HTML), else
        its content type."""
        return "text/html" if _HTML_NAME.search(self.name) else self.content_type
