"""Running a :class:`~spamwarden.rules.RuleSet` over messages.

Each rule kind's patterns are compiled into one Hyperscan database (header rules: one
per header with many rules), scanned once per text unit as SpamAssassin does (each body
paragraph, rawbody chunk, URI, header value).  Patterns Hyperscan cannot compile (back-
references, look-arounds) run through Python ``re``; so do ``tflags multiple`` counts,
after Hyperscan has said the pattern matches at all.  ``use_hyperscan=False`` runs
everything through ``re`` and must give identical hits (a test holds the two together).

Compiled databases are cached on disk, keyed by a digest of every pattern (so of the
rule files' content) and the engine version, so a restart reads them instead of
recompiling.
"""

from __future__ import annotations

import base64
import binascii
import bisect
import hashlib
import json
import logging
import os
import re
import sys
import tempfile
import threading
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, cast

from ..errors import SpamwardenError
from ..mail import MessageView
from ._authfacts import AuthFacts
from ._bounded import NEEDS_PREFILTER, BoundedPattern, Lane, limit, short_for
from ._capture import CaptureRunner
from ._evals import EVAL_ERRORS, EVALS, EvalFn, run_eval
from ._expr import compile_metas
from ._freemail import freemail_edits_body, freemail_stripped_lines
from ._literals import literal_set, parse_tree, required_literals, sre_constants
from ._parser import Rule, RuleSet
from ._prepare import PreparedMessage, decoded_header, header_rule_value, prepare_message
from ._regex import PerlRegex
from ._rewrite import possessive_line_runs, repeated_group, widened
from ._uris import compile_patterns as _compile_uri_patterns
from ._uris import uri_list

try:  # pragma: no cover - exercised whenever the wheel is installed
    import hyperscan

    HAVE_HYPERSCAN = True
except ImportError:  # pragma: no cover
    hyperscan = None  # type: ignore[assignment]
    HAVE_HYPERSCAN = False

__all__ = ["ENGINE_VERSION", "HAVE_HYPERSCAN", "SLOW_LANE_BUSY", "TIME_LIMIT_EXCEEDED", "Hit",
           "RuleEngine", "RulesError"]

log = logging.getLogger("spamwarden.rules")

#: the symbol of a message whose matching ran out of the engine's ``time_limit``
#: (SpamAssassin's name for its own ``time_limit``)
TIME_LIMIT_EXCEEDED = "TIME_LIMIT_EXCEEDED"
#: what its description says when the message stopped at the slow lane's door, not at
#: the time limit (the milter reads it back for its log line)
SLOW_LANE_BUSY = "(slow lane busy)"

#: Bumped whenever translation, preparation or the cache format changes meaning.
ENGINE_VERSION = "4"
#: Bumped whenever what the side databases (:func:`_side_database`, and the repeat
#: databases of :func:`_repeat_database`) hold changes; a cache without them, or with
#: another version, has them compiled and stored again.
SIDE_VERSION = 4
#: Bumped whenever which rules of a header target go in its Hyperscan database changes
#: (part of the cache key and of each header group's digest, so an upgrade compiles the
#: header groups again and takes the rest from the cache).  2: every pattern Hyperscan
#: runs exactly is in a database, however few the target's rules: ``re`` backtracks, and
#: on a hostile value a short pattern such as ``".*"\s*<`` (__REPTO_QUOTE) costs it time
#: quadratic in the value's length (0.37 s for one 8 KB Reply-To, and a message may carry
#: dozens), where Hyperscan's time is linear.  1 left targets of fewer than six rules to
#: ``re`` for speed, which measured the same.
HEADER_SPLIT_VERSION = 2
_SCAN_KINDS = ("body", "rawbody", "uri", "full")
# units up to this long are counted with ``findall`` (its list is at most this many items)
_FINDALL_MAX = 16_384


class RulesError(SpamwardenError):
    """The rule engine could not be built (unreadable cache, Hyperscan failure)."""


@dataclass(frozen=True, slots=True, order=True)
class Hit:
    """One rule that hit: SpamAssassin's name, its score and description."""

    name: str
    score: float
    description: str


_Target = tuple[str, str, bool, bool, bool]  # scope, header name (lower), raw, addr, name


def _target(rule: Rule) -> _Target:
    h = rule.header
    assert h is not None
    return (rule.kind, h.name.lower(), h.raw, h.addr, h.display)


@dataclass
class _Group:
    """Rules scanned together over the same units: one Hyperscan database, or none."""

    rules: list[Rule]
    hs_rules: list[Rule] = field(default_factory=list)  # index = Hyperscan id
    re_rules: list[Rule] = field(default_factory=list)
    # rules in the database compiled as a superset (HS_FLAG_PREFILTER): a Hyperscan
    # match only says ``re`` must confirm on that unit
    prefilter: set[str] = field(default_factory=set)
    db: Any = None
    # header rules: the ``!~`` ones, and those that hit when the header is absent (an
    # ``[if-unset: ...]`` value matching, or not matching a ``!~``); both fixed at load
    negated: list[str] = field(default_factory=list)
    when_absent: list[str] = field(default_factory=list)
    # rules left to ``re`` that a second database prefilters (index = its Hyperscan id):
    # ``re`` runs them only on the units it matched (:func:`_side_database`)
    side_rules: list[str] = field(default_factory=list)
    side_db: Any = None
    side_set: frozenset[str] = frozenset()
    side_ids: dict[str, int] = field(default_factory=dict)  # rule name -> side id
    # rules left to ``re`` that repeat one group (``(?:X){m}``), by id in a database of
    # their groups X, loosened, reporting every end (:func:`_repeat_database`); ``re``
    # tries the rest of the pattern only where a group ends
    repeat_rules: list[str] = field(default_factory=list)
    repeat_db: Any = None
    repeat_ids: dict[str, int] = field(default_factory=dict)  # rule name -> repeat id
    repeat_rest: dict[str, Any] = field(default_factory=dict)  # rule name -> (?:X){m-1}


def _hs_flags(rx: PerlRegex, *, prefilter: bool = False) -> int:
    flags = hyperscan.HS_FLAG_SINGLEMATCH | hyperscan.HS_FLAG_ALLOWEMPTY
    if prefilter:
        flags |= hyperscan.HS_FLAG_PREFILTER
    if rx.ignorecase:
        flags |= hyperscan.HS_FLAG_CASELESS
    if rx.multiline:
        flags |= hyperscan.HS_FLAG_MULTILINE
    if rx.dotall:
        flags |= hyperscan.HS_FLAG_DOTALL
    return flags


def _hs_compiles(rx: PerlRegex, *, prefilter: bool = False) -> bool:
    db = hyperscan.Database(mode=hyperscan.HS_MODE_BLOCK)
    try:
        db.compile(expressions=[rx.source], ids=[0], elements=1,
                   flags=[_hs_flags(rx, prefilter=prefilter)])
    except hyperscan.error:
        return False
    return True


def _hs_compile(rules: Sequence[Rule], prefilter: set[str]) -> Any:
    db = hyperscan.Database(mode=hyperscan.HS_MODE_BLOCK)
    exprs, flags = [], []
    for r in rules:
        assert r.regex is not None
        exprs.append(r.regex.source)
        flags.append(_hs_flags(r.regex, prefilter=r.name in prefilter))
    db.compile(expressions=exprs, ids=list(range(len(exprs))), elements=len(exprs), flags=flags)
    return db


