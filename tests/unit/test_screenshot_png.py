"""The screenshot check of the browser tests: a PNG decoded with zlib alone, and a blank
page told apart from one that shows something."""

from __future__ import annotations

import random
import struct
import zlib

import pytest

from tests.support.png import PngError, blankness, decode_png, encode_png


def _paeth(a: int, b: int, c: int) -> int:
    p = a + b - c
    pa, pb, pc = abs(p - a), abs(p - b), abs(p - c)
    return a if pa <= pb and pa <= pc else (b if pb <= pc else c)


def _filtered_png(width: int, height: int, rgba: bytes) -> bytes:
    """An RGBA PNG whose rows use filters 0..4 in turn (what real encoders mix)."""
    bpp, stride = 4, width * 4
    out, prev = bytearray(), bytes(stride)
    for y in range(height):
        row = rgba[y * stride:(y + 1) * stride]
        f = y % 5
        enc = bytearray()
        for i, x in enumerate(row):
            a = row[i - bpp] if i >= bpp else 0
            b = prev[i]
            c = prev[i - bpp] if i >= bpp else 0
            pred = (0, a, b, (a + b) >> 1, _paeth(a, b, c))[f]
            enc.append((x - pred) & 0xFF)
        out += bytes([f]) + enc
        prev = row

    def chunk(kind: bytes, body: bytes) -> bytes:
        return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))

    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, 8, 6, 0, 0, 0))
            + chunk(b"IDAT", zlib.compress(bytes(out))) + chunk(b"IEND", b""))


def test_every_filter_type_decodes_to_the_original_pixels() -> None:
    rnd = random.Random(7)
    width, height = 23, 17
    rgba = bytes(rnd.randrange(256) for _ in range(width * height * 4))
    w, h, pixels = decode_png(_filtered_png(width, height, rgba))
    assert (w, h) == (width, height)
    assert b"".join(bytes(p) for p in pixels) == rgba


def test_a_blank_white_screenshot_is_refused() -> None:
    white = encode_png(320, 200, b"\xff" * 320 * 200 * 3)
    seen = blankness(white)
    assert seen.colours == 1 and seen.share == 0.0
    assert not seen.shows_something()
    # one stray dot, or a page of one flat colour with a single bar, is still blank
    dotted = bytearray(b"\xff" * 320 * 200 * 3)
    dotted[3000:3003] = b"\x00\x00\x00"
    assert not blankness(encode_png(320, 200, bytes(dotted))).shows_something()


def test_a_page_with_text_like_content_passes() -> None:
    rnd = random.Random(1)
    px = bytearray(b"\xff" * 320 * 200 * 3)
    for y in range(20, 180, 12):  # lines of "glyphs" in grey levels, as antialiased text is
        for x in range(20, 300):
            if rnd.random() < 0.4:
                for dy in range(6):
                    g = rnd.randrange(0, 230)
                    i = ((y + dy) * 320 + x) * 3
                    px[i:i + 3] = bytes((g, g, g))
    seen = blankness(encode_png(320, 200, bytes(px)))
    assert seen.shows_something(), seen


def test_what_is_not_a_png_is_refused() -> None:
    with pytest.raises(PngError):
        decode_png(b"GIF89a...")
    with pytest.raises(PngError):
        encode_png(2, 2, b"\x00" * 5)


def test_every_picture_of_the_console_guide_is_there_and_not_blank() -> None:
    import re
    from pathlib import Path

    docs = Path(__file__).resolve().parents[2] / "docs"
    names = re.findall(r"!\[[^\]]*\]\((console/[\w.-]+\.png)\)", (docs / "console.md").read_text())
    assert len(names) >= 8, names
    for name in names:
        path = docs / name
        assert path.is_file(), f"{path} missing: SPAMWARDEN_SCREENSHOTS_DIR=docs/console pytest tests/integration/test_console_browser.py"
        assert path.stat().st_size < 100_000, f"{path} is large; scale it"
        assert blankness(path.read_bytes()).shows_something(), path
