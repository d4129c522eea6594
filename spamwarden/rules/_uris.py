"""The URI list SpamAssassin's ``uri`` rules read (``PerMsgStatus::get_uri_list``).

Three sources, each URI then put through ``Util::uri_list_canonicalize``:

- the rendered body text, Subject line first (``_process_text_uri_list``): what
  Thunderbird or Outlook would make a link, by SpamAssassin's ``_tbirdurire``: URIs with a
  scheme or starting ``www``/``ftp.``, e-mail addresses (made ``mailto:``) and bare host
  names ending in a valid top-level domain (made ``http://``);
- the links of the text/html parts, as ``Mail::SpamAssassin::HTML::html_uri`` reads them
  (``href`` of ``a``/``area``/``link``, ``src`` of ``img``/``frame``/``iframe``/``embed``/
  ``script``/``bgsound``, ``background``, form ``action``, ``base``, meta refresh);
- nothing from DKIM signatures (``parse_dkim_uris`` is off by default).

The valid top-level domains are those of the rule files' ``util_rb_tld`` lines
(``20_aux_tlds.cf``: RegistryBoundaries' ``valid_tlds``) when the rule set has them
(``tlds`` below, from :attr:`RuleSet.valid_tlds <spamwarden.rules.RuleSet>`); without
any, the root zone's as the Public Suffix List (shipped with the ``publicsuffixlist``
package) carries them.  Not done: ``redirector_pattern`` (the generic ``http://`` found in a
URI's path is), IDN host conversion.
"""

from __future__ import annotations

import functools
import ipaddress
import re
from collections.abc import Iterable, Sequence, Set
from html.entities import name2codepoint

import idna
import publicsuffixlist

__all__ = ["MAX_URIS", "compile_patterns", "fqdn_valid", "tag_links", "text_uris", "uri_host",
           "uri_list", "uri_list_canonicalize", "uri_tld_alternation", "trim_domain", "valid_tlds"]

#: SpamAssassin's MAX_URI_LENGTH; URIs read per message
MAX_URI_LENGTH = 8192
MAX_URIS = 1000


@functools.cache
def valid_tlds() -> frozenset[str]:
    """The root zone's top-level domains, lower case (IDN ones in ``xn--`` form)."""
    path = publicsuffixlist.PSLFILE  # (the list the package ships)
    out: set[str] = set()
    icann = False
    with open(path, encoding="utf-8") as fh:
        for line in fh:
            line = line.strip()
            if "===BEGIN ICANN" in line:
                icann = True
            elif "===END ICANN" in line:
                break
            elif icann and line and not line.startswith("//"):
                label = line.lstrip("*!.")
                if "." not in label:
                    out.add(label if label.isascii() else label.encode("idna").decode())
    return frozenset(out)


def _trie(words: Iterable[str]) -> str:
    """A regex matching exactly the given words, as a trie (Python's re tries each
    alternative of a plain list in turn; Perl builds the trie itself)."""
    tree: dict[str, dict] = {}  # type: ignore[type-arg]
    for w in words:
        node = tree
        for ch in w:
            node = node.setdefault(ch, {})
        node[""] = {}

    def emit(node: dict[str, dict]) -> str:  # type: ignore[type-arg]
        alts = [re.escape(ch) + emit(sub) for ch, sub in sorted(node.items()) if ch]
        if "" in node:
            return "(?:" + "|".join(alts) + ")?" if alts else ""
        return alts[0] if len(alts) == 1 else "(?:" + "|".join(alts) + ")"

    return emit(tree)


#: RegistryBoundaries' %US_STATES (RFC 1480 names under .us)
_US_STATES = frozenset(
    "ak al ar az ca co ct dc de fl ga gu hi ia id il in ks ky la ma md me mi mn mo ms mt nc "
    "nd ne nh nj nm nv ny oh ok or pa pr ri sc sd tn tx ut va vi vt wa wi wv wy".split())


def trim_domain(name: str, two_level: Set[str], three_level: Set[str]) -> str:
    """RegistryBoundaries' ``trim_domain`` (``split_domain``'s domain) of an ASCII host
    name: its last two labels, three under a name of ``two_level`` (``co.uk``) or an
    RFC 1480 state of ``.us``, four under a name of ``three_level`` or the ``.us``
    city and school names; dots collapsed and trimmed first."""
    labels = [x for x in name.lower().split(".") if x]
    n = len(labels)
    keep = n
    while keep > 1:  # labels from the end kept as the domain, as split_domain counts
        parts = labels[n - keep:]
        if keep == 2 and ".".join(parts) in two_level:
            break
        if keep == 3 and (parts[1] in _US_STATES if parts[2] == "us"
                          else ".".join(parts) in three_level):
            break
        if (keep == 4 and parts[3] == "us" and parts[2] in _US_STATES
                and ((parts[0] == "pvt" and parts[1] == "k12") or parts[0] in ("ci", "co"))):
            break
        keep -= 1
    if keep < n:  # the label before the public part is the domain's own
        keep += 1
    return ".".join(labels[n - keep:])


