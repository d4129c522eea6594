"""SpamAssassin 4's capture rules: named groups that set tags, ``%{TAG}`` templates that use them.

As in ``Mail::SpamAssassin::Conf::Parser::parse_captures`` and ``Plugin/Check.pm``:

- a ``header``, ``body``, ``rawbody``, ``uri`` or ``full`` rule whose pattern has a named
  group ``(?<NAME>...)`` (NAME upper case: ``[A-Z][A-Z0-9]*(?:_[A-Z0-9]+)*``) sets the tag
  NAME when it hits: from its first match (the first unit that matches), or from every
  match up to ``maxhits`` with ``tflags multiple``; empty values are dropped and the rest
  kept once each, in order (``PerMsgStatus::set_captures``).  The last rule run that
  captures a name sets it; capture rules run before every other rule (priority -10000);
- a rule whose pattern holds ``%{NAME}`` (``\\%{NAME}`` is the literal text) is run per
  message with the tag's values put in as ``(?:v1|v2|...)``, each value quoted
  (``quotemeta``): a value is text, never regex syntax, so a message cannot make the
  pattern slow; the rule's flags (``/i``) apply to it.  A rule whose tag is not set is not
  run: it does not hit, not even a ``!~`` one.

Such rules cannot be compiled ahead of time into Hyperscan: they run in ``re``, compiled
per distinct set of values (a small bounded cache).  Where a template is a top-level part
of the pattern (as in every rule Debian ships), a unit that does not hold one of the
values (compared case-insensitively) cannot match and is not run at all, so a message
whose text never mentions the captured value costs one substring search.

Bounds (not in SpamAssassin, which has none): a captured value longer than
:data:`MAX_TAG_VALUE` octets is dropped, a tag keeps at most :data:`MAX_TAG_VALUES`
values, and a message runs template patterns on at most :data:`MAX_TEMPLATE_RUNS` units
in all (past that, the remaining template rules do not hit).
"""

from __future__ import annotations

import functools
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Protocol

from ._bounded import BoundedPattern
from ._regex import PerlRegex

__all__ = [
    "MAX_TAG_VALUE",
    "MAX_TAG_VALUES",
    "MAX_TEMPLATE_RUNS",
    "CaptureRunner",
    "TemplateRegex",
    "capture_names",
    "split_templates",
]

#: Longest captured value kept, in octets (an address is at most 254; RFC 5321 §4.5.3.1.3).
MAX_TAG_VALUE = 512
#: Most distinct values a tag keeps (a ``tflags multiple`` capture can find many).
MAX_TAG_VALUES = 16
#: Most units (URIs, lines, header values) template patterns run on, per message.
MAX_TEMPLATE_RUNS = 256
# compiled patterns kept for distinct (pattern, values) pairs
_CACHE_SIZE = 128

# the tag names SpamAssassin sets from captures (PerMsgStatus::set_captures)
_TAG_NAME = re.compile(r"[A-Z][A-Z0-9]*(?:_[A-Z0-9]+)*\Z")
# Parser::parse_captures: an unescaped %{NAME} or %{NAME(args)}
_TEMPLATE = re.compile(r"(?<!\\)%\{([A-Z][A-Z0-9]*(?:_[A-Z0-9]+)*(?:\([^)}]*\))?)\}")
# Parser::parse_captures: a rule with a capture group runs first
_HAS_CAPTURE = re.compile(r"\(\?P?[<'][A-Z]")
# a template's place in the translated source: NUL, slot number, NUL (rule files hold
# no NUL, and the translator copies these characters as they are)
_SLOT = re.compile(rb"\x00(\d+)\x00")
_KIND_ORDER = {"header": 0, "body": 1, "uri": 2, "rawbody": 3, "full": 4}


class CapturingRule(Protocol):
    """What the runner reads of a rule (:class:`~._parser.Rule`)."""

    @property
    def name(self) -> str: ...
    @property
    def kind(self) -> str: ...
    @property
    def regex(self) -> PerlRegex | None: ...
    @property
    def negate(self) -> bool: ...
    @property
    def maxhits(self) -> int: ...
    @property
    def captures(self) -> tuple[str, ...]: ...
    @property
    def template(self) -> TemplateRegex | None: ...


@dataclass(frozen=True, slots=True)
class TemplateRegex:
    """A pattern with ``%{TAG}`` templates, translated with a slot where each was.

    ``regex.source`` holds ``\\x00N\\x00`` for slot N; ``tags[N]`` is its tag.
    ``required``: every slot is a top-level part of the pattern (no alternation or
    quantifier around it), so a match holds one of each slot's values.
    """

    regex: PerlRegex
    tags: tuple[str, ...]
    required: bool


