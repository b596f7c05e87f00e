"""A strategy's own message template: its words, with named placeholders, checked when it is saved.

A template is text with placeholders in braces; ``{{`` and ``}}`` are a literal brace::

    {symbol} ({name}) at {price} {currency}: RSI {value:rsi(14):.1f}, {strategy} on {timeframe}

=====================  ===============================================================================
placeholder            what it becomes
=====================  ===============================================================================
``{symbol}``           the coin's symbol: ``BTC``
``{name}``             the coin's name: ``Bitcoin`` (the symbol when the market gives none)
``{price}``            its price, written by uBot's rule (``67,432.12``, ``0.00002613``)
``{currency}``         the price's currency: ``USD``
``{condition}``        the strategy's condition
``{strategy}``         the strategy's name
``{timeframe}``        the strategy's timeframe: ``1h``
``{time}``             when it fired, in the owner's time zone: ``2026-12-04 20:21:35 CET``
``{link}``             the coin's chart on this server (empty when ``[http] public_url`` is not set)
``{value:EXPR}``       the value of ``EXPR``, one quote field or indicator call **of the condition**
                       (``rsi(14)``, ``percent_change_24h``), written as the alert's values are
                       (``+3.18%`` for a percentage)
=====================  ===============================================================================

``{price}`` and ``{value:EXPR}`` take a plain numeric format after one more colon: ``{price:,.2f}``,
``{value:rsi(14):.1f}``, ``{value:percent_change_24h:+.1f}`` (an optional ``+``, an optional ``,``
and ``.N`` decimals (0 to 12) with ``f``; the number is then written bare, without ``%``).

Why only the condition's values: they are the ones computed for the alert (the Scanner evaluates
the condition, nothing else); ``EXPR`` is read by the condition language and compared in its
written form, so ``{value:rsi( 14 )}`` is ``rsi(14)``.

:func:`parse` refuses everything else with a :class:`TemplateError` giving the 1-based column and
why: an unknown placeholder, attribute (``{price.__class__}``) or index access (``{x[0]}``), a
conversion (``{price!r}``), another format (a width, a fill, ``%``, ``e``...), a brace not closed
or not opened, a control character other than a line break (``\\n``, ``\\r``) or a tab, more than
:data:`MAX_LENGTH` characters or :data:`MAX_PLACEHOLDERS` placeholders.

Rendering never runs ``str.format`` on the template: :meth:`Template.render` joins the literal parts
with the strings a callback gives for each placeholder (``ubot/notify/words.py`` writes them), so a
template can reach nothing but its placeholders.
"""

from __future__ import annotations

import ast
import functools
import math
import re
from collections.abc import Callable, Collection
from dataclasses import dataclass

from ubot.rules.validate import ConditionError, check

MAX_LENGTH = 1000
MAX_PLACEHOLDERS = 50
#: The placeholders, in the order the errors list them.
NAMES = ("symbol", "name", "price", "currency", "condition", "strategy", "timeframe", "time", "link", "value")
#: The placeholders that are numbers (and take a numeric format).
NUMERIC = frozenset({"price", "value"})
MAX_DECIMALS = 12
_SPEC = re.compile(r"\+?,?\.([0-9]{1,2})f")
_CONTROL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f\u2028\u2029]")
_KNOWN = ", ".join(f"{{{name}}}" for name in NAMES[:-1]) + ", {value:EXPR}"


class TemplateError(ConditionError):
    """A template that cannot be used: ``message`` for a person, ``column`` (1-based) or None (the
    shape of a condition's error, whose messages a template's ``{value:EXPR}`` passes on)."""


@dataclass(frozen=True)
class Placeholder:
    """One placeholder: its ``name``; for ``value`` the ``key`` of the input (``rsi(14)``), as an
    alert's values name it; a numeric ``spec`` (``.2f``) or ``""`` for uBot's own writing."""

    name: str
    key: str = ""
    spec: str = ""


@dataclass(frozen=True)
class Template:
    """A parsed template: literal text and placeholders, in order."""

    parts: tuple[str | Placeholder, ...]

    @property
    def placeholders(self) -> tuple[Placeholder, ...]:
        return tuple(part for part in self.parts if isinstance(part, Placeholder))

    def render(self, said: Callable[[Placeholder], str]) -> str:
        """The literal text with each placeholder replaced by ``said(placeholder)`` (a string, used
        as it is: nothing in it is read as a placeholder again)."""
        return "".join(part if isinstance(part, str) else said(part) for part in self.parts)


