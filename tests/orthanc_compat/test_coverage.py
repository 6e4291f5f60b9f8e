"""The coverage table in orthanc-compat/README.md lists every route the sub-app serves."""

from __future__ import annotations

import re
from pathlib import Path

from aiohttp import web
from yarl import URL

from orthanc_compat import build_orthanc_app
from pacs.core.archive import Archive
from storage import FileSystemBlobStore

README = Path(__file__).resolve().parents[2] / "orthanc-compat" / "README.md"
ROW = re.compile(r"^\| `(GET|POST|PUT|DELETE) (/[^`]*)` \| (served|partly|not served) \|")
SAMPLES = {
    "{id}": "fbac6349-6dfbb3d4-713f5301-f07de821-04ec891e",
    "{frame}": "0",
    "{path}": "0010-0010",
    "{label}": "ai-flag",
    "{name}": "TransferSyntax",
    "{index}": "0",
    "{key}": "archive",
}


def _rows() -> list[tuple[str, str, str]]:
    rows = []
    for line in README.read_text(encoding="utf-8").splitlines():
        match = ROW.match(line)
        if match:
            rows.append((match.group(1), match.group(2), match.group(3)))
    return rows


def _concrete(path: str) -> str:
    for placeholder, sample in SAMPLES.items():
        path = path.replace(placeholder, sample)
    return path


def _matches(resource: web.AbstractResource, path: str) -> bool:
    """Whether the resource serves the path (every route also has a trailing-slash twin)."""
    concrete = URL(_concrete(path)).path
    return any(resource._match(p) is not None for p in (concrete, concrete + "/"))  # type: ignore[attr-defined]


def _served_by(app: web.Application, method: str, path: str) -> bool:
    return any(
        _matches(resource, path) and any(route.method == method for route in resource)
        for resource in app.router.resources()
    )


def test_every_route_is_in_the_table_and_every_served_row_has_a_route(tmp_path: Path) -> None:
    archive = Archive.open(f"sqlite:///{tmp_path / 'index.sqlite'}", FileSystemBlobStore(tmp_path))
    try:
        app = build_orthanc_app(archive)
        rows = _rows()
        assert len(rows) > 60
        listed = [(m, p) for m, p, status in rows if status != "not served"]
        for resource in app.router.resources():
            for route in resource:
                if route.method == "HEAD":
                    continue
                assert any(
                    method == route.method and _matches(resource, path) for method, path in listed
                ), f"{route.method} {resource.canonical} is not in orthanc-compat/README.md"
        for method, path in listed:
            assert _served_by(app, method, path), f"README lists {method} {path}: no route"
        for method, path, status in rows:
            if status == "not served":
                assert not _served_by(app, method, path), f"{method} {path} is served"
    finally:
        archive.close()
