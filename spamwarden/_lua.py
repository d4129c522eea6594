"""Lua scripts for Redis, kept as ``.lua`` files beside the code that runs them.

Each script lives in a ``lua/`` directory of its package (for example
``spamwarden/reputation/lua/listing_put.lua``) and opens with a comment header
naming its ``KEYS``, ``ARGV`` and return value.  The files ship as package data
(``setup.cfg`` ``[options.package_data]``) and are read once, when the module
that uses them is imported.
"""

from __future__ import annotations

from importlib.resources import files

__all__ = ["lua_script"]


def lua_script(package: str, name: str) -> str:
    """The text of the script ``<package>/lua/<name>.lua``.

    :param package: a dotted package name, e.g. ``"spamwarden.reputation"``.
    :param name: the script's file name without ``.lua``.
    :raises FileNotFoundError: no such script (a packaging mistake).
    """
    return files(package).joinpath("lua", f"{name}.lua").read_text(encoding="utf-8")
