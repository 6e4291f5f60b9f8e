"""WADO-RS frames (PS3.18 10.4.1.1.3): native frames cut from the stored pixel data, or
compressed frames passed through as stored when the client accepts ``transfer-syntax=*``."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from io import BytesIO

from pydicom import dcmread
from pydicom.encaps import generate_frames
from pydicom.uid import UID

from pacs.core.archive import Archive
from pacs.core.errors import InvalidQuery, NotFound
from pacs.core.model import StoredInstance

_NATIVE_LITTLE_ENDIAN = {"1.2.840.10008.1.2", "1.2.840.10008.1.2.1", "1.2.840.10008.1.2.1.99"}


class CannotDecode(Exception):
    """Compressed pixel data that cannot be decoded (unsupported or corrupt): 406."""


@dataclass(frozen=True)
class Frame:
    """One frame's bytes and the transfer syntax they are in."""

    data: bytes
    transfer_syntax: str


def parse_frame_numbers(text: str) -> list[int]:
    """``"1,3"`` -> ``[1, 3]`` (1-based, as in the URL)."""
    try:
        numbers = [int(part) for part in text.split(",") if part.strip()]
    except ValueError:
        raise InvalidQuery(f"invalid frame list {text!r}") from None
    if not numbers or any(n < 1 for n in numbers):
        raise InvalidQuery(f"invalid frame list {text!r}")
    return numbers


def read_frames(
    archive: Archive, stored: StoredInstance, numbers: list[int] | None, keep_compressed: bool
) -> list[Frame]:
    """The requested frames (all when ``numbers`` is None): native little endian, or as
    stored when compressed and the client accepts any transfer syntax."""
    ds = dcmread(BytesIO(archive.read_instance(stored)))
    if "PixelData" not in ds:
        raise NotFound(f"instance {stored.sop_uid} has no pixel data")
    count = int(ds.get("NumberOfFrames", 1) or 1)
    if numbers is None:
        numbers = list(range(1, count + 1))
    if max(numbers) > count:
        raise NotFound(f"instance {stored.sop_uid} has {count} frame(s)")
    syntax = UID(stored.transfer_syntax)
    if stored.transfer_syntax in _NATIVE_LITTLE_ENDIAN:
        size = int(ds.Rows) * int(ds.Columns) * int(ds.get("SamplesPerPixel", 1))
        size = size * int(ds.BitsAllocated) // 8
        pixels = ds.PixelData
        return [Frame(pixels[(n - 1) * size : n * size], str(syntax)) for n in numbers]
    if syntax.is_compressed and keep_compressed:
        frames = list(generate_frames(ds.PixelData, number_of_frames=count))
        return [Frame(frames[n - 1], str(syntax)) for n in numbers]
    try:
        array = ds.pixel_array  # decoded by the pylibjpeg plugins (or pydicom's own RLE)
    except Exception as exc:  # codec errors on unusual or corrupt pixel data
        raise CannotDecode(
            f"cannot decode the pixel data of {stored.sop_uid} ({stored.transfer_syntax}): "
            f"{type(exc).__name__}: {exc}; ask with transfer-syntax=* to get it as stored"
        ) from exc
    if count == 1:
        return [Frame(array.astype(array.dtype.newbyteorder("<")).tobytes(), "1.2.840.10008.1.2.1")]
    return [
        Frame(array[n - 1].astype(array.dtype.newbyteorder("<")).tobytes(), "1.2.840.10008.1.2.1")
        for n in numbers
    ]


def multipart_octets(parts: list[Frame]) -> tuple[bytes, str]:
    """The ``multipart/related; type="application/octet-stream"`` body and its
    Content-Type."""
    boundary = uuid.uuid4().hex
    body = b"".join(
        f"--{boundary}\r\nContent-Type: application/octet-stream; "
        f"transfer-syntax={part.transfer_syntax}\r\n\r\n".encode("ascii")
        + part.data
        + b"\r\n"
        for part in parts
    ) + f"--{boundary}--\r\n".encode("ascii")
    return body, f'multipart/related; type="application/octet-stream"; boundary={boundary}'
