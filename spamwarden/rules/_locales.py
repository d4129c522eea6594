"""The charsets a site expects, as SpamAssassin's ``Locales.pm`` and ``ok_locales`` tell them.

HeaderEval's and MIMEEval's "faraway charset" evals (CHARSET_FARAWAY_HEADER,
CHARSET_FARAWAY, ``check_for_mime('mime_faraway_charset')``) read them.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Sequence

from ._evalbase import EvalData

__all__ = ["charset_ok_for_locales", "ok_locales"]


_CHARSETS_FOR_LOCALE = {
    "ja": "EUCJP JISX020119760 JISX020819830 JISX020819900 JISX020819970 JISX021219900 "
          "JISX021320001 JISX021320002 SHIFT_JIS SHIFTJIS ISO2022JP SJIS JIS7 JISX0201 "
          "JISX0208 JISX0212",
    "ko": "EUCKR KSC56011987",
    **dict.fromkeys(("ru", "ka", "tg", "be", "uk", "bg"),
                    "KOI8R KOI8U KOI8T ISOIR111 CP1251 GEORGIANPS CP1251 PT154 CP866"),
    "th": "TIS620",
    "zh": "GB1988 GB2312 GB231219800 GB18030 GBK BIG5HKSCS BIG5 EUCTW ISO2022CN",
}
_ALWAYS_OK_CHARSET = re.compile(r"USASCII\Z|ASCII\Z|ISO8859|ISO10646|UTF|UCS|CP125|WINDOWS"
                                r"|IBM852\Z|UNICODE11UTF[78]|XUNKNOWN\Z|ISO\Z")


def ok_locales(d: EvalData) -> list[str] | None:
    """``ok_locales`` as a list, ``None`` for "all" (every charset is then fine).  The
    process's LANG/LC_* that SpamAssassin adds are not: a daemon's environment must
    not change scores."""
    return _split_locales(d.ok_locales)


@functools.lru_cache(maxsize=16)
def _split_locales(text: str) -> list[str] | None:
    locales = text.split()
    return None if "all" in locales else locales


def charset_ok_for_locales(charset: str, locales: Sequence[str]) -> bool:
    """Locales.pm's ``is_charset_ok_for_locales``: Latin, Unicode and Windows charsets
    always; else one the locales' scripts use (ja, ko, zh, th, Cyrillic)."""
    cs = re.sub(r"[^A-Z0-9]", "", charset.upper())
    cs = cs[2:] if cs.startswith("3D") else cs  # (broken by quoted-printable)
    if _ALWAYS_OK_CHARSET.match(cs):
        return True
    for locale in locales:
        if locale == "C":
            locale = "en"
        locale = re.sub(r"^([a-z][a-z]).*\Z", r"\1", locale, flags=re.DOTALL)
        ok = _CHARSETS_FOR_LOCALE.get(locale)
        if ok is not None and cs in ok.split(" "):
            return True
    return False
