"""Bearer tokens: 32 random bytes, URL-safe base64 (43 characters). Only their SHA-256 is stored, so
a copy of the database logs nobody in; a token is looked up by that hash (an index), so the lookup
reveals nothing about other tokens' values.

Lifetime: fixed, 30 days from login (``expires_at`` never moves). A client knows from the login
reply exactly until when its token works; it logs in again after that. Revocation (logout, logout
everywhere, password change) ends a session at once. ``last_seen_at`` is kept for the user's
information, written at most once a minute per session so that requests do not each cost a write.
"""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets

TOKEN_BYTES = 32
SESSION_LIFETIME_MS = 30 * 86_400_000
LAST_SEEN_RESOLUTION_MS = 60_000
#: Live sessions per user; logging in once more revokes the oldest.
MAX_SESSIONS = 20
#: The shape of a token: 43 characters of the URL-safe base64 alphabet.
TOKEN_LENGTH = 43
_CHARS = "A-Za-z0-9_-"
_SHAPE = re.compile(f"[{_CHARS}]{{{TOKEN_LENGTH}}}")
#: Anything in a text that could be a token: a run of at least 43 of its characters (a token glued
#: to more of them must not slip through; a longer run of those characters is hidden whole).
_ANYWHERE = re.compile(f"[{_CHARS}]{{{TOKEN_LENGTH},}}")
REDACTED = "REDACTED"


def issue() -> str:
    return secrets.token_urlsafe(TOKEN_BYTES)


def hash_token(token: str) -> str:
    """SHA-256, hex: what the ``session`` table stores."""
    return hashlib.sha256(token.encode("ascii")).hexdigest()


def well_formed(token: object) -> bool:
    """Whether ``token`` could be one of ours (anything else is refused before any work)."""
    return isinstance(token, str) and _SHAPE.fullmatch(token) is not None


def redact(text: str) -> str:
    """``text`` with everything shaped like a token replaced by ``REDACTED`` (for logs)."""
    return _ANYWHERE.sub(REDACTED, text)


def same(a: str, b: str) -> bool:
    """Constant-time comparison of two secrets (or hashes of secrets)."""
    return hmac.compare_digest(a.encode(), b.encode())


def expiry(now_ms: int, lifetime_ms: int = SESSION_LIFETIME_MS) -> int:
    return now_ms + lifetime_ms