def _compiles_together(rules: Sequence[Rule], prefilter: set[str]) -> bool:
    try:
        _hs_compile(rules, prefilter)
    except hyperscan.error:
        return False
    return True


# Long patterns repeating groups a bounded number of times: Hyperscan refuses them exactly
# ("Pattern is too large", after long work) and Python ``re`` backtracks badly on them;
# as a prefilter Hyperscan takes them, and ``re`` then runs only where they may match.
_GROUP_REPEAT = re.compile(rb"\)(?:\{\d+,\d+\}|\{\d+,\})")


def _wants_prefilter(rx: PerlRegex) -> bool:
    src = rx.source
    if NEEDS_PREFILTER.search(src):
        return True
    return len(src) > 600 and len(_GROUP_REPEAT.findall(src)) >= 2


# A line-start anchor then a negated class that admits a newline (SpamAssassin's
# ``/^[^>].*?<a href=/m``, __HAS_HREF and its kin, over rawbody's 2-4 KB pieces): in one
# database with a sibling (``^[^>].*?<img src=['"]data``) Hyperscan 0.9.1's library
# misses matches that the pattern alone finds, so these run in ``re``.
_HYPERSCAN_MISSES = re.compile(rb"^\^\[\^(?![^\]]*\\n)")


def _re_only(rx: PerlRegex) -> bool:
    """Patterns run in ``re`` alone: those above, and the long line-anchored ones with
    many bounded repeats of groups (__FILL_THIS_FORM_PARTIAL): Hyperscan takes them
    only as prefilters that match nearly every line, after minutes of compiling, and
    ``re`` tries them at line starts only."""
    src = rx.source
    return rx.multiline and (_HYPERSCAN_MISSES.match(src) is not None or (
        src.startswith(b"^") and len(src) > 1000 and len(_GROUP_REPEAT.findall(src)) >= 6))


_SIDE_KINDS = frozenset(_SCAN_KINDS)


def _side_database(rules: Sequence[Rule]) -> tuple[list[str], Any]:
    """A prefilter database for rules left to ``re``: (the rule names it holds, by
    Hyperscan id; the database or ``None``).

    Each pattern goes in widened (:func:`~._rewrite.widened`: bounded repeats made
    unbounded, and where Hyperscan refuses the pattern still, inner ``$`` dropped) and
    compiled as a prefilter, so it matches wherever
    the pattern may; ``re`` then runs only on those units.  The long line-anchored
    patterns (``__FILL_THIS_FORM_PARTIAL_RAW``) cost ``re`` microseconds at every line
    start; widened, Hyperscan compiles them in a second and matches few units.  Patterns
    of the shape Hyperscan's library misses matches of (:data:`_HYPERSCAN_MISSES`) and
    any it refuses even widened stay with ``re`` alone.  A rule with a
    :attr:`~._parser.Rule.prefilter` (a ReplaceTags sentence too long for Hyperscan) goes
    in as that shorter superset.
    """
    names: list[str] = []
    exprs: list[bytes] = []
    flags: list[int] = []
    for r in rules:
        # a rule too long for Hyperscan has a shorter superset of its own (ReplaceTags)
        rx = r.prefilter or r.regex
        if rx is None or _HYPERSCAN_MISSES.match(rx.source):
            continue
        for drop in (False, True):  # an inner $ dropped only where Hyperscan refuses it
            wide = replace(rx, source=widened(rx.source, drop_dollars=drop))
            if _hs_compiles(wide, prefilter=True):
                names.append(r.name)
                exprs.append(wide.source)
                flags.append(_hs_flags(wide, prefilter=True))
                break
    if not names:
        return [], None
    db = hyperscan.Database(mode=hyperscan.HS_MODE_BLOCK)
    db.compile(expressions=exprs, ids=list(range(len(exprs))), elements=len(exprs), flags=flags)
    return names, db


def _repeated(rule: Rule) -> tuple[bytes, int] | None:
    """(``(?:X)``, m) for a rule counted once whose pattern is ``(?:X){m}``
    (:func:`~._rewrite.repeated_group`), else ``None``."""
    rx = rule.regex
    if rx is None or rule.maxhits != 1:
        return None
    return repeated_group(rx.source, rx.compile().flags)


def _repeat_database(rules: Sequence[Rule]) -> tuple[list[str], Any]:
    """A database of the repeated groups of the rules left to ``re`` that are one group
    repeated (``(?:X){m}``, :func:`_repeated`): (the rule names, by Hyperscan id; the
    database or ``None``).

    Each group X goes in widened (:func:`~._rewrite.widened`; where Hyperscan refuses it
    still, with every minimum dropped too) and compiled exactly, not as a prefilter, so
    it reports every offset at which a match of X ends, and more.  A match of the rule
    starts with a match of X; the rest, ``(?:X){m-1}``, then matches from where that X
    ends: ``re`` tries the rest (anchored) at the ends the database reports, and the
    whole pattern only on a unit where the rest matched somewhere.  The whole pattern is
    too large for Hyperscan even loosened (``__FILL_THIS_FORM_SHORT2``: three form
    fields in a row), and as a prefilter matches nearly every paragraph.
    """
    found: list[tuple[str, PerlRegex, bytes]] = []
    for r in rules:
        rx = r.regex
        rep = _repeated(r)
        if rx is not None and rep is not None:
            found.append((r.name, rx, rep[0]))
    # the tighter widening for each group Hyperscan takes alone, then all of them in one
    # database; where that is too large, the looser one for all
    for loose in (False, True):
        names: list[str] = []
        exprs: list[bytes] = []
        flags: list[int] = []
        for name, rx, item in found:
            for drop in (loose,) if loose else (False, True):
                wide = replace(rx, source=widened(item, drop_minimums=drop))
                if _hs_compiles(wide):
                    names.append(name)
                    exprs.append(wide.source)
                    flags.append(_hs_flags(wide) & ~hyperscan.HS_FLAG_SINGLEMATCH)
                    break
        if not names:
            return [], None
        db = hyperscan.Database(mode=hyperscan.HS_MODE_BLOCK)
        try:
            db.compile(expressions=exprs, ids=list(range(len(exprs))), elements=len(exprs),
                       flags=flags)
        except hyperscan.error:
            if loose:
                raise
            continue
        return names, db
    return [], None  # pragma: no cover - the loop returns or raises


def _split_for_hyperscan(rules: Sequence[Rule]) -> tuple[list[Rule], set[str], list[Rule]]:
    """Rules for one database: (in Hyperscan, of those the prefiltered, left to ``re``).

    One compile of the whole set when it succeeds (the usual case); otherwise each
    pattern is tried alone, exactly and then as a prefilter.
    """
    candidates = [r for r in rules if r.regex is not None and not r.costly
                  and r.prefilter is None and not _re_only(r.regex)]
    prefilter = {r.name for r in candidates if r.regex and _wants_prefilter(r.regex)}
    if not _compiles_together(candidates, prefilter):
        kept: list[Rule] = []
        for r in candidates:
            assert r.regex is not None
            if r.name not in prefilter and _hs_compiles(r.regex):
                kept.append(r)
            elif _hs_compiles(r.regex, prefilter=True):
                prefilter.add(r.name)
                kept.append(r)
        candidates = kept
        prefilter &= {r.name for r in kept}
    taken = {r.name for r in candidates}
    return candidates, prefilter, [r for r in rules if r.name not in taken]


