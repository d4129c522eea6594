"""The milter's checks, one module per family; each defines ``CHECK``, a
:class:`~spamwarden.milter.registry.CheckDecl`.

:func:`spamwarden.milter.registry.discover` finds them: adding a check is one
new module here (and its test), nothing else.  See ``docs/architecture.md``,
"How to add a check".
"""