def uri_tld_alternation(tlds: Iterable[str]) -> str:
    """A regex matching exactly one of the top-level domains ``tlds`` (lower case; the
    caller adds its boundaries and flags): RegistryBoundaries' ``valid_tlds_re`` core."""
    return _trie(sorted(tlds))


_END = r"><\"`}\]{\[|\s\x1b\xa0"
_END_MAIL = _END + r",(\x27\x80-\xff"
_END_MAIL_AT = _END_MAIL + "@"
_START = r"><\"\x27`,{\[(|\s\x1b\xa0"
_SC_START = r"[!\"#$&\x27()*+,/:;<=>?@\[\\\]^`{|}~\s\x1b\xa0]"


@functools.lru_cache(maxsize=4)
def _tbirdurire(valid: frozenset[str]) -> re.Pattern[bytes]:
    """PerMsgStatus.pm's ``_tbirdurire`` (groups: scheme URI, mail, schemeless URI, its
    host) for the valid top-level domains ``valid``, run on a lower-cased copy of the
    text (the spans are the original's)."""
    tlds = (r"(?<![a-z0-9-])" + _trie(sorted(valid))
            + r"(?!(?:[a-z0-9-]|\.[a-z0-9]))")
    scheme = rf"(?:(?:https?|ftp)://|(?:www\d{{0,2}}|ftp)\.)[^{_END}]{{1,2048}}"
    mail = (rf"(?:mailto:[^{_END_MAIL}]{{1,2048}}"
            rf"|[^{_END_MAIL_AT}]{{1,251}}@[^{_END_MAIL}]{{1,251}})")
    schemeless = (rf"([a-z\d][a-z\d._-]{{0,251}}\.{tlds})\.?(?::\d{{1,5}})?"
                  rf"(?:/[^{_END}]{{1,2048}})?")
    pattern = (rf"(?:\b|(?<=\x1b\(.)|(?<=[{_START}]))"
               rf"(?:(?:({scheme})(?=[{_END}]|\Z))"
               rf"|(?:({mail})(?=[{_END_MAIL}]|\Z))"
               rf"|(?:(?:^|(?<={_SC_START}))({schemeless})(?=[{_END}]|\Z)))")
    return re.compile(pattern.encode("latin-1"), re.DOTALL)


def compile_patterns(tlds: frozenset[str] | None = None) -> None:
    """Compile the text-URI pattern now (about 0.25 s, once per process and set of
    top-level domains) rather than in the first message that needs it.

    :param tlds: the valid top-level domains (``None``: :func:`valid_tlds`)."""
    _tbirdurire(tlds or valid_tlds())


_CLOSE_PAREN = re.compile(rb"^([^(]*)\).*$", re.DOTALL)
_TRAILING = re.compile(rb"[-~!@#^&*()_+=:;'?,.]*$")
_EMPTY = re.compile(rb"^\w+:/{0,2}$", re.ASCII)
_LABEL = re.compile(rb"^[a-z0-9_](?:[a-z0-9_-]*[a-z0-9_])?$")
_PCT = re.compile(rb"%[0-9a-fA-F]{2}")
_PCT_SPLIT = re.compile(rb"(%[0-9a-fA-F]{2})")
_ENCODE = re.compile(rb"[\x00-\x20\x7f-\xff\"%<>]")


_IPV4 = re.compile(r"(?:(?:25[0-5]|2[0-4]\d|1\d\d|[1-9]?\d)\.){3}(?:25[0-5]|2[0-4]\d|1\d\d|[1-9]?\d)\Z")
_SPACE = re.compile(rb"\s")


def fqdn_valid(host: bytes) -> bool:
    """Util.pm's ``is_fqdn_valid`` of an ASCII host: two labels or more, each a DNS
    label (``_`` only below the second level), 253 octets at most, trailing dots and
    the case of letters ignored."""
    host = host.lower().rstrip(b".")
    if len(host) > 253:
        return False
    labels = host.split(b".")
    if len(labels) < 2:
        return False
    for i, label in enumerate(labels):
        if not 1 <= len(label) <= 63 or not _LABEL.match(label):
            return False
        if i >= len(labels) - 2 and b"_" in label:
            return False
    return True


def _domain_valid(dom: bytes, tlds: frozenset[str] | None = None) -> bool:
    """RegistryBoundaries' ``is_domain_valid``: no white space, a dot, a valid TLD (of
    ``tlds``; ``None``: :func:`valid_tlds`)."""
    dom = dom.lower()
    if _SPACE.search(dom):
        return False
    dot = dom.rfind(b".")
    return dot >= 0 and dom[dot + 1:].decode("latin-1") in (tlds or valid_tlds())


