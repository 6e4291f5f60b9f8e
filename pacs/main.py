"""Composition root: builds every adapter from Settings and wires them. Nothing imports it."""

from __future__ import annotations

import asyncio
import logging
import multiprocessing
import signal
import threading
from multiprocessing.process import BaseProcess

from aiohttp import web

from pacs.core.archive import Archive
from pacs.dimse.server import DimseServer
from pacs.logging_setup import configure_logging
from pacs.settings import Settings
from pacs.web import build_app
from storage import FileSystemBlobStore

log = logging.getLogger("pacs")


def build_archive(settings: Settings) -> Archive:
    """The Archive over the configured blob store and index (migrated on open)."""
    settings.server.data_dir.mkdir(parents=True, exist_ok=True)
    blobs = FileSystemBlobStore(settings.blob_dir, fsync=settings.storage.fsync)
    blobs.remove_partial_writes()
    return Archive.open(
        settings.index_url,
        blobs,
        duplicate_policy=settings.dimse.duplicate_policy,
        max_pixels=settings.dimse.max_pixels,
        batch_max=settings.index.batch_max,
    )


def _wait_for_signal() -> None:
    stop = threading.Event()
    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, lambda *_: stop.set())
    stop.wait()


def run_dimse_worker(settings: Settings) -> None:
    """A secondary process: its own Archive and DICOM listener on the shared port."""
    configure_logging(settings)
    archive = build_archive(settings)
    server = DimseServer(archive, settings)
    server.start()
    try:
        _wait_for_signal()
    finally:
        server.stop()
        archive.close()


async def _serve_http(settings: Settings, archive: Archive, stop: asyncio.Event) -> None:
    runner = web.AppRunner(build_app(archive), access_log=logging.getLogger("pacs.http.access"))
    await runner.setup()
    site = web.TCPSite(runner, settings.http.host, settings.http.port)
    await site.start()
    log.info("HTTP on %s:%d", settings.http.host, settings.http.port)
    try:
        await stop.wait()
    finally:
        await runner.cleanup()


async def _serve(settings: Settings, archive: Archive) -> None:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stop.set)
    if settings.http.port:
        await _serve_http(settings, archive, stop)
    else:
        await stop.wait()


def serve(settings: Settings) -> None:
    """Run the whole server until SIGTERM or Ctrl-C."""
    configure_logging(settings)
    archive = build_archive(settings)
    workers: list[BaseProcess] = []
    if settings.dimse.workers > 1:
        context = multiprocessing.get_context("spawn")
        for number in range(settings.dimse.workers - 1):
            process: BaseProcess = context.Process(
                target=run_dimse_worker,
                args=(settings,),
                name=f"dimse-worker-{number + 1}",
                daemon=True,
            )
            process.start()
            workers.append(process)
    dimse = DimseServer(archive, settings)
    dimse.start()
    log.info(
        "PACS %s ready: DICOM port %d, HTTP port %d, data in %s",
        settings.dimse.ae_title,
        dimse.port,
        settings.http.port,
        settings.server.data_dir,
    )
    try:
        asyncio.run(_serve(settings, archive))
    finally:
        log.info("shutting down")
        dimse.stop()
        for process in workers:
            process.terminate()
        for process in workers:
            process.join(timeout=10)
        archive.close()
