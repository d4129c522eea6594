"""Reading SpamAssassin rule files (``*.cf``) into a :class:`RuleSet`.

Follows ``Mail::SpamAssassin::Conf``: comments from an unescaped ``#``, ``include``,
``if``/``ifplugin``/``else``/``endif``, later definitions replacing earlier ones,
``score`` taking the third of four values (Bayes on, network tests off), default scores
(1.0, 0.01 for ``T_`` rules, negative with ``tflags nice``, none for ``__`` rules), and the
ReplaceTags plugin's ``replace_*`` settings.  Every rule seen ends up either in
``RuleSet.rules`` or in ``RuleSet.skipped`` with a reason.
"""

from __future__ import annotations

import hashlib
import re
from collections import Counter
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field, replace
from functools import partial
from pathlib import Path

from ._auth import AUTH_LIST_DIRECTIVES, AuthLists, auth_list_line
from ._capture import TemplateRegex, capture_names, split_templates, template_regex
from ._evals import EVALS, IMPLEMENTED_EVALS, parse_eval_args
from ._expr import Expr, ExprError, compile_expr, parse_expr
from ._lookalike import looser_tag
from ._regex import PerlRegex, UntranslatableRegex, split_perl_regex, translate
from ._relays import (
    LOOPBACK,
    MAX_NETS,
    Net,
    NetSet,
    RelayNetworks,
    checked_networks,
    net_text,
    parse_net,
)
from ._settings import unread_setting
from ._wlbllists import WlblLists, wlbl_directive

__all__ = [
    "LOADED_PLUGINS",
    "SA_VERSION",
    "HeaderSpec",
    "Rule",
    "RuleSet",
    "parse_rule_files",
    "rule_files",
]