def _url_decode(uri: bytes) -> bytes:
    """Util.pm's ``url_encode``: ``%XX`` escapes of printable ASCII other than space
    decoded, the others kept; control, space, 8-bit, ``"``, ``%``, ``<``, ``>`` octets
    outside escapes encoded."""
    out: list[bytes] = []
    for piece in _PCT_SPLIT.split(uri):
        if _PCT.fullmatch(piece):
            if not re.search(rb"20|7f|[0189a-fA-F][0-9a-fA-F]", piece, re.IGNORECASE):
                piece = bytes((int(piece[1:], 16),))
        else:
            piece = _ENCODE.sub(lambda m: b"%%%02x" % m.group(0)[0], piece)
        out.append(piece)
    return b"".join(out)


# What each kind of text URI holds: a dot before a letter or digit (a host name),
# "www." or "ftp.", "@" or ":" (a scheme, "mailto:").  No match holds white space, a
# white-space octet ends every match as the end of the text does, and the look-behinds
# read the text before a run (re reads before ``pos``): so matching inside each run of
# other octets that holds an anchor finds what matching the whole line finds.
# (the character class first: re then finds where to try with a quick scan)
_ANCHOR = re.compile(rb"[.@:](?:(?<=\.)[a-z0-9]|(?<=[@:])|(?<=www\.)|(?<=ftp\.)"
                     rb"|(?<=www\d\.)|(?<=www\d\d\.))")
_WHITE_TO_SPACE = bytes.maketrans(b"\t\n\r\x0b\x0c", b"     ")


def _runs(lower: bytes) -> list[tuple[int, int]]:
    """The runs of non-white-space octets of a lower-cased text that hold an anchor."""
    spaced = lower.translate(_WHITE_TO_SPACE)
    out: list[tuple[int, int]] = []
    stop = 0
    for a in _ANCHOR.finditer(spaced):
        at = a.start()
        if at < stop:
            continue  # (in the run already taken)
        stop = spaced.find(b" ", at)
        if stop < 0:
            stop = len(spaced)
        out.append((spaced.rfind(b" ", 0, at) + 1, stop))
    return out


_SCHEME_KNOWN = re.compile(rb"(?:https?|ftp|mailto):")
_WWW = re.compile(rb"www\d{0,2}\.")
_SLASH_AT = re.compile(rb"/.+@", re.DOTALL)
_AT_DOT = re.compile(rb"@.+?\.", re.DOTALL)
_MISPARSE = re.compile(rb"^(?:skype|e?-?mail)?:+", re.IGNORECASE)
_MAIL_HOST = re.compile(rb"@([^?&>]*)")
_TRAILING_SP = re.compile(rb"(?:%20)+$")


def text_uris(lines: Sequence[bytes], *, limit: int = MAX_URIS,
              tlds: frozenset[str] | None = None) -> list[bytes]:
    """The URIs ``_process_text_uri_list`` finds in the rendered body lines, with the
    scheme it gives them, in order (before canonicalisation); ``tlds``: the valid
    top-level domains (``None``: :func:`valid_tlds`)."""
    tlds = tlds or valid_tlds()
    regex = _tbirdurire(tlds)
    seen: set[bytes] = set()
    out: list[bytes] = []
    # The lines matched as one text, each after a "}": a character that ends every kind
    # of match and starts none, and no word character, so that a match starts and ends
    # at a line's ends where it would in the line alone (\b, the look-behinds, "^").
    text = b"}" + b"}".join(lines)
    lower = text.lower()
    for start, end in _runs(lower):
        for m in regex.finditer(lower, start, end):
            uri = _text_uri(text, lower, m, seen, tlds)
            if uri is not None:
                out.append(uri)
                if len(out) >= limit:
                    return out
    return out


def _text_uri(text: bytes, lower: bytes, m: re.Match[bytes], seen: set[bytes],
              tlds: frozenset[str]) -> bytes | None:
    """One ``_tbirdurire`` match as ``_process_text_uri_list`` takes it (``None``: left
    out); ``seen``: the raw URIs already read."""
    k = 1 if m.start(1) >= 0 else 2 if m.start(2) >= 0 else 3
    raw = text[m.start(k):m.end(k)]
    if b")" in raw:
        raw = _CLOSE_PAREN.sub(rb"\1", raw)
    raw = _TRAILING.sub(b"", raw, count=1)
    if raw in seen:
        return None
    seen.add(raw)
    if k == 2 and b"@" not in raw:
        return None
    if k == 3 and not fqdn_valid(lower[m.start(4):m.end(4)]):
        return None
    low = raw.lower()
    if low.startswith((b"cid:", b"mid:")) or _EMPTY.match(raw):
        return None
    uri = raw
    if not _SCHEME_KNOWN.match(low):
        if low.startswith(b"ftp."):
            uri = b"ftp://" + uri
        elif _WWW.match(low):
            uri = b"http://" + uri
        elif _SLASH_AT.search(uri):
            uri = b"http://" + uri
        elif b"@" in uri:
            if not _AT_DOT.search(uri) or b"&nbsp;" in uri:
                return None
            uri = b"mailto:" + _MISPARSE.sub(b"", uri, count=1)
        else:
            if b"." not in uri:
                return None
            uri = b"http://" + uri
    if uri[:7].lower() == b"mailto:":
        if b"%" in uri and _PCT.search(uri):
            uri = _url_decode(uri)
        at = _MAIL_HOST.search(uri)
        if at is None:
            return None
        host = at.group(1)
        if not _domain_valid(_TRAILING_SP.sub(b"", host, count=1) if b"%20" in host else host,
                             tlds):
            return None
    return uri


