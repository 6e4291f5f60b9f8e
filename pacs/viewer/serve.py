"""Serve the installed OHIF viewer under ``/viewer/``: static files, the generated
``app-config.js``, and ``index.html`` for every client-side route (deep links)."""

from __future__ import annotations

import logging
import re
from pathlib import Path, PurePosixPath

from aiohttp import web

from pacs.viewer.config import app_config_js
from pacs.viewer.install import BASE_PATH, MARKER, installed_version

log = logging.getLogger("pacs.viewer")

VIEWER_DIR_KEY = web.AppKey("viewer_dir", Path)
CONFIG_JS_KEY = web.AppKey("viewer_config_js", str)

_TYPES = {
    ".js": "text/javascript; charset=utf-8",
    ".mjs": "text/javascript; charset=utf-8",
    ".css": "text/css; charset=utf-8",
    ".html": "text/html; charset=utf-8",
    ".json": "application/json",
    ".jsonc": "application/json",
    ".map": "application/json",
    ".wasm": "application/wasm",
    ".svg": "image/svg+xml",
    ".png": "image/png",
    ".ico": "image/x-icon",
    ".woff2": "font/woff2",
    ".woff": "font/woff",
    ".xml": "application/xml",
    ".webapp": "application/x-web-app-manifest+json",
    ".txt": "text/plain; charset=utf-8",
}
# Webpack names chunks, workers, fonts and wasm by content hash: safe to cache for a year.
_HASHED = re.compile(r"(^|\.)[0-9a-f]{16}\.[a-z0-9]+$")
_IMMUTABLE = "public, max-age=31536000, immutable"
# A static single-page app reading only its own origin. Inline scripts: index.html has two;
# 'unsafe-eval'/'wasm-unsafe-eval': the codecs and vtk.js compile code; blob: workers.
_CSP = "; ".join(
    (
        "default-src 'self'",
        "script-src 'self' 'unsafe-inline' 'unsafe-eval' 'wasm-unsafe-eval' blob:",
        "worker-src 'self' blob:",
        "style-src 'self' 'unsafe-inline'",
        "img-src 'self' data: blob:",
        "font-src 'self' data:",
        "connect-src 'self' data: blob:",
        "media-src 'self' data: blob:",
        "object-src 'none'",
        "base-uri 'self'",
        "frame-ancestors 'self'",
        "form-action 'self'",
    )
)
SECURITY_HEADERS = {
    "Content-Security-Policy": _CSP,
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "X-Frame-Options": "SAMEORIGIN",
    # Cross-origin isolation lets the viewer use SharedArrayBuffer (volume/MPR rendering).
    "Cross-Origin-Opener-Policy": "same-origin",
    "Cross-Origin-Embedder-Policy": "require-corp",
    "Cross-Origin-Resource-Policy": "same-origin",
}

_NOT_INSTALLED = """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>Viewer not installed</title></head>
<body><h1>The OHIF viewer is not installed</h1>
<p>Its files are fetched once from npm (about 50 MB; needs Node.js and npm) into
<code>{directory}</code>:</p>
<pre>pacs install-viewer</pre>
<p>(or <code>python -m pacs install-viewer</code>, with the same <code>--config</code> as
the server). Then reload this page; no restart is needed.</p></body></html>
"""


def _resolve(root: Path, tail: str) -> Path | None:
    """The file ``tail`` names under ``root``; None for anything that is not a plain,
    visible file inside it (traversal, dot files, folders)."""
    if "\\" in tail or "\x00" in tail:
        return None
    parts = PurePosixPath(tail).parts
    if any(part in {"..", "."} or part.startswith(".") for part in parts):
        return None
    candidate = root.joinpath(*parts) if parts else root
    try:
        resolved = candidate.resolve()
    except (OSError, RuntimeError):
        return None
    if not resolved.is_relative_to(root.resolve()) or not resolved.is_file():
        return None
    return resolved


def _looks_like_asset(tail: str) -> bool:
    """A missing ``x.js`` answers 404, not the page: the browser says which file is gone."""
    return PurePosixPath(tail).suffix.lower() in _TYPES


def _headers(path: Path, cache: str) -> dict[str, str]:
    content_type = _TYPES.get(path.suffix.lower(), "application/octet-stream")
    return {**SECURITY_HEADERS, "Content-Type": content_type, "Cache-Control": cache}


def _page(root: Path) -> web.StreamResponse:
    index = root / "index.html"
    return web.FileResponse(index, headers=_headers(index, "no-cache"))


async def viewer_file(request: web.Request) -> web.StreamResponse:
    """GET ``/viewer/{tail}``: a file of the viewer, the configuration, or the page."""
    root = request.app[VIEWER_DIR_KEY]
    tail = request.match_info.get("tail", "")
    if installed_version(root) is None:
        log.warning("GET %s: the viewer is not installed in %s", request.path, root)
        return web.Response(
            status=404,
            text=_NOT_INSTALLED.format(directory=root),
            content_type="text/html",
            headers={**SECURITY_HEADERS, "Cache-Control": "no-store"},
        )
    if tail == "app-config.js":
        return web.Response(
            text=request.app[CONFIG_JS_KEY],
            headers={
                **SECURITY_HEADERS,
                "Content-Type": "text/javascript; charset=utf-8",
                "Cache-Control": "no-cache",
            },
        )
    path = _resolve(root, tail) if tail not in {"", "index.html", MARKER} else None
    if path is not None:
        cache = _IMMUTABLE if _HASHED.search(path.name) else "no-cache"
        return web.FileResponse(path, headers=_headers(path, cache))
    if tail and _looks_like_asset(tail):
        return web.Response(
            status=404,
            text=f"no such viewer file: {tail}\n",
            headers={**SECURITY_HEADERS, "Cache-Control": "no-cache"},
        )
    return _page(root)


async def to_viewer(request: web.Request) -> web.StreamResponse:
    """``/viewer`` → ``/viewer/`` (relative URLs in the page need the slash)."""
    location = BASE_PATH + (f"?{request.query_string}" if request.query_string else "")
    raise web.HTTPMovedPermanently(location)


def add_viewer_routes(
    app: web.Application, directory: Path, dicomweb_prefix: str, wado_uri_path: str
) -> None:
    """Mount the viewer at :data:`BASE_PATH` on ``app``."""
    app[VIEWER_DIR_KEY] = directory
    app[CONFIG_JS_KEY] = app_config_js(dicomweb_prefix, wado_uri_path)
    base = BASE_PATH.rstrip("/")
    app.router.add_get(base, to_viewer)
    app.router.add_get(BASE_PATH + "{tail:.*}", viewer_file)
    version = installed_version(directory)
    if version is None:
        log.info("viewer not installed in %s (run: pacs install-viewer)", directory)
    else:
        log.info("OHIF viewer %s at %s, files in %s", version, BASE_PATH, directory)