class RuleEngine:
    """SpamAssassin rules compiled for scanning; thread-safe once built.

    :param ruleset: from :func:`~spamwarden.rules.parse_rule_files`.
    :param use_hyperscan: ``False`` runs every pattern through Python ``re``.
    :param cache_dir: where compiled databases are kept between runs; ``None``: no cache.
    :param time_limit: seconds a message's pattern matching in Python may take in all
        (:mod:`._bounded`); past it the matches left count as none and the message gets
        ``TIME_LIMIT_EXCEEDED``.  ``None``: no limit (long texts are matched by ``re``).
    :param slow_lane: with a ``time_limit``, where a message's matching goes on once it
        has taken ``slow_lane.after`` (:class:`._bounded.SlowLane`); a message that finds
        no place there stops, as at its time limit.  ``None``: no lane.
    :raises RulesError: Hyperscan failed on a database it had accepted pattern by pattern.
    """

    def __init__(self, ruleset: RuleSet, *, use_hyperscan: bool = True,
                 cache_dir: str | Path | None = None,
                 time_limit: float | None = None,
                 slow_lane: Lane | None = None) -> None:
        self.ruleset = ruleset
        self.time_limit = time_limit
        self.slow_lane = slow_lane
        self.use_hyperscan = use_hyperscan and HAVE_HYPERSCAN
        self.cache_used = False
        #: the groups (database keys) this start compiled, and those it took from an
        #: older compiled set kept in ``cache_dir`` (both empty when the set was cached)
        self.compiled_groups: list[str] = []
        self.reused_groups: list[str] = []
        #: the rule files' valid top-level domains (``util_rb_tld``); ``None``: the
        #: Public Suffix List's
        self.tlds = frozenset(ruleset.valid_tlds) if ruleset.valid_tlds else None
        # the text-URI pattern (a quarter of a second) compiles now, before a milter
        # forks its workers, not in the first message of each
        _compile_uri_patterns(self.tlds)
        ruleset.auth_lists.compile()  # the welcome-lists' patterns, likewise
        rules = ruleset.rules
        self._compiled: dict[str, Any] = {}
        #: rules ``re`` runs alone -> text every match holds (:mod:`._literals`)
        self._needs: dict[str, tuple[bytes, ...]] = {}
        #: rules whose matches start at line starts -> the pattern after a newline
        #: (:func:`_after_newline`)
        self._line_starts: dict[str, BoundedPattern] = {}
        #: rule name -> its pattern for matching message text (:meth:`_bounded`)
        self._matchers: dict[str, BoundedPattern] = {}
        #: ``tflags multiple`` rules matching a few fixed strings -> those in ASCII
        #: (:func:`~._literals.literal_set`): an ASCII unit's count is theirs
        self._ascii_strings: dict[str, tuple[bytes, ...]] = {}
        #: rule name -> its :meth:`_searcher`, made on first use
        self._searchers: dict[str, Callable[[bytes], object]] = {}
        #: rules ``^[^>].*?N`` (``/m``) -> (folded, the strings N stands for): counted by
        #: finding N (:func:`_count_unquoted`)
        self._unquoted: dict[str, tuple[bool, tuple[bytes, ...]]] = {}
        #: id of a group -> its ``re`` rules as :meth:`_re_plan` gives them
        self._plans: dict[int, list[tuple[str, Rule, Callable[[bytes], object] | None,
                                          tuple[bytes, ...] | None]]] = {}
        #: repeat rules ``(?:X){m}`` -> (m - 1, the fewest octets X matches): the chain of
        #: ends the rest ``(?:X){m-1}`` needs after an end (:func:`_chain_starts`)
        self._repeat_chain: dict[str, tuple[int, int]] = {}
        self._lock = threading.Lock()
        self._local = threading.local()
        self._metas: list[Rule] = []
        self._evals = [r for r in sorted(rules.values(), key=lambda r: r.name) if r.kind == "eval"]
        #: (rule name, the eval's function, its arguments) of each eval rule, looked up
        #: once instead of by ``run_eval`` on every message
        self._eval_calls = [(r.name, _eval_function(r), r.eval_args) for r in self._evals]
        # FreeMail's check_freemail_replyto forms run (they may edit the body lines)
        self._freemail_whats = tuple(sorted({r.eval_args[0] for r in self._evals
                                             if r.eval_name == "check_freemail_replyto"
                                             and r.eval_args}))
        self._exists = [r for r in sorted(rules.values(), key=lambda r: r.name)
                        if r.header is not None and r.header.exists]
        #: (rule, lower-cased field name) for fields, (rule, name) for the pseudo-headers
        self._exists_fields: list[tuple[str, str]] = []
        self._exists_pseudo: list[tuple[str, str]] = []
        for r in self._exists:
            assert r.header is not None
            h = r.header.name
            if h in ("ALL", "MESSAGEID") or h.lower() == "tocc":  # as header_exists reads
                self._exists_pseudo.append((r.name, h))
            else:
                self._exists_fields.append((r.name, h.lower()))
        self._groups: dict[str, _Group] = {}
        self._header_groups: dict[_Target, _Group] = {}
        for r in sorted(rules.values(), key=lambda r: r.name):
            if r.regex is None:
                continue
            if r.kind in _SCAN_KINDS:
                self._groups.setdefault(r.kind, _Group([])).rules.append(r)
            else:
                self._header_groups.setdefault(_target(r), _Group([])).rules.append(r)
        self._nosubject = [r for r in sorted(rules.values(), key=lambda r: r.name)
                           if r.nosubject]
        self._order_metas()
        #: the capture rules' tags and the %{TAG} template rules (run in ``re``)
        self._capture = CaptureRunner(rules)
        self._unused = frozenset(rules) - _needed(rules) - self._capture.capture_rules
        self._used_eval_calls = [c for c in self._eval_calls if c[0] not in self._unused]
        self._reported = frozenset(n for n, r in rules.items() if r.reported)
        self._unused_targets = frozenset(t for t, g in self._header_groups.items()
                                         if all(r.name in self._unused for r in g.rules))
        self._build_databases(cache_dir)
        for g in self._groups.values():
            g.side_set = frozenset(g.side_rules) if g.side_db is not None else frozenset()
            g.side_ids = {n: i for i, n in enumerate(g.side_rules) if n in g.side_set}
            if g.repeat_db is not None:
                g.repeat_ids = {n: i for i, n in enumerate(g.repeat_rules)}
        self._compile_re_patterns()
        for g in self._header_groups.values():
            g.negated = [r.name for r in g.rules if r.negate]
            g.when_absent = [r.name for r in g.rules if self._hits_when_absent(r)]

    # -- building ---------------------------------------------------------------------

    def _order_metas(self) -> None:
        rules = self.ruleset.rules
        done: set[str] = set()
        order: list[Rule] = []

        def visit(name: str) -> None:
            rule = rules.get(name)
            if name in done or rule is None or rule.meta is None:
                return
            done.add(name)
            for dep in sorted(rule.meta.names()):
                visit(dep)
            order.append(rule)

        for name in sorted(rules):
            visit(name)
        self._metas = [r for r in order if r.meta is not None]
        self._run_metas = compile_metas([(r.name, r.meta) for r in order if r.meta is not None])

    def _all_groups(self) -> list[tuple[str, _Group]]:
        out = [(k, g) for k, g in sorted(self._groups.items())]
        out.extend(("header:" + ":".join(map(str, t)), g)
                   for t, g in sorted(self._header_groups.items()))
        return out

    def _build_databases(self, cache_dir: str | Path | None) -> None:
        groups = self._all_groups()
        if not self.use_hyperscan:
            for _, g in groups:
                g.re_rules = list(g.rules)
            return
        cache = _Cache(Path(cache_dir), _patterns_digest(groups)) if cache_dir else None
        stored = cache.load() if cache else None
        if stored is not None:
            self.cache_used = True
            by_name = self.ruleset.rules
            for key, g in groups:
                entry = stored.get(key)
                if entry is None:
                    stored = None
                    break
                if not all(n in by_name for n in entry["hs"] + entry["re"]):
                    stored = None
                    break
                g.hs_rules = [by_name[n] for n in entry["hs"]]
                g.re_rules = [by_name[n] for n in entry["re"]]
                g.prefilter = set(entry["prefilter"])
                g.db = _load_database(entry["db"])
        if stored is not None:
            missing = False
            for key, g in groups:
                entry = stored[key]
                if "digest" not in entry:  # (a set stored before entries had one)
                    entry["digest"] = _group_digest(key, g)
                    missing = True
                if key not in _SIDE_KINDS:
                    continue
                # a side rule is one of the group's re rules, else the entry is rebuilt
                re_names = {r.name for r in g.re_rules}
                if (entry.get("side_version") != SIDE_VERSION
                        or not set(entry.get("side", ())) <= re_names
                        or not set(entry.get("repeat", ())) <= re_names):
                    entry.update(self._side_entry(key, g))
                    missing = True
                    continue
                g.side_rules = list(entry["side"])
                g.side_db = _load_database(entry["side_db"])
                g.repeat_rules = list(entry["repeat"])
                g.repeat_db = _load_database(entry["repeat_db"])
            if missing and cache:
                cache.store(stored)
        if stored is None:
            self.cache_used = False
            out: dict[str, Any] = {}
            # a group whose patterns an older kept set compiled takes its databases from
            # there: a local.cf change compiles only the databases of the groups it
            # touches, not the whole set
            previous = cache.previous_groups() if cache else {}
            for key, g in groups:
                digest = _group_digest(key, g)
                entry = previous.get(digest)
                if entry is not None and self._reuse_entry(key, g, entry):
                    out[key] = entry
                    self.reused_groups.append(key)
                    continue
                self.compiled_groups.append(key)
                g.hs_rules, g.prefilter, g.re_rules = _split_for_hyperscan(g.rules)
                blob = b""
                if g.hs_rules:
                    try:
                        g.db = _hs_compile(g.hs_rules, g.prefilter)
                    except hyperscan.error as exc:
                        raise RulesError(f"hyperscan: {key}: {exc}") from exc
                    blob = hyperscan.dumpb(g.db)
                out[key] = {"hs": [r.name for r in g.hs_rules],
                            "re": [r.name for r in g.re_rules],
                            "prefilter": sorted(g.prefilter),
                            "db": base64.b64encode(blob).decode("ascii"),
                            "digest": digest}
                if key in _SIDE_KINDS:
                    out[key].update(self._side_entry(key, g))
            if cache:
                cache.store(out)

    def _reuse_entry(self, key: str, g: _Group, entry: dict[str, Any]) -> bool:
        """Set the group's rules and databases from an older set's entry of the same
        :func:`_group_digest`; ``False`` (nothing set) when the entry does not fit."""
        by_name = self.ruleset.rules
        try:
            names = list(entry["hs"]) + list(entry["re"])
            side = list(entry.get("side", ())) + list(entry.get("repeat", ()))
            if not all(n in by_name for n in names + side) or (
                    key in _SIDE_KINDS and entry.get("side_version") != SIDE_VERSION):
                return False
            db = _load_database(entry["db"])
            side_db = repeat_db = None
            if key in _SIDE_KINDS:
                side_db = _load_database(entry["side_db"])
                repeat_db = _load_database(entry["repeat_db"])
        except (KeyError, TypeError, ValueError, binascii.Error, hyperscan.error):
            return False
        g.hs_rules = [by_name[n] for n in entry["hs"]]
        g.re_rules = [by_name[n] for n in entry["re"]]
        g.prefilter = set(entry["prefilter"])
        g.db = db
        if key in _SIDE_KINDS:
            g.side_rules, g.side_db = list(entry["side"]), side_db
            g.repeat_rules, g.repeat_db = list(entry["repeat"]), repeat_db
        return True

    def _side_entry(self, key: str, g: _Group) -> dict[str, Any]:
        """Compile the group's repeat and side databases (:func:`_repeat_database`, then
        :func:`_side_database` for the rest); their cache entry."""
        try:
            g.repeat_rules, g.repeat_db = _repeat_database(g.re_rules)
        except hyperscan.error as exc:
            raise RulesError(f"hyperscan: {key} (repeat): {exc}") from exc
        repeated = set(g.repeat_rules)
        try:
            g.side_rules, g.side_db = _side_database(
                [r for r in g.re_rules if r.name not in repeated])
        except hyperscan.error as exc:
            raise RulesError(f"hyperscan: {key} (side): {exc}") from exc
        blob = hyperscan.dumpb(g.side_db) if g.side_db is not None else b""
        rblob = hyperscan.dumpb(g.repeat_db) if g.repeat_db is not None else b""
        return {"side_version": SIDE_VERSION, "side": g.side_rules,
                "side_db": base64.b64encode(blob).decode("ascii"),
                "repeat": g.repeat_rules, "repeat_db": base64.b64encode(rblob).decode("ascii")}

    def _compile_re_patterns(self) -> None:
        """Compile now every pattern ``re`` may run (so no message pays for it): those left
        to ``re``, prefilters to confirm, ``multiple`` counts and ``[if-unset:]`` values."""
        for _, g in self._all_groups():
            for r in g.rules:
                h = r.header
                if (r in g.re_rules or r.name in g.prefilter or r.maxhits > 1
                        or (h is not None and h.if_unset is not None)):
                    self._pattern(r)
            for r in g.re_rules:  # a unit without the text every match holds is skipped
                pat = self._pattern(r)
                need = required_literals(pat.pattern, pat.flags)
                if need is not None:
                    self._needs[r.name] = need
        for _, g in self._all_groups():
            for name in g.repeat_ids:
                rule = self.ruleset.rules[name]
                rep = _repeated(rule)
                assert rule.regex is not None and rep is not None
                item, m = rep
                rest = replace(rule.regex, source=item + b"{%d}" % (m - 1)).compile()
                g.repeat_rest[name] = BoundedPattern(name, rest,
                                                     short_for(rule.regex.source, rest.flags))
                tree = parse_tree(item, rest.flags)
                self._repeat_chain[name] = (m - 1, tree.getwidth()[0] if tree is not None else 1)
        for name, pat in self._compiled.items():
            needles = _unquoted_needles(pat)
            if needles is not None:
                self._unquoted[name] = needles
            after = _after_newline(pat)
            if after is not None:  # (as short as the pattern's own: the same rest)
                short = self._bounded(self.ruleset.rules[name]).short
                self._line_starts[name] = BoundedPattern(name, after, short)
            strings = literal_set(pat.pattern, pat.flags) if self.ruleset.rules[
                name].maxhits > 1 else None
            if strings is not None:
                self._ascii_strings[name] = tuple(s for s in strings if s.isascii())
        # each pattern's matcher made now, not in a message (:func:`._bounded.short_for`
        # reads its parse tree); with a time limit, long texts are matched by ``regex``,
        # compiled now too (about 3 s of CPU for Debian's rules, most of it the
        # look-alike sentences; engine processes forked afterwards share them)
        matchers = [self._bounded(self.ruleset.rules[name]) for name in self._compiled]
        if self.time_limit is not None:
            for _, g in self._all_groups():
                matchers.extend(g.repeat_rest.values())
            matchers.extend(self._line_starts.values())
            for bp in matchers:
                bp.prepare()

    def _hits_when_absent(self, rule: Rule) -> bool:
        """SpamAssassin matches an absent header's ``[if-unset: ...]`` value, else undef,
        which Perl reads as "": so a ``!~`` rule hits when its header is absent."""
        h = rule.header
        if h is None:
            return False
        value = (h.if_unset or "").encode("utf-8")
        return bool(self._pattern(rule).search(value)) != rule.negate

    def _pattern(self, rule: Rule) -> Any:
        pat = self._compiled.get(rule.name)
        if pat is None:
            rx = rule.regex
            assert rx is not None
            # the same matches with less backtracking (Hyperscan keeps rx.source)
            pat = replace(rx, source=possessive_line_runs(rx.source)).compile()
            with self._lock:
                self._compiled[rule.name] = pat
        return pat

    def _bounded(self, rule: Rule) -> BoundedPattern:
        """The rule's pattern for matching message text (:mod:`._bounded`: a long text
        within the message's time limit)."""
        bp = self._matchers.get(rule.name)
        if bp is None:
            rx = rule.regex
            assert rx is not None
            pat = self._pattern(rule)
            bp = BoundedPattern(rule.name, pat, short_for(rx.source, pat.flags))
            with self._lock:
                self._matchers[rule.name] = bp
        return bp

    def _scratch(self, db: Any) -> Any:
        scratches: dict[int, Any] | None = getattr(self._local, "scratch", None)
        if scratches is None:
            scratches = self._local.scratch = {}
        s = scratches.get(id(db))
        if s is None:
            s = scratches[id(db)] = hyperscan.Scratch(db)
        return s

    # -- statistics -------------------------------------------------------------------

    def stats(self) -> dict[str, int]:
        """How many patterns run in Hyperscan and how many in ``re``."""
        groups = self._all_groups()
        return {
            "hyperscan_patterns": sum(len(g.hs_rules) for _, g in groups),
            "re_patterns": sum(len(g.re_rules) for _, g in groups),
            "hyperscan_databases": sum(1 for _, g in groups if g.db is not None),
        }

    # -- scanning ---------------------------------------------------------------------

    def _scan(self, g: _Group, units: Iterable[bytes],
              skip: frozenset[str] = frozenset()) -> dict[str, int]:
        """Match counts (capped by ``maxhits``) of the group's rules over ``units``,
        except those named in ``skip`` (which may or may not be counted)."""
        counts: dict[str, int] = {}
        units = units if isinstance(units, list) else list(units)
        # a unit's matches do not depend on the other units: identical units (blank and
        # repeated lines) are scanned and confirmed once
        distinct = list(dict.fromkeys(units)) if len(units) > 1 else units
        side: dict[int, list[int]] = {}  # side id -> the distinct units worth ``re``
        if g.side_db is not None:
            side_db, side_scratch = g.side_db, self._scratch(g.side_db)
            for at, u in enumerate(distinct):
                side_db.scan(u, match_event_handler=_on_match, scratch=side_scratch,
                             context=(side, at))
        ends: dict[int, list[tuple[int, int]]] = {}  # repeat id -> (unit, end) pairs
        if g.repeat_db is not None:
            repeat_db, repeat_scratch = g.repeat_db, self._scratch(g.repeat_db)
            for at, u in enumerate(distinct):
                repeat_db.scan(u, match_event_handler=_on_end, scratch=repeat_scratch,
                               context=(ends, at))
        if g.db is not None:
            found: dict[int, list[int]] = {}  # rule id -> the distinct units it matched in
            db, scratch = g.db, self._scratch(g.db)
            for unit, u in enumerate(distinct):
                db.scan(u, match_event_handler=_on_match, scratch=scratch, context=(found, unit))
            prefilter = g.prefilter
            for rid in sorted(found):
                rule = g.hs_rules[rid]
                if rule.name in skip:
                    continue
                if rule.maxhits > 1 or rule.name in prefilter:
                    n = self._confirm(rule, found[rid], distinct, units)
                else:
                    n = 1
                if n:
                    counts[rule.name] = n
        lowered: dict[bytes, bytes] = {}
        plan = self._plans.get(id(g))
        if plan is None:
            plan = self._re_plan(g)
        for name, rule, search, need in plan:
            if name in skip:
                continue
            if search is not None:  # (most: one search per distinct unit, any match)
                where = distinct if need is None else _holding(distinct, need, lowered)
                if where and (search(where[0]) if len(where) == 1 else any(map(search, where))):
                    counts[name] = 1
                continue
            repeat_id = g.repeat_ids.get(rule.name)
            if repeat_id is not None:
                if self._repeat_hits(rule, g.repeat_rest[rule.name], distinct,
                                     ends.get(repeat_id)):
                    counts[rule.name] = 1
                continue
            side_id = g.side_ids.get(rule.name)
            if side_id is not None:
                found_in = side.get(side_id)
                n = self._confirm(rule, found_in, distinct, units) if found_in else 0
                if n:
                    counts[rule.name] = n
                continue
            need = self._needs.get(rule.name)
            if rule.maxhits > 1:
                where = units if need is None else _holding(units, need, lowered)
                n = self._count(rule, where) if where else 0
                if n:
                    counts[rule.name] = n
        return counts

    def _re_plan(self, g: _Group) -> list[tuple[str, Rule, Callable[[bytes], object] | None,
                                                tuple[bytes, ...] | None]]:
        """The group's ``re`` rules for :meth:`_scan`, made once: (name, rule, its
        searcher and the text every match holds for a rule counted once without a
        database's help, else ``None`` and ``None``)."""
        plan: list[tuple[str, Rule, Callable[[bytes], object] | None,
                         tuple[bytes, ...] | None]] = []
        for rule in g.re_rules:
            name = rule.name
            if name in g.repeat_ids or name in g.side_ids or rule.maxhits > 1:
                plan.append((name, rule, None, None))
            else:
                plan.append((name, rule, self._searcher(rule), self._needs.get(name)))
        self._plans[id(g)] = plan
        return plan

    def _confirm(self, rule: Rule, found_in: list[int], distinct: Sequence[bytes],
                 units: Sequence[bytes]) -> int:
        """The count of a rule a database only prefilters, by ``re`` over the distinct
        units it flagged (indexes ``found_in``); a ``multiple`` rule counts every copy of
        those units."""
        where = [distinct[i] for i in found_in]
        if rule.maxhits > 1:
            if len(distinct) != len(units):  # every copy counts
                matched = set(where)
                where = [u for u in units if u in matched]
            return self._count(rule, where)
        search = self._searcher(rule)
        return 1 if any(search(u) for u in where) else 0

    def _repeat_hits(self, rule: Rule, rest: BoundedPattern, units: Sequence[bytes],
                     ends: list[tuple[int, int]] | None) -> bool:
        """Whether a rule ``(?:X){m}`` of a repeat database matches in one of ``units``,
        given (unit index, offset) of every end of X its database reported there: the
        units where the rest ``(?:X){m-1}`` matches at one of those ends are searched."""
        if not ends:
            return False
        at: dict[int, list[int]] = {}
        for unit, end in ends:
            at.setdefault(unit, []).append(end)
        more, width = self._repeat_chain[rule.name]
        search = self._searcher(rule)
        match = rest.match
        for unit, offsets in at.items():
            if len(offsets) <= more:  # (the usual case: too few ends for the rest)
                continue
            u = units[unit]
            if any(match(u, p) for p in _chain_starts(offsets, more, width)) and search(u):
                return True
        return False

    def _searcher(self, rule: Rule) -> Callable[[bytes], object]:
        """A function telling whether the rule's pattern matches in a unit."""
        search = self._searchers.get(rule.name)
        if search is not None:
            return search
        pat = self._bounded(rule)
        after = self._line_starts.get(rule.name)
        unquoted = self._unquoted.get(rule.name)
        if unquoted is not None:
            fold, needles = unquoted

            def search(u: bytes) -> object:
                return _count_unquoted((u,), needles, fold, 1)
        elif after is None:
            search = pat.search
        else:
            match, search_after = pat.match, after.search

            def search(u: bytes) -> object:
                return match(u) or search_after(u)
        self._searchers[rule.name] = search
        return search

    def _count(self, rule: Rule, units: Sequence[bytes]) -> int:
        """Matches of the rule over ``units`` (``re``'s non-overlapping ones), at most
        ``maxhits``: ``findall`` counts a short unit without a Python step per match."""
        pat = self._bounded(rule)
        n, cap = 0, rule.maxhits
        unquoted = self._unquoted.get(rule.name)
        if unquoted is not None:
            return _count_unquoted(units, unquoted[1], unquoted[0], cap)
        after = self._line_starts.get(rule.name)
        if after is not None:
            return _count_at_line_starts(pat, after, units, cap)
        strings = self._ascii_strings.get(rule.name)
        for u in units:
            if strings is not None and u.isascii():  # (``__E_LIKE_LETTER``: count "e")
                for s in strings:
                    n += u.count(s)
                if n >= cap:
                    return cap
                continue
            if len(u) <= _FINDALL_MAX:
                n += len(pat.findall(u))
                if n >= cap:
                    return cap
                continue
            for _ in pat.finditer(u):  # a long unit: stop at the cap, keep no list
                n += 1
                if n >= cap:
                    return n
        return n

    def _header_values(self, msg: PreparedMessage, target: _Target) -> list[bytes] | None:
        scope, name, raw, addr, display = target
        if scope == "header":
            v = header_rule_value(msg, name, raw=raw, addr=addr, display=display)
            return None if v is None else [v.encode("utf-8", "surrogateescape")]
        vals: list[bytes] = []
        for part in msg.parts:
            for k, v in part.headers:
                if k.lower() == name:
                    text = v if raw else decoded_header(v)
                    vals.append((text + "\n").encode("utf-8", "surrogateescape"))
        return vals or None

    def _rule_units(self, msg: PreparedMessage, units: dict[str, list[bytes]],
                    name: str) -> list[bytes]:
        """The units a rule runs over; an absent header's is its ``[if-unset:]`` text or
        "" (Perl's undef)."""
        rule = self.ruleset.rules[name]
        if rule.header is None:
            return units[rule.kind]
        values = self._header_values(msg, _target(rule))
        return values if values is not None else [(rule.header.if_unset or "").encode("utf-8")]

    def check(self, view: MessageView, raw: bytes, *,
              envelope_from: str | None = None, received: str | None = None,
              auth: AuthFacts | None = None) -> list[Hit]:
        """The rules a message hits.

        :param view: ``spamwarden.mail.parse_message(raw)``.
        :param raw: the message bytes as received.
        :param envelope_from: the SMTP MAIL FROM (without ``<>``, "" for the null
            sender) when known: SpamAssassin's EnvelopeFrom; ``None``: guessed from the
            headers as SpamAssassin guesses it.
        :param received: the receiving MTA's own Received value for this connection
            when the message was taken before the MTA added it (``prepare_message``).
        :param auth: the MTA's SPF and DKIM results (``prepare_message``); ``None``: the
            SPF and DKIM rules hit nothing.
        :returns: reported hits (not ``__`` rules, score not 0), sorted by name.
        """
        return self.check_prepared(prepare_message(view, raw, envelope_from=envelope_from,
                                                   received=received, auth=auth,
                                                   tlds=self.tlds))

    def counts(self, msg: PreparedMessage) -> dict[str, int]:
        """Every rule's hit count for a prepared message, ``__`` sub-rules included."""
        return self._counts(msg, frozenset())

    def _counts(self, msg: PreparedMessage, skip: frozenset[str]) -> dict[str, int]:
        """:meth:`counts`, leaving out work for the rules in ``skip``: rules no reported
        rule depends on may be missing from the result (their own value is not used).
        Within :attr:`time_limit`; the rules whose match ran out of it are noted in
        ``msg.late_rules`` (and in ``msg.slow_lane`` whether it took the slow lane)."""
        with limit(self.time_limit, self.slow_lane) as late:
            counts = self._count_rules(msg, skip)
        msg.late_rules = tuple(late)
        msg.slow_lane = late.slow_lane
        return counts

    def _count_rules(self, msg: PreparedMessage, skip: frozenset[str]) -> dict[str, int]:
        """:meth:`_counts` without the time limit."""
        if msg.networks is None and msg.relays is None:
            msg.networks = self.ruleset.networks  # the relays are judged by our files
        counts: dict[str, int] = {}
        if msg.tlds is not self.tlds and msg.tlds != self.tlds:
            # prepared without this rule set's top-level domains: the URI list again
            msg.uris = uri_list(msg.body, msg.html_links, tlds=self.tlds)
            msg.tlds = self.tlds
        if (self._freemail_whats and "freemail_body" not in msg.memo
                and freemail_edits_body(msg, self.ruleset, self._freemail_whats)):
            # SpamAssassin's head evals run before its body rules, and FreeMail's
            # _parse_body edits the body lines those rules (and the body evals) read
            msg.memo["freemail_body"] = True
            msg.body = freemail_stripped_lines(msg.body, self.tlds)
        units = {"body": msg.body, "rawbody": msg.rawbody, "uri": msg.uris, "full": [msg.full]}
        for kind, g in self._groups.items():
            counts.update(self._scan(g, units[kind], skip))
        for rule in self._nosubject:  # hits again without the Subject line (body[0])
            if rule.name in counts:
                n = self._count(rule, msg.body[1:])
                if n:
                    counts[rule.name] = n
                else:
                    del counts[rule.name]
        for target, g in self._header_groups.items():
            if skip and target in self._unused_targets:
                continue
            values = self._header_values(msg, target)
            if values is None:
                for name in g.when_absent:
                    counts[name] = 1
                continue
            matched = self._scan(g, values, skip)
            for name in g.negated:
                if name in matched:
                    del matched[name]
                elif name not in skip:
                    counts[name] = 1
            counts.update(matched)
        if self._capture.templates:
            self._capture.run(counts, lambda name: self._rule_units(msg, units, name), skip)
        # ``exists:`` of a header is its name among the message's (header_exists, for
        # every field name at once); the pseudo-headers ask header_exists itself
        present = {k.lower() for k, _ in msg.headers}
        for name, lname in self._exists_fields:
            if lname in present and name not in skip:
                counts[name] = 1
        for name, header in self._exists_pseudo:
            if name not in skip and msg.header_exists(header):
                counts[name] = 1
        data = self.ruleset
        calls = (self._used_eval_calls if skip is self._unused
                 else [c for c in self._eval_calls if c[0] not in skip])
        for name, fn, args in calls:
            try:
                hit = fn(msg, data, args)
            except EVAL_ERRORS:  # (as run_eval: a failing eval does not hit)
                hit = False
            if hit:
                counts[name] = 1
        # the metas read the counts as they are (whole numbers add, divide and compare
        # as the floats they stand for); each meta that hits is added, after the rest
        before = len(counts)
        self._run_metas(cast("dict[str, float]", counts))
        if len(counts) > before:  # the metas that hit: the names added, 1.0 -> 1
            for name in list(counts)[before:]:
                counts[name] = 1
        return counts

    def check_prepared(self, msg: PreparedMessage) -> list[Hit]:
        """:meth:`check` for a message already prepared with ``prepare_message``."""
        rules, reported = self.ruleset.rules, self._reported
        hits = [Hit(n, rules[n].score, rules[n].description)
                for n in self._counts(msg, self._unused) if n in reported]
        late = msg.late_rules
        if late:  # (SpamAssassin's Check plugin adds it at its time_limit, at 0.001)
            busy = f" {SLOW_LANE_BUSY}" if msg.slow_lane == "busy" else ""
            hits.append(Hit(TIME_LIMIT_EXCEEDED, 0.001,
                            f"Exceeded time limit / deadline{busy}: " + ", ".join(late)))
        hits.sort()
        return hits