_ATTR = re.compile(rb"""([^\s=>]+)\s*(?:=\s*(?:"([^"]*)"|'([^']*)'|([^\s>]*)))?""")

_ENTITY = re.compile(rb"&(?:#([0-9]+)|#[xX]([0-9a-fA-F]+)|([A-Za-z][A-Za-z0-9]*));?")


def _entity(m: re.Match[bytes]) -> bytes:
    if m.group(3) is not None:
        code = name2codepoint.get(m.group(3).decode("ascii"))
    else:
        code = int(m.group(1)) if m.group(1) is not None else int(m.group(2), 16)
    if code is None or not 0 < code < 0x110000 or 0xD800 <= code < 0xE000:
        return m.group(0)
    return chr(code).encode("utf-8")


def _tag_attrs(text: bytes) -> dict[bytes, bytes]:
    """A start tag's attributes (names lower case, the first of a name kept), values'
    entities decoded as HTML::Parser decodes them (a name is read whole: ``&register``
    is no ``&reg``)."""
    # (reversed: the first of a name is the one left in the dict)
    out = {key.lower(): double or single or bare
           for key, double, single, bare in reversed(_ATTR.findall(text[:16384]))}
    if b"&" in text:
        for key, value in out.items():
            if b"&" in value:
                out[key] = _ENTITY.sub(_entity, value)
    return out


def _canon(uri: bytes) -> bytes:
    return uri.strip(b" \t\n\r\f\x0b\xa0")[:MAX_URI_LENGTH]


_URI_PARTS = re.compile(rb"^(?:([^:/?#]+):)?(?://([^/?#]*))?([^?#]*)(?:\?([^#]*))?(?:#(.*))?",
                        re.DOTALL)


_DOT_SEGMENT = re.compile(rb"(?:^|/)\.\.?(?:/|$)")
_LEADING_DOTS = re.compile(rb"^\.\.?/")
_DOT = re.compile(rb"/\.(?:/|$)")
_DOT_DOT = re.compile(rb"/\.\.(?:/|$)")
_SEGMENT = re.compile(rb"/?[^/]*")
_LAST_SEGMENT = re.compile(rb"/?[^/]*$")


def _remove_dot_segments(path: bytes) -> bytes:
    """HTML.pm's ``_remove_dot_segments`` (RFC 3986, section 5.2.4)."""
    out = b""
    path = _LEADING_DOTS.sub(b"/", path, count=1)
    while path and path != b"0":
        m = _DOT.match(path)
        if m is not None:
            path = b"/" + path[m.end():]
            continue
        m = _DOT_DOT.match(path)
        if m is not None:
            path = b"/" + path[m.end():]
            out = _LAST_SEGMENT.sub(b"", out, count=1)
            continue
        m = _SEGMENT.match(path)
        assert m is not None
        out += m.group(0)
        path = path[m.end():]
    return out


def _merge_uri(base_authority: bytes | None, base_path: bytes, path: bytes) -> bytes:
    if base_authority is not None and not base_path:
        return b"/" + path
    if b"/" in base_path:
        return re.sub(rb"(?<=/)[^/]*$", b"", base_path, count=1) + path
    return path


def _target_uri(base: bytes, uri: bytes) -> bytes:
    """HTML.pm's ``target_uri``: a link resolved against the ``<base href>`` (RFC 3986,
    section 5.2.2, a scheme equal to the base's taken as relative), a scheme-relative
    ``//www.`` or ``//ftp.`` link given ``http:`` or ``ftp:``."""
    if (not base and b"/." not in uri and b":." not in uri and uri[:1] not in (b".", b"0")
            and uri[:2] != b"//"):
        # (no dot segment to remove, no scheme to add: what the steps below give back)
        return uri
    r = _URI_PARTS.match(uri)
    assert r is not None
    r_scheme, r_auth, r_path, r_query, fragment = r.groups()
    if (not base and (r_scheme is not None or r_auth is None) and r_path != b"0"
            and (b"." not in r_path or not _DOT_SEGMENT.search(r_path))):
        return uri  # (what the steps below give back, as no dot segment is removed)
    b = _URI_PARTS.match(base)
    assert b is not None
    b_scheme, b_auth, b_path, b_query, _ = b.groups()
    if r_scheme is not None and b_scheme is not None and r_scheme == b_scheme:
        r_scheme = None
    scheme: bytes | None
    if r_scheme is not None:
        scheme, authority, path, query = r_scheme, r_auth, _remove_dot_segments(r_path), r_query
    else:
        if r_auth is not None:
            authority, path, query = r_auth, _remove_dot_segments(r_path), r_query
        else:
            if r_path == b"":
                path, query = b_path, (r_query if r_query is not None else b_query)
            else:
                path = _remove_dot_segments(r_path if r_path.startswith(b"/")
                                            else _merge_uri(b_auth, b_path, r_path))
                query = r_query
            authority = b_auth
        scheme = b_scheme
    out = b""
    if scheme:
        out += scheme + b":"
    elif authority is not None:
        if re.match(rb"www\d*\.", authority, re.IGNORECASE):
            out += b"http:"
        elif re.match(rb"ftp\d*\.", authority, re.IGNORECASE):
            out += b"ftp:"
    if authority is not None:
        out += b"//" + authority
    out += path
    if query is not None:
        out += b"?" + query
    if fragment is not None:
        out += b"#" + fragment
    return out


