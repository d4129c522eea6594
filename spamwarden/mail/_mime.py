"""The structural MIME layer over raw bytes: bounded, byte-exact, no stdlib parser.

What the complaint intake needs to take a report apart: the header section and the
body (:func:`split_head`), unfolded header fields (:func:`parse_header_fields`,
:func:`header_fields`), the media type and its parameters with RFC 2231
continuations (:func:`parse_content_type`, :func:`content_parameters`), the parts
of a multipart body as slices (:func:`split_multipart`), every entity of a message
in document order (:func:`walk_entities`) and a part's transfer decoding
(:func:`decoded_body`, :func:`entity_text`).

Pure functions over bytes: no I/O, no exceptions for bad input, every count
bounded by the caller's limits.  Parts are cut as ``memoryview`` slices of the
input; only leaves are copied out, so a message is held about twice at most
whatever its nesting.

:func:`~spamwarden.mail.parse_message` (the milter's parse) does not use this
layer: it builds the stdlib's MIME tree with a boundary matcher tuned for speed,
and its header unfolding keeps undecodable bytes (``surrogateescape``) and
records defects, where this layer replaces them.
"""

from __future__ import annotations

import base64
import binascii
import quopri
import re
from dataclasses import dataclass, field
from typing import TypeVar

from ._message import decode_header_value
from ._params import MAX_PARAM_CHARS

__all__ = [
    "Entity",
    "content_parameters",
    "decoded_body",
    "entity_filename",
    "entity_text",
    "header_fields",
    "parse_content_type",
    "parse_header_fields",
    "split_head",
    "split_multipart",
    "walk_entities",
]

_HEAD_END = re.compile(rb"\r?\n\r?\n")
_HEADER_NAME = re.compile(r"^[!-9;-~]{1,76}$")


@dataclass(frozen=True, slots=True)
class Entity:
    """One MIME entity.  A multipart that was split keeps no body (its parts are the
    entities after it): a large message is then not held twice more in memory.

    :ivar headers: its unfolded header fields, in order.
    :ivar body: its body, still transfer-encoded (``b""`` for a split multipart).
    :ivar depth: 0 for the root, one more per multipart level.
    :ivar ctype: the lower-cased media type (``text/plain`` when none parses).
    :ivar params: the Content-Type parameters, names lower-cased.
    """

    headers: tuple[tuple[str, str], ...]
    body: bytes
    depth: int
    ctype: str = "text/plain"
    params: dict[str, str] = field(default_factory=dict)

    def get(self, name: str) -> str | None:
        """The first field called ``name`` (case-insensitive), or ``None``."""
        lname = name.lower()
        for k, v in self.headers:
            if k.lower() == lname:
                return v
        return None

    def get_all(self, name: str) -> list[str]:
        """Every field called ``name``, in order."""
        lname = name.lower()
        return [v for k, v in self.headers if k.lower() == lname]


_Bytes = TypeVar("_Bytes", bytes, memoryview)


def split_head(raw: _Bytes) -> tuple[_Bytes, _Bytes]:
    """The header section and the body (RFC 5322 §2.1): split at the first empty line.

    :param raw: a message or entity; slices of a ``memoryview`` share its bytes.
    :returns: ``(head, body)``; a leading empty line means no header section, no empty
        line means no body.
    """
    if raw[:2] == b"\r\n" or raw[:1] == b"\n":
        return raw[:0], raw[2:] if raw[:2] == b"\r\n" else raw[1:]
    m = _HEAD_END.search(raw)
    if m is None:
        return raw, raw[:0]
    return raw[: m.start()], raw[m.end():]


def parse_header_fields(head: bytes, max_headers: int) -> list[tuple[str, str]]:
    """Unfolded ``(name, value)`` pairs of a header section (RFC 5322 §2.2.3).

    Values are UTF-8 decoded (bad bytes replaced), folding removed; a line that is
    not a field ends the field before it and is skipped with its continuations.

    :param max_headers: at most this many fields are returned.
    """
    out: list[tuple[str, str]] = []
    name: str | None = None
    value: list[str] = []
    for line in head.split(b"\n"):
        text = line.rstrip(b"\r").decode("utf-8", "replace")
        if text[:1] in (" ", "\t"):
            if name is not None:
                value.append(text.strip())
            continue
        if name is not None:
            out.append((name, " ".join(v for v in value if v)))
            name = None
            if len(out) >= max_headers:
                break
        n, sep, v = text.partition(":")
        n = n.strip()
        if sep and _HEADER_NAME.match(n):
            name, value = n, [v.strip()]
    if name is not None and len(out) < max_headers:
        out.append((name, " ".join(v for v in value if v)))
    return out


def header_fields(raw: bytes, *, max_headers: int = 500) -> list[tuple[str, str]]:
    """The unfolded header fields of a message (the first 256 KiB are read).

    :returns: ``(name, value)`` pairs in order (:func:`parse_header_fields`).
    """
    head, _ = split_head(raw[:262144])
    return parse_header_fields(head, max_headers)


_CTYPE = re.compile(r"^\s*([!#$%&'*+.^_`|~0-9A-Za-z-]+/[!#$%&'*+.^_`|~0-9A-Za-z-]+)\s*(?:;|$)")
_PARAM = re.compile(
    r";\s*([!#$%&'*+.^_`|~0-9A-Za-z-]+?)(\*\d*\*?)?\s*=\s*(\"(?:[^\"\\]|\\.)*\"?|[^;\s]*)"
)