def _eval_function(rule: Rule) -> EvalFn:
    """What ``run_eval`` calls for the rule's eval: its registered function for the
    rule's kind (:meth:`EvalSpec.for_kind`)."""
    name, kind = rule.eval_name, rule.eval_kind
    spec = EVALS.get(name)
    if spec is not None:
        return spec.for_kind(kind)

    def call(msg: PreparedMessage, data: Any, args: Sequence[str]) -> bool:
        return run_eval(name, msg, data, args, kind=kind)

    return call


def _on_match(rid: int, start: int, end: int, flags: int,
              ctx: tuple[dict[int, list[int]], int]) -> None:
    """Hyperscan's match handler: ``ctx`` is (pattern id -> unit indexes, this unit)."""
    ctx[0].setdefault(rid, []).append(ctx[1])


def _on_end(rid: int, start: int, end: int, flags: int,
            ctx: tuple[dict[int, list[tuple[int, int]]], int]) -> None:
    """The repeat databases' match handler: ``ctx`` is (pattern id -> (unit, end)
    pairs, this unit)."""
    ctx[0].setdefault(rid, []).append((ctx[1], end))


def _chain_starts(ends: list[int], more: int, width: int) -> list[int]:
    """The distinct ``ends`` (of one unit) that ``more`` others follow, each at least
    ``width`` octets after the one before: where the rest ``(?:X){more}`` of a repeat
    rule may match.

    Each X of the rest matches at least ``width`` octets and ends where a match of X
    ends, which the repeat database reports (it reports every end of a match of X); so
    the rest matches at an end only if such a chain of reported ends follows it.  The
    earliest end far enough is always the one to take (any later one leaves fewer), so
    the longest chain from each end is counted from the last end back."""
    offsets = sorted(set(ends))
    n = len(offsets)
    links = [0] * (n + 1)  # links[k]: the longest chain after offsets[k]; links[n] unused
    for k in range(n - 1, -1, -1):
        j = bisect.bisect_left(offsets, offsets[k] + width, k + 1)
        links[k] = links[j] + 1 if j < n else 0
    return [p for p, c in zip(offsets, links) if c >= more]


