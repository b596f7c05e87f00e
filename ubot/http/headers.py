"""Security headers on every response, errors included (``process_response``).

uBot serves JSON (and one event stream) to scripts and browsers, and one page, the dashboard
(``ubot/http/dashboard.py``); everything but the page is treated as no document at all:

* ``X-Content-Type-Options: nosniff``: a JSON body is never guessed to be HTML or script;
* ``Content-Security-Policy: default-src 'none'; frame-ancestors 'none'``: should a response be
  opened as a page anyway, it may load nothing and be framed by nobody. A resource may name a
  policy of its own in ``content_security_policy``: the dashboard's is :data:`PAGE_CSP`, which lets
  the page load its own scripts, styles and images and call its own origin, and nothing else (no
  inline script or style, no other origin, no plugin, no form posted anywhere, no framing);
* ``X-Frame-Options: DENY``: the same for browsers without CSP's ``frame-ancestors``;
* ``Referrer-Policy: no-referrer``;
* ``Cache-Control: no-store`` on the account routes (:data:`NO_STORE_PREFIXES`: tokens, e-mail
  addresses, settings, strategies, alerts), unless the resource set its own ``Cache-Control``;
  other routes keep theirs (the snapshot's ``no-cache`` + ``ETag`` revalidation);
* ``Strict-Transport-Security: max-age=31536000`` (one year) only with ``[http] hsts = true``:
  uBot usually sits behind a TLS proxy, which may set it itself, and HSTS sent from a plain-HTTP
  deployment would lock browsers out of it. ``includeSubDomains`` is left out on purpose: the
  operator's other subdomains are not uBot's to decide.
"""

from __future__ import annotations

import falcon

HSTS = "max-age=31536000"
NO_STORE_PREFIXES = ("/v1/me", "/v1/sessions", "/v1/users")
CSP = "default-src 'none'; frame-ancestors 'none'"
PAGE_CSP = (
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; connect-src 'self'; "
    "base-uri 'none'; form-action 'none'; frame-ancestors 'none'"
)
ALWAYS = (
    ("X-Content-Type-Options", "nosniff"),
    ("Referrer-Policy", "no-referrer"),
    ("X-Frame-Options", "DENY"),
)


class SecurityHeaders:
    nonblocking = True  # runs on the event loop (ubot/http/asgi.py)

    def __init__(self, hsts: bool = False) -> None:
        self.headers = ALWAYS + ((("Strict-Transport-Security", HSTS),) if hsts else ())

    def process_response(
        self, req: falcon.Request, resp: falcon.Response, resource: object, req_succeeded: bool
    ) -> None:
        for name, value in self.headers:
            resp.set_header(name, value)
        resp.set_header("Content-Security-Policy", getattr(resource, "content_security_policy", CSP))
        if resp.get_header("Cache-Control") is None and _private(req.path):
            resp.set_header("Cache-Control", "no-store")


def _private(path: str) -> bool:
    return any(path == prefix or path.startswith(prefix + "/") for prefix in NO_STORE_PREFIXES)
