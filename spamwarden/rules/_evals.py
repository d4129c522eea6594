"""SpamAssassin ``eval:`` tests that need no network: the registry of those implemented.

Each SpamAssassin plugin's evals are reimplemented in a module of their own, which lists
them (name -> rule kinds, a check of the arguments, the function): ``_headereval``
(HeaderEval), ``_bodyeval`` (BodyEval), ``_mimeeval`` (MIMEEval), ``_htmleval``
(HTMLEval), ``_httpsmismatch`` (HTTPSMismatch), ``_urieval`` (URIEval), ``_relayeval``
(RelayEval), ``_freemail`` (FreeMail), ``_wlbleval`` (WLBLEval's URI host lists and
sender domain), ``_wlbl`` (WLBLEval's and WelcomeListSubject's address lists),
``_vbounce`` (VBounce's bounce relays), ``_auth`` (SPF and DKIM, over the caller's
results) and ``_imageinfo`` (ImageInfo).

What they share (the settings evals read, PerMsgStatus's addresses, the argument
checks) is in ``_evalbase``, ``Locales.pm``'s charsets in ``_locales``.  Each entry
names the rule kinds it may appear in and checks its arguments when rules are read, so
an unsupported argument skips the rule with a reason instead of failing at scan time.
Every other eval is skipped.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

from ._auth import AUTH_EVALS
from ._bodyeval import BODY_EVALS
from ._evalbase import EvalData, EvalEntry, EvalFn
from ._freemail import FREEMAIL_EVALS
from ._headereval import HEADER_EVALS
from ._htmleval import HTML_EVALS
from ._httpsmismatch import HTTPS_MISMATCH_EVALS
from ._imageinfo import IMAGE_EVALS, IMAGE_EVALS_BY_KIND
from ._mimeeval import MIME_EVALS
from ._relayeval import RELAY_EVALS
from ._urieval import URI_EVALS
from ._vbounce import VBOUNCE_EVALS
from ._wlbl import WLBL_EVALS
from ._wlbleval import WLBLEVAL_EVALS

if TYPE_CHECKING:
    from ._prepare import PreparedMessage

__all__ = ["EVALS", "IMPLEMENTED_EVALS", "EvalData", "EvalFn", "EvalSpec", "parse_eval_args",
           "run_eval"]


@dataclass(frozen=True, slots=True)
class EvalSpec:
    """An implemented eval: rule kinds, a check of its arguments, the function.

    :ivar by_kind: for an eval whose result depends on the rule's kind
        (``image_to_text_ratio`` reads the text a rule of that kind is given): the
        function for a rule of a kind; ``None`` for every other eval, whose ``fn`` serves
        every kind.
    """

    kinds: frozenset[str]
    check: Callable[[Sequence[str]], bool]
    fn: EvalFn
    by_kind: Callable[[str], EvalFn] | None = None

    def for_kind(self, kind: str) -> EvalFn:
        """The function a rule of ``kind`` runs (``""``: no kind given)."""
        return self.fn if self.by_kind is None else self.by_kind(kind)


_ARG = re.compile(r"""\s*(?:'([^']*)'|"([^"]*)"|([^,'"\s]+))\s*(?:,|$)""")


def parse_eval_args(text: str) -> tuple[str, ...]:
    """The arguments of ``eval:fn(...)`` as strings (quotes removed, ``undef`` kept).

    :raises ValueError: text that is not a comma-separated list of simple values.
    """
    out: list[str] = []
    pos = 0
    text = text.strip()
    while pos < len(text):
        m = _ARG.match(text, pos)
        if m is None or m.end() == pos:
            raise ValueError(f"cannot read {text[pos:pos + 20]!r}")
        out.append(next(g for g in m.groups() if g is not None))
        pos = m.end()
    return tuple(out)


#: each plugin module's evals; an eval name is listed by one of them only
_TABLES: tuple[Mapping[str, EvalEntry], ...] = (
    HEADER_EVALS, BODY_EVALS, MIME_EVALS, HTML_EVALS, HTTPS_MISMATCH_EVALS, URI_EVALS,
    RELAY_EVALS, FREEMAIL_EVALS, WLBLEVAL_EVALS, WLBL_EVALS, VBOUNCE_EVALS, AUTH_EVALS,
    IMAGE_EVALS)
#: the evals whose function depends on the rule's kind (each module's own table)
_BY_KIND: Mapping[str, Callable[[str], EvalFn]] = {**IMAGE_EVALS_BY_KIND}
EVALS: Mapping[str, EvalSpec] = {
    name: EvalSpec(kinds, check, fn, _BY_KIND.get(name))
    for table in _TABLES for name, (kinds, check, fn) in table.items()}
#: (rule kind, eval function) pairs that can run.
IMPLEMENTED_EVALS = frozenset((k, name) for name, spec in EVALS.items() for k in spec.kinds)


#: what an eval that fails raises: no hit (:func:`run_eval`, and the engine's own calls)
EVAL_ERRORS = (ValueError, TypeError, IndexError, OverflowError, UnicodeError, re.error)


def run_eval(name: str, msg: PreparedMessage, data: EvalData, args: Sequence[str], *,
             kind: str = "") -> bool:
    """Run one implemented eval.

    :param kind: the rule's kind (``body``, ``rawbody``, ...), for an eval that reads the
        text that kind is given (:meth:`EvalSpec.for_kind`).
    :returns: whether the rule hits; a failure inside the eval counts as no hit.
    """
    try:
        return bool(EVALS[name].for_kind(kind)(msg, data, args))
    except EVAL_ERRORS:
        return False