#: The SpamAssassin version ``if (version >= ...)`` compares with.
SA_VERSION = 4.000001
#: Plugins counted as loaded: those this engine implements (their settings or their rule
#: kinds) and the others Debian's SpamAssassin loads; ``ifplugin`` of any other plugin is
#: false, so the rules it guards are not read at all.
LOADED_PLUGINS = frozenset({
    "Mail::SpamAssassin::Plugin::ReplaceTags",
    "Mail::SpamAssassin::Plugin::MIMEHeader",
    "Mail::SpamAssassin::Plugin::HeaderEval",
    "Mail::SpamAssassin::Plugin::BodyEval",
    "Mail::SpamAssassin::Plugin::MIMEEval",
    "Mail::SpamAssassin::Plugin::WLBLEval",
    "Mail::SpamAssassin::Plugin::FreeMail",
    "Mail::SpamAssassin::Plugin::Check",
    # loaded as in SpamAssassin, so that rules choose the same variants (__NOT_SPOOFED
    # has one for "DKIM loaded"); its evals and SPF's run over the caller's SPF and
    # DKIM results (spamwarden.rules._auth) and hit nothing without them, as in
    # SpamAssassin with network tests off (not even DKIM_SIGNED); ADSP and ARC are not
    # read or skipped
    "Mail::SpamAssassin::Plugin::DKIM",
    # the tests on tags, lengths, images and links run; those on fonts, colours and
    # obfuscation are skipped
    "Mail::SpamAssassin::Plugin::HTMLEval",
    # ALL_TRUSTED, NO_RELAYS, the unparseable count, helo_ip_mismatch, the forged
    # Received trail and NO_RDNS_DOTCOM_HELO (over the relays' "looked up DNS" flag) run
    "Mail::SpamAssassin::Plugin::RelayEval",
    # its image evals run over the image parts' dimensions (spamwarden.rules._imageinfo)
    "Mail::SpamAssassin::Plugin::ImageInfo",
    # the rest of what Debian's /etc/spamassassin/*.pre load, so that rules take the
    # variants SpamAssassin takes (XPRIO, __NOT_SPOOFED, __SPF_FULL_PASS have one for
    # "SPF loaded") and the metas and patterns guarded by them are read (VBounce's
    # bounce patterns, AskDNS's __PDS_HP_HELO_NODNS); HTTPSMismatch, SPF's and the
    # welcome-list evals run (_httpsmismatch, _auth, _wlbl), the network and Bayes ones are
    # skipped and count as not hit, as with network tests off
    "Mail::SpamAssassin::Plugin::AskDNS",
    "Mail::SpamAssassin::Plugin::AutoLearnThreshold",
    "Mail::SpamAssassin::Plugin::Bayes",
    "Mail::SpamAssassin::Plugin::DMARC",
    "Mail::SpamAssassin::Plugin::DNSEval",
    "Mail::SpamAssassin::Plugin::HTTPSMismatch",
    "Mail::SpamAssassin::Plugin::HashBL",
    "Mail::SpamAssassin::Plugin::Pyzor",
    "Mail::SpamAssassin::Plugin::Razor2",
    "Mail::SpamAssassin::Plugin::Rule2XSBody",
    "Mail::SpamAssassin::Plugin::SPF",
    "Mail::SpamAssassin::Plugin::SpamCop",
    "Mail::SpamAssassin::Plugin::URIDNSBL",
    "Mail::SpamAssassin::Plugin::URIDetail",
    "Mail::SpamAssassin::Plugin::URIEval",
    "Mail::SpamAssassin::Plugin::VBounce",
    "Mail::SpamAssassin::Plugin::WelcomeListSubject",
})
#: ``can(...)`` features that hold here: meta rules may name missing rules (they count 0),
#: the welcome-list spelling (and Debian's compatibility flag for it), check_body_length,
#: check_for_ascii_text_illegal, check_abundant_unicode_ratio and the SPF error evals.
_CAN = frozenset({
    "Mail::SpamAssassin::Conf::feature_bug6558_free",
    "Mail::SpamAssassin::Conf::feature_welcomelist_blocklist",
    # Debian's init.pre has "enable_compat welcomelist_blocklist": 60_welcomelist*.cf
    # then score USER_IN_WELCOMELIST and the rest themselves, without the
    # USER_IN_WHITELIST-style metas
    "Mail::SpamAssassin::Conf::compat_welcomelist_blocklist",
    "Mail::SpamAssassin::Conf::perl_min_version_5010000",
    # 20_aux_tlds.cf's util_rb_tld lines (RegistryBoundaries, read into valid_tlds)
    "Mail::SpamAssassin::Conf::feature_registryboundaries",
    "Mail::SpamAssassin::Plugin::BodyEval::has_check_body_length",
    "Mail::SpamAssassin::Plugin::MIMEEval::has_check_for_ascii_text_illegal",
    "Mail::SpamAssassin::Plugin::MIMEEval::has_check_abundant_unicode_ratio",
    # SPF.pm 4.0's permerror/temperror evals (T_SPF_PERMERROR, ...): spamwarden.rules._auth
    "Mail::SpamAssassin::Plugin::SPF::has_check_for_spf_errors",
    # named captures setting tags and %{TAG} templates: spamwarden.rules._capture
    "Mail::SpamAssassin::Conf::feature_capture_rules",
})
# Headers SpamAssassin makes up from the MTA's envelope and its plugins; this engine
# does not, so rules on them are skipped rather than never hitting silently.  (The
# X-Spam-Relays-* ones are built from the Received headers: spamwarden.rules._relays;
# EnvelopeFrom is PreparedMessage.envelope_sender.)
_PSEUDO_HEADERS = frozenset({
    "x-spam-dkim-signing-domain", "x-spam-pre-check",
    "x-spam-envelopefrom", "envelope-from", "x-sender-ip",
})
_REGEX_KINDS = ("header", "body", "rawbody", "uri", "full", "mimeheader")
_RULE_NAME = re.compile(r"[A-Za-z0-9_]+$")
_MAX_INCLUDE_DEPTH = 10
# Longer patterns (seven of SpamAssassin's, 38-224 KB once ReplaceTags spells each
# letter as its look-alikes: __YOUR_PASSWORD, __HOURS_DEADLINE, __MY_MALWARE ...) exceed
# Hyperscan's expression limit, as prefilters too, and cost Python ``re`` 50-190 µs a
# message each (0.8 ms for the seven).  A shortened superset of each (every look-alike
# alternation made one bounded class repeat) compiles in Hyperscan and never misses a
# line, but scanning the six that fit costs about 0.4 ms a message: they stay skipped.
_MAX_REGEX = 16_000
# Six or more bounded repeats of groups in a long pattern (SpamAssassin's
# __FILL_THIS_FORM_* family): Hyperscan refuses them exactly, and where its prefilter
# matches, Python ``re`` backtracks for milliseconds per message; such rules are marked
# ``costly`` and the engine runs them behind its own prefilters (the side and repeat
# databases of spamwarden.rules._engine).  The obfuscated-word patterns (FUZZY_*,
# written with ReplaceTags' ``<post ...>``) repeat groups as much but are cheap to
# confirm, so they are not marked.
_GROUP_REPEAT = re.compile(r"\)(?:\{\d+,\d+\}|\{\d+,\})")
_MAX_FILE_BYTES = 16 * 1024 * 1024


def _line_anchored(pat: str, flags: str) -> bool:
    """A ``/^.../m`` pattern: ``re`` tries it only at line starts, so even a long one
    with many bounded repeats (__FILL_THIS_FORM_PARTIAL) is cheap to run."""
    return pat.startswith("^") and "m" in flags


@dataclass(frozen=True, slots=True)
class HeaderSpec:
    """What a ``header`` rule reads: a name (``ALL``, ``ToCc``, ``MESSAGEID`` included)
    and the ``:raw``/``:addr``/``:name`` modifiers, or ``exists:`` alone."""

    name: str
    raw: bool = False
    addr: bool = False
    display: bool = False
    exists: bool = False
    if_unset: str | None = None