_SLASH_HREF = re.compile(rb"\w{1,8}/href")
_SLASH_SRC = re.compile(rb"\w{1,8}/src")
_NO_TARGET = re.compile(rb"(?:data|mailto|file|cid|tel):", re.IGNORECASE)


def _tag_uris(tag: bytes, attrs: dict[bytes, bytes], base: list[bytes]) -> list[bytes]:
    """HTML.pm's ``html_uri``: the links one start tag gives; ``base``: the
    ``<base href>`` in force (one item, set by a ``base`` tag)."""
    found: list[bytes] = []
    if tag in (b"body", b"table", b"tr", b"td"):
        if b"background" in attrs:
            found.append(attrs[b"background"])
    elif tag in (b"a", b"area", b"link"):
        for k in [k for k in attrs if b"/" in k and _SLASH_HREF.search(k)]:
            attrs[b"href"] = attrs.pop(k)
        if b"href" in attrs:
            found.append(attrs[b"href"].replace(b"\xef\xbb\xbf", b""))
        if b"data-saferedirecturl" in attrs:
            found.append(attrs[b"data-saferedirecturl"])
    elif tag in (b"img", b"frame", b"iframe", b"embed", b"script", b"bgsound"):
        for k in [k for k in attrs if b"/" in k and _SLASH_SRC.search(k)]:
            attrs[b"src"] = attrs.pop(k)
        if b"src" in attrs:
            found.append(attrs[b"src"])
    elif tag == b"form":
        if b"action" in attrs:
            found.append(attrs[b"action"])
    elif tag == b"base":
        href = attrs.get(b"href")
        if href and href != b"0":
            href = _canon(href)
            found.append(href)
            if re.match(rb"(?:https?|ftp):/{0,2}", href, re.IGNORECASE):
                href = re.sub(rb"^([a-z]+:/{0,2}[^/]+/.*?)[^/.]+\.[^/.]{2,4}$", rb"\1", href,
                              count=1, flags=re.IGNORECASE)
                base[0] = href if href.endswith(b"/") else href + b"/"
    elif tag == b"meta":
        content = attrs.get(b"content")
        equiv = attrs.get(b"http-equiv")
        if (content is not None and equiv is not None
                and re.search(rb"refresh", equiv, re.IGNORECASE)
                and re.search(rb"\burl\s*=", content, re.IGNORECASE)):
            uri = re.sub(rb"^.*\burl\s*=\s*", b"", content, count=1, flags=re.IGNORECASE)
            found.append(re.sub(rb"\s*;.*", b"", uri, count=1, flags=re.IGNORECASE))
    out: list[bytes] = []
    for uri in found:
        uri = _canon(uri)
        if not uri:
            continue
        if not _NO_TARGET.match(uri):
            uri = _target_uri(base[0], uri)
            if not uri:
                continue
        out.append(uri)
    return out


def tag_links(tags: Iterable[tuple[str, str]], *, limit: int = MAX_URIS) -> list[bytes]:
    """The links of one text/html part's link tags (:func:`~spamwarden.rules._render.
    render_html`'s ``links``), as HTML.pm's ``html_uri`` and ``html_tests`` record them."""
    out: list[bytes] = []
    base = [b""]
    for name, rest in tags:
        tag = name.encode("utf-8", "surrogateescape")
        data = rest.encode("utf-8", "surrogateescape")
        attrs = _tag_attrs(data) if "=" in rest else {}
        out.extend(_tag_uris(tag, attrs, base))
        if tag == b"a":
            # (html_tests keys the anchor text by the link as written, "" for none)
            out.append(_canon(attrs.get(b"href", b"")))
        if len(out) >= limit:
            break
    return out[:limit]


