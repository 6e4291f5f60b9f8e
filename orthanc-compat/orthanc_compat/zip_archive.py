"""``/patients|studies|series/{id}/archive``: a ZIP of the stored files, streamed.

A worker thread writes the ZIP (stored, not deflated: DICOM pixel data hardly compresses)
into a bounded queue of chunks that the response sends as they come: memory stays at a few
chunks whatever the size of the study.
"""

from __future__ import annotations

import asyncio
import logging
import queue
import re
import threading
import zipfile
from collections.abc import Callable, Sequence
from typing import Any

from aiohttp import web

from orthanc_compat.keys import LEVEL_OF_PATH, add_route, archive_of, resource_id
from pacs.core.archive import Archive
from pacs.core.errors import NotFound
from pacs.core.index.resources import Resource
from pacs.core.model import Level, StoredInstance

log = logging.getLogger("pacs.orthanc")

CHUNK = 1024 * 1024
QUEUE_CHUNKS = 8  # at most this many chunks wait for the client
_UNSAFE = re.compile(r"[^A-Za-z0-9 ._^-]+")
_DONE = object()


class _QueueWriter:
    """A write-only, unseekable file whose bytes go to a bounded queue in chunks."""

    def __init__(self, chunks: queue.Queue[Any], cancelled: threading.Event) -> None:
        self._chunks = chunks
        self._cancelled = cancelled
        self._buffer = bytearray()
        self._written = 0

    def write(self, data: bytes) -> int:
        self._buffer += data
        self._written += len(data)
        if len(self._buffer) >= CHUNK:
            self._push()
        return len(data)

    def _push(self) -> None:
        while not self._cancelled.is_set():
            try:
                self._chunks.put(bytes(self._buffer), timeout=1.0)
                self._buffer.clear()
                return
            except queue.Full:
                continue
        raise ConnectionAbortedError("the client went away")

    def tell(self) -> int:
        return self._written

    def flush(self) -> None:
        if self._buffer:
            self._push()

    def close(self) -> None:
        self.flush()


def _clean(text: Any) -> str:
    return _UNSAFE.sub("_", str(text or "")).strip() or "unknown"


def instances_and_series(
    archive: Archive, level: Level, resource: Resource
) -> tuple[list[StoredInstance], list[Resource]]:
    """The instances below a resource (in sending order) and the series they belong to."""
    if level == Level.PATIENT:  # instances_under starts at the study level
        studies = archive.resources.descendants(level, resource.pk, Level.STUDY)
        instances = archive.index.instances_under(Level.STUDY, [s.pk for s in studies])
    else:
        instances = archive.index.instances_under(level, [resource.pk])
    if level == Level.SERIES:
        series = [resource]
    elif level == Level.IMAGE:
        series = [archive.resources.ancestor(level, resource.pk, Level.SERIES)]
    else:
        series = archive.resources.descendants(level, resource.pk, Level.SERIES)
    return instances, series


def archive_entries(
    archive: Archive, targets: list[tuple[Level, Resource]]
) -> list[tuple[str, StoredInstance]]:
    """(name in the ZIP, instance) in Orthanc's layout: patient / study / series / file;
    an instance reached through two of the targets is written once."""
    study_rows: dict[str, Resource] = {}
    names: list[tuple[str, StoredInstance]] = []
    counters: dict[str, int] = {}
    seen: set[str] = set()
    for level, resource in targets:
        instances, series_rows = instances_and_series(archive, level, resource)
        series_by_uid = {str(s.values["SeriesInstanceUID"]): s for s in series_rows}
        for stored in instances:
            series = series_by_uid.get(stored.series_uid)
            if series is None or stored.sop_uid in seen:
                continue  # stored while the archive was being listed, or already written
            seen.add(stored.sop_uid)
            if stored.study_uid not in study_rows:
                study_rows[stored.study_uid] = archive.resources.ancestor(
                    Level.SERIES, series.pk, Level.STUDY
                )
            study = study_rows[stored.study_uid].values
            patient = f"{_clean(study.get('PatientID'))} {_clean(study.get('PatientName'))}"
            study_name = f"{_clean(study.get('StudyDate'))} {_clean(study.get('StudyDescription'))}"
            values = series.values
            series_name = (
                f"{_clean(values.get('Modality'))}{values.get('SeriesNumber') or ''} "
                f"{_clean(values.get('SeriesDescription'))}"
            )
            folder = f"{patient}/{study_name}/{series_name}"
            counters[folder] = counters.get(folder, 0) + 1
            names.append((f"{folder}/{counters[folder]:05d}.dcm", stored))
    return names


