"""A query answer as plain values, turned into a pydicom Dataset or encoded bytes on demand.

Study lists have thousands of rows; building a pydicom Dataset element by element costs
about 8 us an element, so answers keep plain values (``str``, ``list[str]``, ``None``) and
only elements copied from a stored header stay pydicom DataElements. A door that needs a
Dataset calls :meth:`Answer.to_dataset`; the DIMSE fast path calls :meth:`Answer.encode`.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass, field
from typing import Any

from pydicom.dataelem import DataElement
from pydicom.dataset import Dataset
from pydicom.filebase import DicomBytesIO
from pydicom.filewriter import write_data_element
from pydicom.valuerep import IS, PersonName

SPECIFIC_CHARACTER_SET = 0x00080005
_LONG_VRS = frozenset(
    {"OB", "OD", "OF", "OL", "OV", "OW", "SQ", "SV", "UC", "UN", "UR", "UT", "UV"}
)

Value = str | list[str] | None | DataElement


@dataclass
class Answer:
    """One match of a query: tag -> (VR, value), plus whether any text is non-ASCII."""

    elements: dict[int, tuple[str, Value]] = field(default_factory=dict)
    non_ascii: bool = False

    def set(self, tag: int, vr: str, value: Value) -> None:
        """Add or replace an element."""
        self.elements[tag] = (vr, value)

    def get(self, tag: int) -> Value:
        """The value of an element (None when absent or empty)."""
        entry = self.elements.get(tag)
        return None if entry is None else entry[1]

    def _with_charset(self) -> dict[int, tuple[str, Value]]:
        if not self.non_ascii:
            return self.elements
        return {**self.elements, SPECIFIC_CHARACTER_SET: ("CS", "ISO_IR 192")}

    def to_dataset(self) -> Dataset:
        """The answer as a pydicom Dataset."""
        ds = Dataset()
        for tag, (vr, value) in sorted(self._with_charset().items()):
            if isinstance(value, DataElement):
                ds[tag] = value
                continue
            converted: Any = value
            if vr == "PN" and isinstance(value, str):
                converted = PersonName(value)
            elif vr == "IS" and isinstance(value, str):
                converted = IS(value)
            ds[tag] = DataElement(tag, vr, converted, already_converted=True)
        return ds

    def encode(self, implicit_vr: bool) -> bytes:
        """The answer as a Little Endian data set (Implicit or Explicit VR)."""
        text_encoding = "utf-8" if self.non_ascii else "ascii"
        out = bytearray()
        for tag, (vr, value) in sorted(self._with_charset().items()):
            if isinstance(value, DataElement):
                out += _encode_with_pydicom(value, implicit_vr, text_encoding)
                continue
            if value is None:
                raw = b""
            else:
                text = "\\".join(value) if isinstance(value, list) else value
                raw = text.encode(text_encoding, "replace")
            if len(raw) % 2:
                raw += b"\x00" if vr == "UI" else b" "
            out += _element_header(tag, vr, len(raw), implicit_vr) + raw
        return bytes(out)


def _element_header(tag: int, vr: str, length: int, implicit_vr: bool) -> bytes:
    group, element = tag >> 16, tag & 0xFFFF
    if implicit_vr:
        return struct.pack("<HHI", group, element, length)
    if vr in _LONG_VRS:
        return struct.pack("<HH2s2xI", group, element, vr.encode("ascii"), length)
    return struct.pack("<HH2sH", group, element, vr.encode("ascii"), length)


def _encode_with_pydicom(element: DataElement, implicit_vr: bool, text_encoding: str) -> bytes:
    buffer = DicomBytesIO()
    buffer.is_little_endian = True
    buffer.is_implicit_VR = implicit_vr
    write_data_element(buffer, element, [text_encoding.replace("-", "_")])
    return buffer.getvalue()