@dataclass(frozen=True, slots=True)
class Rule:
    """One rule ready to run.

    ``kind`` is ``header``, ``body``, ``rawbody``, ``uri``, ``full``, ``mimeheader`` (a
    regex in ``regex``), ``meta`` (``meta``) or ``eval`` (``eval_name``/``eval_args``, run
    on the part ``eval_kind`` names).  ``maxhits`` is 1 unless ``tflags multiple``.
    """

    name: str
    kind: str
    score: float
    description: str
    regex: PerlRegex | None = None
    negate: bool = False
    header: HeaderSpec | None = None
    meta: Expr | None = None
    eval_name: str = ""
    eval_kind: str = ""
    eval_args: tuple[str, ...] = ()
    maxhits: int = 1
    #: ``tflags nosubject``: a body rule that does not see the Subject line
    nosubject: bool = False
    #: a pattern ``re`` takes milliseconds a message over and Hyperscan refuses exactly
    #: (:data:`_GROUP_REPEAT`): the engine runs it in ``re`` behind a prefilter only
    costly: bool = False
    #: the tags the pattern's named groups set (:mod:`._capture`)
    captures: tuple[str, ...] = ()
    #: a pattern with ``%{TAG}`` templates, run per message (then ``regex`` is None)
    template: TemplateRegex | None = None
    #: a shorter pattern matching wherever ``regex`` may, for a ReplaceTags rule too long
    #: for Hyperscan (:mod:`._lookalike`): the engine runs ``regex`` in ``re`` only on the
    #: units this prefilter matches
    prefilter: PerlRegex | None = None

    @property
    def reported(self) -> bool:
        """Whether a hit is shown: named without ``__`` and scored other than 0."""
        return not self.name.startswith("__") and self.score != 0


@dataclass
class RuleSet:
    """The result of parsing: runnable rules, skipped ones, settings the evals read."""

    rules: dict[str, Rule] = field(default_factory=dict)
    skipped: dict[str, str] = field(default_factory=dict)  # name -> reason
    kinds_seen: Counter[str] = field(default_factory=Counter)
    inactive: Counter[str] = field(default_factory=Counter)  # rule lines in false if blocks
    files: list[str] = field(default_factory=list)
    digest: str = ""
    missing_files: list[str] = field(default_factory=list)
    freemail_domains: set[str] = field(default_factory=set)
    addrlists: dict[str, list[str]] = field(default_factory=dict)
    uri_hosts: dict[str, list[str]] = field(default_factory=dict)
    #: rules scored from a commented-out score line (``parse_rule_files(suggested_scores=)``)
    suggested_scores: int = 0
    #: every ``score`` line read (the "Bayes on, network off" value; the last line of a
    #: name wins), for rules defined here or not (``BAYES_*``: scores for the classifier)
    scores: dict[str, float] = field(default_factory=dict)
    #: ``trusted_networks``, ``internal_networks``, ``msa_networks`` (the relays'
    #: trust); unconfigured: inferred as SpamAssassin infers it
    networks: RelayNetworks = field(default_factory=RelayNetworks)
    #: where each rule read was defined (``file:line``; the definition that counts)
    origins: dict[str, str] = field(default_factory=dict)
    #: lines read but not understood: ``(file:line, what is wrong)``
    notes: list[tuple[str, str]] = field(default_factory=list)
    #: ``score``/``describe``/``tflags`` lines: ``(file:line, directive, rule name)``
    mentions: list[tuple[str, str, str]] = field(default_factory=list)
    #: rules defined only inside an ``if``/``ifplugin`` that is false here
    defined_inactive: set[str] = field(default_factory=set)
    #: the welcome and block list lines (``welcomelist_from``, ``blocklist_to``, ...)
    wlbl: WlblLists = field(default_factory=WlblLists)
    #: ``welcomelist_auth``, ``*_from_spf``, ``*_from_dkim`` and their ``def_``/``un``
    #: forms: the SPF and DKIM welcome-lists (spamwarden.rules._auth)
    auth_lists: AuthLists = field(default_factory=AuthLists)
    #: ``ok_locales`` (the last line read wins; "all": every charset is fine): the
    #: faraway-charset evals read it
    ok_locales: str = "all"
    #: ``util_rb_tld`` (after the last ``clear_util_rb``): RegistryBoundaries' valid
    #: top-level domains, lower case, IDN ones in ``xn--`` form, for the URI list;
    #: ``None``: no line (the Public Suffix List's are used)
    valid_tlds: set[str] | None = None
    #: ``util_rb_2tld`` and ``util_rb_3tld`` (likewise): the names under which
    #: RegistryBoundaries' ``split_domain`` keeps one more label (``co.uk``,
    #: ``blogspot.com``); ``None``: no line (registered domains are the Public Suffix
    #: List's)
    two_level_domains: set[str] | None = None
    three_level_domains: set[str] | None = None

    def skipped_reasons(self) -> Counter[str]:
        """How many rules were skipped for each reason (eval reasons grouped by function)."""
        return Counter(self.skipped.values())


@dataclass
class _Definition:
    kind: str
    text: str
    origin: str


