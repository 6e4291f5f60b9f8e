"""Orthanc-style errors: one JSON body shape, the HTTP status Orthanc gives, never a traceback."""

from __future__ import annotations

import json
import logging
from collections.abc import Awaitable, Callable
from http import HTTPStatus

from aiohttp import web

from pacs.core.errors import (
    Conflict,
    DuplicateInstance,
    InvalidDicom,
    InvalidQuery,
    NotFound,
    OnLegalHold,
    OutOfResources,
    PacsError,
    RefusedInstance,
    StorageUnavailable,
)
from pacs.core.remote import RemoteFailure, RemoteUnavailable

log = logging.getLogger("pacs.orthanc")

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]

# Orthanc's error codes (OrthancFramework/Sources/Enumerations.h) and their messages.
INTERNAL = (-1, "Internal error")
NOT_IMPLEMENTED = (2, "Not implemented yet")
PARAMETER_OUT_OF_RANGE = (3, "Parameter out of range")
BAD_PARAMETER_TYPE = (5, "Bad type for a parameter")
BAD_SEQUENCE = (6, "Bad sequence of calls")
INEXISTENT_ITEM = (7, "Accessing an inexistent item")
NETWORK_PROTOCOL = (9, "Error in the network protocol")
BAD_REQUEST = (8, "Bad request")
BAD_FILE_FORMAT = (15, "Bad file format")
UNKNOWN_RESOURCE = (17, "Unknown resource")
FULL_STORAGE = (19, "The file storage is full")
INEXISTENT_TAG = (21, "Inexistent tag")
INCOMPATIBLE_IMAGE_FORMAT = (23, "Incompatible format of the images")
UNKNOWN_DICOM_TAG = (27, "Unknown DICOM tag")
BAD_JSON = (28, "Cannot parse a JSON document")
DATABASE_UNAVAILABLE = (36, "The database is currently not available")


class OrthancError(Exception):
    """An error answered as Orthanc answers it: HTTP status, Orthanc code and message."""

    def __init__(
        self, http_status: int, error: tuple[int, str] = BAD_REQUEST, details: str = ""
    ) -> None:
        super().__init__(details or error[1])
        self.http_status = http_status
        self.code, self.message = error
        self.details = details


def _from_core(exc: PacsError) -> OrthancError:
    """The one mapping from the core's errors to Orthanc's."""
    if isinstance(exc, NotFound):
        return OrthancError(404, UNKNOWN_RESOURCE, str(exc))
    if isinstance(exc, InvalidDicom):
        return OrthancError(400, BAD_FILE_FORMAT, str(exc))
    if isinstance(exc, InvalidQuery):
        return OrthancError(400, BAD_REQUEST, str(exc))
    if isinstance(exc, DuplicateInstance | OnLegalHold | Conflict):
        return OrthancError(409, BAD_REQUEST, str(exc))
    if isinstance(exc, RefusedInstance):
        return OrthancError(400, BAD_FILE_FORMAT, str(exc))
    if isinstance(exc, OutOfResources):
        return OrthancError(507, FULL_STORAGE, str(exc))
    if isinstance(exc, StorageUnavailable):
        return OrthancError(503, DATABASE_UNAVAILABLE, str(exc))
    if isinstance(exc, RemoteUnavailable):  # Orthanc: 500 "DicomAssociation - ..."
        return OrthancError(500, NETWORK_PROTOCOL, str(exc))
    if isinstance(exc, RemoteFailure):  # Orthanc: 422 "C-MOVE SCU to AET ... has failed"
        return OrthancError(422, NETWORK_PROTOCOL, str(exc))
    return OrthancError(500, INTERNAL, "")


def error_body(request: web.Request, error: OrthancError) -> dict[str, object]:
    """The JSON body Orthanc sends with an error."""
    body: dict[str, object] = {
        "HttpError": HTTPStatus(error.http_status).phrase,
        "HttpStatus": error.http_status,
        "Message": error.message,
        "Method": request.method,
        "OrthancError": error.message,
        "OrthancStatus": error.code,
        "Uri": request.path,
    }
    if error.details:
        body["Details"] = error.details
    return body


def error_response(request: web.Request, error: OrthancError) -> web.Response:
    """The error as a response (Orthanc indents with tabs; any JSON reader takes it)."""
    return web.Response(
        text=json.dumps(error_body(request, error), indent=3),
        status=error.http_status,
        content_type="application/json",
    )


@web.middleware
async def orthanc_errors(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Turn every failure of an Orthanc route into Orthanc's error JSON."""
    try:
        return await handler(request)
    except OrthancError as exc:
        log.info("%s %s: %d %s", request.method, request.path, exc.http_status, exc)
        return error_response(request, exc)
    except PacsError as exc:
        mapped = _from_core(exc)
        if mapped.http_status >= 500:
            log.error("%s %s failed: %s", request.method, request.path, exc)
        else:
            log.info("%s %s: %d %s", request.method, request.path, mapped.http_status, exc)
        return error_response(request, mapped)
    except web.HTTPMethodNotAllowed as exc:
        response = error_response(request, OrthancError(405, BAD_REQUEST, "method not allowed"))
        response.headers["Allow"] = ", ".join(sorted(exc.allowed_methods))
        return response
    except web.HTTPNotFound:
        return error_response(request, OrthancError(404, UNKNOWN_RESOURCE))
    except web.HTTPRequestEntityTooLarge as exc:
        return error_response(request, OrthancError(413, BAD_REQUEST, exc.text or ""))
    except web.HTTPException:
        raise
    except Exception:
        log.exception("%s %s failed", request.method, request.path)
        return error_response(request, OrthancError(500, INTERNAL))