def _after_newline(pat: re.Pattern[bytes]) -> re.Pattern[bytes] | None:
    """For a pattern that can only match at line starts (``^`` under ``/m`` first, outside
    any alternative, and no empty match), the pattern with that ``^`` made a newline.

    ``re`` has no quick way to a line start: it tries ``^`` at every octet, an attempt
    that costs more than the octet test of a leading literal (``^Zzz`` over 6 KB: 41 µs,
    ``\nZzz``: 5 µs).  A match of the original at a line start p > 0 is a match of the
    new pattern at p - 1 whose rest is matched the same way (the string, and so every
    look-around, is the same); p = 0 is left to ``match``.  ``None``: not such a pattern.
    """
    src = pat.pattern
    if not src.startswith(b"^"):
        return None
    tree = parse_tree(src, pat.flags)
    if tree is None or not tree.state.flags & re.MULTILINE or not tree.data:
        return None
    if tree.data[0] != (sre_constants.AT, sre_constants.AT_BEGINNING):
        return None
    if tree.getwidth()[0] == 0:  # findall's rules for empty matches: not followed here
        return None
    try:
        return re.compile(b"\n" + src[1:], pat.flags)
    except (re.error, OverflowError, RecursionError):
        return None


def _count_at_line_starts(pat: re.Pattern[bytes] | BoundedPattern,
                          after: re.Pattern[bytes] | BoundedPattern,
                          units: Sequence[bytes], cap: int) -> int:
    """``pat``'s non-overlapping matches over ``units``, at most ``cap``, as ``findall``
    counts them, for a pattern :func:`_after_newline` gave ``after`` for: each match is
    the first at a line start at or after the end of the one before."""
    n = 0
    match, search = pat.match, after.search
    for u in units:
        m = match(u) or search(u)
        while m is not None:
            n += 1
            if n >= cap:
                return n
            end = m.end()  # > 0: the pattern matches no empty string
            m = (match(u, end) if u[end - 1] == 0x0A else None) or search(u, end)
    return n