@dataclass
class _State:
    defs: dict[str, _Definition] = field(default_factory=dict)
    scores: dict[str, float] = field(default_factory=dict)
    #: ``# score NAME N`` lines: a score the file carries commented out
    suggested: dict[str, float] = field(default_factory=dict)
    use_suggested: bool = False
    #: run the rules marked costly (``rules.costly_patterns``), else skip them
    run_costly: bool = False
    describe: dict[str, str] = field(default_factory=dict)
    tflags: dict[str, str] = field(default_factory=dict)
    replace_tag: dict[str, str] = field(default_factory=dict)
    replace_pre: dict[str, str] = field(default_factory=dict)
    replace_inter: dict[str, str] = field(default_factory=dict)
    replace_post: dict[str, str] = field(default_factory=dict)
    replace_rules: set[str] = field(default_factory=set)
    replace_start: str = "<"
    replace_end: str = ">"
    #: tag -> its :func:`~._lookalike.looser_tag` form, computed when first needed
    looser_tags: dict[str, str] = field(default_factory=dict)
    #: trusted/internal/msa network lists as read so far, and whether each was set
    nets: dict[str, list[Net]] = field(default_factory=lambda: {
        "trusted": list(LOOPBACK), "internal": list(LOOPBACK), "msa": []})
    nets_configured: dict[str, bool] = field(default_factory=dict)
    #: (list, entry) -> the line that last added it (for the lint's notes)
    net_origins: dict[tuple[str, Net], str] = field(default_factory=dict)
    result: RuleSet = field(default_factory=RuleSet)
    hasher: hashlib._Hash = field(default_factory=hashlib.sha256)


def rule_files(
    system_dirs: Sequence[str | Path] = ("/var/lib/spamassassin", "/usr/share/spamassassin"),
) -> list[Path]:
    """SpamAssassin's own rule files, as ``spamassassin`` would load them.

    sa-update's ``/var/lib/spamassassin/<version>/<channel>/*.cf`` replaces the packaged
    ``/usr/share/spamassassin/*.cf`` when it holds any rules, as in SpamAssassin.

    :param system_dirs: the sa-update folder, then the packaged folder.
    :returns: the ``.cf`` files in load order (sorted by name); empty when none exist.
    """
    dirs = [Path(d) for d in system_dirs]
    if len(dirs) >= 2:
        update, packaged = dirs[0], dirs[1:]
        found: list[Path] = []
        if update.is_dir():
            versions = sorted((p for p in update.iterdir() if p.is_dir()
                               and re.fullmatch(r"\d+\.\d+", p.name)), key=lambda p: float(p.name))
            if versions:
                chans = sorted(p for p in versions[-1].iterdir() if p.is_dir())
                found = sorted((f for c in chans for f in c.glob("*.cf")), key=lambda f: f.name)
        if found:
            return found
        dirs = packaged
    out: list[Path] = []
    for d in dirs:
        if d.is_dir():
            out.extend(sorted(d.glob("*.cf"), key=lambda f: f.name))
    return out


#: a score line commented out: ``#      score    NAME 0.25``
_SUGGESTED = re.compile(r"^\s*#\s*score\s+([A-Za-z0-9_]+)\s+(-?[0-9]+(?:\.[0-9]+)?)\s*$")


def parse_rule_files(paths: Iterable[str | Path], *, suggested_scores: bool = False,
                     costly: bool = False) -> RuleSet:
    """Parse rule files (or folders of ``*.cf``) in order, later ones overriding.

    :param paths: files or folders; a missing one is listed in ``missing_files``.
    :param suggested_scores: a rule no file scores takes the score its file carries
        commented out (``#  score NAME 0.25``: the rule author's, in rule files packaged
        without sa-update's ``72_scores.cf``) instead of SpamAssassin's default of 1
        point (``rules.unscored``). False is SpamAssassin's behaviour.
    :param costly: keep the patterns marked costly (:attr:`Rule.costly`, SpamAssassin's
        unanchored ``__FILL_THIS_FORM_*``: about 0.2 ms a message behind the engine's
        prefilters) instead of skipping them (``rules.costly_patterns``).
    :returns: the :class:`RuleSet`; ``digest`` hashes every file read, in order.
    :raises: nothing for bad rule text: bad rules are skipped with a reason.
    """
    st = _State(use_suggested=suggested_scores, run_costly=costly)
    for path in paths:
        p = Path(path)
        files = sorted(p.glob("*.cf"), key=lambda f: f.name) if p.is_dir() else [p]
        for f in files:
            _read_file(st, f, depth=0)
    _finish(st)
    st.result.digest = st.hasher.hexdigest()
    return st.result


def parse_rule_text(text: str, origin: str = "<text>", *,
                    suggested_scores: bool = False, costly: bool = False) -> RuleSet:
    """Parse rule text given as a string (tests, one-off checks); see :func:`parse_rule_files`."""
    st = _State(use_suggested=suggested_scores, run_costly=costly)
    _read_lines(st, text, origin, Path("."), depth=0)
    _finish(st)
    st.result.digest = hashlib.sha256(text.encode()).hexdigest()
    return st.result


def _read_file(st: _State, f: Path, *, depth: int) -> None:
    try:
        data = f.read_bytes()[:_MAX_FILE_BYTES]
    except OSError:
        st.result.missing_files.append(str(f))
        return
    st.result.files.append(str(f))
    st.hasher.update(str(f).encode() + b"\0" + data + b"\0")
    _read_lines(st, data.decode("latin-1"), str(f), f.parent, depth=depth)