def parse_content_type(value: str) -> tuple[str, dict[str, str]]:
    """Media type and parameters of a Content-Type value (RFC 2045 §5.1; RFC 2231
    continuations joined); an unparsable value is ``text/plain`` (RFC 2045 §5.2).

    Only the first 4096 characters are read.
    :returns: ``(type/subtype`` lower-cased``, parameters)``.
    """
    value = value[:4096]
    m = _CTYPE.match(value)
    if not m:
        return "text/plain", {}
    start = m.end() - 1 if value[m.end() - 1:m.end()] == ";" else m.end()
    return m.group(1).lower(), content_parameters(value, start)


def content_parameters(value: str, start: int) -> dict[str, str]:
    """``; name=value`` parameters of a field value from ``start`` (RFC 2045 §5.1,
    RFC 2231 §3-4: ``name*0*=utf-8''%5B...`` pieces joined and percent-decoded).

    :returns: parameters by lower-cased name; the first plain one of a name wins.
    """
    params: dict[str, str] = {}
    for pm in _PARAM.finditer(value[:MAX_PARAM_CHARS], start):
        key = pm.group(1).lower()
        raw = pm.group(3)
        if raw.startswith('"'):
            raw = re.sub(r"\\(.)", r"\1", raw[1:-1] if raw.endswith('"') and len(raw) > 1
                         else raw[1:])
        if pm.group(2):  # name*0*=utf-8''%5B... pieces
            if pm.group(2).endswith("*"):
                raw = re.sub(r"^[\w-]*'[\w-]*'", "", raw)
                raw = _percent_decode(raw)
            params[key] = params.get(key, "") + raw
        else:
            params.setdefault(key, raw)
    return params


def _percent_decode(text: str) -> str:
    data = re.sub(rb"%([0-9A-Fa-f]{2})", lambda mm: bytes([int(mm.group(1), 16)]),
                  text.encode("utf-8", "replace"))
    return data.decode("utf-8", "replace")


def entity_filename(ent: Entity) -> str:
    """The decoded filename of an entity: Content-Disposition's ``filename``, else
    Content-Type's ``name`` (RFC 2183 §2.3, RFC 2047), or ``""``."""
    disp = ent.get("Content-Disposition") or ""
    name = content_parameters(disp, disp.find(";")).get("filename") if ";" in disp else None
    return decode_header_value(name or ent.params.get("name", ""))


def split_multipart(body: memoryview, boundary: str, max_parts: int) -> list[memoryview]:
    """The parts of a multipart body, byte-exact, as slices of ``body`` (RFC 2046 §5.1.1).

    :param max_parts: at most this many parts; a missing close delimiter keeps what came.
    """
    b = re.escape(boundary.encode("utf-8", "replace"))
    delim = re.compile(rb"(?:\A|\r?\n)--" + b + rb"(--)?[ \t]*(?:\r?\n|\Z)")
    parts: list[memoryview] = []
    start: int | None = None
    for m in delim.finditer(body):
        if start is not None:
            parts.append(body[start:m.start()])
            if len(parts) >= max_parts:
                return parts
        if m.group(1):
            return parts
        start = m.end()
    if start is not None:  # no closing delimiter: keep what came
        parts.append(body[start:])
    return parts


def _entity_head(data: memoryview, max_headers: int
                 ) -> tuple[tuple[tuple[str, str], ...], memoryview, str, dict[str, str]]:
    head, body = split_head(data)
    headers = tuple(parse_header_fields(bytes(head), max_headers))
    ctype, params = parse_content_type(next(
        (v for k, v in headers if k.lower() == "content-type"), ""))
    return headers, body, ctype, params


def walk_entities(raw: bytes, *, max_parts: int, max_depth: int,
                  max_headers: int) -> list[Entity]:
    """Every entity in document order, the root first; ``message/*`` parts are leaves.

    Parts are cut as views of ``raw``; only leaves are copied out, so the message is
    held about twice at most, whatever its nesting.

    :param max_parts: at most this many entities (multiparts included).
    :param max_depth: multiparts this deep are leaves, not split.
    :param max_headers: at most this many header fields per entity.
    :returns: at least the root entity.
    """
    out: list[Entity] = []
    stack: list[tuple[memoryview, int]] = [(memoryview(raw), 0)]
    while stack and len(out) < max_parts:
        data, depth = stack.pop()
        headers, body, ctype, params = _entity_head(data, max_headers)
        if ctype.startswith("multipart/") and params.get("boundary") and depth < max_depth:
            out.append(Entity(headers, b"", depth, ctype, params))
            children = split_multipart(body, params["boundary"], max_parts)
            for child in reversed(children):
                stack.append((child, depth + 1))
        else:
            out.append(Entity(headers, bytes(body), depth, ctype, params))
    return out


def decoded_body(ent: Entity) -> bytes:
    """An entity's body with its Content-Transfer-Encoding undone (RFC 2045 §6):
    base64 (stray characters ignored; ``b""`` when it cannot decode), quoted-printable,
    else as it stands."""
    cte = (ent.get("Content-Transfer-Encoding") or "").strip().lower()
    if cte == "base64":
        try:
            return base64.b64decode(re.sub(rb"[^A-Za-z0-9+/=]", b"", ent.body) + b"==")
        except (binascii.Error, ValueError):
            return b""
    if cte == "quoted-printable":
        return quopri.decodestring(ent.body)
    return ent.body


def entity_text(ent: Entity) -> str:
    """An entity's decoded body as text in its declared ``charset`` (UTF-8 when none or
    unknown); undecodable bytes are replaced."""
    charset = (ent.params.get("charset") or "utf-8").strip().lower()
    data = decoded_body(ent)
    try:
        return data.decode(charset, "replace")
    # ValueError: a charset name with a NUL in it, or a codec (idna) that refuses "replace"
    except (LookupError, ValueError):
        return data.decode("utf-8", "replace")
