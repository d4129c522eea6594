"""MIME parameters (``Content-Type: text/plain; charset=utf-8``) read by the email package
in linear time, from a bounded piece of the field.

The standard library reads a field's parameters with ``email.message._parseparam``,
which cuts the value one parameter at a time by copying the rest of it, and at every
``;`` inside an open quoted string counts the quotes again from the parameter's start:
quadratic in the field's length.  It reads them again at every ``get_param`` (the
parser's ``get_boundary``, ``get_content_charset``, ``get_filename``).  The sender
writes the field, once per MIME part: 100 KB of ``;`` in a Content-Type took 0.4 s to
parse, and a message of 100 such parts about a minute of CPU, holding the
interpreter lock for all the mail the process was handling.

:class:`ParamsMessage` is the email package's ``Message`` with that reading replaced:
the parameters ``_parseparam`` and ``email.utils.decode_params`` give, in the same
order and form, of the first :data:`MAX_PARAM_CHARS` characters of the value (the
bound :func:`~spamwarden.mail.content_parameters` reads too), found once per value
of each part.  No real field comes near it: a long file name in RFC 2231 pieces takes
a few hundred characters.
"""

from __future__ import annotations

import email.message
import email.utils
from typing import Any

__all__ = ["MAX_PARAM_CHARS", "ParamsMessage", "params_cut", "split_params"]

#: characters of a field value read for its parameters
MAX_PARAM_CHARS = 4096


def split_params(value: str) -> list[str]:
    """``email.message._parseparam(value)`` in linear time: the value cut at each ``;``
    outside a quoted string, a parameter's name stripped and lower-cased, each piece
    stripped.

    As there, a ``;`` is inside a quoted string when the piece before it holds an odd
    number of ``"`` that do not follow a backslash; each piece is counted once.
    """
    plist: list[str] = []
    start, n = 0, len(value)
    while True:
        end = value.find(";", start)
        if end > start:
            odd = (value.count('"', start, end) - value.count('\\"', start, end)) % 2
            while end >= 0 and odd:
                # the quotes between this ";" and the next (a ";" is never one of a pair)
                nxt = value.find(";", end + 1)
                stop = n if nxt < 0 else nxt
                odd = (odd + value.count('"', end, stop) - value.count('\\"', end, stop)) % 2
                end = nxt
        if end < 0:
            end = n
        piece = value[start:end]
        if "=" in piece:
            i = piece.index("=")
            piece = piece[:i].strip().lower() + "=" + piece[i + 1:].strip()
        plist.append(piece.strip())
        if end >= n:
            return plist
        start = end + 1


def params_cut(part: email.message.Message) -> bool:
    """Whether a part's Content-Type or Content-Disposition runs past what is read of
    it for parameters (:data:`MAX_PARAM_CHARS`)."""
    return any(len(str(part.get(name, ""))) > MAX_PARAM_CHARS
               for name in ("content-type", "content-disposition"))


class ParamsMessage(email.message.Message):
    """``email.message.Message`` whose parameters are read by :func:`split_params` from
    the first :data:`MAX_PARAM_CHARS` characters of a field, once per value (see the
    module text)."""

    def _get_params_preserve(self, failobj: Any, header: str) -> Any:
        missing = object()
        value = self.get(header, missing)
        if value is missing:
            return failobj
        text = str(value)[:MAX_PARAM_CHARS]
        memo: dict[tuple[str, str], list[Any]] | None = self.__dict__.get("_params_memo")
        if memo is None:
            memo = self.__dict__["_params_memo"] = {}
        key = (header.lower(), text)
        found = memo.get(key)
        if found is None:
            params: list[tuple[str, str]] = []
            for piece in split_params(text):
                name, eq, val = piece.partition("=")
                params.append((name.strip(), val.strip()) if eq else (piece.strip(), ""))
            found = memo[key] = email.utils.decode_params(params)
        return list(found)