def _strip_comment(line: str) -> str:
    i = 0
    while True:
        j = line.find("#", i)
        if j < 0:
            break
        if j > 0 and line[j - 1] == "\\":
            i = j + 1
            continue
        line = line[:j]
        break
    return line.replace("\\#", "#").strip()


def _cond_value(expr: str) -> bool:
    """An ``if`` line's condition: plugins and features not listed here are absent."""
    def plugin(m: re.Match[str]) -> str:
        return "1" if m.group(1).strip() in LOADED_PLUGINS else "0"

    def can(m: re.Match[str]) -> str:
        return "1" if m.group(1).strip() in _CAN else "0"

    text = re.sub(r"plugin\s*\(\s*([^)]*)\)", plugin, expr)
    text = re.sub(r"can\s*\(\s*([^)]*)\)", can, text)
    text = re.sub(r"\bperl_version\b", "5.036", text)
    text = re.sub(r"\bversion\b", f"{SA_VERSION:.6f}", text)
    try:
        return bool(compile_expr(parse_expr(text))({}))
    except ExprError:
        return False


def _read_lines(st: _State, text: str, origin: str, base: Path, *, depth: int) -> None:
    stack: list[tuple[bool, str]] = []  # per open if: (outer active, outer reason)
    active = True
    reason = ""  # the condition that made the current branch inactive
    for lineno, raw in enumerate(text.splitlines(), 1):
        line = _strip_comment(raw)
        if not line:
            m = _SUGGESTED.match(raw)
            if m:
                try:
                    st.suggested[m.group(1)] = float(m.group(2))
                except ValueError:
                    pass
            continue
        parts = line.split(None, 1)
        key = parts[0].lower()
        rest = parts[1] if len(parts) > 1 else ""
        if key in ("if", "ifplugin"):
            cond = (rest.strip() in LOADED_PLUGINS) if key == "ifplugin" else _cond_value(rest)
            stack.append((active, reason))
            if active and not cond:
                reason = f"{key} {rest.strip()}"
            active = active and cond
            continue
        if key == "else":
            if stack:
                outer, outer_reason = stack[-1]
                if outer and active:
                    reason = "else"
                elif outer:
                    reason = outer_reason
                active = outer and not active
            continue
        if key == "endif":
            if stack:
                active, reason = stack.pop()
            continue
        if not active:
            if key in _REGEX_KINDS or key == "meta":
                st.result.inactive[reason] += 1
                st.result.defined_inactive.add(rest.split(None, 1)[0] if rest else "")
            continue
        if key == "include":
            if depth < _MAX_INCLUDE_DEPTH:
                target = Path(rest.strip())
                _read_file(st, target if target.is_absolute() else base / target, depth=depth + 1)
            continue
        _directive(st, key, rest, f"{origin}:{lineno}")


def _directive(st: _State, key: str, rest: str, origin: str) -> None:
    if key in _REGEX_KINDS or key == "meta":
        bits = rest.split(None, 1)
        if len(bits) < 2 or not _RULE_NAME.match(bits[0]):
            st.result.notes.append((origin, f"{key}: expected a rule name (letters, digits, "
                                            "_) and its test"))
            return
        name = bits[0]
        st.defs[name] = _Definition(key, bits[1].strip(), origin)
        return
    if key.endswith("_networks") and key.startswith(("trusted", "internal", "msa",
                                                        "clear_")):
        _networks_line(st, key, rest, origin)
        return
    if wlbl_directive(st.result.wlbl, st.result.uri_hosts, key, rest, origin,
                      st.result.notes):
        return
    if key in AUTH_LIST_DIRECTIVES:
        problem = auth_list_line(st.result.auth_lists, key, rest)
        if problem is not None:
            st.result.notes.append((origin, problem))
        return
    if key == "clear_util_rb":  # (takes no value: read before the gate below)
        st.result.valid_tlds = None
        st.result.two_level_domains = st.result.three_level_domains = None
        return
    bits = rest.split(None, 1)
    if key not in _READ:
        why = unread_setting(key)
        if why is not None:
            st.result.notes.append((origin, why))
        return
    if not bits:
        return
    if key == "score":
        vals = bits[1].split() if len(bits) > 1 else []
        nums: list[float] = []
        for v in vals[:4]:
            try:
                nums.append(float(v))
            except ValueError:
                break
        if nums:
            st.scores[bits[0]] = nums[2] if len(nums) == 4 else nums[0]
            st.result.mentions.append((origin, key, bits[0]))
        if len(vals) not in (1, 4) or len(nums) != len(vals):
            # SpamAssassin refuses the line; the engine keeps what it could read
            st.result.notes.append((origin, f"score {bits[0]}: expected 1 or 4 numbers, "
                                            f"got {' '.join(vals) or 'none'}"))
    elif key == "describe" and len(bits) > 1:
        st.describe[bits[0]] = bits[1].strip()
        st.result.mentions.append((origin, key, bits[0]))
    elif key == "tflags":
        st.tflags[bits[0]] = bits[1] if len(bits) > 1 else ""
        st.result.mentions.append((origin, key, bits[0]))
    elif key == "replace_tag" and len(bits) > 1:
        st.replace_tag[bits[0]] = bits[1].strip()
    elif key == "replace_pre" and len(bits) > 1:
        st.replace_pre[bits[0]] = bits[1].strip()
    elif key == "replace_inter" and len(bits) > 1:
        st.replace_inter[bits[0]] = bits[1].strip()
    elif key == "replace_post" and len(bits) > 1:
        st.replace_post[bits[0]] = bits[1].strip()
    elif key == "replace_rules":
        st.replace_rules.update(rest.split())
    elif key == "replace_start":
        st.replace_start = bits[0]
    elif key == "replace_end":
        st.replace_end = bits[0]
    elif key == "freemail_domains":
        st.result.freemail_domains.update(d.lower() for d in rest.split())
    elif key == "ok_locales":
        st.result.ok_locales = rest.strip()
    elif key in ("util_rb_tld", "util_rb_2tld", "util_rb_3tld"):
        _tld_line(st, key, rest, origin)
    elif key in ("enlist_addrlist", "enlist_uri_host") and len(bits) > 1:
        # Conf.pm: "(NAME) value...", NAME as written (list names are case-sensitive:
        # check_from_in_list('BANKS') does not read "(banks)")
        m = _LIST_LINE.match(bits[0] + " " + bits[1])
        if m:
            lists = st.result.addrlists if key == "enlist_addrlist" else st.result.uri_hosts
            lists.setdefault(m.group(1), []).extend(t.lower() for t in m.group(2).split())


