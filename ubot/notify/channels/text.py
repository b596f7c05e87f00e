"""Text limits of the providers: cutting an alert cleanly to a length, and SMS segment arithmetic.

- :func:`utf16_len`: Telegram measures message length (and entity offsets) in UTF-16 code units, so a
  character outside the Basic Multilingual Plane (most emoji) counts 2. Counting that way is never
  wrong: it is at least the number of code points, so a text that fits in UTF-16 units fits however
  the server counts.
- :func:`truncate`: the longest clean prefix (at a word boundary when one is near, never between a
  character and its combining marks) plus an ellipsis, that fits a limit in a given measure.
- SMS (3GPP TS 23.038): a text made only of GSM-7 characters is sent in GSM-7, 160 septets in one
  segment or 153 per segment of a concatenated message; a character of the extension table
  (``^{}\\[~]|€`` and form feed) takes two septets (escape + character) and the pair is never split
  between segments. Any other character makes the whole message UCS-2: 70 UTF-16 code units single,
  67 per part, and a surrogate pair is never split. :func:`sms_segments` packs segments that way;
  :func:`fit_sms` shortens a text to a number of segments (with ``...`` in GSM-7, so the ellipsis
  does not itself switch the message to UCS-2).
"""

from __future__ import annotations

import unicodedata
from collections.abc import Callable
from typing import Literal

ELLIPSIS = "…"
GSM_ELLIPSIS = "..."

#: The GSM 03.38 default alphabet (without the escape character 0x1B).
GSM7_BASIC = frozenset(
    "@£$¥èéùìòÇ\nØø\rÅåΔ_ΦΓΛΩΠΨΣΘΞÆæßÉ !\"#¤%&'()*+,-./0123456789:;<=>?"
    "¡ABCDEFGHIJKLMNOPQRSTUVWXYZÄÖÑÜ§¿abcdefghijklmnopqrstuvwxyzäöñüà"
)
#: The extension table: each costs two septets (escape + character).
GSM7_EXTENSION = frozenset("\f^{}\\[~]|€")

_GSM7 = GSM7_BASIC | GSM7_EXTENSION

SMS_LIMITS: dict[str, tuple[int, int]] = {"GSM-7": (160, 153), "UCS-2": (70, 67)}

#: Near the cut, prefer the last whitespace within this many characters.
_WORD_WINDOW = 24
_JOINERS = frozenset("\u200d\ufe0e\ufe0f")  # zero-width joiner, variation selectors


def utf16_len(text: str) -> int:
    """Length in UTF-16 code units (Telegram's and UCS-2's measure)."""
    return len(text) + sum(1 for char in text if ord(char) > 0xFFFF)


def truncate(text: str, limit: int, *, measure: Callable[[str], int] = len, ellipsis: str = ELLIPSIS) -> str:
    """``text`` if it fits ``limit`` (in ``measure``), else its longest clean prefix + ``ellipsis``."""
    return _cut(text, lambda candidate: measure(candidate) <= limit, lambda _prefix: ellipsis)


# -- SMS ------------------------------------------------------------------------------------------


def sms_encoding(text: str) -> Literal["GSM-7", "UCS-2"]:
    """GSM-7 when every character is in the default alphabet or its extension, else UCS-2."""
    return "GSM-7" if _GSM7.issuperset(text) else "UCS-2"


def sms_units(text: str) -> int:
    """Septets (GSM-7) or UTF-16 code units (UCS-2) the text takes, before splitting."""
    return sum(_costs(text, sms_encoding(text)))


def sms_segments(text: str) -> int:
    """How many SMS segments the text is sent as (0 for an empty text)."""
    if not text:
        return 0
    encoding = sms_encoding(text)
    costs = _costs(text, encoding)
    single, part = SMS_LIMITS[encoding]
    if sum(costs) <= single:
        return 1
    segments, used = 1, 0
    for cost in costs:  # an escape pair / surrogate pair stays in one segment
        if used + cost > part:
            segments, used = segments + 1, 0
        used += cost
    return segments


def fit_sms(text: str, max_segments: int, *, max_chars: int | None = None) -> str:
    """``text`` if it takes at most ``max_segments`` segments (and ``max_chars`` characters), else a
    clean prefix + an ellipsis that does (``...`` when the prefix is GSM-7, ``…`` when it is UCS-2
    anyway)."""
    return _cut(
        text,
        lambda candidate: (
            sms_segments(candidate) <= max_segments and (max_chars is None or len(candidate) <= max_chars)
        ),
        lambda prefix: GSM_ELLIPSIS if sms_encoding(prefix) == "GSM-7" else ELLIPSIS,
    )


def _costs(text: str, encoding: str) -> list[int]:
    if encoding == "GSM-7":
        return [2 if char in GSM7_EXTENSION else 1 for char in text]
    return [2 if ord(char) > 0xFFFF else 1 for char in text]


# -- cutting --------------------------------------------------------------------------------------


def _cut(text: str, fits: Callable[[str], bool], ellipsis_for: Callable[[str], str]) -> str:
    if fits(text):
        return text

    def candidate(n: int) -> str:
        prefix = _clean_prefix(text, n)
        return prefix + ellipsis_for(prefix) if prefix else ""

    # The largest n whose candidate fits (fitting is monotone in n: a longer prefix never takes less).
    lo, hi = 0, len(text) - 1
    while lo < hi:
        mid = (lo + hi + 1) // 2
        if fits(candidate(mid)):
            lo = mid
        else:
            hi = mid - 1
    best = candidate(lo)
    if not best or not fits(best):
        return ""
    # Prefer a word boundary close to the cut.
    prefix = _clean_prefix(text, lo)
    space = max(prefix.rfind(" ", len(prefix) - _WORD_WINDOW), prefix.rfind("\n", len(prefix) - _WORD_WINDOW))
    if space > len(prefix) // 2:
        shorter = candidate(space)
        if shorter and fits(shorter):
            return shorter
    return best


def _clean_prefix(text: str, n: int) -> str:
    """``text[:n]`` without splitting a character from the marks and joiners that follow it, and
    without trailing whitespace."""
    while 0 < n < len(text) and (
        unicodedata.combining(text[n]) or text[n] in _JOINERS or text[n - 1] == "\u200d"
    ):
        n -= 1
    return text[:n].rstrip()