def parse(text: str, inputs: Collection[str] | None = None) -> Template:
    """The template ``text`` parsed, or a :class:`TemplateError`. ``inputs``: the fields and
    indicator calls of the strategy's condition (``price``, ``rsi(14)``), the only values
    ``{value:EXPR}`` may name; ``None``: any (a template read back, already checked when saved)."""
    if len(text) > MAX_LENGTH:
        raise TemplateError(f"the template is too long: {len(text):,} characters, at most {MAX_LENGTH:,}")
    control = _CONTROL.search(text)
    if control:
        raise TemplateError(
            f"control character U+{ord(control.group()):04X}: only line breaks and tabs are allowed",
            control.start() + 1,
        )
    parts: list[str | Placeholder] = []
    literal: list[str] = []
    i = 0
    while i < len(text):
        char = text[i]
        if char == "}":
            if text.startswith("}}", i):
                literal.append("}")
                i += 2
                continue
            raise TemplateError("'}' closes no placeholder: write '}}' for a brace", i + 1)
        if char != "{":
            literal.append(char)
            i += 1
            continue
        if text.startswith("{{", i):
            literal.append("{")
            i += 2
            continue
        end = _closing(text, i)
        if literal:
            parts.append("".join(literal))
            literal = []
        parts.append(_placeholder(text[i + 1 : end], i + 2, inputs))
        i = end + 1
    if literal:
        parts.append("".join(literal))
    template = Template(tuple(parts))
    if len(template.placeholders) > MAX_PLACEHOLDERS:
        raise TemplateError(
            f"too many placeholders: {len(template.placeholders)}, at most {MAX_PLACEHOLDERS}"
        )
    return template


@functools.lru_cache(maxsize=512)
def parsed(text: str) -> Template | None:
    """A saved template, parsed once (the Notifier renders it for every alert); ``None`` when it
    cannot be read any more (saved by another version): the alert then gets uBot's own words."""
    try:
        return parse(text)
    except TemplateError:
        return None


def formatted(value: float | None, spec: str) -> str:
    """``value`` in a numeric ``spec`` that :func:`parse` let through (``n/a`` when missing)."""
    if value is None or not math.isfinite(value):
        return "n/a"
    return format(float(value), spec)


# -- the parts -----------------------------------------------------------------------------------


def _closing(text: str, start: int) -> int:
    """The index of the ``}`` closing the placeholder opened at ``start``."""
    for j in range(start + 1, len(text)):
        if text[j] == "}":
            return j
        if text[j] == "{":
            raise TemplateError("a placeholder cannot contain '{': write '{{' for a brace", j + 1)
        if text[j] == "\n":
            break
    raise TemplateError("'{' is never closed: write '{{' for a brace", start + 1)


def _placeholder(inner: str, column: int, inputs: Collection[str] | None) -> Placeholder:
    """``inner``: the text between the braces, starting at ``column``."""
    name, colon, rest = inner.partition(":")
    for mark, why in ((".", "attribute access"), ("[", "index access"), ("!", "a conversion")):
        at = name.find(mark)
        if at >= 0:
            raise TemplateError(
                f"{why} ('{mark}') is not allowed in {{{inner}}}: a placeholder is only a name, such as {{price}}",
                column + at,
            )
    if not name:
        raise TemplateError(f"empty placeholder: use one of {_KNOWN}", column)
    if name not in NAMES:
        raise TemplateError(f"unknown placeholder {{{name}}}: use one of {_KNOWN}", column)
    if name == "value":
        if not colon or not rest.strip():
            raise TemplateError(
                "{value} needs the field or indicator of the condition to show: {value:rsi(14)}", column
            )
        expression, colon, spec = rest.partition(":")
        key = _input(expression, column + len("value:"), inputs)
        spec_column = column + len("value:") + len(expression) + 1
    else:
        key, spec, spec_column = "", rest, column + len(name) + 1
    if colon:
        _check_spec(name, spec, spec_column)
    return Placeholder(name, key, spec)


def _check_spec(name: str, spec: str, column: int) -> None:
    if name not in NUMERIC:
        raise TemplateError(f"{{{name}}} takes no format: only {{price}} and {{value:…}} are numbers", column)
    match = _SPEC.fullmatch(spec)
    if match is None or int(match.group(1)) > MAX_DECIMALS:
        raise TemplateError(
            f"format '{spec}' is not a plain number format: write .2f, ,.2f or +.1f "
            f"(an optional '+', an optional ',', 0 to {MAX_DECIMALS} decimals and 'f')",
            column,
        )


def _input(expression: str, column: int, inputs: Collection[str] | None) -> str:
    """The name of the input ``expression`` is, as the alert's values name it (``rsi(14)``)."""
    try:
        analysis, tree = check(expression, number=True)
    except ConditionError as error:
        at = column if error.column is None else column + error.column - 1
        raise TemplateError(f"{{value:{expression}}}: {error.message}", at) from None
    body, fields, calls = tree.body, analysis.fields, analysis.indicators
    if isinstance(body, ast.Name) and len(fields) == 1 and not calls:
        key = fields[0]
    elif isinstance(body, ast.Call) and len(calls) == 1 and not fields and _called(body) == calls[0].name:
        key = str(calls[0])
    else:
        raise TemplateError(
            f"{{value:{expression}}}: give one field or indicator of the condition, such as rsi(14), "
            "not a calculation",
            column,
        )
    if inputs is not None and key not in inputs:
        used = ", ".join(inputs) or "none"
        raise TemplateError(
            f"{{value:{expression}}}: {key} is not in the condition; a template shows the values the "
            f"condition computes ({used})",
            column,
        )
    return key


def _called(call: ast.Call) -> str | None:
    return call.func.id if isinstance(call.func, ast.Name) else None