#: SpamAssassin's "a line that is not a quoted reply, then N": ``^[^>].*?N`` under ``/m``
_UNQUOTED = b"^[^>].*?"


def _unquoted_needles(pat: re.Pattern[bytes]) -> tuple[bool, tuple[bytes, ...]] | None:
    """For a pattern ``^[^>].*?N`` (``/m``, not ``/s``) whose N matches only a few fixed
    strings without a newline (:func:`~._literals.literal_set`): (whether it folds case,
    those strings, lower-cased when it does); else ``None``.  ``__HAS_HREF``,
    ``__HAS_IMG_SRC`` and their siblings are such."""
    src, flags = pat.pattern, pat.flags
    if (not src.startswith(_UNQUOTED) or not flags & re.MULTILINE or flags & re.DOTALL):
        return None
    fold = bool(flags & re.IGNORECASE)
    strings = literal_set(src[len(_UNQUOTED):], flags & ~re.IGNORECASE)
    if not strings or any(b"\n" in s for s in strings):
        return None
    if fold:
        strings = tuple(dict.fromkeys(s.lower() for s in strings))
    return fold, strings


def _first_of(text: bytes, needles: tuple[bytes, ...], start: int) -> int:
    """Where the first of ``needles`` occurs in ``text`` at or after ``start`` (-1: none)."""
    if len(needles) == 1:
        return text.find(needles[0], start)
    found = [at for at in (text.find(n, start) for n in needles) if at >= 0]
    return min(found) if found else -1


