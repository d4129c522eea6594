"""Image dimensions as SpamAssassin's ImageInfo plugin reads them (``ImageInfo.pm``).

Only the few header octets ImageInfo reads are looked at: GIF's logical screen size,
PNG's ``IHDR`` chunk and the JPEG frame header (SOF0-SOF15 but DHT, JPG and DAC).
Each reader is ImageInfo's, quirks included (a PNG's chunks are looked for every 8
octets, not by their lengths), and each is bounded: a GIF reads 13 octets, a PNG one
regex pass in C over the decoded image, a JPEG at most :data:`MAX_JPEG_SEGMENTS`
segments before its frame header (ImageInfo walks them all; real images have a few
dozen).  Truncated or garbage data gives no dimensions, never an exception.

ImageInfo's evals read them: ``image_count``, ``pixel_coverage``, ``image_size_exact``,
``image_size_range`` and ``image_to_text_ratio`` (the text's length over the pixels).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

from ._evalbase import RAWBODY_OR_BODY, EvalData, EvalEntry, EvalFn, num

if TYPE_CHECKING:
    from ._prepare import PreparedMessage

__all__ = ["IMAGE_EVALS", "IMAGE_EVALS_BY_KIND", "MAX_JPEG_SEGMENTS", "gif_size",
           "image_to_text_ratio", "jpeg_size", "png_size"]

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


_IMAGE_TYPES = {"image/gif": "gif", "image/png": "png", "image/jpeg": "jpeg",
                "image/jpg": "jpeg"}


@dataclass
class _Images:
    count: dict[str, int]
    pixels: dict[str, float]
    dims: dict[str, set[tuple[int, int]]]


_NO_IMAGES = _Images(count=dict.fromkeys(("all", "gif", "png", "jpeg"), 0),
                     pixels=dict.fromkeys(("all", "gif", "png", "jpeg"), 0.0),
                     dims={"all": set(), "gif": set(), "png": set(), "jpeg": set()})


def _images(msg: PreparedMessage) -> _Images:
    """ImageInfo's ``_get_images``: per type (gif, png, jpeg, all) the base64 image
    leaves counted, their pixels added up and their (height, width) sizes."""
    found = msg.image_info
    if isinstance(found, _Images):
        return found
    if not any(p.content_type in _IMAGE_TYPES for p in msg.parts):
        msg.image_info = _NO_IMAGES
        return _NO_IMAGES
    images = _Images(count=dict.fromkeys(("all", "gif", "png", "jpeg"), 0),
                     pixels=dict.fromkeys(("all", "gif", "png", "jpeg"), 0.0),
                     dims={"all": set(), "gif": set(), "png": set(), "jpeg": set()})
    for i, p in enumerate(msg.parts):
        kind = _IMAGE_TYPES.get(p.content_type)
        if kind is None or p.encoding != "base64":
            continue
        data = msg.part_body(i)
        size = (gif_size(data[:13]) if kind == "gif" else
                png_size(data) if kind == "png" else jpeg_size(data))
        images.count[kind] += 1
        images.count["all"] += 1
        if size is not None:
            images.pixels[kind] += size[0] * size[1]
            images.pixels["all"] += size[0] * size[1]
            images.dims[kind].add(size)
            images.dims["all"].add(size)
    msg.image_info = images
    return images


def _result_check(lo: str, hi: str | None, value: float, *, no_max_equal: bool = False) -> bool:
    """ImageInfo's ``result_check``: MIN <= value <= MAX (MAX itself excluded when asked)."""
    if value < float(lo):
        return False
    if hi is not None and value > float(hi):
        return False
    return not (no_max_equal and hi is not None and value == float(hi))


def _image_count(msg: PreparedMessage, _d: EvalData, a: Sequence[str]) -> bool:
    """``image_count(TYPE, MIN[, MAX])``: how many TYPE images (gif, png, jpeg, all)."""
    return _result_check(a[1], a[2] if len(a) > 2 else None, _images(msg).count[a[0]])


def _pixel_coverage(msg: PreparedMessage, _d: EvalData, a: Sequence[str]) -> bool:
    """``pixel_coverage(TYPE, MIN[, MAX])``: the TYPE images' pixels added up."""
    return _result_check(a[1], a[2] if len(a) > 2 else None, _images(msg).pixels[a[0]])


def _image_size_exact(msg: PreparedMessage, _d: EvalData, a: Sequence[str]) -> bool:
    """``image_size_exact(TYPE, HEIGHT, WIDTH)``: a TYPE image of that size."""
    return (int(a[1]), int(a[2])) in _images(msg).dims[a[0]]


def _image_size_range(msg: PreparedMessage, _d: EvalData, a: Sequence[str]) -> bool:
    """``image_size_range(TYPE, MINH, MINW[, MAXH, MAXW])``: a TYPE image within."""
    for h, w in _images(msg).dims[a[0]]:
        if h < float(a[1]) or w < float(a[2]):
            continue
        if len(a) > 3 and h > float(a[3]):
            continue
        if len(a) > 4 and w > float(a[4]):
            continue
        return True
    return False


def image_to_text_ratio(msg: PreparedMessage, kind: str, a: Sequence[str]) -> bool:
    """``image_to_text_ratio(TYPE, MIN, MAX)``: the text's length (the rendered body for
    a body rule, the decoded text parts for a rawbody one) over the TYPE images'
    pixels, MIN <= ratio < MAX; never without text or pixels."""
    pixels = _images(msg).pixels[a[0]]
    if pixels <= 0:
        return False
    textlen = sum(map(len, msg.rawbody if kind == "rawbody" else msg.body))
    if textlen <= 0:
        return False
    return _result_check(a[1], a[2], textlen / pixels, no_max_equal=True)


def _image_to_text_ratio_for(kind: str) -> EvalFn:
    """``image_to_text_ratio`` as a rule of ``kind`` runs it (see :data:`IMAGE_EVALS_BY_KIND`)."""
    def check(msg: PreparedMessage, _d: EvalData, a: Sequence[str]) -> bool:
        return image_to_text_ratio(msg, kind, a)
    return check


_IMAGE_TYPE_ARG = ("all", "gif", "png", "jpeg")


def _image_args(low: int, high: int) -> Callable[[Sequence[str]], bool]:
    def check(a: Sequence[str]) -> bool:
        return (low <= len(a) <= high and a[0] in _IMAGE_TYPE_ARG
                and all(num(x) for x in a[1:]))
    return check


IMAGE_EVALS: Mapping[str, EvalEntry] = {
    "image_count": (RAWBODY_OR_BODY, _image_args(2, 3), _image_count),
    "pixel_coverage": (RAWBODY_OR_BODY, _image_args(2, 3), _pixel_coverage),
    "image_size_exact": (RAWBODY_OR_BODY, _image_args(3, 3), _image_size_exact),
    "image_size_range": (RAWBODY_OR_BODY, _image_args(3, 5), _image_size_range),
    "image_to_text_ratio": (RAWBODY_OR_BODY, _image_args(3, 3), _image_to_text_ratio_for("")),
}
#: the evals whose result depends on the rule's kind: name -> the function for a rule of
#: a kind (``image_to_text_ratio`` reads the body of a body rule, the rawbody of a rawbody
#: one); their :data:`IMAGE_EVALS` function is the one for no kind given
IMAGE_EVALS_BY_KIND: Mapping[str, Callable[[str], EvalFn]] = {
    "image_to_text_ratio": _image_to_text_ratio_for,
}
