"""Re-encode one stored instance in an uncompressed Little Endian transfer syntax.

Compressed pixel data is decoded (pydicom with the pylibjpeg, pyjpegls and Pillow plugins;
colour images come out as RGB); every other element is re-encoded by pydicom
(Implicit and Explicit VR Little Endian, Deflated; not the retired Big Endian). Implicit to Explicit VR Little Endian, the commonest case (what most
modalities send), only rewrites element headers (:mod:`dicomweb.explicit_vr`).
One instance is in memory at a time: callers run this in a
worker thread and write each result out before reading the next.
"""

from __future__ import annotations

import logging
from io import BytesIO

from pydicom import dcmread
from pydicom.dataset import Dataset
from pydicom.uid import UID

from dicomweb.explicit_vr import implicit_to_explicit
from dicomweb.header_json import Unsupported
from dicomweb.negotiate import EXPLICIT_LE, IMPLICIT_LE, PRODUCIBLE

log = logging.getLogger("pacs.dicomweb")


class CannotTranscode(Exception):
    """The instance cannot be produced in the requested syntax (corrupt or odd pixel data)."""


def _native_little_endian(ds: Dataset) -> None:
    """Replace encapsulated Pixel Data by native Little Endian bytes."""
    source = UID(ds.file_meta.TransferSyntaxUID)
    if "PixelData" not in ds:
        return
    if source.is_compressed:
        ds.decompress(generate_instance_uid=False)  # the same instance, re-encoded


def transcode(raw: bytes, target: str, source: str = "") -> bytes:
    """The Part 10 file ``raw`` (stored in ``source``) re-encoded in ``target`` (Explicit or
    Implicit VR Little Endian)."""
    if target not in PRODUCIBLE:
        raise CannotTranscode(f"cannot produce transfer syntax {target}")
    if source == IMPLICIT_LE and target == EXPLICIT_LE:
        try:
            return implicit_to_explicit(raw)
        except Unsupported as exc:
            log.debug("implicit to explicit through pydicom: %s", exc)
    try:
        ds = dcmread(BytesIO(raw), force=True)
        _native_little_endian(ds)
        ds.file_meta.TransferSyntaxUID = UID(target)
        out = BytesIO()
        ds.save_as(
            out, enforce_file_format=True, implicit_vr=target == IMPLICIT_LE, little_endian=True
        )
    except CannotTranscode:
        raise
    except Exception as exc:  # codec and pydicom errors on unusual or corrupt data
        raise CannotTranscode(f"{type(exc).__name__}: {exc}") from exc
    return out.getvalue()
