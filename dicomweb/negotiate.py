"""Media-type and transfer-syntax negotiation for WADO-RS retrieve (PS3.18 8.7.3-8.7.8).

The acceptable media types come from the ``accept`` query parameter when given (8.3.3.1),
otherwise from the Accept header. Of those, the DICOM ones for a retrieve are
``multipart/related; type="application/dicom"`` (``application/dicom`` and a bare
``multipart/related`` are read the same way) and ``*/*``; others are ignored (8.7.7).
Each carries an acceptable transfer syntax: its ``transfer-syntax`` parameter, else the
``transfer-syntax`` query parameter (for the ``accept`` query parameter only, 8.7.8.2),
else the default for ``application/dicom``, Explicit VR Little Endian (Table 8.7.3-2).

For each instance the first acceptable syntax in preference order (q, then order given)
that we can deliver wins: ``*`` or the stored syntax sends the file as stored; an
uncompressed Little Endian syntax is produced by decoding the stored pixel data.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass

from pydicom.pixels.decoders.base import get_decoder
from pydicom.uid import UID

from pacs.core.errors import InvalidQuery

DICOM = "application/dicom"
OCTETS = "application/octet-stream"
EXPLICIT_LE = "1.2.840.10008.1.2.1"
IMPLICIT_LE = "1.2.840.10008.1.2"
BIG_ENDIAN = "1.2.840.10008.1.2.2"
ANY = "*"
DEFAULT_TRANSFER_SYNTAX = EXPLICIT_LE
PRODUCIBLE = (EXPLICIT_LE, IMPLICIT_LE)
# Stored syntaxes we can rewrite without touching pixel data, or by decoding it.
_REWRITABLE = frozenset({EXPLICIT_LE, IMPLICIT_LE, "1.2.840.10008.1.2.1.99"})


class NotAcceptable(Exception):
    """No acceptable media type (or transfer syntax) can be delivered: 406."""


@dataclass(frozen=True)
class MediaRange:
    """One entry of an Accept list, with its parameters (lower-case names)."""

    media_type: str
    params: dict[str, str]
    quality: float


def parse_accept(value: str) -> list[MediaRange]:
    """``type/subtype; p=v; q=0.5, ...`` in preference order (highest q first, stable)."""
    ranges: list[MediaRange] = []
    for item in _split_outside_quotes(value, ","):
        parts = _split_outside_quotes(item, ";")
        media_type = parts[0].strip().lower()
        if not media_type:
            continue
        params: dict[str, str] = {}
        for part in parts[1:]:
            name, _, text = part.partition("=")
            params[name.strip().lower()] = text.strip().strip('"')
        try:
            quality = float(params.pop("q", "1"))
        except ValueError:
            quality = 1.0
        if quality > 0:
            ranges.append(MediaRange(media_type, params, quality))
    return sorted(ranges, key=lambda r: -r.quality)


def _split_outside_quotes(text: str, separator: str) -> list[str]:
    parts: list[str] = []
    current: list[str] = []
    quoted = False
    for char in text:
        if char == '"':
            quoted = not quoted
        if char == separator and not quoted:
            parts.append("".join(current))
            current = []
        else:
            current.append(char)
    parts.append("".join(current))
    return parts


def acceptable_transfer_syntaxes(
    headers: Mapping[str, str], query: Mapping[str, str], part_type: str = DICOM
) -> list[str]:
    """The transfer syntaxes acceptable for parts of ``part_type`` (``application/dicom``
    for instances, ``application/octet-stream`` for frames and bulk data), preferred
    first; raises NotAcceptable when no such media type is acceptable at all."""
    from_query = "accept" in query
    text = query["accept"] if from_query else headers.get("Accept", "*/*") or "*/*"
    query_syntax = query.get("transfer-syntax") if from_query else None
    syntaxes: list[str] = []
    for media in parse_accept(text):
        if not _is_acceptable_range(media, part_type):
            continue
        syntax = media.params.get("transfer-syntax") or query_syntax or DEFAULT_TRANSFER_SYNTAX
        if syntax != ANY and not _looks_like_uid(syntax):
            raise InvalidQuery(f"invalid transfer-syntax {syntax!r}")
        if syntax not in syntaxes:
            syntaxes.append(syntax)
    if not syntaxes:
        raise NotAcceptable(
            f"none of the acceptable media types ({text}) can be returned; this resource is "
            f'multipart/related; type="{part_type}"'
        )
    return syntaxes


def _is_acceptable_range(media: MediaRange, part_type: str) -> bool:
    if media.media_type in ("*/*", part_type, "application/*"):
        return True
    if media.media_type in ("multipart/related", "multipart/*"):
        return media.params.get("type", part_type).lower() in (part_type, "*/*", "application/*")
    return False


def _looks_like_uid(text: str) -> bool:
    return 0 < len(text) <= 64 and all(part.isdigit() for part in text.split("."))


def can_decode(stored_syntax: str) -> bool:
    """Whether we can produce uncompressed Little Endian from this stored syntax (not from
    the retired Explicit VR Big Endian: pydicom cannot re-encode it automatically)."""
    if stored_syntax in _REWRITABLE:
        return True
    if stored_syntax == BIG_ENDIAN:
        return False
    try:
        return bool(get_decoder(UID(stored_syntax)).is_available)
    except (NotImplementedError, ValueError):
        return False


def can_decode_pixels(stored_syntax: str) -> bool:
    """Whether pixel data alone (frames, bulk data) can be decoded to native Little Endian
    (Big Endian included: pydicom's pixel_array reads it)."""
    return stored_syntax == BIG_ENDIAN or can_decode(stored_syntax)


def choose(
    stored_syntax: str, acceptable: Sequence[str], convertible: Callable[[str], bool] = can_decode
) -> str | None:
    """The syntax to send an instance in (its stored one when acceptable as is), or None
    when none of the acceptable syntaxes can be delivered."""
    for syntax in acceptable:
        if syntax in (ANY, stored_syntax):
            return stored_syntax
        if syntax in PRODUCIBLE and convertible(stored_syntax):
            return syntax
    return None
