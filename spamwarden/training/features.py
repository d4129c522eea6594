"""Features of a message that its sender controls and a filter sees at SMTP time.

The classifier never sees the raw message: it sees the bounded
:class:`~spamwarden.mail.MessageView` the milter already parsed, and from it
only

* the decoded subject and the visible text of text and HTML parts (Unicode
  NFC-normalised, lower-cased; tokens carrying Vietnamese or other Latin
  diacritics also yield their diacritic-free form, because spammers strip
  accents to dodge filters),
* URL domains and their top-level domains, and URL shapes (IP hosts, ports,
  ``@`` in URLs, count, distinct domains, shorteners, deep host names, long
  query strings, script and executable paths),
* the sender's From domain and display name, and whether Reply-To points
  elsewhere,
* structural signals: which MIME parts are there, HTML without a plain
  alternative, text length, share of capitals, attachments by type, the
  shape of the subject (capitals, length, punctuation runs, digits, money),
* a few headers the sending software writes (mailer name, priority flags,
  top-level content type and charset).

Headers matching ``training.strip_headers`` (``X-Spam-*``, ``X-Barracuda-*``,
``Received-SPF``, ...) are dropped first, and headers added downstream of the
sender (``Received``, ``Return-Path``, ``Delivered-To``) are never read, so a
model cannot learn how a corpus was collected.  The same extraction runs at
training and at scoring time: it is the first step of every model pipeline.

Every feature is a string token; :class:`sklearn.feature_extraction.FeatureHasher`
turns token lists into a sparse matrix with no vocabulary to store, which is
also what lets the models learn one message at a time.

Words outnumber the other tokens about ten to one, and words are what changes
from one year and one sender to the next.  ``structure_weight`` repeats every
non-word token (structure, URL, sender, header tokens) so that, after the
models' sublinear term frequency, each weighs ``1 + ln(structure_weight)``
words.  Trained models use 3.  Measured (trained on one side, scored on the
other, features version 2 -> 3 with weight 3): SpamAssassin 2002 -> CSDMC 2010
AUC 0.9983 -> 0.9994, false negatives at FPR 0.1 % 22 % -> 10 %; SpamAssassin
older 60 % -> newer 40 % by date AUC 0.9954 -> 0.9980; but CSDMC 2010 (2,000
messages) -> SpamAssassin 2002 AUC 0.9456 -> 0.9367: learned from a small
collection, sender and header shapes carry less than words.  A model
learning from nothing uses 1 (words are what it learns fastest) and
``distinct`` tokens: whether a word is there, not how often, is what an online
learner picks up soonest.
"""

from __future__ import annotations

import fnmatch
import hashlib
import json
import re
import unicodedata
from collections.abc import Iterable, Sequence
from typing import Any

from sklearn.base import BaseEstimator, TransformerMixin

from .._unicode import normalized
from ..mail import MessageView, parse_message

__all__ = [
    "DEFAULT_STRIP_HEADERS",
    "FEATURES_VERSION",
    "MessageFeatureExtractor",
    "header_stripper",
    "settings_hash",
    "strip_diacritics",
    "subject_without_tags",
    "tokenize",
]

#: bump when the meaning of a token changes: models of another version are refused
FEATURES_VERSION = 3

DEFAULT_STRIP_HEADERS: tuple[str, ...] = (
    "X-Spam-*", "X-Barracuda-*", "X-Mozilla-*", "Received-SPF",
    "Authentication-Results", "ARC-*", "X-Virus-*", "X-Original-*",
    "Delivered-To", "X-UID", "Status", "X-Status", "X-Keywords", "Lines", "X-Gmail-*",
)

#: sender-controlled headers whose value (first word) becomes a token
_VALUE_HEADERS = ("x-mailer", "user-agent", "x-priority", "x-msmail-priority", "importance",
                  "precedence", "mime-version")

