"""Tag names, paths into sequences, and value edits on pydicom data sets, as the bodies of
Orthanc's ``/modify`` and ``/anonymize`` name them."""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from pydicom.datadict import dictionary_VR, keyword_for_tag, tag_for_keyword
from pydicom.dataelem import DataElement
from pydicom.dataset import Dataset
from pydicom.sequence import Sequence
from pydicom.tag import BaseTag, Tag

from orthanc_compat.errors import BAD_PARAMETER_TYPE, BAD_REQUEST, UNKNOWN_DICOM_TAG, OrthancError

_HEX_TAG = re.compile(r"^\(?([0-9a-fA-F]{4})[,-]([0-9a-fA-F]{4})\)?$")
BINARY_VRS = {"OB", "OW", "OD", "OF", "OL", "OV", "UN"}
NOT_STRING_VRS = {"SQ", "AT", "US", "SS", "UL", "SL", "UV", "SV", "FL", "FD", *BINARY_VRS}


def parse_tag(name: Any) -> int:
    """``PatientName``, ``0010,0010`` or ``0010-0010`` -> the tag (400 when unknown)."""
    if not isinstance(name, str):
        raise OrthancError(400, BAD_REQUEST, "tags are named by strings")
    text = name.strip()
    match = _HEX_TAG.match(text)
    if match:
        return (int(match.group(1), 16) << 16) | int(match.group(2), 16)
    tag = tag_for_keyword(text)
    if tag is None:
        raise OrthancError(400, UNKNOWN_DICOM_TAG, f"unknown DICOM tag {name!r}")
    return int(tag)


@dataclass(frozen=True)
class TagPath:
    """``ReferencedImageSequence[*].ReferencedSOPInstanceUID`` (Orthanc 1.9.4+ paths, as
    dcmodify's): sequences with an item index or ``*``, then the attribute."""

    prefix: tuple[tuple[int, int | None], ...]
    final: int

    def matches(self, parents: tuple[tuple[int, int], ...], tag: int) -> bool:
        """Whether an attribute at ``parents`` + ``tag`` is this path or lies below it."""
        depth = len(self.prefix)
        chain = [*(t for t, _ in parents), tag]
        if len(chain) <= depth or chain[depth] != self.final:
            return False
        return all(
            parents[n][0] == step_tag and step_index in (None, parents[n][1])
            for n, (step_tag, step_index) in enumerate(self.prefix)
        )


_STEP = re.compile(r"^(.+)\[(\d+|\*)\]$")


def parse_path(name: Any) -> TagPath:
    """A tag name or a path into sequences (400 when malformed or unknown)."""
    if not isinstance(name, str):
        raise OrthancError(400, BAD_REQUEST, "tags are named by strings")
    parts = name.strip().split(".")
    prefix = []
    for part in parts[:-1]:
        match = _STEP.match(part.strip())
        if match is None:
            raise OrthancError(400, BAD_REQUEST, f"a sequence in a path needs [n] or [*]: {name!r}")
        index = None if match.group(2) == "*" else int(match.group(2))
        prefix.append((parse_tag(match.group(1)), index))
    return TagPath(tuple(prefix), parse_tag(parts[-1]))


def items_at(ds: Dataset, prefix: tuple[tuple[int, int | None], ...]) -> list[Dataset]:
    """The sequence items a path's prefix leads to (the data set itself for no prefix)."""
    found = [ds]
    for tag, index in prefix:
        found = [
            item
            for parent in found
            if tag in parent and parent[tag].VR == "SQ"
            for n, item in enumerate(parent[tag].value)
            if index is None or n == index
        ]
    return found


def tag_name(tag: int) -> str:
    return keyword_for_tag(tag) or f"{tag >> 16:04x},{tag & 0xFFFF:04x}"


def is_ascii(value: Any) -> bool:
    return str(value).isascii()


def switch_to_utf8(ds: Dataset) -> None:
    """Let replacement values outside ASCII be written as they are: every text value is
    decoded with the data set's character set, then written back as UTF-8."""
    if ds.get("SpecificCharacterSet") == "ISO_IR 192":
        return
    ds.decode()
    ds.SpecificCharacterSet = "ISO_IR 192"


def empty_value(elem: DataElement) -> None:
    if elem.VR == "SQ":
        elem.value = Sequence()
    elif elem.VR in BINARY_VRS:
        elem.value = b""
    elif elem.VR in NOT_STRING_VRS:
        elem.value = None
    else:
        elem.value = ""


def _converted(tag: int, vr: str, value: Any) -> Any:
    """A JSON replacement value as pydicom wants it for the attribute's VR."""
    if vr == "SQ":
        if not isinstance(value, list) or not all(isinstance(i, dict) for i in value):
            raise OrthancError(400, BAD_PARAMETER_TYPE, f"{tag_name(tag)}: a list of objects")
        items = []
        for item in value:
            child = Dataset()
            for name, inner in item.items():
                set_value(child, parse_tag(name), inner)
            items.append(child)
        return Sequence(items)
    if not isinstance(value, str):
        raise OrthancError(400, BAD_PARAMETER_TYPE, f"{tag_name(tag)}: the value must be a string")
    if vr in BINARY_VRS:
        return value.encode("utf-8")
    try:
        parts = value.split("\\")
        if vr in {"US", "SS", "UL", "SL", "UV", "SV"}:
            numbers: list[Any] = [int(p) for p in parts]
        elif vr in {"FL", "FD"}:
            numbers = [float(p) for p in parts]
        else:
            return value
    except ValueError:
        raise OrthancError(400, BAD_PARAMETER_TYPE, f"{tag_name(tag)}: not a number") from None
    return numbers[0] if len(numbers) == 1 else numbers


def set_value(ds: Dataset, tag: int, value: Any) -> None:
    """Replace an attribute's value, adding it when absent."""
    if tag in ds:
        vr = ds[tag].VR
    elif BaseTag(Tag(tag)).is_private:
        raise OrthancError(400, BAD_REQUEST, f"cannot add the private tag {tag_name(tag)}")
    else:
        vr = dictionary_VR(tag).split(" or ")[0]
    ds[tag] = DataElement(tag, vr, _converted(tag, vr, value))
