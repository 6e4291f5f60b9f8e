"""Install the prebuilt OHIF viewer from the npm package ``@ohif/app`` (its ``dist/``).

The tarball is fetched with ``npm pack`` (no dependency tree: the package ships the built
viewer), checked against a pinned SHA-512, unpacked into a temporary sibling folder,
rebased from ``/`` to :data:`BASE_PATH` (the build hard-codes its public path), and swapped
into place in one rename. The files are program files: never committed, never in git.
"""

from __future__ import annotations

import base64
import gzip
import hashlib
import json
import logging
import os
import shutil
import subprocess
import tarfile
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

from pacs.core.errors import PacsError

log = logging.getLogger("pacs.viewer")

PACKAGE = "@ohif/app"
VERSION = "3.13.2"
INTEGRITY = "sha512-WZdxmpmG7rqFgW9ZJLcbgr3XCtLi1KDNPoMaeY5PPe6j4G4fjEjjkycZM6C6Zk2F87BKxFfpq+jd5xXZB9E8EA=="
BASE_PATH = "/viewer/"
MARKER = ".pacs-viewer.json"
# A service worker would cache the whole 200 MB viewer in every browser; we serve none.
_COMPRESSIBLE = frozenset({".js", ".mjs", ".css", ".json", ".jsonc", ".svg", ".wasm", ".map"})
_DROPPED = ("sw.js", "init-service-worker.js", "app-config.js", "_headers", "_redirects")


class ViewerInstallError(PacsError):
    """npm is missing or failed, the tarball is not the pinned one, or its layout changed."""


@dataclass(frozen=True)
class Installed:
    """What an install left in the destination folder."""

    path: Path
    version: str
    files: int
    size: int
    seconds: float
    skipped: bool = False


def installed_version(dest: Path) -> str | None:
    """The ``@ohif/app`` version installed in ``dest`` (None when nothing usable is there)."""
    try:
        marker = json.loads((dest / MARKER).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    if not isinstance(marker, dict) or marker.get("base") != BASE_PATH:
        return None
    if not (dest / "index.html").is_file():
        return None
    version = marker.get("version")
    return version if isinstance(version, str) else None


def install_viewer(dest: Path, *, force: bool = False, npm: str = "npm") -> Installed:
    """Fetch, verify, unpack and rebase the pinned viewer into ``dest`` (skipped when that
    version is already there, unless ``force``)."""
    started = time.monotonic()
    dest = dest.resolve()
    if not force and installed_version(dest) == VERSION:
        files, size = _tree_size(dest)
        return Installed(dest, VERSION, files, size, time.monotonic() - started, skipped=True)
    _check_replaceable(dest)
    dest.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix=".viewer-", dir=dest.parent) as work:
        tarball = _npm_pack(Path(work), npm)
        _check_integrity(tarball)
        staged = Path(work) / "dist"
        _extract_dist(tarball, staged)
        rebase(staged)
        precompress(staged)
        mark_installed(staged)
        _swap_into_place(staged, dest, Path(work))
    files, size = _tree_size(dest)
    return Installed(dest, VERSION, files, size, time.monotonic() - started)


def mark_installed(folder: Path, version: str = VERSION) -> None:
    """Write the marker that tells the server (and a re-install) what the folder holds."""
    marker = {"package": PACKAGE, "version": version, "base": BASE_PATH}
    (folder / MARKER).write_text(json.dumps(marker) + "\n", encoding="utf-8")


def _npm_pack(work: Path, npm: str) -> Path:
    """``npm pack @ohif/app@VERSION`` into ``work``; the tarball's path."""
    if shutil.which(npm) is None:
        raise ViewerInstallError(f"{npm!r} not found: install Node.js and npm first")
    command = [npm, "pack", f"{PACKAGE}@{VERSION}", "--json", "--pack-destination", str(work)]
    try:
        result = subprocess.run(
            command, capture_output=True, text=True, timeout=900, cwd=work, check=False
        )
    except subprocess.TimeoutExpired:
        raise ViewerInstallError("npm pack took more than 15 minutes") from None
    if result.returncode != 0:
        raise ViewerInstallError(f"npm pack failed ({result.returncode}): {result.stderr[-2000:]}")
    try:
        filename = json.loads(result.stdout)[0]["filename"]
    except (ValueError, LookupError, TypeError):
        raise ViewerInstallError(f"unexpected npm pack output: {result.stdout[:500]!r}") from None
    tarball = work / Path(str(filename)).name
    if not tarball.is_file():
        raise ViewerInstallError(f"npm pack did not write {tarball}")
    return tarball


def _check_integrity(tarball: Path) -> None:
    digest = hashlib.sha512()
    with open(tarball, "rb") as handle:
        while chunk := handle.read(1024 * 1024):
            digest.update(chunk)
    actual = "sha512-" + base64.b64encode(digest.digest()).decode("ascii")
    if actual != INTEGRITY:
        raise ViewerInstallError(f"{tarball.name}: integrity {actual} is not the pinned one")


