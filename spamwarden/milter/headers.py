"""Header rendering: ``Authentication-Results`` (RFC 8601) and SpamAssassin's ``X-Spam-*``.

Pure functions returning ``(name, value)`` pairs; the milter turns them into
``addheader`` / ``chgheader`` calls and ``spamwarden check`` prints them.

Forged headers (RFC 8601 §5): incoming ``Authentication-Results`` fields that
claim our authserv-id, and every incoming ``X-Spam-*`` field, are removed
before ours are added; :func:`forged_header_removals` lists them with the
1-based per-name index ``smfi_chgheader`` wants, highest index first so a
removal never shifts the index of the next one.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from typing import TYPE_CHECKING, Any

from .interfaces import Envelope, Symbol

if TYPE_CHECKING:
    from .auth import AuthResults

__all__ = [
    "AUTH_RESULTS",
    "ON_TOP",
    "plain_authserv_id",
    "fold",
    "forged_header_removals",
    "header_safe",
    "pvalue",
    "render_authentication_results",
    "render_spam_status",
    "spam_headers",
]

AUTH_RESULTS = "Authentication-Results"
#: Fields that go on top of the message (trace fields, RFC 8601 §5, RFC 8617 §4.1),
#: each inserted at index 0 in the order given: the last one ends up topmost.
ON_TOP = frozenset({AUTH_RESULTS, "ARC-Authentication-Results", "ARC-Message-Signature",
                    "ARC-Seal"})

# RFC 2045 token: any CHAR except SPACE, CTLs and tspecials.
_TOKEN = re.compile(r"^[!#$%&'*+\-.0-9A-Z^_`a-z{|}~]+$")
# RFC 8601 pvalue may also be [local-part "@"] domain-name.
_ADDR = re.compile(r"^(?:[!#$%&'*+\-/=?^_`{|}~0-9A-Za-z.]*@)?[0-9A-Za-z](?:[0-9A-Za-z.-]*[0-9A-Za-z])?$")
_UNSAFE = re.compile(r"[^\x20-\x7e]")


def header_safe(text: str, *, limit: int = 900) -> str:
    """``text`` as one printable-ASCII header line of at most ``limit`` characters.

    Control characters (CR, LF included) become spaces, other non-ASCII
    characters ``?``: an added header must never break the message.
    """
    if _UNSAFE.search(text):
        text = _UNSAFE.sub(_replacement, text)
    flat = " ".join(text.split()) if "  " in text or text[:1] == " " or text[-1:] == " " else text
    return flat if len(flat) <= limit else flat[: limit - 3] + "..."


def _replacement(m: re.Match[str]) -> str:
    o = ord(m.group())
    return " " if o < 32 or o == 127 else "?"


def pvalue(value: str, limit: int = 256) -> str:
    """A property value (RFC 8601 §2.2 ``pvalue``): bare when a token or an
    address, else a quoted-string; at most ``limit`` characters between the quotes,
    escapes counted (a value of quotes doubles when escaped)."""
    if (_TOKEN.match(value) or _ADDR.match(value)) and len(value) <= limit:
        return value
    escaped = _escaped(header_safe(value, limit=limit), '\\"', limit)
    return f'"{escaped}"'


def _escaped(text: str, specials: str, limit: int) -> str:
    """``text`` with a backslash before each of ``specials``, cut to ``limit``
    characters without splitting an escape."""
    out: list[str] = []
    n = 0
    for c in text:
        w = 2 if c in specials else 1
        if n + w > limit:
            break
        out.append("\\" + c if w == 2 else c)
        n += w
    return "".join(out)


def _comment(text: str) -> str:
    safe = _escaped(header_safe(text, limit=200), "\\()", 200)
    return f"({safe})" if safe else ""


def _word(value: Any) -> str:
    text = str(value or "none").strip().lower()
    return text if re.match(r"^[a-z]+$", text) else "permerror"


def _join(parts: Iterable[str]) -> str:
    return " ".join(p for p in parts if p)


def render_authentication_results(
    authserv_id: str,
    auth: AuthResults | None,
    env: Envelope,
    *,
    unavailable: str = "",
) -> str:
    """The value of our one ``Authentication-Results`` header (RFC 8601 §2.2).

    :param authserv_id: ``milter.authserv_id`` (or the host's FQDN).
    :param auth: SPF, DKIM (one result per signature), DMARC and ARC (RFC 8617
        §10); ``None`` when authentication did not run.
    :param env: the envelope, for ``smtp.mailfrom`` / ``smtp.helo``.
    :param unavailable: why authentication did not run, said in a comment
        next to the ``none`` result (RFC 8601 §2.2: no method was applied).
    :returns: e.g. ``mx.example.net; spf=pass smtp.mailfrom=a@example.com
        smtp.helo=mail.example.com; dkim=pass header.d=example.com
        header.s=sel header.b=AbCdEfGh; dmarc=pass (p=reject) header.from=example.com``
        folded onto one line per method.
    """
    methods: list[str] = []
    if auth is not None:
        spf = auth.spf
        if spf is not None:
            mail_from = (spf.mail_from or env.mail_from or "").strip("<>")
            props = []
            if mail_from:
                props.append("smtp.mailfrom=" + pvalue(mail_from))
            if env.helo:
                props.append("smtp.helo=" + pvalue(env.helo))
            methods.append(_join([f"spf={_word(spf.result)}", _comment(spf.explanation or ""),
                                  *props]))
        for sig in auth.dkim:
            props = []
            # (as the signature wrote them when dkimpy could not read it: bounded)
            for ptype, v, most in (("header.d", sig.domain, 255), ("header.s", sig.selector, 64),
                                   ("header.a", sig.algorithm, 32)):
                if v:
                    props.append(f"{ptype}={pvalue(str(v), most)}")
            b = (sig.header_b or "")[:8]
            if b:
                props.append("header.b=" + pvalue(b))  # RFC 6008 §4: a prefix suffices
            methods.append(_join([f"dkim={_word(sig.result)}", _comment(sig.reason or ""),
                                  *props]))
        dmarc = auth.dmarc
        if dmarc is not None:
            note = []
            if dmarc.policy:
                note.append(f"p={dmarc.policy}")
            if dmarc.applied_policy and str(dmarc.result).lower() == "fail":
                note.append(f"dis={dmarc.applied_policy}")
            if dmarc.reason:
                note.append(dmarc.reason)
            from_domain = dmarc.from_domain or ""
            props = ["header.from=" + pvalue(from_domain)] if from_domain else []
            methods.append(
                _join([f"dmarc={_word(dmarc.result)}", _comment(" ".join(note)), *props])
            )
        arc = getattr(auth, "arc", None)
        if arc is not None:
            # RFC 8617 §10.2: the arc method with the client's address (smtp.remote-ip).
            if str(arc.result).lower() == "pass":
                note_text = f"{arc.sets} set{'s' if arc.sets != 1 else ''}, sealer {arc.sealer}"
            else:
                note_text = arc.reason if str(arc.result).lower() != "none" else ""
            props = ["smtp.remote-ip=" + pvalue(env.client_ip)] if env.client_ip else []
            methods.append(_join([f"arc={_word(arc.result)}", _comment(note_text), *props]))
    aid = header_safe(authserv_id, limit=255) or "localhost"
    if not methods:
        return _join([f"{aid};", "none", _comment(unavailable)])
    return f"{aid};\n\t" + ";\n\t".join(methods)


def render_spam_status(
    *, flagged: bool, score: float, required: float, tests: Sequence[str], version: str
) -> str:
    """``X-Spam-Status`` exactly in SpamAssassin's form.

    ``Yes, score=17.2 required=5.0 tests=BAYES_99,DMARC_REJECT autolearn=no
    version=spamwarden-0.1.0`` (tests sorted, ``none`` when empty).
    """
    names = ",".join(sorted(set(tests))) or "none"
    return fold(
        f"{'Yes' if flagged else 'No'}, score={score:.1f} required={required:.1f} "
        f"tests={names} autolearn=no version={version}",
        first=len("X-Spam-Status: "),
    )


#: RFC 5322 §2.1.1: lines SHOULD be at most 78 characters (998 is the hard limit)
FOLD_WIDTH = 78
_FOLD_PIECES = re.compile(r"[^ ,]*(?:,|(?: +)|$)")


def fold(value: str, *, first: int = 0, width: int = FOLD_WIDTH) -> str:
    """``value`` folded as SpamAssassin folds its ``X-Spam-*`` fields: after a comma or
    at a space, continuation lines starting with a tab, no line (``first`` characters
    of field name on the first) over ``width`` when a break allows it.

    A space a line breaks at is replaced by the fold; a comma stays at the end of its
    line.  Unfolding (RFC 5322 §2.2.3: remove the line breaks) gives back ``value``
    with a tab where a space was broken, and a tab after a broken comma; a piece with
    no break point in it longer than ``width`` stays whole on a line of its own.
    """
    lines: list[str] = []
    line = ""
    used = first
    for piece in _FOLD_PIECES.findall(value):
        if not piece:
            continue
        word = piece.rstrip(" ")
        if line and used + len(word) > width:
            lines.append(line.rstrip(" "))
            line, used = "", 1  # the tab that starts the continuation line
        line += piece
        used += len(piece)
    lines.append(line.rstrip(" "))
    return "\n\t".join(lines)


def spam_headers(
    *,
    score: float,
    required: float,
    flagged: bool,
    symbols: Sequence[Symbol],
    reason: str,
    action: str,
    unavailable: Sequence[str],
    version: str,
) -> list[tuple[str, str]]:
    """The ``X-Spam-*`` headers we add, in order.

    * ``X-Spam-Flag: YES`` only when ``flagged`` (score at or over the tag threshold);
    * ``X-Spam-Score``, ``X-Spam-Level`` (one ``*`` per whole point, SpamAssassin's);
    * ``X-Spam-Status`` (see :func:`render_spam_status`);
    * ``X-Spam-Reasons``: the action, the main reason and each symbol with its points;
    * ``X-Spam-Unavailable`` when a check could not be made (no classifier, store down).
    """
    out: list[tuple[str, str]] = []
    if flagged:
        out.append(("X-Spam-Flag", "YES"))
    out.append(("X-Spam-Score", f"{score:.1f}"))
    stars = int(score) if score >= 1 else 0
    if stars:
        out.append(("X-Spam-Level", "*" * min(stars, 50)))
    out.append((
        "X-Spam-Status",
        render_spam_status(
            flagged=flagged, score=score, required=required,
            tests=[s.name for s in symbols], version=version,
        ),
    ))
    listed = ", ".join(
        f"{s.name}={s.points:g}" + (f" [{s.detail}]" if s.detail else "")
        for s in sorted(symbols, key=lambda s: (-abs(s.points), s.name))
    )
    out.append(("X-Spam-Reasons", header_safe(f"action={action}; {reason}; {listed}", limit=960)))
    if unavailable:
        out.append(("X-Spam-Unavailable", header_safe(", ".join(unavailable))))
    return out


def _skip_cfws(text: str, i: int) -> int:
    """The index past the white space and comments (nested, RFC 5322 §3.2.2) at ``i``;
    ``len(text) + 1`` when a comment never closes.  One pass: linear in ``len(text)``."""
    n = len(text)
    while i < n:
        c = text[i]
        if c.isspace():
            i += 1
        elif c == "(":
            depth = 0
            while i < n:
                c = text[i]
                if c == "\\":
                    i += 2
                    continue
                if c == "(":
                    depth += 1
                elif c == ")":
                    depth -= 1
                i += 1
                if depth == 0:
                    break
            if depth:
                return n + 1
        else:
            break
    return i


# RFC 5322 §3.2.3 atext; a dot-atom, and a trailing dot as some servers write it
_DOT_ATOM = re.compile(r"[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]+(?:\.[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]+)*\.?")
_VERSION = re.compile(r"[0-9]+")


def plain_authserv_id(value: str) -> str:
    """The authserv-id of an ``Authentication-Results`` value written plainly (lower case,
    no trailing dot): comments and white space, a dot-atom, an optional version, then
    ``;`` or the end.  ``""`` for any other spelling: a quoted id, a backslash, white
    space or a comment inside the id.  Readers differ on those (OpenDMARC's tokenizer
    reads ``mx .example.net``, ``mx\\.example.net`` and ``"mx.example\\.net"`` as
    ``mx.example.net``), so a field only kept when every reader reads the same id."""
    i = _skip_cfws(value, 0)
    m = _DOT_ATOM.match(value, i) if i <= len(value) else None
    if m is None:
        return ""
    j = _skip_cfws(value, m.end())
    if j < len(value) and value[j] != ";":
        v = _VERSION.match(value, j)
        if v is None:
            return ""
        j = _skip_cfws(value, v.end())
    if j < len(value) and value[j] != ";":
        return ""
    return m.group().lower().rstrip(".")


def forged_header_removals(
    headers: Sequence[tuple[str, str]], authserv_id: str
) -> list[tuple[str, int]]:
    """Incoming headers to remove before ours are added.

    :param headers: every incoming header ``(name, value)`` in message order.
    :param authserv_id: ours; ``Authentication-Results`` claiming it are forged, and
        so are those whose authserv-id is not written plainly (:func:`plain_authserv_id`:
        a lenient reader downstream might still take them for ours).
    :returns: ``(name, index)`` with the 1-based index among headers of that
        name (``smfi_chgheader`` semantics), highest index first per name.
    """
    ours = authserv_id.strip().lower().rstrip(".")
    counts: dict[str, int] = {}
    removals: list[tuple[str, int]] = []
    for name, value in headers:
        lname = name.lower()
        counts[lname] = counts.get(lname, 0) + 1
        if lname.startswith("x-spam-") or lname == "x-spam" or (
            lname == "authentication-results" and plain_authserv_id(value) in (ours, "")
        ):
            removals.append((name, counts[lname]))
    removals.sort(key=lambda r: (r[0].lower(), -r[1]))
    return removals