_HTTP_SLASHES = re.compile(rb"^(https?:)/{0,2}", re.IGNORECASE)
_SCHEMED = re.compile(rb"^[-_a-z0-9]+:", re.IGNORECASE)
_QUERY_AFTER_HOST = re.compile(rb"^(https?://[^/?#]+)([?#])", re.IGNORECASE)
_DEC_REF = re.compile(rb"&#0*(3[3-9]|[4-9]\d|1[01]\d|12[0-6]);")
_HEX_REF = re.compile(rb"&#x0*(2[1-9]|[3-6][a-fA-F0-9]|7[0-9a-eA-E]);")
_DOT_REF = re.compile(rb"&#(?:x2e|12290|x3002|65294|xff0e|65377|xff61);", re.IGNORECASE)
_PARTS = re.compile(rb"^(https?://)([^@/?#]*@)?([^/?#:]+)((?::(\d*))?.*)$",
                    re.IGNORECASE | re.DOTALL)
_EMBEDDED = re.compile(rb"(https?:/{0,2}[^&#]+)", re.IGNORECASE)
_IP_PARTS = re.compile(rb"^((?:0x[0-9a-f]+|\d+)\.)((?:0x[0-9a-f]+|\d+)\.)"
                       rb"((?:0x[0-9a-f]+|\d+)\.)(0x[0-9a-f]+|\d+)$", re.IGNORECASE)


def _octet(chunk: bytes) -> bytes:
    chunk = re.sub(rb"^0x([0-9a-f]+)", lambda m: b"%d" % int(m.group(1), 16), chunk,
                   flags=re.IGNORECASE)
    chunk = re.sub(rb"^0+([1-3][0-7]{0,2}|[4-7][0-7]?)\b",
                   lambda m: b"%d" % int(m.group(1), 8), chunk)
    return re.sub(rb"^0+", b"", chunk)


def _ulong_ip(n: int) -> bytes:
    n &= 0xFFFFFFFF
    return b".".join(b"%d" % ((n >> s) & 255) for s in (24, 16, 8, 0))


_SKIP = re.compile(rb"[#?&]|/(?!/)")
_MAILTO = re.compile(rb"mailto:|[^:]*@", re.IGNORECASE)
_MAIL_QUERY = re.compile(rb"([^@]+@[^?]+)\?")
_MAIL_AMP = re.compile(rb"([^@]+@[^?&]+)&")
_MAIL_SPACES = re.compile(rb"(?:mailto:)?(?:%20)*([^@]+@[^?&%]+)", re.IGNORECASE)
_MAIL_ANGLE = re.compile(rb"[^?&]*<([^@>]+@[^>]+)>")
_PORT_80 = re.compile(rb"^:80\b")
_PORT_443 = re.compile(rb"^:443\b")
_CONTROL = re.compile(rb"[\x00-\x20]")
_USER = re.compile(rb"^[^@]+@")
_NOT_ALNUM_END = re.compile(rb"[^0-9A-Za-z]+$")
_HEX_HOST = re.compile(rb"0x[0-9a-f]+", re.IGNORECASE)
_ONE_LABEL = re.compile(rb"(?:www\.)?([^.]+)")


# A URI every step below leaves as it is and adds nothing for: an http(s) URI with a
# lower-case host name of two labels or more (not www. and one) ending in a letter and
# a path without "%", "&", ":", "@", "\" or white space; a mailto: URI without "?",
# "&", "%", "<" or white space.
_PLAIN = re.compile(rb"(?:https?://(?!(?:www\.)?[a-z0-9-]*(?:/|\Z))[a-z0-9.-]*[a-z]"
                    rb"(?:/[^%&:@\\\s]*)?|mailto:[^?&%<\s]+)\Z")


# Util.pm's idn_to_ascii: the characters of a host it returns lower-cased as it is; the
# dots RFC 3490 reads as full stops (in UTF-8); the ISO-8859-1 letters it converts
_IDN_PLAIN = re.compile(rb"[a-zA-Z0-9_.:\[\]-]*")
_ALT_FULLSTOP = re.compile("[\u3002\uff0e\uff61]")
_LATIN1_NAME = re.compile(rb"[a-zA-Z0-9\xc0-\xd6\xd8-\xde\xe0-\xf6\xf8-\xfe_.-]*")


def idn_to_ascii(host: bytes) -> bytes:
    """Util.pm's ``idn_to_ascii`` (with LibIDN2: UTS #46 non-transitional mapping, then
    IDNA 2008): an ASCII name of the usual characters lower-cased; valid UTF-8 with
    its alternative full stops made ".", or ISO-8859-1 letters, to ASCII-compatible
    encoding ("xn--" labels); where that fails, the UTF-8 text (dots made ".") or the
    octets as they are; any other text lower-cased.

    :param host: a URI's host, octets (at most a URI's length).
    :returns: the host as SpamAssassin compares it.
    """
    if _IDN_PLAIN.fullmatch(host):
        return host.lower()
    try:
        text = _ALT_FULLSTOP.sub(".", host.decode("utf-8"))
        kept = text.encode("utf-8")
    except UnicodeDecodeError:
        if not _LATIN1_NAME.fullmatch(host):
            return host.lower()
        text, kept = host.decode("latin-1"), host
    try:
        return bytes(idna.encode(text, uts46=True, transitional=False))
    except (idna.IDNAError, UnicodeError, ValueError):
        return kept


