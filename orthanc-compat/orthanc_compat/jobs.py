"""``/jobs``: a small in-process registry of long operations, each run in its own thread.

Running jobs live in memory; each job's record (state, content, times, error) is also
written to the index when it starts and when it ends (``pacs.core.index.job_records``), so
finished jobs survive a restart, as Orthanc's with ``SaveJobs``. A job a restart
interrupted runs again from the start when its type can (its record keeps a *recipe*: the
request that made it; the door that made it registers how to rebuild its work with
:meth:`JobRegistry.resumable`), else comes back failed. Only the records of this host's
server processes that are gone (or other hosts' older than a day) are taken over, so
servers sharing one index leave each other's running jobs alone. The most recent 500 jobs
are kept.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import tempfile
import threading
import time
import uuid
from collections import OrderedDict
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from aiohttp import web

from orthanc_compat.errors import (
    BAD_SEQUENCE,
    INEXISTENT_ITEM,
    INTERNAL,
    OrthancError,
    _from_core,
)
from orthanc_compat.keys import add_route, flag, json_response
from pacs.core.errors import PacsError
from pacs.core.index.job_records import JobRecord, JobRecords

log = logging.getLogger("pacs.orthanc")

_KEPT = 500
OUTPUT_TTL = 3600.0  # seconds a finished job's output file is kept
SWEEP_SECONDS = 60.0
CANCELED = (14, "Operation was canceled")
INTERRUPTED = "interrupted by a server restart"


def job_time(seconds: float) -> str:
    """``20240115T101500.123456`` (UTC), Orthanc's job time format."""
    return datetime.fromtimestamp(seconds, UTC).strftime("%Y%m%dT%H%M%S.%f")


class JobCanceled(Exception):
    """Raised inside a job's work when it sees its cancellation."""