_LIST_LINE = re.compile(r"\((.+?)\)\s+(.+)\Z", re.DOTALL)


def _tld_line(st: _State, key: str, rest: str, origin: str) -> None:
    """``util_rb_tld TLD...``, ``util_rb_2tld NAME.TLD...``, ``util_rb_3tld
    NAME.NAME.TLD...`` (Conf.pm): each name, of one, two or three labels, added to its
    list, lower case, IDN labels in their ``xn--`` form; a line with a name of another
    length is refused whole, as Conf.pm refuses it."""
    dots = {"util_rb_tld": 0, "util_rb_2tld": 1, "util_rb_3tld": 2}[key]
    names = rest.split()
    if not names or any(n.count(".") != dots or "" in n.split(".") for n in names):
        st.result.notes.append((origin, f"{key}: expected names of {dots + 1} label(s)"))
        return
    r = st.result
    if key == "util_rb_tld":
        found = r.valid_tlds = r.valid_tlds if r.valid_tlds is not None else set()
    elif key == "util_rb_2tld":
        found = r.two_level_domains = (r.two_level_domains if r.two_level_domains is not None
                                       else set())
    else:
        found = r.three_level_domains = (r.three_level_domains
                                         if r.three_level_domains is not None else set())
    for name in names:
        try:
            found.add(name.lower() if name.isascii() else name.encode("idna").decode())
        except UnicodeError:
            r.notes.append((origin, f"{key}: {name!r} is no IDN name"))


#: the other settings ``_directive`` reads (the rest: ``_settings.unread_setting``)
_READ = frozenset({"score", "describe", "tflags", "replace_tag", "replace_pre",
                   "replace_inter", "replace_post", "replace_rules", "replace_start",
                   "replace_end", "freemail_domains", "enlist_addrlist", "enlist_uri_host",
                   "ok_locales", "util_rb_tld", "util_rb_2tld", "util_rb_3tld"})

_NETWORK_LISTS = {"trusted_networks": "trusted", "internal_networks": "internal",
                  "msa_networks": "msa"}


def _networks_line(st: _State, key: str, rest: str, origin: str) -> None:
    """``trusted_networks``, ``internal_networks``, ``msa_networks`` (entries added to the
    list; the list counts as configured) and their ``clear_*`` (back to the loopback
    networks alone, unconfigured), as Conf.pm reads them; a line with a missing or extra
    value is ignored."""
    clear = key.startswith("clear_")
    name = _NETWORK_LISTS.get(key[len("clear_"):] if clear else key)
    if name is None or bool(rest.strip()) == clear:
        return
    if clear:
        st.nets[name] = [] if name == "msa" else list(LOOPBACK)
        st.nets_configured[name] = False
        return
    nets = st.nets[name]
    for word in rest.split():
        entries = parse_net(word)
        if not entries:
            st.result.notes.append((origin, f"{key}: {word} is not an IP address or network"))
        for entry in entries:
            if len(nets) < MAX_NETS:
                nets.append(entry)
                st.net_origins[(name, entry)] = origin
    st.nets_configured[name] = True


def _finish_networks(st: _State) -> None:
    def netset(name: str) -> NetSet:
        return NetSet(tuple(st.nets[name]))

    networks = RelayNetworks(netset("trusted"), netset("internal"), netset("msa"),
                             st.nets_configured.get("trusted", False),
                             st.nets_configured.get("internal", False))
    st.result.networks, dropped = checked_networks(networks)
    against = "trusted_networks" if networks.trusted_configured else "internal_networks"
    for list_name, entry in dropped:
        origin = st.net_origins.get((list_name.split("_")[0], entry), "")
        st.result.notes.append((origin, f"{list_name} {net_text(entry[0])} is not in {against}:"
                                        " the entry is dropped"))