def split_templates(pattern: str) -> tuple[str, tuple[str, ...]]:
    """Put a slot (``\\x00N\\x00``) in place of each unescaped ``%{TAG}`` of a Perl pattern.

    :param pattern: the text between the delimiters, as the rule file writes it.
    :returns: the pattern with slots and each slot's tag name (empty: no template).
    :raises: nothing.
    """
    if "%{" not in pattern:
        return pattern, ()
    tags: list[str] = []

    def slot(m: re.Match[str]) -> str:
        tags.append(m.group(1))
        return f"\x00{len(tags) - 1}\x00"

    return _TEMPLATE.sub(slot, pattern), tuple(tags)


def template_regex(rx: PerlRegex, tags: tuple[str, ...]) -> TemplateRegex:
    """The :class:`TemplateRegex` of a pattern translated from :func:`split_templates`' text.

    :param rx: the translated pattern (slots copied through).
    :param tags: the slots' tags.
    :returns: the template pattern, with whether its slots are required.
    :raises: nothing.
    """
    return TemplateRegex(rx, tags, _slots_required(rx.source))


def capture_names(pattern: str, rx: PerlRegex) -> tuple[str, ...]:
    """The tags a pattern captures (its upper-case named groups), as SpamAssassin sets them.

    :param pattern: the Perl pattern as written (SpamAssassin's test for a capture).
    :param rx: its translation.
    :returns: the tag names, empty when the rule captures nothing.
    :raises: nothing (an uncompilable ``rx`` captures nothing).
    """
    if _HAS_CAPTURE.search(pattern) is None:
        return ()
    try:
        names = rx.compile().groupindex
    except ValueError:
        return ()
    return tuple(n for n in names if _TAG_NAME.match(n))


def _slots_required(source: bytes) -> bool:
    """Whether every slot sits at depth 0 of a pattern without top-level ``|``, not
    followed by a quantifier."""
    depth, i, n = 0, 0, len(source)
    while i < n:
        c = source[i]
        if c == 0x5C:  # backslash
            i += 2
            continue
        if c == 0x5B:  # [...]
            i += 1
            if i < n and source[i] == 0x5E:
                i += 1
            if i < n and source[i] == 0x5D:
                i += 1
            while i < n and source[i] != 0x5D:
                i += 2 if source[i] == 0x5C else 1
            i += 1
            continue
        if c == 0x28:
            depth += 1
        elif c == 0x29:
            depth -= 1
        elif c == 0x7C and depth == 0:
            return False
        elif c == 0:
            m = _SLOT.match(source, i)
            if m is not None:
                if depth != 0 or source[m.end():m.end() + 1] in (b"*", b"+", b"?", b"{"):
                    return False
                i = m.end()
                continue
        i += 1
    return True


def _head(t: TemplateRegex) -> re.Pattern[bytes] | None:
    """The pattern before a template's one slot, when the slot ends the pattern and
    nothing before it looks past it (look-ahead, ``\\b``, ``$``) or changes flags."""
    src = t.regex.source
    if len(t.tags) != 1 or not t.required or not src.endswith(b"\x000\x00"):
        return None
    head = src[:-3]
    if (b"$" in head or b"\\Z" in head or b"\\z" in head or head.endswith((b"\\b", b"\\B"))
            or re.search(rb"\(\?(?!:|<!|<=|P<)", head)):
        return None
    rx = PerlRegex(b"(?:" + head + b")\\Z", t.regex.ignorecase, t.regex.multiline,
                   t.regex.dotall)
    try:
        return rx.compile()
    except ValueError:
        return None


def _holding(units: Sequence[bytes], values: Sequence[bytes], *,
             ignorecase: bool) -> list[tuple[bytes, bytes]]:
    """The units holding one of ``values`` (ignoring ASCII case if asked), each with its
    text as compared (lower-cased when the case is ignored)."""
    wanted = [v.lower() for v in values] if ignorecase else list(values)
    out = []
    for u in units:
        h = u.lower() if ignorecase else u
        if any(v in h for v in wanted):
            out.append((u, h))
    return out


def _head_hit(head: re.Pattern[bytes] | BoundedPattern, ignorecase: bool,
              values: Sequence[bytes],
              units: Sequence[tuple[bytes, bytes]], budget: int) -> tuple[bool, int]:
    """Whether ``head`` ends just before one of ``values`` in a unit (the rule's match),
    and how many searches that took (at most ``budget``); ``units``: (unit, the unit
    lower-cased when the rule ignores case)."""
    used = 0
    wanted = [v.lower() for v in values] if ignorecase else list(values)
    for u, hay in units:
        for v in wanted:
            at = hay.find(v)
            while at >= 0:
                if used >= budget:
                    return False, used
                used += 1
                if head.search(u, 0, at) is not None:
                    return True, used
                at = hay.find(v, at + 1)
    return False, used