def _count_unquoted(units: Sequence[bytes], needles: tuple[bytes, ...], fold: bool,
                    cap: int) -> int:
    """``findall``'s count (at most ``cap``) of ``^[^>].*?N`` (``/m``; N one of
    ``needles``, no newline in any; ``fold``: ``/i``, the needles lower case) over
    ``units``, found from where N occurs instead of trying every line.

    A match starts at a line start p whose octet is not ``>`` and runs to the first N
    in the rest of the line after p.  That octet may be the newline of an empty line:
    the match then reads the next line from its start.  So only a line holding an N
    (start s, end e) has matches in it: from s - 1 when that is an empty line (any N
    of the line), else from s when its first octet is not ``>`` and an N starts after
    it.  One match at most per line, and the next is searched from the line's end.
    """
    n = 0
    for u in units:
        text = u.lower() if fold else u
        at = _first_of(text, needles, 0)
        while at >= 0:
            s = text.rfind(b"\n", 0, at) + 1
            e = text.find(b"\n", at)
            if e < 0:
                e = len(text)
            if (s == 1 or (s > 1 and text[s - 2] == 0x0A)  # the line before is empty
                    or (text[s] != 0x3E and (at > s or 0 <= _first_of(text, needles, s + 1) < e))):
                n += 1
                if n >= cap:
                    return n
            at = _first_of(text, needles, e + 1) if e < len(text) else -1
    return n


