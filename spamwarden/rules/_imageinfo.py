"""Image dimensions as SpamAssassin's ImageInfo plugin reads them (``ImageInfo.pm``).

Only the few header octets ImageInfo reads are looked at: GIF's logical screen size,
PNG's ``IHDR`` chunk and the JPEG frame header (SOF0-SOF15 but DHT, JPG and DAC).
Each reader is ImageInfo's, quirks included (a PNG's chunks are looked for every 8
octets, not by their lengths), and each is bounded: a GIF reads 13 octets, a PNG one
regex pass in C over the decoded image, a JPEG at most :data:`MAX_JPEG_SEGMENTS`
segments before its frame header (ImageInfo walks them all; real images have a few
dozen).  Truncated or garbage data gives no dimensions, never an exception.
"""

from __future__ import annotations

import re

__all__ = ["MAX_JPEG_SEGMENTS", "gif_size", "jpeg_size", "png_size"]

#: JPEG segments read before giving up on finding the frame header
MAX_JPEG_SEGMENTS = 4096

_GIF = re.compile(rb"\AGIF8[79]a")
# the first chunk header at an 8-octet step from offset 8 that is IEND, or IHDR whose
# length field says 13 (ImageInfo steps 8 octets over every other chunk header)
_PNG_CHUNK = re.compile(rb"\A.{8}(?:.{8})*?(?:.{4}(IEND)|\x00\x00\x00\x0d(IHDR))", re.DOTALL)
_PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
_SOF = frozenset((*range(0xC0, 0xC4), *range(0xC5, 0xC8), *range(0xC9, 0xCC),
                  *range(0xCD, 0xD0)))


def gif_size(head: bytes) -> tuple[int, int] | None:
    """(height, width) of a GIF from its first 13 octets, ``None`` when either is 0 or
    the header is not ``GIF87a``/``GIF89a``."""
    if not _GIF.match(head) or len(head) < 10:
        return None
    width = int.from_bytes(head[6:8], "little")
    height = int.from_bytes(head[8:10], "little")
    return (height, width) if height and width else None


def png_size(data: bytes) -> tuple[int, int] | None:
    """(height, width) from a PNG's IHDR chunk as ImageInfo finds it, ``None`` without
    one (or with a 0 side)."""
    if not data.startswith(_PNG_MAGIC):
        return None
    m = _PNG_CHUNK.match(data)
    if m is None or m.group(1) is not None:
        return None
    # the 13 octets and the CRC ImageInfo cuts off its end; a truncated chunk loses
    # its last four octets to the CRC all the same
    body = data[m.end():m.end() + 17]
    body = body[:-4] if len(body) >= 4 else body
    if len(body) < 8:
        return None
    width = int.from_bytes(body[0:4], "big")
    height = int.from_bytes(body[4:8], "big")
    return (height, width) if height and width else None


def jpeg_size(data: bytes) -> tuple[int, int] | None:
    """(height, width) from a JPEG's frame header, walking the segments from the start
    of image as ImageInfo does; ``None`` when none is found (or a side is 0)."""
    if not data.startswith(b"\xff\xd8"):
        return None
    pos = 2
    n = len(data)
    for _ in range(MAX_JPEG_SEGMENTS):
        if pos + 4 > n:
            return None
        if data[pos] != 0xFF:
            return None
        mark = data[pos + 1]
        if mark in (0xDA, 0xD9):
            return None
        length = int.from_bytes(data[pos + 2:pos + 4], "big")
        if length < 2:
            return None
        pos += 4
        block = data[pos:pos + length - 2]
        if mark in _SOF:
            if len(block) < 5:
                return None
            height = int.from_bytes(block[1:3], "big")
            width = int.from_bytes(block[3:5], "big")
            return (height, width) if height and width else None
        pos += len(block)
    return None
