"""Implicit VR Little Endian to Explicit VR Little Endian by rewriting element headers.

Values are copied as they are (both syntaxes are Little Endian); only each element's
header changes (the VR from the data dictionary is written in), sequences and items are
written with undefined lengths (their defined lengths would change), and group lengths,
which would be wrong afterwards, are left out. pydicom does the same in about ten times
the time (it decodes and re-encodes every value); anything unusual raises
:class:`~dicomweb.header_json.Unsupported` so the caller can use pydicom instead.
"""

from __future__ import annotations

import struct

from dicomweb.header_json import Unsupported, dataset_start, dictionary_vr

EXPLICIT_LE = b"1.2.840.10008.1.2.1\x00"
_LONG = frozenset({"OB", "OD", "OF", "OL", "OV", "OW", "SQ", "UC", "UN", "UR", "UT"})
_AMBIGUOUS_AS_OW = frozenset({"OB or OW", "US or OW", "US or SS or OW"})
_LUT_DESCRIPTORS = frozenset({0x00281101, 0x00281102, 0x00281103, 0x00283002})
_HEAD = struct.Struct("<HHI")
_SHORT = struct.Struct("<HH2sH")
_LONG_HEAD = struct.Struct("<HH2s2xI")
_ITEM = 0xFFFEE000
_ITEM_END = 0xFFFEE00D
_SEQUENCE_END = 0xFFFEE0DD
_UNDEFINED = 0xFFFFFFFF
_PIXEL_REPRESENTATION = 0x00280103
_ITEM_START = struct.pack("<HHI", 0xFFFE, 0xE000, _UNDEFINED)
_ITEM_STOP = struct.pack("<HHI", 0xFFFE, 0xE00D, 0)
_SEQUENCE_STOP = struct.pack("<HHI", 0xFFFE, 0xE0DD, 0)


class _Rewriter:
    def __init__(self, data: bytes) -> None:
        self.data = data
        self.view = memoryview(data)  # values are copied once, into the result
        self.out: list[bytes | memoryview] = []
        self.signed_pixels = False

    def vr(self, tag: int) -> str:
        vr = dictionary_vr(tag)
        if vr == "US or SS":
            return "US" if tag in _LUT_DESCRIPTORS or not self.signed_pixels else "SS"
        if vr in _AMBIGUOUS_AS_OW:
            return "OW"
        if " " in vr or len(vr) != 2:
            raise Unsupported(f"no explicit VR for {tag:08X} ({vr})")
        return vr

    def dataset(self, offset: int, end: int) -> int:
        """Rewrite elements up to ``end`` or an item delimiter; returns where it stopped."""
        data, out = self.data, self.out
        while offset < end:
            group, element, length = _HEAD.unpack_from(data, offset)
            tag = group << 16 | element
            offset += 8
            if tag == _ITEM_END:
                return offset
            if group == 0xFFFE:
                raise Unsupported(f"unexpected delimiter {tag:08X}")
            vr = self.vr(tag)
            if vr == "SQ" or (length == _UNDEFINED and vr == "UN"):
                out.append(_LONG_HEAD.pack(group, element, b"SQ", _UNDEFINED))
                offset = self.sequence(offset, length)
                out.append(_SEQUENCE_STOP)
                continue
            if length == _UNDEFINED or offset + length > len(data):
                raise Unsupported(f"length of {tag:08X}")
            value = self.view[offset : offset + length]
            offset += length
            if element == 0 and group != 0xFFFE:
                continue  # group length: would no longer be right
            if tag == _PIXEL_REPRESENTATION and length == 2:
                self.signed_pixels = bytes(value) != b"\x00\x00"
            if vr not in _LONG and length > 0xFFFF:
                vr = "UN"  # too long for a 2-byte length (PS3.5 6.2.2)
            if vr in _LONG:
                out.append(_LONG_HEAD.pack(group, element, vr.encode("ascii"), length))
            else:
                out.append(_SHORT.pack(group, element, vr.encode("ascii"), length))
            out.append(value)
        return offset

    def sequence(self, offset: int, length: int) -> int:
        end = len(self.data) if length == _UNDEFINED else offset + length
        while offset < end:
            group, element, item_length = _HEAD.unpack_from(self.data, offset)
            tag = group << 16 | element
            offset += 8
            if tag == _SEQUENCE_END:
                return offset
            if tag != _ITEM:
                raise Unsupported(f"expected an item, found {tag:08X}")
            self.out.append(_ITEM_START)
            if item_length == _UNDEFINED:
                offset = self.dataset(offset, len(self.data))
            else:
                self.dataset(offset, offset + item_length)
                offset += item_length
            self.out.append(_ITEM_STOP)
        if length == _UNDEFINED:
            raise Unsupported("sequence without a delimiter")
        return end


def _file_meta(raw: bytes, start: int) -> bytes:
    """The File Meta group with Explicit VR Little Endian as its transfer syntax."""
    offset, parts = 132, []
    while offset < start:
        group, element, vr = struct.unpack_from("<HH2s", raw, offset)
        if vr.decode("ascii", "replace") in _LONG:
            (length,) = struct.unpack_from("<I", raw, offset + 8)
            size = 12 + length
        else:
            (length,) = struct.unpack_from("<H", raw, offset + 6)
            size = 8 + length
        if element == 0x0010:
            parts.append(_SHORT.pack(group, element, b"UI", len(EXPLICIT_LE)) + EXPLICIT_LE)
        elif element != 0x0000:
            parts.append(raw[offset : offset + size])
        offset += size
    body = b"".join(parts)
    return raw[:132] + _SHORT.pack(0x0002, 0x0000, b"UL", 4) + struct.pack("<I", len(body)) + body


def implicit_to_explicit(raw: bytes) -> bytes:
    """A Part 10 file in Implicit VR Little Endian, re-encoded in Explicit VR Little Endian."""
    start = dataset_start(raw)
    rewriter = _Rewriter(raw)
    try:
        rewriter.dataset(start, len(raw))
        meta = _file_meta(raw, start)
    except struct.error as exc:
        raise Unsupported(f"truncated: {exc}") from exc
    return b"".join([meta, *rewriter.out])