def _replace_tags(st: _State, text: str, *, looser: bool = False) -> str:
    """Expand ReplaceTags ``<TAG>`` runs as ``Mail::SpamAssassin::Plugin::ReplaceTags`` does;
    with ``looser``, each tag as :func:`~._lookalike.looser_tag` loosens it (a prefilter's
    pattern, matching at least what the expansion matches)."""
    s, e = re.escape(st.replace_start), re.escape(st.replace_end)
    pre = inter = post = ""

    def setting(kind: str, table: dict[str, str]) -> str:
        nonlocal text
        m = re.search(f"{s}{kind}\\s+(\\w+){e}", text)
        if not m:
            return ""
        text = re.sub(f"{s}{kind}\\s+\\w+{e}", "", text)
        return table.get(m.group(1), "")

    pre = setting("pre", st.replace_pre)
    inter = setting("inter", st.replace_inter)
    post = setting("post", st.replace_post)

    def value(name: str, depth: int = 0) -> str:
        v = st.replace_tag[name]
        if looser:  # (each tag loosened once: a sentence uses a letter many times)
            if name not in st.looser_tags:
                st.looser_tags[name] = looser_tag(v)
            v = st.looser_tags[name]
        if depth < 5:
            v = re.sub(f"{s}(\\w+){e}", lambda m: value(m.group(1), depth + 1)
                       if m.group(1) in st.replace_tag else m.group(0), v)
        return v

    run = re.compile(f"(?:{s}\\w+{e})+")

    def one_run(m: re.Match[str]) -> str:
        names = re.findall(f"{s}(\\w+){e}", m.group(0))
        if not all(n in st.replace_tag for n in names):
            return m.group(0)
        return inter.join(pre + value(n) + post for n in names)

    return run.sub(one_run, text)


def _finish(st: _State) -> None:
    res = st.result
    _finish_networks(st)
    res.scores = dict(st.scores)
    for name, d in st.defs.items():
        res.kinds_seen[d.kind] += 1
        res.origins[name] = d.origin
        text = _replace_tags(st, d.text) if name in st.replace_rules else d.text
        flags = st.tflags.get(name, "").split()
        nice = "nice" in flags
        if name in st.scores:
            score = st.scores[name]
            if score == 0:
                # SpamAssassin does not run a rule scored 0 (Check plugin: "skip if score
                # zeroed"); metas naming it see it as not hit
                res.skipped[name] = "score 0: disabled"
                continue
        elif name.startswith("__"):
            score = 0.0
        elif st.use_suggested and name in st.suggested and not name.startswith("T_"):
            score = st.suggested[name]
            res.suggested_scores += 1
            if score == 0:
                res.skipped[name] = "suggested score 0: disabled"
                continue
        else:
            score = 0.01 if name.startswith("T_") else 1.0
            score = -score if nice else score
        maxhits = 1
        for f in flags:
            if f == "multiple":
                maxhits = max(maxhits, 1_000)
            elif f.startswith("maxhits="):
                try:
                    maxhits = max(1, int(f.split("=", 1)[1]))
                except ValueError:
                    pass
        try:
            rule = _build(name, d.kind, text, res, score=score,
                          description=st.describe.get(name, ""), maxhits=maxhits,
                          written=d.text, run_costly=st.run_costly,
                          looser=partial(_replace_tags, st, d.text, looser=True)
                          if name in st.replace_rules else None)
            if "nosubject" in flags and rule.kind == "body" and rule.regex is not None:
                rule = replace(rule, nosubject=True)
        except _Skip as exc:
            res.skipped[name] = str(exc)
            continue
        res.rules[name] = rule
    _drop_uncaptured_templates(res)
    _drop_meta_cycles(res)


class _Skip(Exception):
    pass