# Markers a filter downstream of the sender puts in front of a subject ("[SPAM]",
# "***SPAM***", "{Spam?}", "SPAM:"): a collection's filter, not the sender, wrote them.
_SUBJECT_TAGS = re.compile(
    r"^(?:\s*(?:\[\s*\**\s*spam\W{0,3}\]|\{\s*spam\W{0,3}\}|\*{2,}\s*spam\s*\*{2,}|spam\s*:))+\s*",
    re.IGNORECASE,
)
_WORD = re.compile(r"[^\W_]{2,40}|[$€£¥]|!{2,}", re.UNICODE)
_DIGITS = re.compile(r"^\d+$")
_SPACE = re.compile(r"\s+")
_LONG_NUMBER = re.compile(r"\d{5}")
_WORD_ASCII = re.compile(r"[a-z0-9]{2,40}|\$|!{2,}")  # _WORD on lower-cased ASCII text
_ASCII_LETTERS = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
_ASCII_UPPER = b"ABCDEFGHIJKLMNOPQRSTUVWXYZ"


def _diacritic_table() -> dict[int, str]:
    """Latin letters with diacritics mapped to their base letter (đ → d included)."""
    table: dict[int, str] = {}
    for cp in list(range(0x00C0, 0x0250)) + list(range(0x1E00, 0x1F00)):
        ch = chr(cp)
        base = "".join(c for c in unicodedata.normalize("NFD", ch) if not unicodedata.combining(c))
        if base and base != ch and base.isascii():
            table[cp] = base
    for ch, base in (("đ", "d"), ("Đ", "D"), ("ø", "o"), ("Ø", "O"), ("ł", "l"), ("Ł", "L")):
        table[ord(ch)] = base
    # combining marks left over after NFC (decomposed input) are dropped
    for cp in range(0x0300, 0x0370):
        table[cp] = ""
    return table


_STRIP_TABLE = _diacritic_table()


def strip_diacritics(text: str) -> str:
    """``text`` with Latin diacritics removed: ``"khuyến mãi"`` → ``"khuyen mai"``."""
    return text.translate(_STRIP_TABLE)


def tokenize(text: str, *, prefix: str = "", limit: int = 20_000) -> list[str]:
    """Word tokens of ``text``: NFC-normalised, lower-cased, 2–40 letters or digits.

    A token with diacritics is followed by its diacritic-free form (Vietnamese
    ``"miễn"`` gives ``"miễn"`` and ``"mien"``).  Numbers longer than four
    digits become their length class (``#digits7``).  Currency signs and runs
    of ``!`` are tokens too.  Only the first ``limit`` characters are read.

    :param text: decoded text.
    :param prefix: prepended to every token (``"s:"`` for the subject).
    :returns: the tokens in order.
    """
    text = text[:limit]
    ascii_only = text.isascii()
    if not ascii_only:
        text = normalized("NFC", text)
    text = text.lower()
    # On ASCII text [^\W_] is exactly [a-z0-9] (after lower()), which the regex engine
    # checks by range instead of by Unicode category.
    words = (_WORD_ASCII if ascii_only else _WORD).findall(text)
    if ascii_only:  # no diacritics: only numbers of five digits or more change
        if _LONG_NUMBER.search(text):
            words = [f"#digits{min(len(w), 12)}" if len(w) > 4 and w.isdigit() else w
                     for w in words]
        return [prefix + w for w in words] if prefix else words
    out: list[str] = []
    append = out.append
    for w in words:
        if w.isdigit():
            if len(w) > 4:
                w = f"#digits{min(len(w), 12)}"
        elif not w.isascii():
            plain = w.translate(_STRIP_TABLE)
            if plain != w:
                append(prefix + w)
                w = plain
        append(prefix + w)
    return out


def subject_without_tags(subject: str) -> str:
    """``subject`` without leading spam markers added by filters (``[SPAM] [spam] Hi`` → ``Hi``)."""
    m = _SUBJECT_TAGS.match(subject)
    return subject[m.end():] if m else subject


