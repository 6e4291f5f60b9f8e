"""Shared fixtures: index backends (SQLite, PostgreSQL), an in-process Archive, a real server."""

from __future__ import annotations

import contextlib
import os
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from pacs.core.archive import Archive
from storage import FileSystemBlobStore

REPO = Path(__file__).resolve().parent.parent
SHARED_DATA = REPO.parent / "shared" / "data"
POSTGRES_URL = os.environ.get("PACS_TEST_POSTGRES", "postgresql://postgres@127.0.0.1:5432/test")


_HANDED_OUT: set[int] = set()


def free_port() -> int:
    """A TCP port nobody listens on right now, and never one this test run was given before:
    the kernel may hand the same free port to two binds in a row (a server once got the same
    port for DICOM and HTTP, and its HTTP listener could not start)."""
    while True:
        with socket.socket() as sock:
            sock.bind(("127.0.0.1", 0))
            port = int(sock.getsockname()[1])
        if port not in _HANDED_OUT:
            _HANDED_OUT.add(port)
            return port


def wait_for_port(
    port: int, timeout: float = 20.0, process: subprocess.Popen[bytes] | None = None
) -> None:
    """Block until something accepts connections on the port."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process is not None and process.poll() is not None:
            raise RuntimeError(f"server exited with {process.returncode}")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                return
        except OSError:
            time.sleep(0.05)
    raise TimeoutError(f"nothing listens on port {port}")


def _postgres_available() -> bool:
    try:
        import psycopg

        with psycopg.connect(POSTGRES_URL, connect_timeout=2):
            return True
    except Exception:
        return False


@contextlib.contextmanager
def fresh_postgres_schema() -> Iterator[str]:
    """A PostgreSQL URL whose connections use a fresh schema, dropped afterwards; skips
    the test where no server answers."""
    if not _postgres_available():
        pytest.skip("no PostgreSQL server at 127.0.0.1:5432")
    import psycopg

    schema = f"t_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(POSTGRES_URL, autocommit=True) as conn:
        conn.execute(f"CREATE SCHEMA {schema}")
    try:
        yield f"{POSTGRES_URL}?options=-csearch_path%3D{schema}"
    finally:
        with psycopg.connect(POSTGRES_URL, autocommit=True) as conn:
            conn.execute(f"DROP SCHEMA {schema} CASCADE")


@pytest.fixture
def postgres_url() -> Iterator[str]:
    """A PostgreSQL URL on a fresh schema (see :func:`fresh_postgres_schema`)."""
    with fresh_postgres_schema() as url:
        yield url


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def index_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """Each index backend in turn: the same test runs on SQLite and PostgreSQL."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'index.sqlite'}"
    return str(request.getfixturevalue("postgres_url"))


@pytest.fixture
def archive(index_url: str, tmp_path: Path) -> Iterator[Archive]:
    """An Archive over a temporary blob folder and each index backend."""
    blobs = FileSystemBlobStore(tmp_path / "blobs")
    archive = Archive.open(index_url, blobs)
    try:
        yield archive
    finally:
        archive.close()


@dataclass
class RunningServer:
    """A ``pacs serve`` process started by a test."""

    process: subprocess.Popen[bytes]
    dimse_port: int
    http_port: int
    data_dir: Path
    config: Path
    log: Path
    ae_title: str = "PACS"

    def log_text(self) -> str:
        return self.log.read_text(encoding="utf-8", errors="replace")

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()


def pacs_env() -> dict[str, str]:
    """The environment of a ``python -m pacs`` process: no ``PACS_*`` overrides, and the
    package in orthanc-compat/ importable (it is only with that folder on the path)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("PACS_")}
    env["PYTHONPATH"] = os.pathsep.join(
        p for p in (str(REPO), str(REPO / "orthanc-compat"), env.get("PYTHONPATH", "")) if p
    )
    return env


def run_pacs(config: Path, *args: str, timeout: float = 300) -> subprocess.CompletedProcess[str]:
    """``python -m pacs --config CONFIG ARGS`` to its end, its output captured as text."""
    return subprocess.run(
        [sys.executable, "-m", "pacs", "--config", str(config), *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        cwd=REPO,
        env=pacs_env(),
    )


def start_server(
    tmp_path: Path,
    extra_config: str = "",
    index_url: str = "",
    name: str = "server",
    dimse_port: int | None = None,
    data_dir: Path | None = None,
    dimse_options: str = "",
    http_options: str = "",
    server_options: str = "",
) -> RunningServer:
    """Start ``python -m pacs serve`` with a fresh config in ``tmp_path``; ``dimse_options``,
    ``http_options`` and ``server_options`` are more lines for the ``[dimse]``, ``[http]``
    and ``[server]`` tables, ``extra_config`` more tables."""
    dimse_port = dimse_port or free_port()
    http_port = free_port()
    data_dir = data_dir or tmp_path / f"{name}-data"
    config = tmp_path / f"{name}.toml"
    index_line = f'[index]\nurl = "{index_url}"\n' if index_url else ""
    config.write_text(
        f'[server]\ndata_dir = "{data_dir}"\nlog_level = "INFO"\n{server_options}\n'
        f'[dimse]\nport = {dimse_port}\nhost = "127.0.0.1"\n{dimse_options}\n'
        f'[http]\nport = {http_port}\nhost = "127.0.0.1"\n{http_options}\n'
        f"{index_line}{extra_config}\n",
        encoding="utf-8",
    )
    log = tmp_path / f"{name}.log"
    with open(log, "ab") as handle:
        process = subprocess.Popen(
            [sys.executable, "-m", "pacs", "--config", str(config), "serve"],
            stdout=handle,
            stderr=subprocess.STDOUT,
            cwd=REPO,
            env=pacs_env(),
        )
    server = RunningServer(process, dimse_port, http_port, data_dir, config, log)
    try:
        wait_for_port(dimse_port, process=process)
        wait_for_port(http_port, process=process)
    except Exception:
        server.stop()
        raise RuntimeError(f"server did not start:\n{server.log_text()}") from None
    return server


@pytest.fixture
def server(tmp_path: Path) -> Iterator[RunningServer]:
    """A running server on the embedded default (SQLite, local folders)."""
    running = start_server(tmp_path)
    try:
        yield running
    finally:
        running.stop()


@pytest.fixture(scope="session")
def shared_data() -> Path:
    """``../shared/data``; tests using it skip where it is absent."""
    if not SHARED_DATA.is_dir():
        pytest.skip("../shared/data is absent")
    return SHARED_DATA