def _canonical_forms(uri: bytes,
                     tlds: frozenset[str]) -> tuple[tuple[bytes, ...], tuple[bytes, ...]]:
    """One URI through ``uri_list_canonicalize``'s loop: (the URI as kept in the list,
    then URIs found inside it to go through the loop too; the variants added)."""
    if _PLAIN.match(uri):
        return (uri,), ()
    uri = uri.replace(b"\n", b"").strip().replace(b"\r", b"")
    if len(uri) <= 1 or _SKIP.match(uri):
        return (uri,), ()
    new: list[bytes] = []
    nuri = uri
    if _MAILTO.match(nuri):
        if b"?" in nuri:
            m = _MAIL_QUERY.match(nuri)
            if m:
                new.append(m.group(1))
        if b"&" in nuri:
            m = _MAIL_AMP.match(nuri)
            if m:
                new.append(m.group(1))
        if b"%20" in nuri:
            m = _MAIL_SPACES.match(nuri)
            if m:
                new.append(b"mailto:" + m.group(1))
        if b"<" in nuri:
            m = _MAIL_ANGLE.match(nuri)
            if m:
                new.append(b"mailto:" + m.group(1))
        return (uri,), tuple(new)
    if b"\\" in nuri:
        nuri = nuri.replace(b"\\", b"/")
    head = nuri[:8].lower()
    if not (head.startswith(b"http://") or head.startswith(b"https://")):
        nuri = _HTTP_SLASHES.sub(lambda m: m.group(1) + b"//", nuri, count=1)
    if b"%" in nuri and _PCT.search(nuri):
        nuri = _url_decode(nuri)
    if not _SCHEMED.match(nuri):
        nuri = (b"ftp://" if nuri.startswith(b"ftp.") else b"http://") + nuri
    nuri = _QUERY_AFTER_HOST.sub(rb"\1/\2", nuri, count=1)
    if b"&#" in nuri:
        nuri = _DEC_REF.sub(lambda m: bytes((int(m.group(1)),)), nuri)
        nuri = _HEX_REF.sub(lambda m: bytes((int(m.group(1), 16),)), nuri)
        nuri = _DOT_REF.sub(b".", nuri)
    if nuri != uri:
        new.append(nuri)
    found: list[bytes] = []
    m = _PARTS.match(nuri)
    if m is None:
        return (uri,), tuple(new)
    proto, auth, host, rest, port = m.group(1), m.group(2) or b"", m.group(3), m.group(4), m.group(5)
    if port is None:
        port = b"80" if proto == b"http://" else b"443"
    else:
        cut = (_PORT_80 if proto == b"http://" else _PORT_443).sub(b"", rest, count=1)
        if cut != rest:
            new.append(proto + host + cut)
    nhost = idn_to_ascii(host)
    if nhost != host.lower():
        new.append(proto + nhost + rest)
        host = nhost
    if _CONTROL.search(host):
        host = _CONTROL.sub(b"", host)
        new.append(proto + host + rest)
    if b":" in rest:
        em = _EMBEDDED.search(rest)
        if em is not None and b"." in em.group(1):
            found.append(em.group(1))
    if b"@" in host:
        host = _USER.sub(b"", host, count=1)
        new.append(proto + host + rest)
    if not host[-1:].isalnum():
        cut_host = _NOT_ALNUM_END.sub(b"", host, count=1)
        if cut_host != host:
            host = cut_host
            new.append(proto + host + rest)
    if host[:1].isdigit():
        ip = _IP_PARTS.match(host)
        if ip is not None:
            new.append(proto + b"".join(_octet(c[:-1]) + b"." if c.endswith(b".") else _octet(c)
                                        for c in ip.groups()) + rest)
        elif _HEX_HOST.fullmatch(host):
            new.append(proto + _ulong_ip(int(host[2:][-8:], 16)) + rest)
        elif host.isdigit():
            new.append(proto + _ulong_ip(int(host)) + rest)
        else:
            return (uri, *found), tuple(new)
        return (uri, *found), tuple(new)
    if (proto == b"http://" and auth == b"" and nhost != b"localhost" and port == b"80"
            and b"." not in nhost.removeprefix(b"www.")):
        one = _ONE_LABEL.fullmatch(nhost)
        if one is not None and not _domain_valid(nhost, tlds):
            new.append(proto + b"www." + one.group(1) + b".com" + rest)
    return (uri, *found), tuple(new)


_CANONICAL: dict[tuple[frozenset[str], bytes], tuple[tuple[bytes, ...], tuple[bytes, ...]]] = {}


