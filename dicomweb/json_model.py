"""Query answers in the DICOM JSON model (PS3.18 F.2)."""

from __future__ import annotations

import json
from typing import Any

import orjson
from aiohttp import web
from pydicom.dataelem import DataElement

from pacs.core.answer import Answer

_NUMBER_VRS = frozenset({"IS", "DS", "US", "UL", "SS", "SL", "FL", "FD", "SV", "UV"})
_INTEGER_VRS = frozenset({"IS", "US", "UL", "SS", "SL", "SV", "UV"})


def _number(vr: str, text: str) -> int | float | str:
    try:
        return int(float(text)) if vr in _INTEGER_VRS else float(text)
    except ValueError:
        return text


def element_json(vr: str, value: Any) -> dict[str, Any]:
    """One attribute as ``{"vr": ..., "Value": [...]}`` (no Value when empty)."""
    if isinstance(value, DataElement):
        converted: dict[str, Any] = value.to_json_dict(None, 0)
        return converted
    if value is None or value == "" or value == []:
        return {"vr": vr}
    values = value if isinstance(value, list) else str(value).split("\\")
    if vr == "PN":
        return {"vr": vr, "Value": [{"Alphabetic": v} for v in values]}
    if vr in _NUMBER_VRS:
        return {"vr": vr, "Value": [_number(vr, v) for v in values]}
    return {"vr": vr, "Value": list(values)}


DICOM_JSON = "application/dicom+json"


def encode_dicom_json(payload: Any) -> bytes:
    """The UTF-8 JSON body (orjson; the standard library for what orjson refuses, such as
    integers beyond 64 bits from a malformed IS value)."""
    try:
        return orjson.dumps(payload)
    except TypeError:
        return json.dumps(payload, ensure_ascii=False).encode("utf-8")


def dicom_json_response(payload: Any, status: int = 200) -> web.Response:
    """``application/dicom+json`` exactly (some clients compare the header verbatim, so no
    charset parameter: JSON is UTF-8 by definition)."""
    return web.Response(
        body=encode_dicom_json(payload), status=status, headers={"Content-Type": DICOM_JSON}
    )


def answer_json(answer: Answer, skip: frozenset[int] = frozenset()) -> dict[str, Any]:
    """A whole answer, keyed by the 8-hex-digit tags, in tag order."""
    return {
        f"{tag:08X}": element_json(vr, value)
        for tag, (vr, value) in sorted(answer.elements.items())
        if tag not in skip
    }