def _extract_dist(tarball: Path, staged: Path) -> None:
    """Unpack ``package/dist/**`` (regular files and folders only) into ``staged``, with
    fresh modification times: npm stamps every file 1985-10-26, which would make browsers
    revalidate a changed file as unchanged after an upgrade."""
    prefix = "package/dist/"
    now = time.time()
    count = 0
    with tarfile.open(tarball, "r:gz") as archive:
        for member in archive:
            if not member.name.startswith(prefix) or not (member.isfile() or member.isdir()):
                continue
            relative = member.name[len(prefix) :]
            if not relative or relative in _DROPPED:
                continue
            target = (staged / relative).resolve()
            if not target.is_relative_to(staged.resolve()):
                raise ViewerInstallError(f"unsafe path in the tarball: {member.name!r}")
            if member.isdir():
                target.mkdir(parents=True, exist_ok=True)
                continue
            target.parent.mkdir(parents=True, exist_ok=True)
            source = archive.extractfile(member)
            if source is None:
                continue
            with source, open(target, "wb") as out:
                shutil.copyfileobj(source, out, 1024 * 1024)
            os.utime(target, (now, now))
            count += 1
    if count == 0 or not (staged / "index.html").is_file():
        raise ViewerInstallError(f"{tarball.name} holds no dist/index.html")


def _replace_in(path: Path, edits: list[tuple[str, str]], *, required: bool) -> int:
    text = path.read_text(encoding="utf-8", errors="surrogateescape")
    done = 0
    for old, new in edits:
        done += text.count(old)
        text = text.replace(old, new)
    if required and done == 0:
        raise ViewerInstallError(f"{path.name}: none of the expected public paths found")
    if done:
        path.write_text(text, encoding="utf-8", errors="surrogateescape")
    return done


def rebase(root: Path, base: str = BASE_PATH) -> None:
    """Move a build made for ``/`` to ``base``: the page's links and ``PUBLIC_URL``, the
    webpack public path of every bundle and worker, font URLs in the style sheets, the
    microscopy library's import, the manifest's icons."""
    _replace_in(
        root / "index.html",
        [
            ('window.PUBLIC_URL="/"', f'window.PUBLIC_URL="{base}"'),
            (
                '<script rel="preload" as="script" type="module" src="/init-service-worker.js">'
                "</script>",
                "",
            ),
            ('href="/', f'href="{base}'),
            ('src="/', f'src="{base}'),
        ],
        required=True,
    )
    public_paths = 0
    for path in sorted(root.glob("*.js")):
        public_paths += _replace_in(
            path,
            [
                ('__webpack_require__.p = "/";', f'__webpack_require__.p = "{base}";'),
                ("'/dicom-microscopy-viewer/", f"'{base}dicom-microscopy-viewer/"),
            ],
            required=False,
        )
    if public_paths == 0:
        raise ViewerInstallError("no bundle sets the webpack public path: layout changed?")
    for path in sorted(root.glob("*.css")):
        _replace_in(path, [("url(/", f"url({base}")], required=False)
    if (root / "manifest.json").is_file():
        _replace_in(root / "manifest.json", [('"/', f'"{base}')], required=False)


def precompress(root: Path) -> int:
    """Write ``x.js.gz`` beside each compressible file of the top folder, what every page
    load fetches (the server sends it to browsers that accept gzip: the 17 MB main bundle
    travels as 3.4 MB); the number written. ``ort/`` (in-browser AI, 136 MB) and the
    microscopy viewer's folder are left as they are."""
    written = 0
    for path in sorted(root.iterdir()):
        if path.suffix not in _COMPRESSIBLE or not path.is_file():
            continue
        data = path.read_bytes()
        if len(data) < 1024:
            continue
        packed = gzip.compress(data, compresslevel=6, mtime=0)
        if len(packed) < 0.9 * len(data):
            path.with_name(path.name + ".gz").write_bytes(packed)
            written += 1
    return written


def _check_replaceable(dest: Path) -> None:
    """Refuse (before downloading anything) to replace a folder we did not install."""
    ours = (dest / MARKER).is_file()
    if dest.exists() and not ours and (not dest.is_dir() or any(dest.iterdir())):
        raise ViewerInstallError(f"{dest} exists and is not a viewer installed by pacs")


def _swap_into_place(staged: Path, dest: Path, work: Path) -> None:
    """Replace ``dest`` by ``staged`` (the old tree goes to ``work``, deleted with it)."""
    if dest.exists():
        _check_replaceable(dest)
        os.replace(dest, work / "old")
    os.replace(staged, dest)


def _tree_size(root: Path) -> tuple[int, int]:
    files = size = 0
    for path in root.rglob("*"):
        if path.is_file():
            files += 1
            size += path.stat().st_size
    return files, size
