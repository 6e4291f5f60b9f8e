"""Stored header bytes straight to the DICOM JSON model (PS3.18 F.2), without pydicom.

Series metadata converts hundreds of headers per request; building pydicom Datasets and
calling ``to_json_dict`` costs about 2 ms per CT header, this walk about a tenth of that.
Little Endian (Explicit and Implicit VR) headers are walked element by element; anything
this walker does not handle exactly (Big Endian, Deflate, ambiguous VRs in Implicit VR,
UN values of undefined length, malformed lengths) raises :class:`Unsupported`, and the
caller falls back to pydicom.

Binary values over 768 bytes (pydicom's threshold for 1 KiB of base64) at the top level
become a BulkDataURI; inside sequences they are always inline, so that every BulkDataURI
we emit names a top-level attribute that ``/bulkdata/{tag}`` can resolve.
"""

from __future__ import annotations

import base64
import struct
from collections.abc import Callable
from functools import lru_cache
from typing import Any

from pydicom.charset import convert_encodings, decode_bytes
from pydicom.datadict import dictionary_VR

from pacs.core.charsets import LATIN1

_EXPLICIT = "1.2.840.10008.1.2.1"
_IMPLICIT = "1.2.840.10008.1.2"
_LONG_VRS = frozenset({b"OB", b"OD", b"OF", b"OL", b"OV", b"OW", b"SQ", b"UC", b"UN", b"UR", b"UT"})
_BINARY = frozenset({"OB", "OD", "OF", "OL", "OV", "OW", "UN"})
_CHARSET_TEXT = frozenset({"SH", "LO", "ST", "LT", "UC", "UT", "PN"})
_SINGLE_TEXT = frozenset({"ST", "LT", "UT", "UR"})
_ASCII_TEXT = frozenset({"AE", "AS", "CS", "DA", "DT", "TM", "UI"})
_STRUCTS = {
    "US": "H",
    "SS": "h",
    "UL": "I",
    "SL": "i",
    "FL": "f",
    "FD": "d",
    "SV": "q",
    "UV": "Q",
}
_SIZES = {vr: struct.calcsize(code) for vr, code in _STRUCTS.items()}
_KNOWN_VRS = _BINARY | _CHARSET_TEXT | _ASCII_TEXT | set(_STRUCTS) | {"SQ", "AT", "IS", "DS", "UR"}
_SHORT_VRS = {vr.encode("ascii"): vr for vr in _KNOWN_VRS if vr.encode("ascii") not in _LONG_VRS}
_EXPLICIT_HEAD = struct.Struct("<HH2sH")  # group, element, VR, short length
_UINT32 = struct.Struct("<I")
_ITEM = 0xFFFEE000
_ITEM_END = 0xFFFEE00D
_SEQUENCE_END = 0xFFFEE0DD
_UNDEFINED = 0xFFFFFFFF
_FIRST_PIXEL_TAG = 0x7FE00008
_CHARSET_TAG = 0x00080005
_PIXEL_REPRESENTATION = 0x00280103
_LUT_DESCRIPTORS = frozenset({0x00281101, 0x00281102, 0x00281103, 0x00283002})
_NO_DELIMITERS: set[int] = set()
_BULK_LIMIT = (1024 // 4) * 3
_PN_DELIMITERS = {ord("^"), ord("=")}

BulkUri = Callable[[int], str]
Memo = dict[tuple[str, bytes, tuple[str, ...]], dict[str, Any]]


class Unsupported(Exception):
    """The header needs pydicom (an encoding or a construct this walker leaves alone)."""


@lru_cache(maxsize=4096)
def dictionary_vr(tag: int) -> str:
    """The VR the data dictionary gives (UN when unknown; may be ambiguous, "US or SS")."""
    if tag >> 16 & 1 and 0x10 <= tag & 0xFFFF <= 0xFF:
        return "LO"  # private creator
    try:
        return str(dictionary_VR(tag))
    except KeyError:
        return "UN"


@lru_cache(maxsize=64)
def _encodings(raw: bytes) -> tuple[str, ...]:
    names = [part.strip(" \0") for part in raw.decode("ascii", "replace").split("\\")]
    return tuple(convert_encodings(names))


class _Walker:
    """One header's walk; ``encodings`` follows (0008,0005) as it is met."""

    def __init__(
        self,
        data: bytes,
        explicit: bool,
        bulk_uri: BulkUri | None,
        memo: Memo,
        encodings: tuple[str, ...],
    ) -> None:
        self.data = data
        self.memo = memo
        self.explicit = explicit
        self.bulk_uri = bulk_uri
        self.encodings = encodings  # until (0008,0005) says otherwise
        self.signed_pixels = False

    def element_header(self, offset: int) -> tuple[int, str, int, int]:
        """(tag, VR, value length, value offset) of the element at ``offset``."""
        group, element, vr_bytes, short_length = _EXPLICIT_HEAD.unpack_from(self.data, offset)
        tag = group << 16 | element
        if group == 0xFFFE or not self.explicit:
            (length,) = _UINT32.unpack_from(self.data, offset + 4)
            vr = "" if group == 0xFFFE else self.implicit_vr(tag)
            return tag, vr, length, offset + 8
        if vr_bytes in _LONG_VRS:
            (length,) = _UINT32.unpack_from(self.data, offset + 8)
            vr = vr_bytes.decode("ascii")
            if vr == "UN" and length != _UNDEFINED:
                known = dictionary_vr(tag)  # as pydicom does: UN of a known tag is read as such
                if known == "SQ":
                    raise Unsupported(f"sequence {tag:08X} encoded as UN")
                if known in _KNOWN_VRS or known == "US or SS":
                    vr = self.implicit_vr(tag)
            return tag, vr, length, offset + 12
        vr = _SHORT_VRS.get(vr_bytes, "")
        if not vr:
            raise Unsupported(f"unknown VR {vr_bytes!r} at {tag:08X}")
        return tag, vr, short_length, offset + 8

    def implicit_vr(self, tag: int) -> str:
        """The VR of an Implicit VR element (US or SS resolved by Pixel Representation)."""
        vr = dictionary_vr(tag)
        if vr in _KNOWN_VRS:
            return vr
        if vr == "US or SS":
            return "US" if tag in _LUT_DESCRIPTORS or not self.signed_pixels else "SS"
        raise Unsupported(f"ambiguous VR {vr} for {tag:08X} in Implicit VR")

    def dataset(self, offset: int, end: int, top: bool) -> tuple[dict[str, Any], int]:
        """Elements from ``offset`` to ``end`` (or to an item delimiter); returns the JSON
        object and the offset after it."""
        result: dict[str, Any] = {}
        saved = self.encodings
        while offset < end:
            tag, vr, length, value_at = self.element_header(offset)
            if tag == _ITEM_END:
                offset = value_at
                break
            if top and tag >= _FIRST_PIXEL_TAG:
                break
            if vr == "SQ":
                items, offset = self.sequence(value_at, length)
                result[f"{tag:08X}"] = {"vr": "SQ", "Value": items}
                continue
            if length == _UNDEFINED:
                raise Unsupported(f"undefined length for {vr} at {tag:08X}")
            offset = value_at + length
            if offset > len(self.data):
                raise Unsupported(f"value of {tag:08X} runs past the header")
            if tag & 0xFFFF == 0 or tag >> 16 == 0x0002:
                continue  # group lengths are not part of the JSON model
            value = self.data[value_at:offset]
            if tag == _CHARSET_TAG and value.strip(b" \0"):
                self.encodings = _encodings(value)
            elif tag == _PIXEL_REPRESENTATION and len(value) == 2:
                self.signed_pixels = value != b"\0\0"
            if vr in _BINARY:
                result[f"{tag:08X}"] = self.value(tag, vr, value, top)
                continue
            memo_key = (vr, value, self.encodings)
            converted = self.memo.get(memo_key)
            if converted is None:
                converted = self.memo[memo_key] = self.value(tag, vr, value, top)
            result[f"{tag:08X}"] = converted
        if not top:
            self.encodings = saved
        return result, offset

    def sequence(self, offset: int, length: int) -> tuple[list[dict[str, Any]], int]:
        """The items of a sequence whose value starts at ``offset``."""
        end = len(self.data) if length == _UNDEFINED else offset + length
        items: list[dict[str, Any]] = []
        while offset < end:
            tag, _, item_length, value_at = self.element_header(offset)
            if tag == _SEQUENCE_END:
                return items, value_at
            if tag != _ITEM:
                raise Unsupported(f"expected an item, found {tag:08X}")
            item_end = end if item_length == _UNDEFINED else value_at + item_length
            item, offset = self.dataset(value_at, item_end, top=False)
            if item_length != _UNDEFINED:
                offset = item_end
            items.append(item)
        if length == _UNDEFINED:
            raise Unsupported("sequence without a delimiter")
        return items, end

    def text(self, vr: str, value: bytes) -> str:
        if vr in _CHARSET_TEXT and (not value.isascii() or b"\x1b" in value):
            return decode_bytes(
                value, list(self.encodings), _PN_DELIMITERS if vr == "PN" else _NO_DELIMITERS
            )
        return value.decode("latin-1")

    def value(self, tag: int, vr: str, value: bytes, top: bool) -> dict[str, Any]:
        """One element's JSON object."""
        if vr in _BINARY:
            if not value:
                return {"vr": vr}
            if top and self.bulk_uri is not None and len(value) > _BULK_LIMIT:
                return {"vr": vr, "BulkDataURI": self.bulk_uri(tag)}
            return {"vr": vr, "InlineBinary": base64.b64encode(value).decode("ascii")}
        if vr in _STRUCTS:
            count = len(value) // _SIZES[vr]
            if not count:
                return {"vr": vr}
            numbers = struct.unpack_from(f"<{count}{_STRUCTS[vr]}", value)
            return {"vr": vr, "Value": list(numbers)}
        if vr == "AT":
            count = len(value) // 4
            pairs = struct.unpack_from(f"<{2 * count}H", value)
            tags = [f"{pairs[i]:04X}{pairs[i + 1]:04X}" for i in range(0, 2 * count, 2)]
            return {"vr": vr, "Value": tags} if tags else {"vr": vr}
        text = self.text(vr, value)
        if vr in _SINGLE_TEXT:
            text = text.rstrip(" \0")
            return {"vr": vr, "Value": [text]} if text else {"vr": vr}
        parts = (
            [part.strip(" \0") for part in text.split("\\")]
            if "\\" in text
            else [text.strip(" \0")]
        )
        if vr != "UI" and vr in _ASCII_TEXT:
            parts = [part.strip(" ") for part in parts]
        if not any(parts):
            return {"vr": vr}
        if vr == "PN":
            return {"vr": vr, "Value": [_person_name(part) for part in parts]}
        if vr == "IS":
            return {"vr": vr, "Value": [_integer(part) for part in parts]}
        if vr == "DS":
            return {"vr": vr, "Value": [_decimal(part) for part in parts]}
        return {"vr": vr, "Value": [part if part else None for part in parts]}


def _person_name(text: str) -> dict[str, str] | None:
    if not text:
        return None
    groups = [group.rstrip(" ") for group in text.split("=")[:3]]
    while len(groups) > 1 and not groups[-1]:
        groups.pop()
    return dict(zip(("Alphabetic", "Ideographic", "Phonetic"), groups, strict=False))


def _integer(text: str) -> int | None:
    if not text:
        return None
    try:
        return int(text)
    except ValueError:
        try:
            return int(float(text))
        except ValueError:
            raise Unsupported(f"invalid IS value {text!r}") from None


def _decimal(text: str) -> float | None:
    if not text:
        return None
    try:
        return float(text)
    except ValueError:
        raise Unsupported(f"invalid DS value {text!r}") from None


def dataset_start(header: bytes) -> int:
    """The offset after the File Meta group of a Part 10 header."""
    if header[128:132] != b"DICM":
        raise Unsupported("not a Part 10 header")
    offset = 132
    while offset + 8 <= len(header):
        group, _ = struct.unpack_from("<HH", header, offset)
        if group != 0x0002:
            return offset
        if header[offset + 4 : offset + 6] in _LONG_VRS:
            (length,) = struct.unpack_from("<I", header, offset + 8)
            offset += 12 + length
        else:
            (length,) = struct.unpack_from("<H", header, offset + 6)
            offset += 8 + length
    return offset


def header_json(
    header: bytes,
    transfer_syntax: str,
    bulk_uri: BulkUri | None,
    memo: Memo | None = None,
    charset: str = LATIN1,
) -> dict[str, Any]:
    """A stored Part 10 header (cut before Pixel Data, or a whole file) as DICOM JSON,
    without group lengths or File Meta; raises :class:`Unsupported` where pydicom is
    needed. Text is read as ``charset`` where the header declares no character set.

    ``memo`` may be shared by the headers of one answer: the slices of a series repeat most
    of their values, and each distinct (VR, bytes, character set) is converted once. The
    JSON objects it returns are then shared between answers: serialise, don't mutate."""
    if transfer_syntax not in (_EXPLICIT, _IMPLICIT) and not _is_explicit_le_family(
        transfer_syntax
    ):
        raise Unsupported(f"transfer syntax {transfer_syntax}")
    walker = _Walker(
        header,
        transfer_syntax != _IMPLICIT,
        bulk_uri,
        {} if memo is None else memo,
        _encodings(charset.encode("ascii")),
    )
    try:
        result, _ = walker.dataset(dataset_start(header), len(header), top=True)
    except (struct.error, UnicodeError, LookupError, ValueError) as exc:
        raise Unsupported(f"{type(exc).__name__}: {exc}") from exc
    return result


def _is_explicit_le_family(transfer_syntax: str) -> bool:
    """Encapsulated syntaxes keep their header in Explicit VR Little Endian."""
    return transfer_syntax.startswith("1.2.840.10008.1.2.4.") or transfer_syntax in (
        "1.2.840.10008.1.2.5",
        "1.2.840.10008.1.2.1.98",
    )
