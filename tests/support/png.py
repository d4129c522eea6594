"""Reading PNG screenshots with zlib alone (no imaging library), and telling a blank one
from a page that shows something.

Only what browsers write is read: 8-bit greyscale, RGB, palette, grey+alpha and RGBA,
not interlaced (PNG spec, ISO/IEC 15948, §11.2.2 IHDR, §9 filtering).
"""

from __future__ import annotations

import struct
import zlib
from collections import Counter
from dataclasses import dataclass

__all__ = ["Blankness", "PngError", "blankness", "decode_png", "encode_png"]

_SIGNATURE = b"\x89PNG\r\n\x1a\n"
_CHANNELS = {0: 1, 2: 3, 3: 1, 4: 2, 6: 4}
#: at most this many pixels are looked at (a regular sample of a larger image)
MAX_SAMPLED = 400_000


class PngError(ValueError):
    """Not a PNG this module reads."""


def _paeth(a: int, b: int, c: int) -> int:
    p = a + b - c
    pa, pb, pc = abs(p - a), abs(p - b), abs(p - c)
    if pa <= pb and pa <= pc:
        return a
    return b if pb <= pc else c


def _unfilter(raw: bytes, width: int, height: int, bpp: int) -> list[bytes]:
    """The rows of the image, each filter undone (§9.2)."""
    stride = width * bpp
    rows: list[bytes] = []
    prev = bytearray(stride)
    pos = 0
    for _ in range(height):
        ftype = raw[pos]
        line = bytearray(raw[pos + 1:pos + 1 + stride])
        pos += 1 + stride
        if len(line) != stride:
            raise PngError("image data shorter than the header says")
        if ftype == 1:  # Sub
            for i in range(bpp, stride):
                line[i] = (line[i] + line[i - bpp]) & 0xFF
        elif ftype == 2:  # Up
            line = bytearray((x + y) & 0xFF for x, y in zip(line, prev, strict=True))
        elif ftype == 3:  # Average
            for i in range(stride):
                left = line[i - bpp] if i >= bpp else 0
                line[i] = (line[i] + ((left + prev[i]) >> 1)) & 0xFF
        elif ftype == 4:  # Paeth
            for i in range(stride):
                if i >= bpp:
                    line[i] = (line[i] + _paeth(line[i - bpp], prev[i], prev[i - bpp])) & 0xFF
                else:
                    line[i] = (line[i] + prev[i]) & 0xFF
        elif ftype != 0:
            raise PngError(f"unknown filter type {ftype}")
        rows.append(bytes(line))
        prev = line
    return rows


def decode_png(data: bytes) -> tuple[int, int, list[tuple[int, ...]]]:
    """Width, height and the pixels (row by row, as RGBA tuples) of a PNG.

    :param data: the file's bytes.
    :raises PngError: not a PNG, or a kind this module does not read.
    """
    if not data.startswith(_SIGNATURE):
        raise PngError("not a PNG file")
    pos, idat, palette = 8, bytearray(), b""
    width = height = depth = ctype = interlace = -1
    while pos + 8 <= len(data):
        length, kind = struct.unpack(">I4s", data[pos:pos + 8])
        body = data[pos + 8:pos + 8 + length]
        pos += 12 + length
        if kind == b"IHDR":
            width, height, depth, ctype, _, _, interlace = struct.unpack(">IIBBBBB", body)
        elif kind == b"PLTE":
            palette = body
        elif kind == b"IDAT":
            idat += body
        elif kind == b"IEND":
            break
    if width <= 0 or height <= 0:
        raise PngError("no IHDR chunk")
    if depth != 8 or ctype not in _CHANNELS or interlace != 0:
        raise PngError(f"unsupported PNG: depth {depth}, colour type {ctype}, "
                       f"interlace {interlace}")
    bpp = _CHANNELS[ctype]
    rows = _unfilter(zlib.decompress(bytes(idat)), width, height, bpp)
    pixels: list[tuple[int, ...]] = []
    for row in rows:
        if ctype == 6:
            pixels += [tuple(row[i:i + 4]) for i in range(0, len(row), 4)]
        elif ctype == 2:
            pixels += [(*row[i:i + 3], 255) for i in range(0, len(row), 3)]
        elif ctype == 0:
            pixels += [(g, g, g, 255) for g in row]
        elif ctype == 4:
            pixels += [(row[i], row[i], row[i], row[i + 1]) for i in range(0, len(row), 2)]
        else:
            pixels += [(*palette[3 * p:3 * p + 3], 255) for p in row]
    return width, height, pixels


def encode_png(width: int, height: int, rgb: bytes) -> bytes:
    """An RGB PNG (filter None on every row) of ``rgb`` (width*height*3 bytes)."""
    if len(rgb) != width * height * 3:
        raise PngError("pixel data does not fit width and height")

    def chunk(kind: bytes, body: bytes) -> bytes:
        return (struct.pack(">I", len(body)) + kind + body
                + struct.pack(">I", zlib.crc32(kind + body) & 0xFFFFFFFF))

    stride = width * 3
    raw = b"".join(b"\x00" + rgb[y * stride:(y + 1) * stride] for y in range(height))
    return (_SIGNATURE + chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0))
            + chunk(b"IDAT", zlib.compress(raw)) + chunk(b"IEND", b""))


@dataclass(frozen=True)
class Blankness:
    """What a screenshot shows: its ``colours`` (distinct ones) and the ``share`` of its
    pixels that differ from the most common colour (the background)."""

    colours: int
    share: float

    def shows_something(self, *, min_colours: int = 8, min_share: float = 0.005) -> bool:
        """At least ``min_colours`` colours and ``min_share`` of non-background pixels."""
        return self.colours >= min_colours and self.share >= min_share


def blankness(data: bytes) -> Blankness:
    """Count the colours of a PNG and its non-background share.

    :raises PngError: see :func:`decode_png`.
    """
    _, _, pixels = decode_png(data)
    step = max(1, len(pixels) // MAX_SAMPLED)
    counts = Counter(pixels[::step])
    total = sum(counts.values())
    _, background = counts.most_common(1)[0]
    return Blankness(colours=len(counts), share=(total - background) / total)
