"""The vector selectors of a PromQL expression, without a PromQL parser.

Enough of PromQL for the queries of our dashboards and alert rules: metric names
with optional `{matchers}`, functions and aggregations (`sum by (a, b) (...)`),
binary operators with `on`/`ignoring`/`group_left`, range and subquery brackets,
numbers, durations and `offset`. What it cannot read it fails on, rather than
guessing (a string outside braces, say).
"""

from __future__ import annotations

import re
from dataclasses import dataclass

# Words that are never metric names here: aggregations, operators, modifiers.
KEYWORDS = frozenset(
    {
        *("sum", "min", "max", "avg", "count", "stddev", "stdvar", "group"),
        *("topk", "bottomk", "quantile", "count_values"),
        *("and", "or", "unless", "bool", "offset"),
        *("by", "without", "on", "ignoring", "group_left", "group_right"),
    }
)
# These take a parenthesised list of label names, which are not selectors.
LABEL_LISTS = frozenset({"by", "without", "on", "ignoring", "group_left", "group_right"})
_IDENT = re.compile(r"[a-zA-Z_:][a-zA-Z0-9_:]*")
_MATCHER = re.compile(r'\s*([a-zA-Z_][a-zA-Z0-9_]*)\s*(=~|!~|!=|=)\s*"((?:[^"\\]|\\.)*)"\s*,?')


@dataclass(frozen=True)
class Matcher:
    label: str
    op: str
    value: str

    def __str__(self) -> str:
        return f'{self.label}{self.op}"{self.value}"'


@dataclass(frozen=True)
class Selector:
    metric: str
    matchers: tuple[Matcher, ...] = ()

    def __str__(self) -> str:
        inside = ", ".join(str(m) for m in self.matchers)
        return f"{self.metric}{{{inside}}}" if inside else self.metric

    def loosened(self) -> Selector:
        """The same metric, each label it matches on only required to be present (a
        negative matcher does not need the label, so it is dropped)."""
        return Selector(
            self.metric,
            tuple(Matcher(m.label, "=~", ".+") for m in self.matchers if m.op in ("=", "=~")),
        )


def selectors(expr: str) -> list[Selector]:
    """Every vector selector in `expr`, in order, duplicates dropped."""
    found: list[Selector] = []
    i, n, depth = 0, len(expr), 0
    while i < n:
        c = expr[i]
        if c in "()":
            depth += 1 if c == "(" else -1
            if depth < 0:
                raise ValueError(f"unbalanced () at {i}: {expr!r}")
            i += 1
        elif c.isspace() or c in "+-*/%^,<>=!":
            i += 1
        elif c == "[":
            i = _skip(expr, i, "[", "]")
        elif c.isdigit() or c == ".":  # a number or a duration (0.99, 5m, 1e3)
            i = _word_end(expr, i)
        elif c == '"':
            raise ValueError(f"a string outside a selector at {i}: {expr!r}")
        elif c == "{":
            end = _skip(expr, i, "{", "}")
            found.append(Selector("", _matchers(expr[i + 1 : end - 1])))
            i = end
        elif (m := _IDENT.match(expr, i)) is not None:
            word, i = m.group(), m.end()
            j = _skip_space(expr, i)
            if word in LABEL_LISTS and j < n and expr[j] == "(":
                i = _skip(expr, j, "(", ")")
            elif word in KEYWORDS or (j < n and expr[j] == "("):
                pass  # an operator, or a function's name
            elif j < n and expr[j] == "{":
                end = _skip(expr, j, "{", "}")
                found.append(Selector(word, _matchers(expr[j + 1 : end - 1])))
                i = end
            else:
                found.append(Selector(word))
        else:
            raise ValueError(f"unexpected {c!r} at {i}: {expr!r}")
    if depth:
        raise ValueError(f"unbalanced (): {expr!r}")
    return list(dict.fromkeys(found))


def _matchers(inside: str) -> tuple[Matcher, ...]:
    out, pos = [], 0
    while inside[pos:].strip():
        m = _MATCHER.match(inside, pos)
        if m is None:
            raise ValueError(f"cannot read the matchers {{{inside}}}")
        out.append(Matcher(m.group(1), m.group(2), m.group(3)))
        pos = m.end()
    return tuple(out)


def _skip(expr: str, i: int, opening: str, closing: str) -> int:
    """The index after the `closing` that matches the `opening` at `i` (quotes respected)."""
    depth, quoted = 0, False
    for j in range(i, len(expr)):
        c = expr[j]
        if quoted:
            quoted = not (c == '"' and expr[j - 1] != "\\")
        elif c == '"':
            quoted = True
        elif c == opening:
            depth += 1
        elif c == closing:
            depth -= 1
            if depth == 0:
                return j + 1
    raise ValueError(f"unbalanced {opening}{closing} at {i}: {expr!r}")


def _skip_space(expr: str, i: int) -> int:
    while i < len(expr) and expr[i].isspace():
        i += 1
    return i


def _word_end(expr: str, i: int) -> int:
    while i < len(expr) and (expr[i].isalnum() or expr[i] in "._"):
        i += 1
    return i
