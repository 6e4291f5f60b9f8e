"""Serving the viewer's files under /viewer/ (a small tree laid out like OHIF's build, rebased
by the installer's own code) and the installer's refusals, against a running server."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import tarfile
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests

from pacs.viewer.install import (
    MARKER,
    VERSION,
    ViewerInstallError,
    install_viewer,
    installed_version,
    mark_installed,
    precompress,
    rebase,
)
from tests.conftest import REPO, RunningServer, start_server, wait_for_port
from tests.viewer.browser import VIEWER_DIR

HASHED_JS = "app.bundle.0123456789abcdef.js"
WASM = "fedcba9876543210.wasm"
INDEX = (
    '<!doctype html><html><head><script>window.PUBLIC_URL="/"</script>'
    '<link rel="manifest" href="/manifest.json">'
    '<script rel="preload" as="script" src="/app-config.js"></script>'
    '<script rel="preload" as="script" type="module" src="/init-service-worker.js"></script>'
    f'<script defer src="/{HASHED_JS}"></script><link href="/app.bundle.css" rel="stylesheet">'
    '</head><body><div id="root"></div></body></html>'
)


def _build_tree(root: Path) -> Path:
    """A tiny tree laid out like OHIF's dist/, as built for '/'."""
    root.mkdir(parents=True)
    (root / "index.html").write_text(INDEX, encoding="utf-8")
    (root / HASHED_JS).write_text(
        '(() => {\n__webpack_require__.p = "/";\n})();\n'
        "browserImportFunction('/dicom-microscopy-viewer/x.min.js');\n"
        + "// padding: big enough to be worth compressing\n"
        * 100,
        encoding="utf-8",
    )
    (root / "app.bundle.css").write_text("@font-face{src:url(/f.woff2)}", encoding="utf-8")
    (root / "manifest.json").write_text('{"icons": [{"src": "/assets/a.png"}]}', "utf-8")
    (root / WASM).write_bytes(b"\x00asm\x01\x00\x00\x00")
    (root / "assets").mkdir()
    (root / "assets" / "a.png").write_bytes(b"\x89PNG\r\n\x1a\n")
    return root


@pytest.fixture(scope="module")
def node(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[RunningServer, str]]:
    tmp = tmp_path_factory.mktemp("viewer-serve")
    viewer = _build_tree(tmp / "site" / "viewer")
    rebase(viewer)
    assert precompress(viewer) == 1  # the bundle; the rest is under 1 KiB
    mark_installed(viewer)
    (tmp / "site" / "secret.txt").write_text("SECRET-NEXT-TO-THE-VIEWER", encoding="utf-8")
    server = start_server(tmp, http_options=f'viewer_dir = "{viewer}"')
    try:
        wait_for_port(server.http_port, process=server.process)
        yield server, f"http://127.0.0.1:{server.http_port}"
    finally:
        server.stop()


def test_the_page_is_rebased_to_viewer_and_answers_deep_links(
    node: tuple[RunningServer, str],
) -> None:
    _, base = node
    for path in ("/viewer/", "/viewer/viewer?StudyInstanceUIDs=1.2.3", "/viewer/viewer/dicomweb"):
        response = requests.get(base + path, timeout=10)
        assert response.status_code == 200, path
        assert response.headers["Content-Type"].startswith("text/html")
        assert response.headers["Cache-Control"] == "no-cache"
        assert response.headers["X-Content-Type-Options"] == "nosniff"
        assert "frame-ancestors 'self'" in response.headers["Content-Security-Policy"]
        assert response.headers["Cross-Origin-Opener-Policy"] == "same-origin"
        page = response.text
        assert 'window.PUBLIC_URL="/viewer/"' in page
        assert f'src="/viewer/{HASHED_JS}"' in page and 'href="/viewer/app.bundle.css"' in page
        assert "init-service-worker" not in page
    moved = requests.get(base + "/viewer?x=1", allow_redirects=False, timeout=10)
    assert moved.status_code == 301 and moved.headers["Location"] == "/viewer/?x=1"


