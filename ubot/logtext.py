"""User text in a log line: :func:`printable` escapes it, so that no strategy name, username,
condition, symbol from the market, URL or receiver's answer can split a line or forge another.

Every log call that includes text from a user, a client or a provider passes it through here (the
access log too, with ``"`` escaped as well: :func:`ubot.http.accesslog.escape`).
"""

from __future__ import annotations

import re

_PLAIN = re.compile(r"[\x20-\x5b\x5d-\x7e]*")  # printable ASCII but the backslash


def printable(value: object, also: str = "") -> str:
    """``value`` as text with ``\\`` doubled, every character that is not printable (control
    characters, line and paragraph separators) as ``\\xhh`` or ``\\uhhhh``, and each character of
    ``also`` backslashed. Printable text, non-ASCII letters included, is left as it is."""
    text = value if isinstance(value, str) else str(value)
    if _PLAIN.fullmatch(text) and not any(char in text for char in also):
        return text  # the usual case, quickly
    out = []
    for char in text:
        if char == "\\" or char in also:
            out.append("\\" + char)
        elif not char.isprintable():
            code = ord(char)
            out.append(
                f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}" if code < 0x10000 else f"\\U{code:08x}"
            )
        else:
            out.append(char)
    return "".join(out)


def error_line(exc: BaseException) -> str:
    """The first line of ``exc``'s message (a driver's error may go on with context lines), printable;
    its type's name when it says nothing."""
    text = str(exc).strip()
    return printable(text.splitlines()[0]) if text else type(exc).__name__