def header_stripper(patterns: Sequence[str]) -> re.Pattern[str]:
    """One compiled, case-insensitive regex matching header names to drop.

    :param patterns: shell-style patterns (``X-Spam-*``).
    """
    if not patterns:
        return re.compile(r"(?!)")
    return re.compile("|".join(fnmatch.translate(p.lower()) for p in patterns))


def settings_hash(settings: dict[str, Any]) -> str:
    """Stable short hash of feature settings (stored in and checked against model files)."""
    blob = json.dumps(settings, sort_keys=True, separators=(",", ":"), default=list)
    return hashlib.sha256(blob.encode()).hexdigest()[:16]


def _bucket(value: float, edges: Sequence[float]) -> int:
    for i, edge in enumerate(edges):
        if value < edge:
            return i
    return len(edges)


_IP_HOST = re.compile(r"^(?:https?://)?(?:[^/@\s]*@)?\d{1,3}(?:\.\d{1,3}){3}(?:[:/?#]|$)", re.IGNORECASE)
_PORT = re.compile(r"^(?:https?://)?[^/@\s]*:\d+", re.IGNORECASE)
_AT_IN_HOST = re.compile(r"^(?:https?://)?[^/\s]*@", re.IGNORECASE)
_ENCODED = re.compile(r"%[0-9a-f]{2}", re.IGNORECASE)
_CHARSET = re.compile(r"charset\s*=\s*\"?([\w.:-]+)", re.IGNORECASE)
_LOCAL_SHAPE = re.compile(r"\d{3,}")
_URL_SHORTENERS = frozenset((
    "bit.ly", "tinyurl.com", "goo.gl", "t.co", "ow.ly", "is.gd", "buff.ly", "tiny.cc",
    "rebrand.ly", "cutt.ly", "shorturl.at", "rb.gy", "t.ly", "s.id", "v.gd",
))
_URL_PATH_KIND = re.compile(r"\.(exe|scr|zip|php|asp|cgi)\b")
_SUBJ_PUNCT = re.compile(r"[!?$%*]{2,}|\.{4,}")
_SUBJ_MONEY = re.compile(r"[$€£¥]\s?\d|\d\s?(?:usd|eur|dollars?)\b", re.IGNORECASE)
_SUBJ_DIGIT = re.compile(r"\d")