def test_static_files_have_their_types_and_cache_lifetimes(node: tuple[RunningServer, str]) -> None:
    _, base = node
    bundle = requests.get(f"{base}/viewer/{HASHED_JS}", timeout=10)
    assert bundle.status_code == 200
    assert bundle.headers["Content-Type"].startswith("text/javascript")
    assert bundle.headers["Cache-Control"] == "public, max-age=31536000, immutable"
    assert '__webpack_require__.p = "/viewer/";' in bundle.text
    assert "'/viewer/dicom-microscopy-viewer/x.min.js'" in bundle.text
    assert bundle.headers["Content-Encoding"] == "gzip"  # the .gz written at install
    assert bundle.headers["Vary"] == "Accept-Encoding"
    plain = requests.get(
        f"{base}/viewer/{HASHED_JS}", headers={"Accept-Encoding": "identity"}, timeout=10
    )
    assert "Content-Encoding" not in plain.headers and plain.text == bundle.text
    wasm = requests.get(f"{base}/viewer/{WASM}", timeout=10)
    assert wasm.headers["Content-Type"] == "application/wasm"
    assert wasm.content.startswith(b"\x00asm")
    css = requests.get(f"{base}/viewer/app.bundle.css", timeout=10)
    assert css.headers["Content-Type"].startswith("text/css")
    assert css.headers["Cache-Control"] == "no-cache"
    assert "url(/viewer/f.woff2)" in css.text
    again = requests.get(
        f"{base}/viewer/app.bundle.css",
        headers={"If-Modified-Since": css.headers["Last-Modified"]},
        timeout=10,
    )
    assert again.status_code == 304
    manifest = requests.get(f"{base}/viewer/manifest.json", timeout=10)
    assert manifest.headers["Content-Type"] == "application/json"
    assert manifest.json()["icons"][0]["src"] == "/viewer/assets/a.png"
    assert requests.get(f"{base}/viewer/assets/a.png", timeout=10).status_code == 200


def test_app_config_points_at_our_dicomweb_on_the_page_origin(
    node: tuple[RunningServer, str],
) -> None:
    _, base = node
    response = requests.get(f"{base}/viewer/app-config.js", timeout=10)
    assert response.status_code == 200
    assert response.headers["Content-Type"].startswith("text/javascript")
    assert response.headers["Cache-Control"] == "no-cache"
    if shutil.which("node") is None:
        pytest.skip("node is absent: cannot evaluate app-config.js")
    script = (
        "const window = {location: {origin: 'https://pacs.example:8443'}};\n"
        f"{response.text}\nprocess.stdout.write(JSON.stringify(window.config));"
    )
    result = subprocess.run(["node", "-e", script], capture_output=True, text=True, check=True)
    config = json.loads(result.stdout)
    assert config["routerBasename"] == "/viewer"
    source = config["dataSources"][0]
    assert config["defaultDataSourceName"] == source["sourceName"]
    settings = source["configuration"]
    assert settings["qidoRoot"] == settings["wadoRoot"] == "https://pacs.example:8443/dicom-web"
    assert settings["wadoUriRoot"] == "https://pacs.example:8443/wado"
    assert settings["imageRendering"] == "wadors" and settings["thumbnailRendering"] == "thumbnail"
    assert settings["dicomUploadEnabled"] is False and settings["enableStudyLazyLoad"] is True


def test_missing_files_traversal_and_hidden_files_are_refused(
    node: tuple[RunningServer, str],
) -> None:
    server, base = node
    missing = requests.get(f"{base}/viewer/9999.bundle.0000000000000000.js", timeout=10)
    assert missing.status_code == 404 and "no such viewer file" in missing.text
    for path in (
        "/viewer/%2e%2e/secret.txt",
        "/viewer/..%2fsecret.txt",
        "/viewer/assets/%2e%2e/%2e%2e/secret.txt",
        "/viewer/%2e%2e%5csecret.txt",
        f"/viewer/{MARKER}",
    ):
        response = requests.get(base + path, timeout=10)
        assert "SECRET" not in response.text, path
        assert '"base"' not in response.text, path
        assert response.status_code in {200, 404}, path  # the page (a client route) or 404
    assert server.process.poll() is None


