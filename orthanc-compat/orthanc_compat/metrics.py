"""``/tools/metrics-prometheus`` (Prometheus text exposition, Orthanc's metric names and the
server's own ``pacs_*``) and ``/tools/metrics`` (the enabled flag, until restart)."""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass

from aiohttp import web

from orthanc_compat.errors import BAD_FILE_FORMAT, OrthancError
from orthanc_compat.jobs import JOBS, JobRegistry
from orthanc_compat.keys import add_route, archive_of
from pacs.core.archive import Archive

MEGA = 1024 * 1024
Sample = tuple[str, dict[str, str], float]  # name, labels, value


@dataclass
class MetricsSwitch:
    """Whether metrics are answered (Orthanc's ``MetricsEnabled``, on by default)."""

    enabled: bool = True


METRICS = web.AppKey("orthanc_metrics", MetricsSwitch)


def _job_samples(jobs: JobRegistry) -> list[Sample]:
    states = [job.state for job in jobs.all()]
    finished = sum(1 for s in states if s in ("Success", "Failure"))
    return [
        ("orthanc_jobs_completed", {}, finished),
        ("orthanc_jobs_failed", {}, states.count("Failure")),
        ("orthanc_jobs_pending", {}, states.count("Pending")),
        ("orthanc_jobs_running", {}, states.count("Running") + states.count("Paused")),
        ("orthanc_jobs_success", {}, states.count("Success")),
    ]


def _archive_samples(archive: Archive) -> list[Sample]:
    """Counts and sizes as Orthanc names them; AI queue and storage tiers as ours."""
    counts = archive.statistics()
    size_mb = counts["total_size"] / MEGA
    samples: list[Sample] = [
        ("orthanc_count_instances", {}, counts["instances"]),
        ("orthanc_count_patients", {}, counts["patients"]),
        ("orthanc_count_series", {}, counts["series"]),
        ("orthanc_count_studies", {}, counts["studies"]),
        ("orthanc_disk_size_mb", {}, size_mb),
        ("orthanc_uncompressed_size_mb", {}, size_mb),
    ]
    for state, count in sorted(archive.ai_queue.counts().items()):
        samples.append(("pacs_ai_queue_jobs", {"state": state}, count))
    if archive.tiers is not None:
        status = archive.storage_status()
        for tier in status["tiers"]:
            labels = {"tier": str(tier["name"])}
            samples.append(("pacs_storage_tier_objects", labels, tier["objects"]))
            samples.append(("pacs_storage_tier_bytes", labels, tier["bytes"]))
            if tier.get("disk_free_bytes") is not None:
                samples.append(
                    ("pacs_storage_tier_disk_free_bytes", labels, tier["disk_free_bytes"])
                )
        if "hot_fill_percent" in status:
            samples.append(("pacs_storage_hot_fill_percent", {}, status["hot_fill_percent"]))
    return samples


def _number(value: float) -> str:
    return str(int(value)) if float(value).is_integer() else repr(float(value))


def exposition(samples: list[Sample], now_ms: int) -> str:
    """Prometheus text format, one ``name{labels} value timestamp`` line each (as Orthanc
    writes them: no ``# TYPE`` lines)."""
    lines = []
    for name, labels, value in samples:
        tags = ",".join(f'{k}="{_escape(v)}"' for k, v in labels.items())
        lines.append(
            f"{name}{{{tags}}} {_number(value)} {now_ms}"
            if tags
            else f"{name} {_number(value)} {now_ms}"
        )
    return "\n".join(lines) + "\n"


def _escape(value: str) -> str:
    return value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")


async def metrics_prometheus(request: web.Request) -> web.Response:
    """``GET /tools/metrics-prometheus``: empty while metrics are disabled (as Orthanc)."""
    if not request.app[METRICS].enabled:
        return web.Response(text="", content_type="text/plain")
    samples = await asyncio.to_thread(_archive_samples, archive_of(request))
    samples += _job_samples(request.app[JOBS])
    body = exposition(sorted(samples, key=lambda s: s[0]), int(time.time() * 1000))
    return web.Response(
        text=body, content_type="text/plain", headers={"X-Content-Type-Options": "nosniff"}
    )


async def get_metrics(request: web.Request) -> web.Response:
    """``GET /tools/metrics``: ``1`` or ``0``."""
    return web.Response(
        text="1" if request.app[METRICS].enabled else "0", content_type="text/plain"
    )


def _boolean(text: str) -> bool:
    value = text.strip().lower()
    if value in ("1", "true"):
        return True
    if value in ("0", "false"):
        return False
    raise OrthancError(400, BAD_FILE_FORMAT, "Boolean value expected")


async def put_metrics(request: web.Request) -> web.Response:
    """``PUT /tools/metrics``: ``1``/``0``/``true``/``false`` (400 otherwise), until restart."""
    request.app[METRICS].enabled = _boolean((await request.read()).decode("utf-8", "replace"))
    return web.Response(text="", content_type="text/plain")


def add_routes(app: web.Application) -> None:
    """Register the metrics routes and their switch."""
    app[METRICS] = MetricsSwitch()
    add_route(app, "GET", "/tools/metrics-prometheus", metrics_prometheus)
    add_route(app, "GET", "/tools/metrics", get_metrics)
    add_route(app, "PUT", "/tools/metrics", put_metrics)