class MessageFeatureExtractor(TransformerMixin, BaseEstimator):  # type: ignore[misc]
    """Pipeline step: messages (views or raw bytes) → lists of feature tokens.

    Stateless: ``fit`` learns nothing, so the step can sit in front of models
    that learn incrementally.

    :param strip_headers: shell-style header name patterns never read.
    :param max_text_chars: how much body text is tokenized.
    :param header_values: emit tokens for mailer/priority headers.
    :param structure: emit structural tokens (parts, HTML, length, capitals, URLs).
    :param structure_weight: how many times each non-word token is emitted (1 or more).
    :param distinct: emit each token once (binary features instead of counts).
    """

    def __init__(
        self,
        strip_headers: tuple[str, ...] = DEFAULT_STRIP_HEADERS,
        max_text_chars: int = 20_000,
        header_values: bool = True,
        structure: bool = True,
        structure_weight: int = 1,
        distinct: bool = False,
    ) -> None:
        self.strip_headers = strip_headers
        self.max_text_chars = max_text_chars
        self.header_values = header_values
        self.structure = structure
        self.structure_weight = structure_weight
        self.distinct = distinct

    def settings(self) -> dict[str, Any]:
        """What decides the tokens (hashed into model metadata)."""
        return {
            "version": FEATURES_VERSION,
            "strip_headers": list(self.strip_headers),
            "max_text_chars": self.max_text_chars,
            "header_values": self.header_values,
            "structure": self.structure,
            "structure_weight": self.structure_weight,
            "distinct": self.distinct,
        }

    def fit(self, X: Any, y: Any = None) -> MessageFeatureExtractor:
        """Nothing to learn; returns ``self``."""
        return self

    def transform(self, X: Iterable[MessageView | bytes]) -> list[list[str]]:
        """Token lists, one per message (raw bytes are parsed first)."""
        return [self.tokens(m if isinstance(m, MessageView) else parse_message(m)) for m in X]

    # -- the tokens of one message ------------------------------------------------------------

    def tokens(self, view: MessageView) -> list[str]:
        """Every feature token of one message view."""
        strip = _stripper_for(self.strip_headers)
        headers = [(name, v) for k, v in view.headers if not strip.match(name := k.lower())]
        subject = subject_without_tags(view.subject)
        out = tokenize(subject, prefix="s:", limit=1000)
        body = view.text
        out.extend(tokenize(body, limit=self.max_text_chars))
        if view.from_display:
            out.extend(tokenize(view.from_display, prefix="fn:", limit=200))
        from_domain = view.from_registrable if _header_present(headers, "from") else None
        shape = [f"fd:{from_domain or '-'}"]
        shape.extend(f"ud:{domain}" for domain in view.url_domains[:30])
        if self.structure:
            shape.extend(self._structure(view, headers, body, from_domain))
        if self.header_values:
            for name, value in headers:
                if name in _VALUE_HEADERS:
                    word = value.split(None, 1)[0].lower()[:30] if value.strip() else "-"
                    shape.append(f"hv:{name}:{word}")
        out.extend(shape)
        if self.structure_weight > 1:
            out.extend(shape * (self.structure_weight - 1))
        if self.distinct:
            return list(dict.fromkeys(out))
        return out

    def _structure(
        self, view: MessageView, headers: list[tuple[str, str]], body: str, from_domain: str | None
    ) -> list[str]:
        out: list[str] = []
        subject = subject_without_tags(view.subject)
        # MIME shape
        html_only = view.has_html and not view.has_text_plain
        out.append("st:html_only" if html_only else ("st:html" if view.has_html else "st:plain"))
        out.append(f"st:parts{min(len(view.parts), 6)}")
        for part in view.parts[:10]:
            if part.disposition == "attachment" or part.filename:
                out.append(f"st:att:{part.content_type}")
            elif not part.content_type.startswith("text/"):
                out.append(f"st:inline:{part.content_type}")
        top = next((v for k, v in headers if k == "content-type"), "")
        ctype = top.split(";", 1)[0].strip().lower()[:40] if top else "-"
        out.append(f"st:ct:{ctype}")
        m = _CHARSET.search(top)
        out.append(f"st:cs:{m.group(1).lower()[:20] if m else '-'}")
        # length and share of capitals
        n = len(body)
        out.append(f"st:len{_bucket(n, (50, 200, 600, 1500, 4000, 10000, 30000))}")
        sample = body[:4000]
        letters, caps = _letters_and_capitals(sample)
        if letters:
            out.append(f"st:caps{_bucket(caps / letters, (0.05, 0.1, 0.2, 0.35, 0.5))}")
        if subject:
            sl = sum(map(str.isalpha, subject))
            if sl >= 4 and subject.upper() == subject:
                out.append("st:subj_caps")
            if "!" in subject:
                out.append("st:subj_bang")
            if any(c.isdigit() for c in subject) and "%" in subject:
                out.append("st:subj_pct")
            if not subject.isascii():
                out.append("st:subj_8bit")
            if sl:
                upper = sum(map(str.isupper, subject))
                out.append(f"st:subj_caps{_bucket(upper / sl, (0.1, 0.3, 0.6, 0.9))}")
            out.append(f"st:subj_len{_bucket(len(subject), (10, 25, 45, 70))}")
            if _SUBJ_PUNCT.search(subject):
                out.append("st:subj_punct")
            if _SUBJ_MONEY.search(subject):
                out.append("st:subj_money")
            if _SUBJ_DIGIT.search(subject):
                out.append("st:subj_digit")
        else:
            out.append("st:no_subject")
        # URLs
        urls = view.urls
        out.append(f"st:urls{_bucket(len(urls), (1, 2, 4, 8, 16))}")
        if n and urls:
            out.append(f"st:url_density{_bucket(len(urls) * 1000 / n, (1, 3, 10))}")
        for url in urls[:30]:
            if _IP_HOST.match(url):
                out.append("st:url_ip")
            if _PORT.match(url):
                out.append("st:url_port")
            if _AT_IN_HOST.match(url):
                out.append("st:url_at")
            if _ENCODED.search(url[:200]):
                out.append("st:url_pct")
            lower = url[:2000].lower()
            query = lower.find("?")
            if query >= 0 and len(lower) - query > 60:
                out.append("st:url_long_query")
            host = lower.split("//", 1)[-1].split("/", 1)[0].rsplit("@", 1)[-1].split(":", 1)[0]
            if host in _URL_SHORTENERS:
                out.append("st:url_shortener")
            if host.count(".") >= 4:
                out.append("st:url_deep_host")
            if lower.startswith("https:"):
                out.append("st:url_https")
            kind = _URL_PATH_KIND.search(lower.split("//", 1)[-1].split("?", 1)[0])
            if kind:
                out.append(f"st:url_path:{kind.group(1)}")
        domains = view.url_domains[:30]
        if urls:
            out.append(f"st:url_domains{_bucket(len(set(domains)), (1, 2, 3, 5, 10))}")
        for tld in sorted({d.rsplit(".", 1)[-1] for d in domains}):
            out.append(f"st:url_tld:{tld}")
        if view.from_domain:
            out.append(f"st:from_tld:{view.from_domain.rsplit('.', 1)[-1].lower()[:20]}")
        if from_domain and urls and from_domain not in view.url_domains:
            out.append("st:url_not_from")
        # sender
        if view.from_address is None:
            out.append("st:no_from_addr")
        else:
            local = view.from_address.split("@", 1)[0]
            if _LOCAL_SHAPE.search(local):
                out.append("st:from_digits")
        if view.reply_to_domain and from_domain and view.reply_to_domain != view.from_domain:
            out.append("st:replyto_differs")
        if not _header_present(headers, "message-id"):
            out.append("st:no_msgid")
        if not _header_present(headers, "date"):
            out.append("st:no_date")
        to = next((v for k, v in headers if k == "to"), None)
        if to is None:
            out.append("st:no_to")
        elif "undisclosed" in to.lower():
            out.append("st:to_undisclosed")
        return out


