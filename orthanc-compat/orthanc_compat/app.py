"""The Orthanc-compatible sub-application, mounted at the root of the HTTP port."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from aiohttp import web
from aiohttp.web_urldispatcher import AbstractRuleMatching, MatchedSubAppResource

from orthanc_compat import (
    anonymize,
    archive_jobs,
    bulk,
    instances,
    jobs,
    labels,
    media,
    metadata,
    metrics,
    modalities,
    modules,
    queries,
    resources,
    runtime_tools,
    system,
    tools,
    unsupported,
    upload,
    zip_archive,
)
from orthanc_compat.errors import orthanc_errors
from orthanc_compat.keys import ARCHIVE, RUNTIME, SYSTEM, SystemInfo
from pacs.core.archive import Archive
from pacs.core.index.job_records import JobRecords
from pacs.core.remote import Forwarder
from pacs.core.runtime_settings import RuntimeSettings


def build_orthanc_app(
    archive: Archive,
    info: SystemInfo | None = None,
    forwarder: Forwarder | None = None,
    runtime: RuntimeSettings | None = None,
    jobs_dir: Path | None = None,
) -> web.Application:
    """The sub-application with every Orthanc route we serve; ``forwarder`` does the DICOM
    networking of ``/modalities`` (without it those routes answer an error); ``runtime``
    holds the settings changed over ``/tools/...`` (without it those routes answer 503);
    ``jobs_dir`` keeps the jobs' output files (emptied at start; a temporary folder when
    None)."""
    app = web.Application(middlewares=[orthanc_errors])
    app[ARCHIVE] = archive
    app[SYSTEM] = info or SystemInfo()
    if runtime is not None:
        app[RUNTIME] = runtime
    resources.add_routes(app)
    instances.add_routes(app)
    upload.add_routes(app)
    tools.add_routes(app)
    system.add_routes(app)
    zip_archive.add_routes(app)
    media.add_routes(app)
    unsupported.add_routes(app)
    labels.add_routes(app)
    metadata.add_routes(app)
    jobs.add_routes(app, jobs_dir, JobRecords(archive.index.database))
    archive_jobs.add_routes(app)
    metrics.add_routes(app)
    modalities.add_routes(app, forwarder)
    queries.add_routes(app)
    anonymize.add_routes(app)
    bulk.add_routes(app)
    runtime_tools.add_routes(app)
    modules.add_routes(app)
    return app


class OwnRoutes(AbstractRuleMatching):
    """Matches the requests that one of the sub-application's routes serves."""

    def __init__(self, app: web.Application) -> None:
        self._app = app

    async def match(self, request: web.Request) -> bool:
        match_info = await self._app.router.resolve(request)
        return not isinstance(match_info.http_exception, web.HTTPNotFound)

    def get_info(self) -> dict[str, Any]:  # type: ignore[override]
        return {"orthanc": True}

    @property
    def canonical(self) -> str:
        return "/"


def mount_at_root(root: web.Application, app: web.Application) -> None:
    """Mount the sub-application at ``/``: its routes win over the root's own for the same
    path (``/statistics`` answers Orthanc's shape, with the root's fields merged in), and
    every other path (``/dicom-web``, ``/viewer``, ``/health``) stays the root's.

    aiohttp mounts sub-applications under a non-empty prefix only; a rule-matched resource
    (what ``add_domain`` uses) is resolved first and falls through when the rule fails.
    """
    root._add_subapp(lambda: MatchedSubAppResource(OwnRoutes(app), app), app)
