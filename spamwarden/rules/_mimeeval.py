"""SpamAssassin's MIMEEval evals, reimplemented from ``Plugin/MIMEEval.pm``.

The MIME structure and transfer encodings (``check_for_mime``: base64 and
quoted-printable parts, attachments, long and needlessly escaped quoted-printable lines),
``check_msg_parse_flags``, the share of capitals (``check_for_uppercase``), HTML-only
messages and the text/HTML size ratio, fake ASCII text, faraway charsets, base64 line
lengths, and plain text written as ``&#xHHHH;`` entities.
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Mapping, Sequence
from typing import TYPE_CHECKING

from ._evalbase import BODY, HEADER, RAWBODY_OR_BODY, EvalData, EvalEntry, nargs, num
from ._locales import charset_ok_for_locales, ok_locales

if TYPE_CHECKING:
    from ._mime import MimePart
    from ._prepare import PreparedMessage

__all__ = ["MIME_EVALS"]


_UPPER = bytes(range(65, 91))
_LOWER_OR_DIGIT = bytes(range(97, 123)) + b"0123456789"
_SPACED = re.compile(rb"\S\s+\S")
_BASE64_START = re.compile(rb"(?:[A-Za-z0-9+/=]{60,76} ){2}")
_SHIFT_JIS = re.compile(rb"\x1b\$B.*\x1b\(B", re.DOTALL)
# Constants.pm's CHARSETS_LIKELY_TO_FP_AS_CAPS, matched whole
_CAPS_FP_CHARSET = re.compile(r"[-_a-z0-9]*(?:koi|jp|jis|euc|gb|big5|isoir|cp1251|"
                              r"windows-1251|georgianps|pt154|tis)[-_a-z0-9]*\n?\Z",
                              re.IGNORECASE)
#: Util.pm's ``parse_content_type``: the charset of a Content-Type value (its white space
#: runs made one space first)
_PART_CHARSET = re.compile(r"""\bcharset\s*=\s*["']?(.*?)["']?(?:;|$)""", re.IGNORECASE)


def _part_charset(ctype: str) -> str | None:
    """Util.pm's ``parse_content_type``: the charset a Content-Type value names, as
    written (its white space runs made one space first); ``None`` without one."""
    m = _PART_CHARSET.search(" ".join(ctype.split()))
    return m.group(1) if m else None


def _charset_fp_as_caps(msg: PreparedMessage) -> bool:
    """MIMEEval's ``body_charset_is_likely_to_fp``: the message's Content-Type or a MIME
    part names a charset whose text reads as capitals (KOI8, the Japanese, Chinese and
    Cyrillic ones, TIS-620...)."""
    ctype = msg.header_text("Content-Type")
    first = _ct_line_charset(ctype) if ctype is not None else None
    charsets = [first] if first is not None else []
    for p in msg.parts:
        charset = _part_charset(_first_header(p.headers, "content-type"))
        if charset is not None and re.search(r"[a-z]", charset, re.IGNORECASE):
            charsets.append(charset.lower())
    return any(_CAPS_FP_CHARSET.match(c) for c in charsets)


def _uppercase_ratio(msg: PreparedMessage) -> float:
    """MIMEEval's check_for_uppercase value: the percentage of capitals among the
    letters and digits (digits count as lower case) of the body lines with a space
    between words, lines opening with two base64-looking words and Shift-JIS escapes
    left out; 0 under 200 octets or for a charset likely to read as capitals."""
    cached = msg.memo.get("uppercase")
    if cached is not None:
        return cached
    ratio = 0.0
    if not _charset_fp_as_caps(msg):
        # (the lines kept, joined: their lengths and counts add up)
        text = b"".join(_SHIFT_JIS.sub(b"", line) if b"\x1b$B" in line else line
                        for line in msg.body
                        if _SPACED.search(line) and not _BASE64_START.match(line))
        length = len(text)
        lower = length - len(text.translate(None, _LOWER_OR_DIGIT))
        upper = length - len(text.translate(None, _UPPER))
        if length >= 200 and upper + lower:
            ratio = upper / (upper + lower) * 100
    msg.memo["uppercase"] = ratio
    return ratio


def _uppercase(msg: PreparedMessage, _d: EvalData, a: Sequence[str]) -> bool:
    return float(a[0]) < _uppercase_ratio(msg) <= float(a[1])


def _base64_length(msg: PreparedMessage, _d: EvalData, a: Sequence[str]) -> bool:
    longest = 0
    for p in msg.parts:
        if p.encoding == "base64":
            for line in p.encoded.splitlines():
                longest = max(longest, len(line.rstrip()))
    lo = float(a[0])
    hi = float(a[1]) if len(a) > 1 else float("inf")
    return longest >= lo and longest <= hi


_MIME_FLAGS = ("mime_base64_count", "mime_qp_count", "mime_attachment",
               "mime_base64_encoded_text", "mime_qp_long_line")


_CHARSET = re.compile(r"""charset\s*=\s*["']?([^"';\s]*)""", re.IGNORECASE)
_ASCII_CHARSET = re.compile(r"us-ascii|ansi_x3\.4-1968|iso-ir-6|ansi_x3\.4-1986|"
                            r"iso_646\.irv:1991|ascii|iso646-us|us|ibm367|cp367|csascii")
# QP escapes of characters that need no escaping (MIMEEval's "excessive QP")
_QP_NEEDLESS = re.compile(rb"=(?:09|3[0-9ABCEF]|[2456][0-9A-F]|7[0-9A-E])")
_QP_TRAILING = re.compile(rb"((?:=09|=20)+)\s*$")


_MIME_FIELDS = frozenset({"content-transfer-encoding", "content-disposition", "content-type"})


def _mime_flags(msg: PreparedMessage) -> dict[str, float]:
    """MIMEEval's ``_check_attachments`` flags over the MIME leaves."""
    flags = dict.fromkeys(_MIME_FLAGS, 0.0)
    qp_bytes = qp_count = 0
    for p in msg.parts:
        # the first of each (lower case, stripped, as MIMEEval reads them), in one pass
        first: dict[str, str] = {}
        for k, v in p.headers:
            lk = k.lower()
            if lk in _MIME_FIELDS and lk not in first:
                first[lk] = v.strip().lower()
        cte = first.get("content-transfer-encoding", "")
        cd = first.get("content-disposition", "")
        m = _CHARSET.search(first.get("content-type", ""))
        charset = m.group(1) if m else ""
        if "base64" in cte:
            flags["mime_base64_count"] += 1
        elif "quoted-printable" in cte:
            flags["mime_qp_count"] += 1
        if "attachment" in cd:
            flags["mime_attachment"] += 1
        if (p.content_type.startswith("text") and "base64" in cte
                and (not charset or _ASCII_CHARSET.search(charset))
                and not re.match(r"attachment|inline", cd)):
            flags["mime_base64_encoded_text"] = 1
        if cte != "quoted-printable":
            continue
        if b"SPAM: " not in p.encoded:
            # the loop below, over the whole part: no line is skipped, the lines'
            # lengths add up to the part's, an escape never spans lines, and a trailing
            # =09/=20 run is itself needless escapes (so only lines with one are read)
            data = p.encoded
            if max(map(len, data.splitlines()), default=0) + 1 > 79:
                flags["mime_qp_long_line"] = 1
            qp_bytes += len(data)
            qp_count += len(_QP_NEEDLESS.findall(data))
            if b"=09" in data or b"=20" in data:
                for line in data.splitlines(keepends=True):
                    t = _QP_TRAILING.search(line) if b"=" in line else None
                    if t:
                        qp_count -= len(t.group(1)) // 3
            continue
        for line in p.encoded.splitlines(keepends=True):
            if line.startswith(b"SPAM: "):
                continue
            if len(line.rstrip(b"\r\n")) + 1 > 79:
                flags["mime_qp_long_line"] = 1
            qp_bytes += len(line)
            if b"=" in line:
                n = len(_QP_NEEDLESS.findall(line))
                if n:
                    t = _QP_TRAILING.search(line)
                    qp_count += n - (len(t.group(1)) // 3 if t else 0)
    if qp_bytes:
        flags["mime_qp_count"] = float(qp_count)
    return flags


def _for_mime(msg: PreparedMessage, _d: EvalData, a: Sequence[str]) -> bool:
    key = "mime:" + a[0]
    if key not in msg.memo:
        msg.memo.update({"mime:" + k: v for k, v in _mime_flags(msg).items()})
    return msg.memo[key] > 0


def _html_and_text_leaves(msg: PreparedMessage) -> tuple[int, int]:
    """MIMEEval's ``mime_body_html_count`` and ``mime_body_text_count``: the leaves
    declared text/html, and those declared any other ``text*`` type, attachments and
    file names included (``_check_mime_header`` reads the declared type alone)."""
    html = sum(1 for p in msg.parts if p.content_type == "text/html")
    text = sum(1 for p in msg.parts if p.content_type.startswith("text")) - html
    return html, text


def _top_is_html(msg: PreparedMessage) -> bool:
    """``$pms->get('Content-Type') =~ m{^text/html}i``: the message's own Content-Type."""
    return (msg.header_text("Content-Type") or "").lower().startswith("text/html")


def _mime_html(msg: PreparedMessage, _d: EvalData, _a: Sequence[str]) -> bool:
    """MIMEEval's check_for_mime_html (__MIME_HTML): the message's Content-Type is
    text/html, or a leaf is."""
    return _top_is_html(msg) or _html_and_text_leaves(msg)[0] > 0


def _mime_html_only(msg: PreparedMessage, _d: EvalData, _a: Sequence[str]) -> bool:
    """MIMEEval's check_for_mime_html_only (MIME_HTML_ONLY): the message's Content-Type
    is text/html, or a leaf is text/html and none is another text type.  A single
    text/html part with a file name ("filename.html") is HTML only, as SpamAssassin
    reads it, though the mail reader may show it as an attachment."""
    if _top_is_html(msg):
        return True
    html, text = _html_and_text_leaves(msg)
    return html > 0 and text == 0


_MIME_PARSE_FLAGS = frozenset({"mime_epilogue_exists", "missing_mime_headers",
                               "missing_mime_head_body_separator"})
_PARSE_FLAGS = _MIME_PARSE_FLAGS | {"missing_head_body_separator", "truncated_header"}


def _msg_parse_flags(msg: PreparedMessage, d: EvalData, a: Sequence[str]) -> bool:
    """MIMEEval's check_msg_parse_flags(FLAG): a flag Message.pm set while parsing; the
    MIME ones (T_TVD_MIME_EPI, T_TVD_MIME_NO_HEADERS, MISSING_MIME_HB_SEP) come from the
    multipart parts (``PreparedMessage.mime_flags``)."""
    if a[0] in _MIME_PARSE_FLAGS:
        return a[0] in msg.mime_flags
    return _parse_flags(msg, d, a)


def _parse_flags(msg: PreparedMessage, _d: EvalData, a: Sequence[str]) -> bool:
    if a[0] == "missing_head_body_separator":
        return not msg.has_separator
    return any(d in ("header section over limit", "too many headers") for d in msg.view.defects)


_NOT_PLAIN_TEXT = frozenset({"text/html", "text/calendar", "text/x-vcard"})
_ASCII_ILLEGAL = re.compile(rb"[\x00\x0d\x80-\xff]")


def _ascii_text_illegal(msg: PreparedMessage, _d: EvalData, _a: Sequence[str]) -> bool:
    """MIMEEval's check_for_ascii_text_illegal (PP_MIME_FAKE_ASCII_TEXT): a text/plain
    leaf (SpamAssassin reads every text/* but HTML, calendar and vCard as text/plain)
    whose charset is us-ascii or unset, with a NUL, a CR or an 8-bit octet in its
    encoded lines.  A message with CRLF line ends has them made LF first, as
    SpamAssassin does."""
    for p, data in _plain_text_leaves(msg):
        # the last Content-Type, as Util.pm's parse_content_type takes it
        ctype = _last_field(p, "content-type")
        if ctype is None:
            charset: str | None = "us-ascii"
        else:
            found = _part_charset(ctype)
            charset = found.lower() if found is not None else None
        if charset not in (None, "us-ascii"):
            continue
        if _ASCII_ILLEGAL.search(data):
            return True
    return False


def _plain_text_leaves(msg: PreparedMessage) -> Iterator[tuple[MimePart, bytes]]:
    """The leaves MIMEEval's ``_check_attachments`` reads as text/plain (every text/*
    but HTML, calendar and vCard), each with its encoded lines; a message with CRLF line
    ends has them made LF first, as SpamAssassin does."""
    crlf = msg.raw[:msg.raw.find(b"\n") + 1].endswith(b"\r\n")
    for p in msg.parts:
        if p.content_type.startswith("text/") and p.content_type not in _NOT_PLAIN_TEXT:
            yield p, (p.encoded.replace(b"\r\n", b"\n") if crlf else p.encoded)


def _last_field(part: MimePart, name: str) -> str | None:
    """A part's last field ``name`` (lower case), as ``get_header`` answers for one."""
    return next((v for k, v in reversed(part.headers) if k.lower() == name), None)


def _mime_multipart_ratio(msg: PreparedMessage, _d: EvalData, a: Sequence[str]) -> bool:
    """MIMEEval's ``check_mime_multipart_ratio(MIN, MAX)`` (MIME_HTML_MOSTLY): in a
    message holding a multipart/alternative, the encoded size of the last text/plain
    leaf over that of the last text/html leaf (leaves that are not attachments, from
    the first multipart/alternative on) is in [MIN, MAX); 1.0 when either is missing
    or the HTML one is empty."""
    ratio = msg.memo.get("mime_multipart_ratio")
    if ratio is None:
        ratio = msg.memo["mime_multipart_ratio"] = _multipart_ratio(msg)
    return float(a[0]) <= ratio < float(a[1])


def _first_header(part_headers: Sequence[tuple[str, str]], name: str) -> str:
    for k, v in part_headers:
        if k.lower() == name:
            return v
    return ""


def _multipart_ratio(msg: PreparedMessage) -> float:
    # _check_attachments counts a leaf's raw lines once it has met a
    # multipart/alternative (walking the tree in order): the leaves from the first one
    # inside an alternative on (an empty multipart/alternative is not seen)
    start = next((i for i, p in enumerate(msg.parts) if p.alternatives), None)
    if start is None:
        return 1.0
    text: int | None = None
    html: int | None = None
    for p in reversed(msg.parts[start:]):
        if "attachment" in _first_header(p.headers, "content-disposition").strip().lower():
            continue  # (its size is never defined)
        if p.content_type not in ("text/plain", "text/html"):
            continue
        # Message.pm keeps a leaf's lines without the line end before the boundary
        size = max(len(p.encoded) - (1 if p.depth else 0), 0)
        if html is None and p.content_type == "text/html":
            html = size
        elif text is None and p.content_type == "text/plain":
            text = size
        if html is not None and text is not None:
            break
    if text is not None and html:
        return text / html
    return 1.0


_HIGH_OCTETS = bytes(range(0x80, 0x100))
_CT_CHARSET = (re.compile(r'charset="([^"]+)"', re.IGNORECASE),
               re.compile(r"charset='([^']+)'", re.IGNORECASE),
               re.compile(r"charset=(\S+)", re.IGNORECASE))


def _ct_line_charset(ctype: str) -> str | None:
    """MIMEEval's ``get_charset_from_ct_line``: the charset of the message's
    Content-Type, in the first of its forms found (double-quoted, single-quoted,
    bare); ``None`` without one."""
    for rx in _CT_CHARSET:
        m = rx.search(ctype)
        if m:
            return m.group(1)
    return None


def _faraway_charset(msg: PreparedMessage, d: EvalData, _a: Sequence[str]) -> bool:
    """MIMEEval's ``check_for_faraway_charset`` (CHARSET_FARAWAY): the message's
    Content-Type names a charset not fine for ``ok_locales`` and the body text has
    more octets above 127 (over three) than below."""
    locales = ok_locales(d)
    ctype = msg.header_text("Content-Type")
    if locales is None or ctype is None:
        return False
    charset = _ct_line_charset(ctype)
    if charset is None or charset_ok_for_locales(charset, locales):
        return False
    high = sum(len(line) - len(line.translate(None, _HIGH_OCTETS)) for line in msg.body)
    total = sum(len(line) for line in msg.body) + max(len(msg.body) - 1, 0)
    return total - high <= high and high > 3


def _mime_faraway(msg: PreparedMessage, d: EvalData) -> bool:
    """MIMEEval's ``mime_faraway_charset``: some MIME part's charset (with a letter in
    it) is not fine for ``ok_locales``."""
    locales = ok_locales(d)
    if locales is None:
        return False
    for p in msg.parts:
        charset = (_part_charset(_first_header(p.headers, "content-type")) or "").lower()
        if re.search(r"[a-z]", charset) and not charset_ok_for_locales(charset, locales):
            return True
    return False


def _for_mime_more(msg: PreparedMessage, d: EvalData, a: Sequence[str]) -> bool:
    """check_for_mime's other flags: ``mime_faraway_charset``; ``mimepart_limit_exceeded``
    is never true, as in SpamAssassin 4.0 (Message.pm sets it on the message, the eval
    reads the per-message status, where it never is)."""
    if a[0] == "mime_faraway_charset":
        return _mime_faraway(msg, d)
    if a[0] == "mimepart_limit_exceeded":
        return False
    return _for_mime(msg, d, a)


_UNICODE_ENTITY = re.compile(rb"&#x[0-9A-F]{4};")
_SA_RATIO = re.compile(r"\d{0,3}\.\d{1,3}")


def _unicode_ratio(msg: PreparedMessage) -> float | None:
    """MIMEEval's ``mime_text_unicode_ratio``: over the encoded lines of every text/plain
    leaf sent as 7bit, 8bit or without a transfer encoding, the ``&#xHHHH;`` entities
    (upper-case hex, as its pattern is written) per octet left once they are taken
    out; ``None`` when there are no such octets."""
    if "unicode_ratio" in msg.memo:  # -1: no such octets
        known = msg.memo["unicode_ratio"]
        return None if known < 0 else known
    normal = entities = 0
    for p, data in _plain_text_leaves(msg):
        cte = _last_field(p, "content-transfer-encoding") or ""
        if cte.strip().lower() not in ("", "7bit", "8bit"):
            continue
        found = len(_UNICODE_ENTITY.findall(data))
        entities += found
        normal += len(data) - 8 * found  # an entity is 8 octets
    ratio = entities / normal if normal else None
    msg.memo["unicode_ratio"] = -1.0 if ratio is None else ratio
    return ratio


def _abundant_unicode_ratio(msg: PreparedMessage, _d: EvalData, a: Sequence[str]) -> bool:
    """MIMEEval's ``check_abundant_unicode_ratio(RATIO)`` (PP_TOO_MUCH_UNICODE02/05): a
    plain-text part written in HTML's ``&#xHHHH;`` entities instead of an encoding a
    mail reader decodes, at a ratio of at least RATIO."""
    ratio = _unicode_ratio(msg)
    return ratio is not None and ratio >= float(a[0])


MIME_EVALS: Mapping[str, EvalEntry] = {
    "check_msg_parse_flags": (
        HEADER | BODY, lambda a: len(a) == 1 and a[0] in _PARSE_FLAGS,
        _msg_parse_flags),
    "check_for_uppercase": (BODY, nargs(2, numeric=True), _uppercase),
    "check_base64_length": (
        BODY, lambda a: len(a) in (1, 2) and all(num(x) for x in a),
        _base64_length),
    "check_for_mime": (
        RAWBODY_OR_BODY, lambda a: len(a) == 1 and (a[0] in _MIME_FLAGS or a[0] in (
            "mime_faraway_charset", "mimepart_limit_exceeded")), _for_mime_more),
    "check_for_mime_html": (BODY, nargs(0), _mime_html),
    "check_for_mime_html_only": (BODY, nargs(0), _mime_html_only),
    "check_for_ascii_text_illegal": (BODY, nargs(0), _ascii_text_illegal),
    "check_mime_multipart_ratio": (BODY, nargs(2, numeric=True), _mime_multipart_ratio),
    "check_for_faraway_charset": (BODY, nargs(0), _faraway_charset),
    "check_abundant_unicode_ratio": (
        BODY, lambda a: len(a) == 1 and _SA_RATIO.fullmatch(a[0]) is not None,
        _abundant_unicode_ratio),
}