def _holding(units: Sequence[bytes], need: tuple[bytes, ...],
             lowered: dict[bytes, bytes]) -> list[bytes]:
    """The units holding one of ``need`` (lower-cased text; each unit lower-cased once
    per scan, in ``lowered``), in order, repeats kept."""
    out = []
    only = need[0] if len(need) == 1 else None  # the usual case: no generator per unit
    for u in units:
        low = lowered.get(u)
        if low is None:
            low = lowered[u] = u.lower()
        if (only in low) if only is not None else any(n in low for n in need):
            out.append(u)
    return out


def _needed(rules: dict[str, Rule]) -> set[str]:
    """The rules a reported hit can depend on: the reported ones and, through meta
    expressions, every rule they read (a rule with score 0 that no meta reads is not)."""
    needed: set[str] = set()
    stack = [name for name, r in rules.items() if r.reported]
    while stack:
        name = stack.pop()
        if name in needed:
            continue
        needed.add(name)
        rule = rules.get(name)
        if rule is not None and rule.meta is not None:
            stack.extend(n for n in rule.meta.names() if n in rules and n not in needed)
    return needed


def _hash_group(h: Any, key: str, g: _Group) -> None:
    """Feed one group's patterns (name, text, flags, prefilter) and its key to ``h``."""
    h.update(key.encode() + b"\0")
    for r in g.rules:
        rx = r.regex
        assert rx is not None
        h.update(f"{r.name}\0{rx.ignorecase:d}{rx.multiline:d}{rx.dotall:d}\0".encode())
        h.update(rx.source + b"\0")
        if r.prefilter is not None:
            h.update(b"prefilter\0" + r.prefilter.source + b"\0")


def _patterns_digest(groups: Sequence[tuple[str, _Group]]) -> str:
    """A digest of every pattern and where it runs: the cache key.  A change to any rule
    file that changes a pattern (or to the translation) changes it."""
    h = hashlib.sha256()
    for key, g in groups:
        _hash_group(h, key, g)
    return h.hexdigest()


def _library_versions() -> str:
    """The engine's, Hyperscan's and Python's versions: what else a compiled database
    depends on."""
    return (f"{ENGINE_VERSION}|{getattr(hyperscan, '__version__', '?')}|"
            f"{sys.version_info[:2]}")


def _group_digest(key: str, g: _Group) -> str:
    """A digest of one group's patterns, the library versions and (for a kind with side
    and repeat databases) :data:`SIDE_VERSION`, else :data:`HEADER_SPLIT_VERSION`: an
    entry of an older compiled set with the same digest holds exactly the databases this
    group would compile to."""
    h = hashlib.sha256()
    _hash_group(h, key, g)
    extra = f"|{SIDE_VERSION}" if key in _SIDE_KINDS else f"|h{HEADER_SPLIT_VERSION}"
    h.update(f"\0{_library_versions()}{extra}".encode())
    return h.hexdigest()


#: compiled rule sets kept in ``rules.cache_dir``: the one written last and the one before
CACHE_KEEP = 2


def _read_set(path: Path) -> dict[str, Any] | None:
    """A compiled set's entries as stored, or ``None`` when it cannot be read."""
    try:
        data = json.loads(path.read_text(encoding="ascii"))
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None


def _load_database(text: str) -> Any:
    """A database stored in a cache entry (base64 of ``hyperscan.dumpb``), or ``None``
    for the empty text of a group without one."""
    return hyperscan.loadb(base64.b64decode(text), hyperscan.HS_MODE_BLOCK) if text else None


class _Cache:
    """Compiled databases on disk: one JSON file per (rule digest, engine, library)."""

    def __init__(self, directory: Path, digest: str) -> None:
        """:param digest: :func:`_patterns_digest` of the rules to cache."""
        key = hashlib.sha256(f"{digest}|{_library_versions()}|h{HEADER_SPLIT_VERSION}"
                             .encode()).hexdigest()[:32]
        self.directory = directory
        self.path = directory / f"sa-rules-{key}.json"

    def load(self) -> dict[str, Any] | None:
        return _read_set(self.path)

    def _others(self) -> list[Path]:
        """The other compiled sets in the directory, newest first."""
        def written(path: Path) -> float:
            try:
                return path.stat().st_mtime
            except OSError:
                return 0.0

        return sorted((f for f in self.directory.glob("sa-rules-*.json") if f != self.path),
                      key=written, reverse=True)

    def previous_groups(self) -> dict[str, dict[str, Any]]:
        """The group entries of the other compiled sets kept in the directory, by their
        :func:`_group_digest` (the newest set's entry where two have one): what a
        changed rule set need not compile again."""
        found: dict[str, dict[str, Any]] = {}
        # oldest first: a newer set's entry replaces an older one's
        for path in reversed(self._others()):
            data = _read_set(path)
            if data is None:
                continue
            for entry in data.values():
                if isinstance(entry, dict) and isinstance(entry.get("digest"), str):
                    found[entry["digest"]] = entry
        return found

    def store(self, groups: dict[str, Any]) -> None:
        try:
            self.directory.mkdir(parents=True, exist_ok=True)
            fd, tmp = tempfile.mkstemp(dir=self.directory, prefix=".sa-rules-")
            with os.fdopen(fd, "w", encoding="ascii") as f:
                json.dump(groups, f)
            os.replace(tmp, self.path)
        except OSError as exc:
            log.warning("rules cache not written path=%s error=%s", self.path, exc)
        # the previous set is kept too, so going back to the rules (or engine) before a
        # change, or a restart that overlaps an upgrade, loads instead of compiling
        for old in self._others()[CACHE_KEEP - 1:]:
            try:
                old.unlink()
            except OSError:
                pass

