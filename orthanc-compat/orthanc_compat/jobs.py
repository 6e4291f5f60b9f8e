"""``/jobs``: a small in-process registry of long operations, each run in its own thread.

Jobs live in memory (as Orthanc's do without ``SaveJobs``): a restart forgets them. The
most recent 500 finished jobs are kept.
"""

from __future__ import annotations

import asyncio
import logging
import threading
import time
import uuid
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from aiohttp import web

from orthanc_compat.errors import INEXISTENT_ITEM, INTERNAL, OrthancError, _from_core
from orthanc_compat.keys import add_route, flag, json_response
from pacs.core.errors import PacsError

log = logging.getLogger("pacs.orthanc")

_KEPT = 500
CANCELED = (14, "Operation was canceled")


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

    def report(self, done: int, total: int) -> None:
        """Progress callback for the work: ``done`` of ``total`` (percent)."""
        self.progress = 100 if total <= 0 else min(99, done * 100 // total)
        if self.cancel_event.is_set():
            raise JobCanceled()

    def cancelled(self) -> bool:
        """Whether a cancellation was asked for."""
        return self.cancel_event.is_set()

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


Work = Callable[[Job], None]


class JobRegistry:
    """Start jobs in threads; list, read and cancel them."""

    def __init__(self) -> None:
        self._jobs: OrderedDict[str, Job] = OrderedDict()
        self._lock = threading.Lock()

    def submit(self, job_type: str, content: dict[str, Any], work: Work) -> Job:
        """Register a job and start ``work(job)`` in a thread (it may update ``content``)."""
        job = Job(job_type, content)
        with self._lock:
            self._jobs[job.id] = job
            self._trim()
        threading.Thread(
            target=self._run, args=(job, work), name=f"job-{job.id[:8]}", daemon=True
        ).start()
        return job

    def _trim(self) -> None:
        finished = [j.id for j in self._jobs.values() if j.done.is_set()]
        for job_id in finished[: max(0, len(self._jobs) - _KEPT)]:
            del self._jobs[job_id]

    @staticmethod
    def _run(job: Job, work: Work) -> None:
        job.state, job.started = "Running", time.time()
        try:
            if job.cancelled():
                raise JobCanceled()
            work(job)
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


JOBS = web.AppKey("orthanc_jobs", JobRegistry)


async def run_job(
    request: web.Request, job_type: str, content: dict[str, Any], work: Work, synchronous: bool
) -> web.Response:
    """Start a job; answer ``{"ID", "Path"}`` at once, or, synchronous, wait and answer its
    content (or its error, as Orthanc does for a synchronous job that failed)."""
    job = request.app[JOBS].submit(job_type, content, work)
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
    """``POST /jobs/{id}/cancel``: a pending or running job stops at its next step and
    fails as canceled; a finished one is left as it is."""
    job = request.app[JOBS].get(request.match_info["id"])
    job.cancel_event.set()
    return json_response({})


def add_routes(app: web.Application) -> None:
    """The ``/jobs`` routes and their registry."""
    app[JOBS] = JobRegistry()
    add_route(app, "GET", "/jobs", list_jobs)
    add_route(app, "GET", "/jobs/{id}", get_job)
    add_route(app, "POST", "/jobs/{id}/cancel", cancel_job)