def uri_list_canonicalize(uris: Sequence[bytes], *,
                          tlds: frozenset[str] | None = None) -> list[bytes]:
    """Util.pm's ``uri_list_canonicalize`` (no redirector patterns, no IDN): each URI,
    and the variants SpamAssassin adds (scheme and ``//`` added, ``%``-escapes and
    character references of printable ASCII decoded, default port, user name and
    trailing punctuation of the host dropped, numeric hosts as dotted quads, one level
    of an ``http://`` URI inside another, ``mailto:`` without parameters), distinct,
    first seen first.  ``tlds``: the valid top-level domains (``None``:
    :func:`valid_tlds`)."""
    tlds = tlds or valid_tlds()
    todo = list(uris)
    new: list[bytes] = []
    i = 0
    while i < len(todo) and i < MAX_URIS:
        uri = todo[i]
        key = (tlds, uri)
        forms = _CANONICAL.get(key)
        if forms is None:
            forms = _canonical_forms(uri, tlds)
            if len(_CANONICAL) >= 4096:  # bounded: the URIs are the sender's
                _CANONICAL.clear()
            if len(uri) <= 2048:
                _CANONICAL[key] = forms
        if len(todo) == 1 and len(forms[0]) == 1 and not forms[1]:
            return [forms[0][0][:MAX_URI_LENGTH]]  # (one URI, nothing added)
        todo[i] = forms[0][0]
        todo.extend(forms[0][1:])
        new.extend(forms[1])
        i += 1
    out: dict[bytes, None] = {}
    for u in todo + new:
        out[u[:MAX_URI_LENGTH]] = None
    return list(out)


def uri_list(lines: Sequence[bytes], html_tags: Iterable[Iterable[tuple[str, str]]], *,
             tlds: frozenset[str] | None = None) -> list[bytes]:
    """``get_uri_list``: the canonicalised URIs of the body text and the HTML parts,
    distinct, at most :data:`MAX_URIS`.

    :param lines: the rendered body lines, Subject first.
    :param html_tags: the link tags of each text/html part (``render_html``'s ``links``).
    :param tlds: the valid top-level domains (``None``: :func:`valid_tlds`).
    """
    tlds = tlds or valid_tlds()
    out: dict[bytes, None] = {}
    for uri in text_uris(lines, tlds=tlds):
        cleaned = uri_list_canonicalize([uri], tlds=tlds)
        # (add_uri_detail_list with valid_domain: a text URI counts when one of its
        # forms has a host)
        if any(uri_host(u, tlds=tlds) is not None for u in cleaned):
            out.update(dict.fromkeys(cleaned))
    links: dict[bytes, None] = {}
    for tags in html_tags:
        links.update(dict.fromkeys(tag_links(tags)))
    for uri in links:
        out.update(dict.fromkeys(uri_list_canonicalize([uri], tlds=tlds)))
        if len(out) >= MAX_URIS:
            break
    return list(out)[:MAX_URIS]


_HOST_SCHEME = re.compile(rb"[a-z]+:/{0,2}")
_HOST_PATH = re.compile(rb"[/?#]")
_HOST_PORT = re.compile(rb":\d*$")
_HOST_ENCODED = re.compile(rb"%(?:2[1-9a-f]|[3-6][0-9a-f]|7[0-9a-e])")
_HOSTS: dict[tuple[frozenset[str], bytes], str | None] = {}


def uri_host(uri: bytes, *, tlds: frozenset[str] | None = None) -> str | None:
    """RegistryBoundaries' ``uri_to_domain`` host of a canonicalised URI: lower case,
    protocol, path, user name and port dropped (a ``mailto:`` URI's domain); ``None`` for
    ``javascript:``/``cid:``/``file:``, printable ASCII still %-escaped, and a name that
    is not an IP address, a valid host name or under a valid top-level domain (of
    ``tlds``; ``None``: :func:`valid_tlds`)."""
    key = (tlds or valid_tlds(), uri)
    if key in _HOSTS:
        return _HOSTS[key]
    host = _uri_host(uri, key[0])
    if len(_HOSTS) >= 4096:  # bounded: the URIs are the sender's
        _HOSTS.clear()
    if len(uri) <= 2048:
        _HOSTS[key] = host
    return host


def _uri_host(uri: bytes, tlds: frozenset[str]) -> str | None:
    uri = uri.lower()
    if uri.startswith((b"javascript:", b"cid:", b"file:")):
        return None
    if uri.startswith(b"mailto:"):
        q = uri.find(b"?", 7)
        uri = uri[7:] if q < 0 else uri[7:q]
        if uri.count(b"@") != 1:  # (none, or more than one)
            return None
        uri = uri[uri.find(b"@") + 1:]
    else:
        m = _HOST_SCHEME.match(uri)
        if m is not None:
            uri = uri[m.end():]
        m = _HOST_PATH.search(uri)
        if m is not None:
            uri = uri[:m.start()]
        uri = uri[uri.rfind(b"@") + 1:]
        if b":" in uri:
            uri = _HOST_PORT.sub(b"", uri, count=1)
    if b"%" in uri and _HOST_ENCODED.search(uri):
        return None
    host = uri.decode("latin-1")
    if not host[-1:].isdigit() or not _IPV4.match(host):
        if ":" in host:
            try:
                ipaddress.ip_address(host)
                return host
            except ValueError:
                pass
        if not fqdn_valid(uri) or not _domain_valid(uri, tlds):
            return None
    return host