@dataclass
class Job:
    """One operation: its state, progress, content and outcome (Orthanc's job shape)."""

    type: str
    content: dict[str, Any]
    id: str = field(default_factory=lambda: str(uuid.uuid4()))
    state: str = "Pending"
    progress: int = 0
    created: float = field(default_factory=time.time)
    started: float = 0.0
    completed: float = 0.0
    error: tuple[int, str] = (0, "Success")
    error_details: str = ""
    http_status: int = 200
    cancel_event: threading.Event = field(default_factory=threading.Event)
    done: threading.Event = field(default_factory=threading.Event)
    may_run: threading.Event = field(default_factory=threading.Event)  # clear while paused
    work: Work | None = field(default=None, repr=False)
    outputs: dict[str, JobOutput] = field(default_factory=dict)
    recipe: dict[str, Any] | None = None  # what rebuilds the work after a restart

    def __post_init__(self) -> None:
        self.may_run.set()

    def report(self, done: int, total: int) -> None:
        """Progress callback for the work: ``done`` of ``total`` (percent); it waits here
        while the job is paused and raises `JobCanceled` once it is cancelled."""
        self.progress = 100 if total <= 0 else min(99, done * 100 // total)
        self.checkpoint()

    def checkpoint(self) -> None:
        """Wait while paused; raise `JobCanceled` when a cancellation was asked for."""
        while not self.may_run.is_set() and not self.cancel_event.is_set():
            self.state = "Paused"
            self.may_run.wait(0.5)
        if self.cancel_event.is_set():
            raise JobCanceled()
        if self.state == "Paused":
            self.state = "Running"

    def cancelled(self) -> bool:
        """Whether a cancellation was asked for."""
        return self.cancel_event.is_set()

    def record(self) -> JobRecord:
        """What the index keeps of the job."""
        return JobRecord(
            id=self.id,
            type=self.type,
            state=self.state,
            progress=self.progress,
            content=self.content,
            created_at=self.created,
            started_at=self.started,
            completed_at=self.completed,
            error_code=self.error[0],
            error_description=self.error[1],
            error_details=self.error_details,
            recipe=self.recipe,
        )

    @classmethod
    def restored(cls, record: JobRecord) -> Job:
        """A job read back from the index, done (no work: it runs again only if rebuilt)."""
        job = cls(
            record.type,
            record.content,
            id=record.id,
            state=record.state,
            progress=record.progress,
            created=record.created_at,
            started=record.started_at,
            completed=record.completed_at,
            error=(record.error_code, record.error_description),
            error_details=record.error_details,
            recipe=record.recipe,
        )
        job.done.set()
        return job

    def shape(self) -> dict[str, Any]:
        """The JSON of ``GET /jobs/{id}``."""
        end = self.completed or time.time()
        body: dict[str, Any] = {
            "Content": self.content,
            "CreationTime": job_time(self.created),
            "EffectiveRuntime": round(end - self.started, 3) if self.started else 0.0,
            "ErrorCode": self.error[0],
            "ErrorDescription": self.error[1],
            "ErrorDetails": self.error_details,
            "ID": self.id,
            "Priority": 0,
            "Progress": self.progress,
            "State": self.state,
            "Timestamp": job_time(time.time()),
            "Type": self.type,
        }
        if self.completed:
            body["CompletionTime"] = job_time(self.completed)
        return dict(sorted(body.items()))


@dataclass(frozen=True)
class JobOutput:
    """A file a job produced (``GET /jobs/{id}/{key}``), deleted with the job."""

    path: Path
    content_type: str
    filename: str

    def remove(self) -> None:
        """Delete the file (gone already is fine)."""
        self.path.unlink(missing_ok=True)


Work = Callable[[Job], None]
# Rebuilds the work of an interrupted job from its recipe (it may refresh the job's content);
# raises OrthancError (or PacsError) when the job can no longer run.
Rebuild = Callable[["Job"], Work]


class JobRegistry:
    """Start jobs in threads; list, read and cancel them; keep their output files in
    ``output_dir`` (emptied here at start-up: outputs do not outlive the server) for ``ttl``
    seconds after the job ends, or until the job is deleted."""

    def __init__(
        self,
        output_dir: Path | None = None,
        ttl: float = OUTPUT_TTL,
        records: JobRecords | None = None,
    ) -> None:
        self._jobs: OrderedDict[str, Job] = OrderedDict()
        self._lock = threading.Lock()
        self.ttl = ttl
        self.records = records
        self._rebuilders: dict[str, Rebuild] = {}
        self._to_resume: list[Job] = []
        if records is not None:
            claimed, failed = records.take_over_interrupted(INTERNAL, INTERRUPTED, time.time())
            if failed:
                log.warning("%d job(s) %s: marked failed", failed, INTERRUPTED)
            for record in records.recent(_KEPT):
                self._jobs[record.id] = Job.restored(record)
            for record in claimed:  # to run again: not done
                job = self._jobs.setdefault(record.id, Job.restored(record))
                job.done.clear()
                self._to_resume.append(job)
        if output_dir is None:
            output_dir = Path(tempfile.mkdtemp(prefix="orthanc-jobs-"))
        self.output_dir = output_dir
        output_dir.mkdir(parents=True, exist_ok=True)
        for leftover in output_dir.iterdir():  # outputs of a previous run
            if leftover.is_file():
                leftover.unlink(missing_ok=True)

    def resumable(self, job_type: str, rebuild: Rebuild) -> None:
        """Let jobs of ``job_type`` interrupted by a restart run again (see :data:`Rebuild`)."""
        self._rebuilders[job_type] = rebuild

    def resume_interrupted(self) -> int:
        """Run again the jobs a restart interrupted (once, when the server starts); a job
        whose type cannot, or whose work cannot be rebuilt, fails. Returns how many run."""
        jobs, self._to_resume = self._to_resume, []
        resumed = 0
        for job in jobs:
            rebuild = self._rebuilders.get(job.type)
            try:
                if rebuild is None:
                    raise OrthancError(500, INTERNAL, f"a {job.type} job cannot run again")
                job.work = rebuild(job)
            except (OrthancError, PacsError) as exc:
                error = exc if isinstance(exc, OrthancError) else _from_core(exc)
                job.state, job.completed = "Failure", time.time()
                job.error = (error.code, error.message)
                job.error_details = f"{INTERRUPTED}; it cannot run again: {exc}"
                self._save(job)
                job.done.set()
                continue
            log.info("job %s (%s) interrupted by a restart: runs again", job.id, job.type)
            self._start(job)
            resumed += 1
        return resumed

    def output_path(self, job: Job, key: str) -> Path:
        """Where ``job`` writes its output ``key``."""
        return self.output_dir / f"{job.id}-{key}"

    def sweep(self, now: float | None = None) -> int:
        """Delete the outputs of jobs ended more than ``ttl`` seconds ago; returns how many."""
        now = time.time() if now is None else now
        removed = 0
        for job in self.all():
            if job.done.is_set() and job.outputs and now - job.completed > self.ttl:
                outputs, job.outputs = job.outputs, {}
                for output in outputs.values():
                    output.remove()
                    removed += 1
        return removed

    def submit(
        self,
        job_type: str,
        content: dict[str, Any],
        work: Work,
        recipe: dict[str, Any] | None = None,
    ) -> Job:
        """Register a job and start ``work(job)`` in a thread (it may update ``content``);
        with a ``recipe``, the job runs again if a restart interrupts it."""
        job = Job(job_type, content, work=work, recipe=recipe)
        with self._lock:
            self._jobs[job.id] = job
            trimmed = self._trim()
        if trimmed and self.records is not None:
            self.records.delete(trimmed)
        self._start(job)
        return job

    def _save(self, job: Job) -> None:
        """Write the job's record (a failure is logged: the job goes on in memory)."""
        if self.records is None:
            return
        try:
            self.records.save(job.record())
        except Exception:
            log.exception("could not save the record of job %s", job.id)

    def _start(self, job: Job) -> None:
        threading.Thread(
            target=self._run, args=(job,), name=f"job-{job.id[:8]}", daemon=True
        ).start()

    def _trim(self) -> list[str]:
        """Forget the oldest finished jobs beyond the number kept; returns their ids."""
        finished = [j.id for j in self._jobs.values() if j.done.is_set()]
        trimmed = finished[: max(0, len(self._jobs) - _KEPT)]
        for job_id in trimmed:
            for output in self._jobs.pop(job_id).outputs.values():
                output.remove()
        return trimmed

    def _run(self, job: Job) -> None:
        job.state, job.started = "Running", time.time()
        self._save(job)
        try:
            job.checkpoint()
            if job.work is not None:
                job.work(job)
            job.state, job.progress = "Success", 100
        except JobCanceled:
            job.state, job.error = "Failure", CANCELED
        except OrthancError as exc:
            job.state, job.error, job.error_details = (
                "Failure",
                (exc.code, exc.message),
                exc.details,
            )
            job.http_status = exc.http_status
        except PacsError as exc:
            mapped = _from_core(exc)
            job.state, job.error, job.error_details = (
                "Failure",
                (mapped.code, mapped.message),
                str(exc),
            )
            job.http_status = mapped.http_status
        except Exception as exc:
            log.exception("job %s (%s) failed", job.id, job.type)
            job.state, job.error, job.error_details = "Failure", INTERNAL, str(exc)
            job.http_status = 500
        finally:
            job.completed = time.time()
            self._save(job)
            job.done.set()
        if job.state == "Failure":
            log.warning(
                "job %s (%s) failed: %s", job.id, job.type, job.error_details or job.error[1]
            )

    def get(self, job_id: str) -> Job:
        """One job (404 when unknown)."""
        with self._lock:
            job = self._jobs.get(job_id)
        if job is None:
            raise OrthancError(404, INEXISTENT_ITEM, f"no job {job_id}")
        return job

    def all(self) -> list[Job]:
        """Every job kept, oldest first."""
        with self._lock:
            return list(self._jobs.values())

    def resubmit(self, job: Job) -> None:
        """Run a failed job again from the start (Orthanc: only a failed job); a job from
        before a restart is rebuilt from its recipe first (reading the index: not under the
        registry's lock)."""
        rebuild = self._rebuilders.get(job.type)
        failed = job.state == "Failure" and job.done.is_set()
        if failed and job.work is None and job.recipe is not None and rebuild is not None:
            job.work = rebuild(job)
        with self._lock:
            if job.state != "Failure" or not job.done.is_set():
                raise OrthancError(400, BAD_SEQUENCE, "only a failed job can be resubmitted")
            if job.work is None:
                raise OrthancError(
                    400, BAD_SEQUENCE, "a job from before the server restarted cannot run again"
                )
            job.done.clear()
            job.cancel_event.clear()
            job.may_run.set()
            job.state, job.progress, job.completed = "Pending", 0, 0.0
            job.error, job.error_details, job.http_status = (0, "Success"), "", 200
        self._start(job)

    def delete(self, job: Job) -> None:
        """Forget a finished job and delete its outputs (Orthanc 1.12)."""
        with self._lock:
            if not job.done.is_set():
                raise OrthancError(
                    400, BAD_SEQUENCE, "a job must be finished (or cancelled) to be deleted"
                )
            self._jobs.pop(job.id, None)
        for output in job.outputs.values():
            output.remove()
        if self.records is not None:
            self.records.delete([job.id])


JOBS = web.AppKey("orthanc_jobs", JobRegistry)


async def run_job(
    request: web.Request,
    job_type: str,
    content: dict[str, Any],
    work: Work,
    synchronous: bool,
    recipe: dict[str, Any] | None = None,
) -> web.Response:
    """Start a job; answer ``{"ID", "Path"}`` at once, or, synchronous, wait and answer its
    content (or its error, as Orthanc does for a synchronous job that failed). With a
    ``recipe``, an asynchronous job runs again if a restart interrupts it (a synchronous
    one's client is gone with the restart, as in Orthanc)."""
    job = request.app[JOBS].submit(job_type, content, work, None if synchronous else recipe)
    if not synchronous:
        return json_response({"ID": job.id, "Path": f"/jobs/{job.id}"})
    await asyncio.to_thread(job.done.wait)
    if job.state != "Success":
        raise OrthancError(job.http_status, job.error, job.error_details)
    return json_response(job.content)


def synchronous(body: Any, default: bool = True) -> bool:
    """Orthanc's ``Synchronous``/``Asynchronous`` options of a job-creating request."""
    if not isinstance(body, dict):
        return default
    if "Asynchronous" in body:
        return not bool(body["Asynchronous"])
    if "Synchronous" in body:
        return bool(body["Synchronous"])
    return default


async def list_jobs(request: web.Request) -> web.Response:
    """``GET /jobs`` (``?expand``)."""
    jobs = request.app[JOBS].all()
    if flag(request, "expand"):
        return json_response([job.shape() for job in jobs])
    return json_response([job.id for job in jobs])


async def get_job(request: web.Request) -> web.Response:
    """``GET /jobs/{id}``."""
    return json_response(request.app[JOBS].get(request.match_info["id"]).shape())


async def cancel_job(request: web.Request) -> web.Response:
    """``POST /jobs/{id}/cancel``: a pending, running or paused job stops at its next step
    and fails as canceled; a finished one is left as it is."""
    job = request.app[JOBS].get(request.match_info["id"])
    job.cancel_event.set()
    return json_response({})


async def pause_job(request: web.Request) -> web.Response:
    """``POST /jobs/{id}/pause``: the job waits at its next step (``Paused``) until resumed;
    a finished one is left as it is (as Orthanc)."""
    job = request.app[JOBS].get(request.match_info["id"])
    if not job.done.is_set():
        job.may_run.clear()
        job.state = "Paused"
    return json_response({})


async def resume_job(request: web.Request) -> web.Response:
    """``POST /jobs/{id}/resume``: a paused job goes on (400 for a job not paused)."""
    job = request.app[JOBS].get(request.match_info["id"])
    if job.may_run.is_set() or job.done.is_set():
        raise OrthancError(400, BAD_SEQUENCE, "the job is not paused")
    job.may_run.set()
    if job.state == "Paused":
        job.state = "Running" if job.started else "Pending"
    return json_response({})


async def resubmit_job(request: web.Request) -> web.Response:
    """``POST /jobs/{id}/resubmit``: run a failed job again."""
    jobs = request.app[JOBS]
    await asyncio.to_thread(jobs.resubmit, jobs.get(request.match_info["id"]))
    return json_response({})


async def delete_job(request: web.Request) -> web.Response:
    """``DELETE /jobs/{id}``: forget a finished job and its outputs (Orthanc 1.12)."""
    jobs = request.app[JOBS]
    jobs.delete(jobs.get(request.match_info["id"]))
    return json_response({})


async def job_output(request: web.Request) -> web.StreamResponse:
    """``GET /jobs/{id}/{key}``: a file the job produced (``archive`` of an archive job)."""
    job = request.app[JOBS].get(request.match_info["id"])
    output = job.outputs.get(request.match_info["key"])
    if output is None or not output.path.exists():
        raise OrthancError(404, INEXISTENT_ITEM, f"no output {request.match_info['key']!r}")
    return web.FileResponse(
        output.path,
        headers={
            "Content-Type": output.content_type,
            "Content-Disposition": f'attachment; filename="{output.filename}"',
        },
    )


async def _resume(app: web.Application) -> None:
    """When the server starts (every door has registered its rebuilders by then)."""
    await asyncio.to_thread(app[JOBS].resume_interrupted)


async def _sweeper(app: web.Application) -> AsyncIterator[None]:
    """Delete expired job outputs once a minute while the server runs."""

    async def loop() -> None:
        while True:
            await asyncio.sleep(SWEEP_SECONDS)
            try:
                await asyncio.to_thread(app[JOBS].sweep)
            except Exception:
                log.exception("deleting expired job outputs failed")

    task = asyncio.create_task(loop())
    yield
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await task


def add_routes(
    app: web.Application, output_dir: Path | None = None, records: JobRecords | None = None
) -> None:
    """The ``/jobs`` routes and their registry (outputs in ``output_dir``, a fresh temporary
    folder when None; records kept in ``records``, none when None)."""
    app[JOBS] = JobRegistry(output_dir, records=records)
    app.cleanup_ctx.append(_sweeper)
    app.on_startup.append(_resume)
    add_route(app, "GET", "/jobs", list_jobs)
    add_route(app, "GET", "/jobs/{id}", get_job)
    add_route(app, "DELETE", "/jobs/{id}", delete_job)
    add_route(app, "POST", "/jobs/{id}/cancel", cancel_job)
    add_route(app, "POST", "/jobs/{id}/pause", pause_job)
    add_route(app, "POST", "/jobs/{id}/resume", resume_job)
    add_route(app, "POST", "/jobs/{id}/resubmit", resubmit_job)
    add_route(app, "GET", "/jobs/{id}/{key}", job_output)