def test_not_installed_says_how_to_install(tmp_path: Path) -> None:
    server = start_server(tmp_path, http_options=f'viewer_dir = "{tmp_path / "absent"}"')
    try:
        wait_for_port(server.http_port, process=server.process)
        base = f"http://127.0.0.1:{server.http_port}"
        for path in ("/viewer/", "/viewer/viewer?StudyInstanceUIDs=1.2.3", "/viewer/app.js"):
            response = requests.get(base + path, timeout=10)
            assert response.status_code == 404, path
            assert "pacs install-viewer" in response.text
        assert requests.get(f"{base}/health", timeout=10).status_code == 200
    finally:
        server.stop()
    assert "viewer not installed" in server.log_text()


def test_rebase_refuses_a_build_it_does_not_recognise(tmp_path: Path) -> None:
    root = _build_tree(tmp_path / "dist")
    (root / HASHED_JS).write_text("console.log('no public path here');", encoding="utf-8")
    with pytest.raises(ViewerInstallError, match="public path"):
        rebase(root)


def _fake_npm(folder: Path, tarball: Path) -> str:
    """A stand-in for the npm client (an external program) whose registry serves
    ``tarball``: it copies it where ``npm pack`` would and prints npm's JSON."""
    script = folder / "npm"
    script.write_text(
        "#!/bin/sh\n"
        'while [ "$1" != "--pack-destination" ]; do shift; done\n'
        f'cp "{tarball}" "$2/ohif-app-{VERSION}.tgz"\n'
        f'echo \'[{{"filename": "ohif-app-{VERSION}.tgz"}}]\'\n',
        encoding="utf-8",
    )
    script.chmod(0o755)
    return str(script)


def test_install_refuses_a_tarball_that_is_not_the_pinned_one(tmp_path: Path) -> None:
    tree = _build_tree(tmp_path / "package" / "dist")
    tarball = tmp_path / "forged.tgz"
    with tarfile.open(tarball, "w:gz") as archive:
        archive.add(tree, arcname="package/dist")
    npm = _fake_npm(tmp_path, tarball)
    dest = tmp_path / "viewer"
    with pytest.raises(ViewerInstallError, match="not the pinned one"):
        install_viewer(dest, npm=npm)
    assert not dest.exists()
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".viewer-")]


def test_install_never_replaces_a_folder_it_did_not_install(tmp_path: Path) -> None:
    dest = tmp_path / "data"
    dest.mkdir()
    (dest / "index.sqlite").write_bytes(b"precious")
    with pytest.raises(ViewerInstallError, match="not a viewer installed by pacs"):
        install_viewer(dest, npm="no-such-npm-client")  # refused before npm is looked for
    assert (dest / "index.sqlite").read_bytes() == b"precious"


def test_install_without_npm_says_so(tmp_path: Path) -> None:
    with pytest.raises(ViewerInstallError, match="not found"):
        install_viewer(tmp_path / "viewer", npm="no-such-npm-client")


def test_install_is_skipped_when_that_version_is_there() -> None:
    if installed_version(VIEWER_DIR) != VERSION:
        pytest.skip(f"the OHIF viewer {VERSION} is not installed in {VIEWER_DIR}")
    done = install_viewer(VIEWER_DIR, npm="no-such-npm-client")
    assert done.skipped and done.version == VERSION and done.files > 100


def test_the_command_reports_a_refusal_and_exits_1(tmp_path: Path) -> None:
    (tmp_path / "notes.txt").write_text("not a viewer", encoding="utf-8")
    result = subprocess.run(
        [sys.executable, "-m", "pacs", "install-viewer", str(tmp_path)],
        capture_output=True,
        text=True,
        cwd=REPO,
        timeout=60,
    )
    assert result.returncode == 1
    assert "install-viewer failed" in result.stderr and "not a viewer" in result.stderr
