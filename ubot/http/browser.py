"""The browser's session: an HttpOnly cookie instead of a bearer header, and CSRF protection.

The dashboard (``ubot/http/dashboard/``) logs in with ``POST /v1/sessions/browser``: the session
token (the same kind of token ``POST /v1/sessions`` gives programs) goes into the cookie
:data:`SESSION_COOKIE`, ``HttpOnly`` (no script can read it) and ``SameSite=Strict`` (no other site's
page makes the browser send it), ``Secure`` when the request came over HTTPS (directly, or from a
trusted proxy's ``X-Forwarded-Proto``: gunicorn's ``forwarded_allow_ips``).

CSRF: signed double submit. The cookie :data:`CSRF_COOKIE` (readable by the page's script) holds
:func:`csrf_token` of the session token, a hash no other site can compute without the HttpOnly
token; every cookie-authenticated request that changes something (not GET, HEAD, OPTIONS) must
send it back in the :data:`CSRF_HEADER` header, else 403. Bearer-token requests need none: a
browser never adds an ``Authorization`` header on its own.
"""

from __future__ import annotations

import base64
import hashlib

import falcon

from ubot.users import tokens

SESSION_COOKIE = "ubot_session"
CSRF_COOKIE = "ubot_csrf"
CSRF_HEADER = "X-CSRF-Token"
SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
CSRF_REFUSED = (
    f"a cookie-authenticated request that changes something without the {CSRF_HEADER} header "
    f"matching the {CSRF_COOKIE} cookie"
)


def csrf_token(session_token: str) -> str:
    """The CSRF token that goes with a session token (43 URL-safe characters)."""
    digest = hashlib.sha256(b"ubot-csrf:" + session_token.encode("ascii")).digest()
    return base64.urlsafe_b64encode(digest).decode("ascii").rstrip("=")


def session_token(req: falcon.Request) -> str | None:
    """The token of the session cookie the request carries, if any (the last one of that name)."""
    values = req.get_cookie_values(SESSION_COOKIE)
    return values[-1].strip() if values else None


def check_csrf(req: falcon.Request, token: str) -> None:
    """403 unless ``req`` is safe or carries the CSRF token of the session ``token``."""
    if req.method in SAFE_METHODS:
        return
    sent = (req.get_header(CSRF_HEADER) or "").strip()
    if not sent or not tokens.same(sent, csrf_token(token)):
        raise falcon.HTTPForbidden(
            title="CSRF check failed",
            description=f"Send the {CSRF_HEADER} header with the value of the {CSRF_COOKIE} cookie.",
        )


def set_session(req: falcon.Request, resp: falcon.Response, token: str, max_age_s: int) -> str:
    """Set both cookies for ``token`` (for ``max_age_s`` seconds); the CSRF token."""
    csrf = csrf_token(token)
    secure = req.scheme == "https"
    for name, value, http_only in ((SESSION_COOKIE, token, True), (CSRF_COOKIE, csrf, False)):
        resp.set_cookie(
            name, value, max_age=max_age_s, path="/", secure=secure, http_only=http_only, same_site="Strict"
        )
    return csrf


def clear_session(resp: falcon.Response) -> None:
    """Tell the browser to forget both cookies (expired at once)."""
    for name in (SESSION_COOKIE, CSRF_COOKIE):
        resp.unset_cookie(name, path="/", same_site="Strict")


#: The answers' ``Set-Cookie`` header, as the OpenAPI document declares it.
SET_COOKIE_HEADER = {
    "Set-Cookie": {
        "description": f"{SESSION_COOKIE} (HttpOnly, SameSite=Strict) and {CSRF_COOKIE}",
        "schema": {"type": "string"},
    }
}
