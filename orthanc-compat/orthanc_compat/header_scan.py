"""Read a few top-level attributes from stored header bytes without building a Dataset.

Listing 20,000 studies with their main tags would parse 20,000 headers with pydicom (about
0.5 ms each); the tags wanted sit near the start of the data set, so walking the element
headers up to the last wanted tag is a few microseconds. Anything unusual (big endian,
deflate, a malformed length) returns None and the caller parses with pydicom instead.
"""

from __future__ import annotations

import struct
from collections.abc import Iterable

from pydicom.charset import convert_encodings, decode_bytes
from pydicom.datadict import dictionary_VR, tag_for_keyword
from pydicom.dataset import Dataset

from orthanc_compat.text import element_text
from pacs.core.charsets import LATIN1, python_encodings

_LONG_VRS = frozenset(
    {b"OB", b"OD", b"OF", b"OL", b"OV", b"OW", b"SQ", b"UC", b"UR", b"UT", b"UN", b"SV", b"UV"}
)
_TEXT_VRS = frozenset(
    {"AE", "AS", "CS", "DA", "DS", "DT", "IS", "LO", "LT", "PN", "SH", "ST", "TM", "UC", "UI"}
)
_TEXT_VRS |= {"UR", "UT"}
_NUMBER_FORMATS = {"US": "H", "SS": "h", "UL": "I", "SL": "i", "FL": "f", "FD": "d"}
_UNDEFINED = 0xFFFFFFFF
_ITEM, _ITEM_END, _SEQUENCE_END = 0xFFFEE000, 0xFFFEE00D, 0xFFFEE0DD
_CHARSET = 0x00080005
_IMPLICIT_LE = "1.2.840.10008.1.2"
_UNSUPPORTED = frozenset({"1.2.840.10008.1.2.2", "1.2.840.10008.1.2.1.99"})


class _Unscannable(Exception):
    """The bytes are not what this walker understands."""


def tags_of(keywords: Iterable[str]) -> dict[int, str]:
    """Tag -> keyword for the keywords wanted."""
    result = {}
    for keyword in keywords:
        tag = tag_for_keyword(keyword)
        if tag is not None:
            result[int(tag)] = keyword
    return result


_EXPLICIT = struct.Struct("<HH2sH").unpack_from
_IMPLICIT = struct.Struct("<HHI").unpack_from
_LONG_LENGTH = struct.Struct("<I").unpack_from


def _element(data: bytes, pos: int, implicit: bool) -> tuple[int, bytes, int, int]:
    """(tag, VR bytes or b"", value length, value offset) of the element at ``pos``."""
    if pos + 8 > len(data):
        raise _Unscannable("truncated element header")
    if implicit:
        group, element, length = _IMPLICIT(data, pos)
        return (group << 16) | element, b"", length, pos + 8
    group, element, vr, short = _EXPLICIT(data, pos)
    if group == 0xFFFE:  # items and delimiters have no VR
        return (group << 16) | element, b"", _LONG_LENGTH(data, pos + 4)[0], pos + 8
    if vr in _LONG_VRS:
        return (group << 16) | element, vr, _LONG_LENGTH(data, pos + 8)[0], pos + 12
    return (group << 16) | element, vr, short, pos + 8


def _skip_undefined(data: bytes, pos: int, implicit: bool, end_tag: int) -> int:
    """Skip elements or items up to and including ``end_tag``; returns the next offset."""
    for _ in range(1_000_000):
        tag, _vr, length, value = _element(data, pos, implicit)
        if tag == end_tag:
            return value
        if length == _UNDEFINED:
            inner_end = _ITEM_END if tag == _ITEM else _SEQUENCE_END
            pos = _skip_undefined(data, value, implicit, inner_end)
        else:
            pos = value + length
    raise _Unscannable("too many nested elements")


def _decode(raw: bytes, vr: str, encodings: list[str]) -> str:
    if vr in _NUMBER_FORMATS:
        code = _NUMBER_FORMATS[vr]
        count = len(raw) // struct.calcsize(code)
        values = struct.unpack(f"<{count}{code}", raw[: count * struct.calcsize(code)])
        return element_text(list(values)) if count != 1 else element_text(values[0])
    if vr not in _TEXT_VRS:
        raise _Unscannable(f"VR {vr}")
    if vr in ("PN", "LO", "SH", "ST", "LT", "UC", "UT"):
        text = decode_bytes(raw, encodings, set())
    else:
        text = raw.decode("ascii", "replace")
    return text.rstrip("\x00 ").lstrip(" ") if vr != "UI" else text.rstrip("\x00 ")


def scan(header: bytes, keywords: Iterable[str], charset: str = LATIN1) -> dict[str, str] | None:
    """keyword -> text of the wanted top-level attributes present (None: use pydicom); text
    read as ``charset`` unless the header declares its character set."""
    wanted = tags_of(keywords)
    try:
        return _scan(header, wanted, list(python_encodings(charset)))
    except (_Unscannable, struct.error, LookupError, ValueError):
        return None


def _scan(header: bytes, wanted: dict[int, str], encodings: list[str]) -> dict[str, str] | None:
    if header[128:132] != b"DICM" or not wanted:
        return None
    pos, transfer_syntax = 132, ""
    while True:  # the File Meta group: always Explicit VR Little Endian
        tag, _vr, length, value = _element(header, pos, False)
        if tag >> 16 != 0x0002:
            break
        if tag == 0x00020010:
            transfer_syntax = header[value : value + length].decode("ascii").rstrip("\x00 ")
        pos = value + length
    if transfer_syntax in _UNSUPPORTED or not transfer_syntax:
        return None
    implicit = transfer_syntax == _IMPLICIT_LE
    last = max(wanted)
    found: dict[str, str] = {}
    while pos < len(header):
        tag, vr_bytes, length, value = _element(header, pos, implicit)
        if tag > last or tag == 0x7FE00010:
            break
        if length == _UNDEFINED:
            pos = _skip_undefined(header, value, implicit, _SEQUENCE_END)
            continue
        raw = header[value : value + length]
        if len(raw) != length:
            raise _Unscannable("value past the end")
        if tag == _CHARSET and raw.strip(b"\x00 "):
            names = [n.strip() for n in raw.decode("ascii").rstrip("\x00 ").split("\\")]
            encodings = convert_encodings(names)
        if tag in wanted:
            vr = vr_bytes.decode("ascii") if vr_bytes else str(dictionary_VR(tag))
            if vr == "SQ":
                raise _Unscannable("a sequence was wanted")
            found[wanted[tag]] = _decode(raw, vr, encodings)
        pos = value + length
    return found


def from_dataset(ds: Dataset, keywords: Iterable[str]) -> dict[str, str]:
    """The same answer from a parsed data set (the fallback)."""
    found: dict[str, str] = {}
    for tag, keyword in tags_of(keywords).items():
        try:
            element = ds.get(tag)
            if element is None or element.VR == "SQ":
                continue
            found[keyword] = element_text(element.value)
        except Exception:  # an undecodable stored value: left out
            continue
    return found