@functools.lru_cache(maxsize=_CACHE_SIZE)
def _bounded(name: str, pat: re.Pattern[bytes]) -> BoundedPattern:
    """A filled template's matcher, kept with the pattern (its ``regex`` form is compiled
    once, at its first long text)."""
    return BoundedPattern(name, pat)


@functools.lru_cache(maxsize=_CACHE_SIZE)
def _filled(rx: PerlRegex, fills: tuple[bytes, ...]) -> re.Pattern[bytes]:
    """``rx`` with slot N replaced by ``fills[N]`` (already quoted)."""
    source = _SLOT.sub(lambda m: fills[int(m.group(1))], rx.source)
    return PerlRegex(source, rx.ignorecase, rx.multiline, rx.dotall).compile()


def _alternation(values: Sequence[bytes]) -> bytes:
    """``(?:v1|v2)`` with each value quoted, as Check.pm's capture_rules_replace."""
    return b"(?:" + b"|".join(re.escape(v) for v in values) + b")"


def _kept(found: Sequence[bytes]) -> tuple[bytes, ...]:
    """Non-empty values once each, in order, bounded in length and number."""
    out: dict[bytes, None] = {}
    for v in found:
        if v and len(v) <= MAX_TAG_VALUE and v not in out:
            out[v] = None
            if len(out) >= MAX_TAG_VALUES:
                break
    return tuple(out)


