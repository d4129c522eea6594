"""The expression language of SpamAssassin's ``meta`` rules and ``if`` lines.

Perl evaluates a meta expression with each rule name replaced by its hit count; ``&&``
and ``||`` return an operand (not a boolean), comparisons return 1 or 0.  This module
parses that subset (names, numbers, ``! - * / + - < > <= >= == != && || ( )``) into a
tree and compiles the tree into closures: no ``eval`` of rule text.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass

__all__ = ["Expr", "ExprError", "compile_expr", "parse_expr"]

Counts = Mapping[str, float]
Evaluator = Callable[[Counts], float]

_TOKEN = re.compile(
    r"\s*(?:(?P<num>\d+(?:\.\d+)?)|(?P<name>[A-Za-z_][A-Za-z0-9_]*)"
    r"|(?P<op>&&|\|\||<=|>=|==|!=|[-+*/<>!()]))"
)

# binary operators by precedence, loosest first (perlop)
_LEVELS: tuple[tuple[str, ...], ...] = (
    ("||",), ("&&",), ("==", "!="), ("<", ">", "<=", ">="), ("+", "-"), ("*", "/"),
)
_MAX_DEPTH = 200


class ExprError(ValueError):
    """An expression this parser does not accept; ``args[0]`` says where."""


@dataclass(frozen=True, slots=True)
class Expr:
    """One node: ``op`` is ``num``, ``name``, ``!``, ``neg`` or a binary operator."""

    op: str
    value: float = 0.0
    name: str = ""
    left: Expr | None = None
    right: Expr | None = None

    def names(self) -> set[str]:
        """Every rule name the expression reads."""
        if self.op == "name":
            return {self.name}
        out: set[str] = set()
        for child in (self.left, self.right):
            if child is not None:
                out |= child.names()
        return out


def _tokenize(text: str) -> list[tuple[str, str]]:
    tokens: list[tuple[str, str]] = []
    pos = 0
    text = text.rstrip()
    while pos < len(text):
        m = _TOKEN.match(text, pos)
        if m is None or m.end() == pos:
            raise ExprError(f"unexpected {text[pos:pos + 10]!r}")
        kind = m.lastgroup or "op"
        tokens.append((kind, m.group(kind)))
        pos = m.end()
    return tokens


def parse_expr(text: str) -> Expr:
    """Parse a meta expression.

    :param text: e.g. ``(__A + __B > 1) && !__C``.
    :returns: the tree.
    :raises ExprError: a token or structure outside the subset.
    """
    tokens = _tokenize(text)
    if not tokens:
        raise ExprError("empty expression")
    pos = 0

    def peek() -> str | None:
        return tokens[pos][1] if pos < len(tokens) else None

    def binary(level: int, depth: int) -> Expr:
        nonlocal pos
        if depth > _MAX_DEPTH:
            raise ExprError("nested too deeply")
        if level == len(_LEVELS):
            return unary(depth)
        left = binary(level + 1, depth + 1)
        while peek() in _LEVELS[level] and tokens[pos][0] == "op":
            op = tokens[pos][1]
            pos += 1
            right = binary(level + 1, depth + 1)
            left = Expr(op, left=left, right=right)
        return left

    def unary(depth: int) -> Expr:
        nonlocal pos
        if pos >= len(tokens):
            raise ExprError("expression ends early")
        kind, tok = tokens[pos]
        pos += 1
        if kind == "num":
            return Expr("num", value=float(tok))
        if kind == "name":
            return Expr("name", name=tok)
        if tok == "!":
            return Expr("!", left=unary(depth + 1))
        if tok == "-":
            return Expr("neg", left=unary(depth + 1))
        if tok == "+":
            return unary(depth + 1)
        if tok == "(":
            inner = binary(0, depth + 1)
            if peek() != ")":
                raise ExprError("missing )")
            pos += 1
            return inner
        raise ExprError(f"unexpected {tok!r}")

    tree = binary(0, 0)
    if pos != len(tokens):
        raise ExprError(f"unexpected {tokens[pos][1]!r}")
    return tree


def compile_expr(tree: Expr) -> Evaluator:
    """Compile a tree into a function of the hit counts (missing names count 0).

    :param tree: from :func:`parse_expr`.
    :returns: ``f(counts) -> number``; the rule hits when the number is not 0.
    """
    op = tree.op
    if op == "num":
        v = tree.value
        return lambda c: v
    if op == "name":
        n = tree.name
        return lambda c: c.get(n, 0.0)
    assert tree.left is not None
    a = compile_expr(tree.left)
    if op == "!":
        return lambda c: 0.0 if a(c) else 1.0
    if op == "neg":
        return lambda c: -a(c)
    assert tree.right is not None
    b = compile_expr(tree.right)
    if op == "&&":
        def and_(c: Counts) -> float:
            x = a(c)
            return b(c) if x else x
        return and_
    if op == "||":
        def or_(c: Counts) -> float:
            x = a(c)
            return x if x else b(c)
        return or_
    if op == "+":
        return lambda c: a(c) + b(c)
    if op == "-":
        return lambda c: a(c) - b(c)
    if op == "*":
        return lambda c: a(c) * b(c)
    if op == "/":
        def div(c: Counts) -> float:
            y = b(c)
            return a(c) / y if y else 0.0  # Perl dies; SpamAssassin then scores the meta 0
        return div
    if op == "<":
        return lambda c: 1.0 if a(c) < b(c) else 0.0
    if op == ">":
        return lambda c: 1.0 if a(c) > b(c) else 0.0
    if op == "<=":
        return lambda c: 1.0 if a(c) <= b(c) else 0.0
    if op == ">=":
        return lambda c: 1.0 if a(c) >= b(c) else 0.0
    if op == "==":
        return lambda c: 1.0 if a(c) == b(c) else 0.0
    if op == "!=":
        return lambda c: 1.0 if a(c) != b(c) else 0.0
    raise ExprError(f"operator {op}")  # pragma: no cover - the parser makes no others


def _source(tree: Expr) -> str:
    """Python source computing ``tree`` over a dict ``c`` (names checked by the tokenizer)."""
    op = tree.op
    if op == "num":
        return repr(tree.value)
    if op == "name":  # c.get(name, 0.0) without a call (most names are absent)
        return f"(c[{tree.name!r}] if {tree.name!r} in c else 0.0)"
    assert tree.left is not None
    a = _source(tree.left)
    if op == "!":
        return f"(0.0 if {a} else 1.0)"
    if op == "neg":
        return f"(-{a})"
    assert tree.right is not None
    b = _source(tree.right)
    if op == "&&":  # Python's and/or return an operand, as Perl's do
        return f"({a} and {b})"
    if op == "||":
        return f"({a} or {b})"
    if op in ("+", "-", "*"):
        return f"({a} {op} {b})"
    if op == "/":
        return f"_div({a}, {b})"
    return f"(1.0 if {a} {op} {b} else 0.0)"


def _truth_source(tree: Expr) -> str:
    """Python source whose truth is that of ``tree`` over a dict ``c`` holding no false
    value (0): a name is then true when present (``in``, no call); ``!``, ``&&`` and ``||``
    only pass truth on.  Elsewhere a value is needed: :func:`_source`."""
    op = tree.op
    if op == "name":
        return f"({tree.name!r} in c)"
    if op == "!":
        assert tree.left is not None
        return f"(not {_truth_source(tree.left)})"
    if op in ("&&", "||"):
        assert tree.left is not None and tree.right is not None
        word = "and" if op == "&&" else "or"
        return f"({_truth_source(tree.left)} {word} {_truth_source(tree.right)})"
    return _source(tree)


def _div(a: float, b: float) -> float:
    return a / b if b else 0.0


def compile_metas(order: list[tuple[str, Expr]]) -> Callable[[dict[str, float]], None]:
    """One function evaluating every meta rule in ``order`` (dependencies first).

    The function sets ``counts[name] = 1.0`` for each meta that hits.  Generated from
    parsed trees only (names are ``[A-Za-z_][A-Za-z0-9_]*``, numbers are floats), so no
    rule text reaches the compiler; it is several times faster than the closures of
    :func:`compile_expr`, which remain the fallback.  Where only a name's truth counts
    (under ``!``, ``&&``, ``||`` or as the whole expression) it is read as its presence
    in ``counts``, which is its truth while no count is 0 (checked on each call; a 0
    sends the call to the version reading every value).

    :param order: (rule name, tree) pairs in evaluation order.
    :returns: ``f(counts)``, updating ``counts`` in place.
    """
    lines = ["def _metas(c):"]
    for name, tree in order:
        lines.append(f"    if {_source(tree)}:")
        lines.append(f"        c[{name!r}] = 1.0")
    lines.append("    return None")
    # the same with the names read as presence where only their truth counts: exact
    # while no value in c is false (a hit count is at least 1; a meta sets 1.0)
    lines += ["def _metas_present(c):", "    if not all(c.values()):",
              "        return _metas(c)"]
    for name, tree in order:
        lines.append(f"    if {_truth_source(tree)}:")
        lines.append(f"        c[{name!r}] = 1.0")
    lines.append("    return None")
    namespace: dict[str, object] = {"_div": _div, "__builtins__": {"all": all}}
    try:
        # the source is generated from parsed trees, never from rule text
        exec(compile("\n".join(lines), "<spamassassin meta rules>", "exec"), namespace)  # noqa: S102
    except (SyntaxError, RecursionError, MemoryError, ValueError):
        fns = [(name, compile_expr(tree)) for name, tree in order]

        def closures(c: dict[str, float]) -> None:
            for name, fn in fns:
                if fn(c):
                    c[name] = 1.0

        return closures
    fn = namespace["_metas_present"]
    assert callable(fn)
    return fn
