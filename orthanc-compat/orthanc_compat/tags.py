"""A data set as Orthanc writes it in JSON: ``/tags`` (full) and ``/simplified-tags``."""

from __future__ import annotations

from typing import Any

from pydicom.dataelem import DataElement
from pydicom.dataset import Dataset

from orthanc_compat.text import element_text

MAX_STRING = 256  # Orthanc's default: longer values are "TooLong" (null)
_BINARY_VRS = frozenset({"OB", "OD", "OF", "OL", "OV", "OW", "UN", "OB or OW", "US or OW"})
_NUMBER_VRS = frozenset({"US", "SS", "UL", "SL", "FL", "FD", "UV", "SV", "AT"})
UNKNOWN_NAME = "Unknown Tag & Data"


def tag_key(tag: int) -> str:
    """``0010,0010``."""
    return f"{tag >> 16:04x},{tag & 0xFFFF:04x}"


def _name(element: DataElement) -> str:
    return element.keyword or UNKNOWN_NAME


def _number_text(value: Any) -> str:
    if isinstance(value, list | tuple) or type(value).__name__ == "MultiValue":
        return "\\".join(_number_text(v) for v in value)
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value)


def _value(element: DataElement) -> tuple[str, Any]:
    """(Type, Value) of one non-sequence element as Orthanc's full format has them."""
    vr = str(element.VR)
    if element.tag == 0x7FE00010 or vr in _BINARY_VRS or element.value is None:
        return "Null", None
    try:
        text = _number_text(element.value) if vr in _NUMBER_VRS else element_text(element.value)
    except Exception:  # undecodable value
        return "Null", None
    if len(text) > MAX_STRING:
        return "TooLong", None
    return "String", text


def _elements(ds: Dataset) -> list[DataElement]:
    found = []
    for element in ds:
        if element.tag.is_private_creator:
            continue  # Orthanc leaves private creator elements out of its JSON
        if element.tag.group == 0x0002 and not isinstance(ds, _FileMeta):
            continue
        if element.tag == 0x00020001:
            continue  # File Meta Information Version: Orthanc leaves it out
        found.append(element)
    return found


class _FileMeta(Dataset):
    """Marks the file meta group, whose elements are wanted (``/header``)."""


def full_tags(ds: Dataset, *, meta: bool = False) -> dict[str, Any]:
    """``{"0010,0010": {"Name": "PatientName", "Type": "String", "Value": "..."}}``."""
    source: Dataset = ds
    if meta:
        source = _FileMeta(ds)
    result: dict[str, Any] = {}
    for element in _elements(source):
        key = tag_key(int(element.tag))
        if element.VR == "SQ":
            items = [full_tags(item) for item in element.value]
            result[key] = {"Name": _name(element), "Type": "Sequence", "Value": items}
            continue
        kind, value = _value(element)
        result[key] = {"Name": _name(element), "Type": kind, "Value": value}
    return result


def simplified_tags(ds: Dataset) -> dict[str, Any]:
    """``{"PatientName": "..."}``: keywords, strings, sequences as lists, null otherwise."""
    result: dict[str, Any] = {}
    for element in _elements(ds):
        name = _name(element)
        if element.VR == "SQ":
            result[name] = [simplified_tags(item) for item in element.value]
            continue
        _, value = _value(element)
        result[name] = value
    return result


def short_tags(ds: Dataset) -> dict[str, Any]:
    """``{"0010,0010": "..."}`` (``?short``)."""
    result: dict[str, Any] = {}
    for element in _elements(ds):
        key = tag_key(int(element.tag))
        if element.VR == "SQ":
            result[key] = [short_tags(item) for item in element.value]
            continue
        _, value = _value(element)
        result[key] = value
    return result