def write_entries(
    archive: Archive,
    entries: Sequence[tuple[str, StoredInstance | bytes]],
    target: Any,
    progress: Callable[[int], None] | None = None,
) -> int:
    """Write the ZIP of ``entries`` into ``target`` (a writable binary file, seekable or not),
    a chunk at a time; ``progress(n)`` after each entry (it may raise to stop). Returns the
    bytes of the stored instances written (uncompressed size, the small files made here left
    out, as Orthanc counts)."""
    written = 0
    with zipfile.ZipFile(target, "w", compression=zipfile.ZIP_STORED) as bundle:
        for done, (name, stored) in enumerate(entries, 1):
            if isinstance(stored, bytes):  # a small file made here (a DICOMDIR)
                bundle.writestr(name, stored)
            else:
                with (
                    archive.open_instance(stored) as source,
                    bundle.open(name, "w", force_zip64=True) as out,
                ):
                    while block := source.read(CHUNK):
                        out.write(block)
                        written += len(block)
            if progress is not None:
                progress(done)
    return written


def write_zip(
    archive: Archive,
    entries: Sequence[tuple[str, StoredInstance | bytes]],
    chunks: queue.Queue[Any],
    cancelled: threading.Event,
) -> None:
    """Write the ZIP into the queue (run in a thread); the last item is ``_DONE`` or an error."""
    try:
        writer = _QueueWriter(chunks, cancelled)
        write_entries(archive, entries, writer)
        writer.flush()
        chunks.put(_DONE)
    except Exception as exc:  # reported to the response, which aborts the transfer
        if not cancelled.is_set():
            log.error("ZIP archive failed: %s", exc)
        chunks.put(exc)


async def get_archive(request: web.Request) -> web.StreamResponse:
    """``GET /{patients|studies|series}/{id}/archive``."""
    archive = archive_of(request)
    level = LEVEL_OF_PATH[request.match_info["level"]]
    public_id = resource_id(request)
    resource = await asyncio.to_thread(archive.resources.get, level, public_id)
    entries = await asyncio.to_thread(archive_entries, archive, [(level, resource)])
    return await stream_zip(request, archive, entries, f"{public_id}.zip")


def find_any_level(archive: Archive, public_ids: list[str]) -> list[tuple[Level, Resource]]:
    """Each id as a resource of whatever level has it (NotFound for an unknown one)."""
    found = []
    for public_id in public_ids:
        for level in Level:
            try:
                found.append((level, archive.resources.get(level, public_id)))
                break
            except NotFound:
                continue
        else:
            raise NotFound(f"no resource {public_id}")
    return found


async def stream_zip(
    request: web.Request,
    archive: Archive,
    entries: Sequence[tuple[str, StoredInstance | bytes]],
    filename: str,
) -> web.StreamResponse:
    """Send the ZIP of ``entries`` as it is written."""
    chunks: queue.Queue[Any] = queue.Queue(maxsize=QUEUE_CHUNKS)
    cancelled = threading.Event()
    worker = threading.Thread(
        target=write_zip, args=(archive, entries, chunks, cancelled), daemon=True
    )
    response = web.StreamResponse(
        headers={
            "Content-Type": "application/zip",
            "Content-Disposition": f'attachment; filename="{filename}"',
        }
    )
    await response.prepare(request)
    worker.start()
    failed = False
    try:
        while True:
            item = await asyncio.to_thread(chunks.get)
            if item is _DONE:
                break
            if isinstance(item, Exception):
                failed = True
                break
            await response.write(item)
    except ConnectionResetError:
        log.info("ZIP archive %s: the client went away", filename)
        return response
    finally:
        cancelled.set()
    if failed and request.transport is not None:
        request.transport.close()  # a truncated transfer: the client sees an error, no ZIP
        return response
    await response.write_eof()
    return response


def add_routes(app: web.Application) -> None:
    """Register the archive routes."""
    add_route(app, "GET", "/{level:patients|studies|series}/{id}/archive", get_archive)
