"""WADO-RS bulk data (PS3.18 10.4.1.1.5): the values our metadata gives as BulkDataURIs,
``.../instances/{uid}/bulkdata/{tag}``, as ``multipart/related; type="application/octet-stream"``.

Any top-level attribute can be asked for (the metadata only names binary values over
768 bytes, and Pixel Data). Values are sent as stored (Little Endian); Pixel Data is
sent uncompressed, one part holding the whole value, or, when stored compressed and the
client accepts ``transfer-syntax=*``, one part per frame as stored.
"""

from __future__ import annotations

from io import BytesIO

from pydicom import dcmread
from pydicom.dataelem import RawDataElement

from dicomweb.frames import Frame, read_frames
from pacs.core.archive import Archive
from pacs.core.errors import InvalidQuery, NotFound
from pacs.core.model import StoredInstance

PIXEL_DATA = 0x7FE00010
_FIRST_PIXEL_TAG = 0x7FE00008
_OCTETS = "1.2.840.10008.1.2.1"


def parse_tag(text: str) -> int:
    """``"00282000"`` -> ``0x00282000`` (8 hex digits, as in our BulkDataURIs)."""
    if len(text) != 8:
        raise InvalidQuery(f"invalid attribute tag {text!r}: expected 8 hex digits")
    try:
        return int(text, 16)
    except ValueError:
        raise InvalidQuery(f"invalid attribute tag {text!r}: expected 8 hex digits") from None


def read_bulkdata(
    archive: Archive, stored: StoredInstance, tag: int, keep_compressed: bool
) -> list[Frame]:
    """The parts of one attribute's value."""
    if tag == PIXEL_DATA:
        frames = read_frames(archive, stored, None, keep_compressed)
        if all(frame.transfer_syntax == _OCTETS for frame in frames):
            return [Frame(b"".join(frame.data for frame in frames), _OCTETS)]
        return frames
    if tag < _FIRST_PIXEL_TAG:
        raw = archive.instance_headers([stored])[stored.sop_uid]
    else:
        raw = archive.read_instance(stored)
    ds = dcmread(BytesIO(raw), force=True, stop_before_pixels=tag < _FIRST_PIXEL_TAG)
    if tag not in ds:
        raise NotFound(f"instance {stored.sop_uid} has no attribute {tag:08X}")
    element = ds.get_item(tag)
    if not isinstance(element, RawDataElement) or element.VR == "SQ":
        raise InvalidQuery(f"attribute {tag:08X} is a sequence, not bulk data")
    return [Frame(bytes(element.value or b""), _OCTETS)]
