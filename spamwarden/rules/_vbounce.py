"""SpamAssassin's VBounce plugin: a bounce of mail the site really sent, from ``Plugin/VBounce.pm``.

``have_any_bounce_relays`` and ``check_welcomelist_bounce_relays`` (the rules of
``20_vbounce.cf``): the site lists its own outgoing relays with
``welcomelist_bounce_relays`` (read with the other address lists, ``_wlbllists``), and a
bounce that quotes a Received line one of them wrote answers mail the site sent.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING

from ._evalbase import ANY_KIND, EvalData, EvalEntry, nargs
from ._globs import ascii_lower
from ._prepare import body_start
from ._wlbllists import with_old_names

if TYPE_CHECKING:
    from ._prepare import PreparedMessage

__all__ = ["VBOUNCE_EVALS"]

#: a relay name in a quoted Received line: a dotted word between white space (VBounce.pm)
_BOUNCE_BODY_RELAY = re.compile(r" (\S+\.\S+) ")
_BOUNCE_RELAY = re.compile(rb"\s(\S+\.\S+)\s")
_QUOTED_RECEIVED = re.compile(rb"^[> ]*Received:", re.IGNORECASE)


def _have_bounce_relays(_msg: PreparedMessage, d: EvalData, _a: Sequence[str]) -> bool:
    """VBounce's ``have_any_bounce_relays``: the site set ``welcomelist_bounce_relays``."""
    return bool(d.wlbl.addr.get("welcomelist_bounce_relays"))


def _bounce_relays_quoted(msg: PreparedMessage, d: EvalData, _a: Sequence[str]) -> bool:
    """VBounce's ``check_welcomelist_bounce_relays``: a bounce quotes a Received line
    written by one of the site's own relays (``welcomelist_bounce_relays``), so it answers
    mail the site really sent (BOUNCE_MESSAGE and the rest then do not hit).

    As VBounce.pm: each rendered body paragraph opening with ``Received:`` (after ``>``
    quoting), then the undecoded body from its first such line, continuation lines
    joined; every dotted word between white space is a relay name, compared (ASCII lower
    case) with the list's globs.  A relay is found by its own text only, so the cost is
    linear in the body: a folded line is read on from where the last name was found,
    which finds the names a whole re-read would.
    """
    listed = d.wlbl.matcher("welcomelist_bounce_relays")
    if listed is None:
        return False

    def is_ours(name: bytes) -> bool:
        return listed.matches(ascii_lower(name.decode("utf-8", "surrogateescape")))

    for para in msg.body:
        if _QUOTED_RECEIVED.match(para):
            text = para.decode("utf-8", "surrogateescape")
            if any(listed.matches(ascii_lower(m.group(1)))
                   for m in _BOUNCE_BODY_RELAY.finditer(text)):
                return True
    start = body_start(msg.raw)
    pristine = msg.raw[start:] if start is not None else b""
    if b"received:" not in pristine.lower():
        return False
    found_received = False
    fullhdr = b""
    resume = 0  # where the last name found in ``fullhdr`` ended
    for line in pristine.split(b"\n"):
        if not found_received:
            if not _QUOTED_RECEIVED.match(line):
                continue
            found_received = True
        if line[:1].isspace():
            fullhdr += line
        else:
            fullhdr, resume = line, 0
        if not _QUOTED_RECEIVED.match(fullhdr):
            continue
        for m in _BOUNCE_RELAY.finditer(fullhdr, resume):
            if is_ours(m.group(1)):
                return True
            resume = m.end()
    return False


#: eval name -> (rule kinds, argument check, function); the old name too (SpamAssassin
#: 4.0 registers both).  "type does not matter" (VBounce.pm): 20_vbounce.cf has them as
#: body rules
VBOUNCE_EVALS: Mapping[str, EvalEntry] = with_old_names({
    "check_welcomelist_bounce_relays": (ANY_KIND, nargs(0), _bounce_relays_quoted),
    "have_any_bounce_relays": (ANY_KIND, nargs(0), _have_bounce_relays),
})