def _letters_and_capitals(text: str) -> tuple[int, int]:
    """How many characters of ``text`` are letters, and how many upper-case ones
    (``str.isalpha`` / ``str.isupper``; ASCII text is counted by byte deletion)."""
    if text.isascii():
        raw = text.encode("ascii")
        return (len(raw) - len(raw.translate(None, _ASCII_LETTERS)),
                len(raw) - len(raw.translate(None, _ASCII_UPPER)))
    return sum(map(str.isalpha, text)), sum(map(str.isupper, text))


def _header_present(headers: list[tuple[str, str]], name: str) -> bool:
    return any(k == name for k, _ in headers)


_STRIPPERS: dict[tuple[str, ...], re.Pattern[str]] = {}


def _stripper_for(patterns: tuple[str, ...]) -> re.Pattern[str]:
    pat = _STRIPPERS.get(tuple(patterns))
    if pat is None:
        pat = header_stripper(patterns)
        _STRIPPERS[tuple(patterns)] = pat
    return pat


def normalized_text(view: MessageView) -> str:
    """Subject and body with whitespace, digits and case flattened: the near-duplicate key."""
    text = f"{view.subject}\n{view.text}".lower()
    text = re.sub(r"\d+", "0", text)
    return _SPACE.sub(" ", text).strip()