def _build(name: str, kind: str, text: str, res: RuleSet, *, score: float, description: str,
           maxhits: int, written: str = "", run_costly: bool = False,
           looser: Callable[[], str] | None = None) -> Rule:
    common = {"score": score, "description": description, "maxhits": maxhits}
    if kind == "meta":
        try:
            tree = parse_expr(text)
        except ExprError as exc:
            raise _Skip(f"meta syntax: {exc}") from exc
        return Rule(name, "meta", meta=tree, **common)  # type: ignore[arg-type]
    if text.startswith("eval:"):
        m = re.match(r"eval:\s*(\w+)\s*\((.*)\)\s*$", text)
        if m is None:
            raise _Skip("eval syntax")
        fn = m.group(1)
        if (kind, fn) not in IMPLEMENTED_EVALS:
            raise _Skip(f"eval not implemented: {fn}")
        try:
            args = parse_eval_args(m.group(2))
        except ValueError as exc:
            raise _Skip(f"eval arguments: {fn}") from exc
        if not EVALS[fn].check(args):
            raise _Skip(f"eval arguments: {fn}")
        return Rule(name, "eval", eval_name=fn, eval_kind=kind, eval_args=args,
                    **common)  # type: ignore[arg-type]
    header = None
    negate = False
    if kind in ("header", "mimeheader"):
        if text.startswith("exists:"):
            hname = text[len("exists:"):].strip()
            if hname.lower() in _PSEUDO_HEADERS:
                raise _Skip(f"pseudo-header {hname}")
            return Rule(name, "header", header=HeaderSpec(hname, exists=True),
                        **common)  # type: ignore[arg-type]
        m = re.match(r"(\S+?)\s*(=~|!~)\s*(.*)$", text, re.DOTALL)
        if m is None:
            raise _Skip("header syntax")
        target, op, retext = m.groups()
        negate = op == "!~"
        hparts = target.split(":")
        hname, mods = hparts[0], [x.lower() for x in hparts[1:]]
        if hname.lower() in _PSEUDO_HEADERS:
            raise _Skip(f"pseudo-header {hname}")
        unknown = set(mods) - {"raw", "addr", "name", "first", "last", "host", "domain", "ip",
                                "revip"}
        if unknown or set(mods) & {"first", "last", "host", "domain", "ip", "revip"}:
            raise _Skip(f"header modifier {':'.join(sorted(set(mods)))}")
        try:
            pat, flags, tail = split_perl_regex(retext)
        except UntranslatableRegex as exc:
            raise _Skip(f"regex: {exc}") from exc
        unset = re.match(r"\s*\[if-unset:\s?(.*)\]\s*$", tail)
        header = HeaderSpec(hname, raw="raw" in mods, addr="addr" in mods,
                            display="name" in mods, if_unset=unset.group(1) if unset else None)
    else:
        try:
            pat, flags, _ = split_perl_regex(text)
        except UntranslatableRegex as exc:
            raise _Skip(f"regex: {exc}") from exc
    prefilter = None
    if len(pat) > _MAX_REGEX:
        prefilter = _looser_regex(looser() if looser else None, flags)
        if prefilter is None:
            raise _Skip("regex: too long (over 16,000 characters: Hyperscan refuses it, even "
                        "as a prefilter; re would take 50-190 µs a message)")
    costly = (len(pat) > 1000 and "<post " not in written
              and len(_GROUP_REPEAT.findall(pat)) >= 6 and not _line_anchored(pat, flags))
    if costly and not run_costly:
        raise _Skip("regex: too costly (many bounded repeats of groups; "
                    "rules.costly_patterns runs them)")
    slotted, tags = split_templates(pat) if kind != "mimeheader" else (pat, ())
    try:
        rx = translate(slotted, flags)
        rx.compile()
    except UntranslatableRegex as exc:
        raise _Skip(f"regex: {exc.args[0].split(':')[0]}") from exc
    captures = capture_names(pat, rx) if kind != "mimeheader" else ()
    if tags:
        return Rule(name, kind, negate=negate, header=header, captures=captures,
                    template=template_regex(rx, tags), **common)  # type: ignore[arg-type]
    return Rule(name, kind, regex=rx, negate=negate, header=header, costly=costly,
                captures=captures, prefilter=prefilter, **common)  # type: ignore[arg-type]


def _looser_regex(text: str | None, flags: str) -> PerlRegex | None:
    """The prefilter of a ReplaceTags rule too long for Hyperscan (its tags loosened,
    :mod:`._lookalike`), or ``None`` when there is none or it is still too long."""
    if text is None:
        return None
    try:
        pat, _, _ = split_perl_regex(text)
        if len(pat) > _MAX_REGEX:
            return None
        rx = translate(pat, flags)
        rx.compile()
    except UntranslatableRegex:
        return None
    return rx


def _drop_uncaptured_templates(res: RuleSet) -> None:
    """Skip template rules using a tag no rule captures: SpamAssassin's own template tags
    (``%{SUBJECT}``, ...) are not set here, and a tag nothing sets never runs the rule."""
    captured = {t for r in res.rules.values() for t in r.captures}
    for name, rule in list(res.rules.items()):
        if rule.template is not None:
            missing = sorted(set(rule.template.tags) - captured)
            if missing:
                res.skipped[name] = f"template: no rule captures {missing[0]}"
                del res.rules[name]


def _drop_meta_cycles(res: RuleSet) -> None:
    """Skip meta rules on a dependency cycle (a meta that depends on itself)."""
    state: dict[str, int] = {}  # 1 on the current path, 2 finished
    path: list[str] = []
    on_cycle: set[str] = set()

    def visit(name: str) -> None:
        rule = res.rules.get(name)
        if rule is None or rule.meta is None or state.get(name) == 2:
            return
        if state.get(name) == 1:
            on_cycle.update(path[path.index(name):])
            return
        if len(path) > 500:
            on_cycle.add(name)
            return
        state[name] = 1
        path.append(name)
        for dep in sorted(rule.meta.names()):
            visit(dep)
        path.pop()
        state[name] = 2

    for name in sorted(res.rules):
        visit(name)
    for name in on_cycle:
        res.skipped[name] = "meta: dependency cycle"
        res.rules.pop(name, None)