class CaptureRunner:
    """The capture and template rules of a rule set, run after the engine's own scans.

    :param rules: every rule read; those with :attr:`captures` or :attr:`template` count.
    :raises: nothing.
    """

    def __init__(self, rules: Mapping[str, CapturingRule]) -> None:
        def order(r: CapturingRule) -> tuple[int, str]:
            return (_KIND_ORDER.get(r.kind, 5), r.name)

        self.templates = sorted((r for r in rules.values() if r.template is not None), key=order)
        #: rules the engine runs that set tags (their hits are counted by the engine)
        self.capturers = sorted((r for r in rules.values()
                                 if r.captures and r.template is None and r.regex is not None
                                 and not r.negate), key=order)
        self._patterns: dict[str, re.Pattern[bytes]] = {}
        #: (kind, tag) -> the rules over those units needing that tag's value as a part of
        #: every match: one search of the units tells whether any of them can hit (unless
        #: a template rule captures too, so that tags may change during the run)
        self._by_tag: dict[tuple[str, str], list[CapturingRule]] = {}
        if not any(r.captures for r in self.templates):
            for r in self.templates:
                t = r.template
                assert t is not None
                if r.kind in ("body", "rawbody", "uri", "full") and t.required and len(
                        set(t.tags)) == 1:
                    self._by_tag.setdefault((r.kind, t.tags[0]), []).append(r)
        for r in self.capturers:
            assert r.regex is not None
            self._patterns[r.name] = r.regex.compile()
        #: template rules ending in their one slot -> the pattern before it, ending at
        #: the end (``\Z``): the rule hits where that pattern ends just before a value
        self._heads: dict[str, BoundedPattern] = {}
        for r in self.templates:
            assert r.template is not None
            head = _head(r.template)
            if head is not None and r.maxhits <= 1 and not r.captures:
                self._heads[r.name] = BoundedPattern(r.name, head)

    @property
    def capture_rules(self) -> frozenset[str]:
        """Rules that must run for the tags they set (while any template rule exists)."""
        if not self.templates:
            return frozenset()
        return frozenset(r.name for r in self.capturers)

    def run(self, counts: dict[str, int], units_of: Callable[[str], list[bytes]],
            skip: frozenset[str] = frozenset()) -> int:
        """Set the tags the hit capture rules capture, then run the template rules.

        :param counts: the engine's counts so far; template rules that hit are added.
        :param units_of: the units of the rule so named (header values: the value, or its
            ``[if-unset:]`` text or "" when absent).
        :param skip: rules whose result nobody reads.
        :returns: how many units template patterns ran on (at most
            :data:`MAX_TEMPLATE_RUNS`).
        :raises: nothing.
        """
        if not self.templates:
            return 0
        tags: dict[str, tuple[bytes, ...]] = {}
        for rule in self.capturers:
            if rule.name in counts:
                self._capture(self._patterns[rule.name], rule, units_of(rule.name), tags)
        if not tags:
            return 0
        runs = 0
        # id(units) -> (units, their text lower-cased); the units are kept so that no id
        # is reused during the loop
        lowered: dict[int, tuple[list[bytes], bytes]] = {}
        present: dict[tuple[int, tuple[tuple[bytes, ...], ...]], bool] = {}
        # (id(units), values, ignore case) -> the units holding a value, with their
        # lower-cased text when the case is ignored
        low_units: dict[tuple[int, tuple[bytes, ...], bool], list[tuple[bytes, bytes]]] = {}
        done: set[str] = set()  # rules settled by the search of their units
        for (_, tag), group in self._by_tag.items():
            values = tags.get(tag)
            if values is not None:
                units = units_of(group[0].name)
                kept = lowered.get(id(units))
                if kept is None:
                    kept = lowered[id(units)] = (units, b"\n".join(units).lower())
                if any(x.lower() in kept[1] for x in values):
                    # the rules ending in the tag: at the units that hold a value
                    holding: dict[bool, list[tuple[bytes, bytes]]] = {}
                    for rule in group:
                        head = self._heads.get(rule.name)
                        if head is None or runs >= MAX_TEMPLATE_RUNS:
                            continue  # run one by one below
                        t = rule.template
                        assert t is not None
                        ic = t.regex.ignorecase
                        at = holding.get(ic)
                        if at is None:
                            at = holding[ic] = _holding(units, values, ignorecase=ic)
                        budget = MAX_TEMPLATE_RUNS - runs
                        hit, used = _head_hit(head, ic, values, at, budget)
                        runs += used
                        # (a search cut short by the bound counts as not run)
                        if hit != rule.negate and (hit or used < budget):
                            counts[rule.name] = 1
                        done.add(rule.name)
                    continue
                for rule in group:
                    if rule.negate:
                        counts[rule.name] = 1
            done.update(rule.name for rule in group)
        if len(done) == len(self.templates):
            return runs
        for rule in self.templates:
            if runs >= MAX_TEMPLATE_RUNS:
                break
            if rule.name in done:
                continue
            t = rule.template
            assert t is not None
            if rule.name in skip and not rule.captures:
                continue
            vals = [tags[tag] for tag in t.tags if tag in tags]
            if len(vals) != len(t.tags):
                continue  # a tag not set: the rule is not run
            units = units_of(rule.name)
            if t.required:
                # a unit that holds none of a slot's values cannot match
                # (the rules of one tag and kind share the answer: searched once)
                key = (id(units), tuple(vals))
                held = present.get(key)
                if held is None:
                    kept = lowered.get(id(units))
                    if kept is None:
                        kept = lowered[id(units)] = (units, b"\n".join(units).lower())
                    held = present[key] = all(any(x.lower() in kept[1] for x in v)
                                              for v in vals)
                if not held:
                    if rule.negate:
                        counts[rule.name] = 1
                    continue
                need = [tuple(x.lower() for x in v) for v in vals]
                head = self._heads.get(rule.name)
                if head is not None:
                    # the units holding a value (as the rule's case sees it), found
                    # once for the rules of one tag
                    ic = t.regex.ignorecase
                    hkey = (id(units), vals[0], ic)
                    found = low_units.get(hkey)
                    if found is None:
                        found = low_units[hkey] = _holding(units, vals[0], ignorecase=ic)
                    budget = MAX_TEMPLATE_RUNS - runs
                    hit, used = _head_hit(head, ic, vals[0], found, budget)
                    runs += used
                    if hit != rule.negate and (hit or used < budget):
                        counts[rule.name] = 1
                    continue
                units = [u for u in units
                         if all(any(x in u.lower() for x in v) for v in need)]
            pat = _filled(t.regex, tuple(_alternation(v) for v in vals))
            units = units[:MAX_TEMPLATE_RUNS - runs]
            runs += len(units)
            n = self._count(pat, rule, units)
            if rule.negate:
                n = 0 if n else 1
            if n:
                counts[rule.name] = n
                if rule.captures and not rule.negate:
                    self._capture(pat, rule, units, tags)
        return runs

    @staticmethod
    def _count(pat: re.Pattern[bytes], rule: CapturingRule, units: Sequence[bytes]) -> int:
        # within the message's time limit, a long unit with a timeout (:mod:`._bounded`)
        bp = _bounded(rule.name, pat)
        if rule.maxhits <= 1:
            return 1 if any(bp.search(u) for u in units) else 0
        n = 0
        for u in units:
            for _ in bp.finditer(u):
                n += 1
                if n >= rule.maxhits:
                    return n
        return n

    @staticmethod
    def _capture(pat: re.Pattern[bytes], rule: CapturingRule, units: Sequence[bytes],
                 tags: dict[str, tuple[bytes, ...]]) -> None:
        """Set the tags of the rule's first match, or of its matches up to ``maxhits``."""
        found: dict[str, list[bytes]] = {}
        n = 0
        bp = _bounded(rule.name, pat)
        for u in units:
            for m in bp.finditer(u):
                for name in rule.captures:
                    v = m.group(name)
                    if v:
                        found.setdefault(name, []).append(v)
                n += 1
                if n >= rule.maxhits:
                    break
            if n >= rule.maxhits:
                break
        for name, vals in found.items():
            kept = _kept(vals)
            if kept:
                tags[name] = kept
