"""``spamwarden rules --lint``: what in a site's own rule files will not work as written.

SpamAssassin's ``spamassassin --lint`` is how an administrator checks a ``local.cf`` after
an edit.  This is the same check for the rules this engine runs: it reads the parse
result (:class:`~spamwarden.rules.RuleSet`) and reports, for the files it is given (the
site's own, not the distribution's), each

* rule defined there that does not run, with the reason (a regular expression that does
  not compile, a ``meta`` that does not parse, an ``eval:`` this engine does not have);
* line that is not understood (a ``score`` without 1 or 4 numbers, a rule line without a
  name or a test);
* ``score``, ``describe`` or ``tflags`` line for a rule no file defines (a typo in the
  name: the line has no effect);
* ``meta`` that reads a rule no file defines (it counts as not hit).

A rule disabled with ``score NAME 0`` is not a problem, and a rule defined only inside
an ``if``/``ifplugin`` that is false here still counts as defined.
"""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import dataclass

from ._parser import RuleSet

__all__ = ["Problem", "lint"]

#: skip reasons that are a deliberate choice of the files, not a problem
_NOT_PROBLEMS = ("score 0: disabled", "suggested score 0: disabled")


@dataclass(frozen=True, order=True)
class Problem:
    """One thing that will not work as written.

    :ivar file: the rule file.
    :ivar line: the line number in it (0: the file as a whole).
    :ivar rule: the rule it concerns (``""`` for a line naming none).
    :ivar message: what is wrong, in one line.
    """

    file: str
    line: int
    rule: str
    message: str

    def __str__(self) -> str:
        where = f"{self.file}:{self.line}" if self.line else self.file
        return f"{where}: {self.rule + ': ' if self.rule else ''}{self.message}"


def _split(origin: str) -> tuple[str, int]:
    file, _, line = origin.rpartition(":")
    return (file, int(line)) if line.isdigit() else (origin, 0)


def lint(ruleset: RuleSet, files: Collection[str], missing: Collection[str] = ()) -> list[Problem]:
    """The problems of the rules and lines read from ``files``.

    :param ruleset: the parse of every rule file (the distribution's too, so names
        they define count as defined).
    :param files: the files to report on, as ``ruleset.files`` names them.
    :param missing: files asked for that were not found (each one problem).
    :returns: problems sorted by file and line.
    """
    wanted = set(files)
    out: list[Problem] = [Problem(m, 0, "", "not found") for m in missing]

    def add(origin: str, rule: str, message: str) -> None:
        file, line = _split(origin)
        if file in wanted:
            out.append(Problem(file, line, rule, message))

    defined = set(ruleset.origins) | ruleset.defined_inactive
    for name, reason in ruleset.skipped.items():
        if reason not in _NOT_PROBLEMS and name in ruleset.origins:
            add(ruleset.origins[name], name, f"not run: {reason}")
    for origin, message in ruleset.notes:
        add(origin, "", message)
    for origin, directive, name in ruleset.mentions:
        if name not in defined:
            add(origin, name, f"{directive} for a rule no file defines: the line has no effect")
    for name, rule in ruleset.rules.items():
        if rule.meta is None:
            continue
        for dep in sorted(rule.meta.names() - defined):
            add(ruleset.origins[name], name,
                f"meta reads {dep}, which no file defines: it counts as not hit")
    return sorted(set(out))
