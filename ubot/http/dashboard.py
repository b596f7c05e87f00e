"""The dashboard: one page and its own ES modules and CSS, served from the package (``static/``).

No build step and no third-party code: the files in ``ubot/http/static/`` are served as they are
(``setup.cfg``'s ``package_data`` installs them with the package).

* ``GET /``: ``index.html``, with ``{{assets}}`` replaced by the assets' path; ``Cache-Control:
  no-cache`` and an ``ETag``, so a browser revalidates it (304) and picks up a new version at once.
* ``GET /ui/{version}/{name}``: the other files. ``version`` is a hash of every file's name and
  content (:attr:`Bundle.version`), so an asset's URL changes whenever any file changes, and the
  assets are cached for a year (``immutable``); the modules import each other by relative URLs,
  which keep the version. Another version is a 404.

The page's Content-Security-Policy is :data:`ubot.http.headers.PAGE_CSP` (its own files only, no
inline script or style).
"""

from __future__ import annotations

import functools
import hashlib
from dataclasses import dataclass
from importlib import resources

import falcon

from ubot.http.api import operation
from ubot.http.headers import PAGE_CSP

PLACEHOLDER = b"{{assets}}"
YEAR_S = 365 * 86_400
TYPES = {
    ".html": "text/html; charset=utf-8",
    ".js": "text/javascript; charset=utf-8",
    ".css": "text/css; charset=utf-8",
    ".svg": "image/svg+xml",
}
ASSET_TYPES = ("text/javascript", "text/css", "image/svg+xml")


@dataclass(frozen=True)
class File:
    body: bytes
    content_type: str
    etag: str


def _file(body: bytes, content_type: str) -> File:
    return File(body, content_type, hashlib.sha256(body).hexdigest()[:20])


class Bundle:
    """The dashboard's files, read once: ``index`` (the page) and ``assets`` by name."""

    def __init__(self, files: dict[str, bytes]) -> None:
        digest = hashlib.sha256()
        for name in sorted(files):
            digest.update(name.encode() + b"\0" + files[name] + b"\0")
        self.version = digest.hexdigest()[:16]
        self.base = f"/ui/{self.version}"
        page = files["index.html"].replace(PLACEHOLDER, self.base.encode())
        self.index = _file(page, TYPES[".html"])
        self.assets = {
            name: _file(body, TYPES["." + name.rsplit(".", 1)[-1]])
            for name, body in files.items()
            if name != "index.html"
        }

    @classmethod
    @functools.cache
    def packaged(cls) -> Bundle:
        """The files installed with the package (read once per process)."""
        folder = resources.files("ubot.http") / "static"
        return cls(
            {
                item.name: item.read_bytes()
                for item in folder.iterdir()
                if item.is_file() and "." + item.name.rsplit(".", 1)[-1] in TYPES
            }
        )


def _serve(req: falcon.Request, resp: falcon.Response, file: File, cache_control: list[str]) -> None:
    resp.etag = file.etag
    resp.cache_control = cache_control
    tags = req.if_none_match or []
    if "*" in tags or file.etag in tags:
        resp.status = falcon.HTTP_304
        return
    resp.content_type = file.content_type
    resp.data = file.body


_NOT_MODIFIED = {
    "ETag": {"required": True, "schema": {"type": "string"}},
    "Cache-Control": {"schema": {"type": "string"}},
}
_IF_NONE_MATCH = (
    {
        "name": "If-None-Match",
        "in": "header",
        "required": False,
        "schema": {"type": "string"},
        "description": "an ETag of an earlier answer: 304 if it is still current",
    },
)


class DashboardResource:
    """``GET /``: the dashboard's page."""

    content_security_policy = PAGE_CSP

    def __init__(self, bundle: Bundle) -> None:
        self.bundle = bundle

    @operation(
        "The dashboard (an HTML page)",
        {200: ("the page", "text/html"), 304: ("not modified (If-None-Match matched)", None)},
        headers={200: _NOT_MODIFIED, 304: _NOT_MODIFIED},
        parameters=_IF_NONE_MATCH,
    )
    def on_get(self, req: falcon.Request, resp: falcon.Response) -> None:
        _serve(req, resp, self.bundle.index, ["no-cache"])


class AssetResource:
    """``GET /ui/{version}/{name}``: a script, style sheet or image of the dashboard."""

    content_security_policy = PAGE_CSP

    def __init__(self, bundle: Bundle) -> None:
        self.bundle = bundle

    @operation(
        "A file of the dashboard (its scripts, styles and images), cached for a year",
        {
            200: ("the file", ASSET_TYPES),
            304: ("not modified (If-None-Match matched)", None),
            404: "no such file in this version of the dashboard",
        },
        headers={200: _NOT_MODIFIED, 304: _NOT_MODIFIED},
        parameters=(
            {
                "name": "version",
                "in": "path",
                "required": True,
                "schema": {"type": "string"},
                "description": "the dashboard's version (in the page's links)",
            },
            {"name": "name", "in": "path", "required": True, "schema": {"type": "string"}},
            *_IF_NONE_MATCH,
        ),
    )
    def on_get(self, req: falcon.Request, resp: falcon.Response, version: str, name: str) -> None:
        file = self.bundle.assets.get(name) if version == self.bundle.version else None
        if file is None:
            raise falcon.HTTPNotFound(
                title="Not found",
                description=f"The dashboard (version {self.bundle.version}) has no such file.",
            )
        _serve(req, resp, file, ["public", f"max-age={YEAR_S}", "immutable"])
