"""The text encoding assumed for data sets that declare none (Orthanc's ``DefaultEncoding``).

PS3.5 says a data set without Specific Character Set (0008,0005) holds ASCII only, but many
modalities write names in their own language without declaring it: in Vietnam typically
UTF-8, elsewhere Latin-1 or a national code page. The server reads such data sets with the
configured default (``[server] default_encoding``, changed at run time by Orthanc's
``PUT /tools/default-encoding``): at ingest for the index (names found by C-FIND, QIDO-RS
and ``/tools/find``), and wherever a stored header is shown as text (DICOMweb metadata,
Orthanc's tags). The stored bytes are never changed.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Literal, get_args

from pydicom.charset import convert_encodings
from pydicom.dataset import Dataset

# Orthanc's encoding names (its Enumerations.cpp) and the Specific Character Set of each.
TextEncoding = Literal[
    "Ascii",
    "Utf8",
    "Latin1",
    "Latin2",
    "Latin3",
    "Latin4",
    "Latin5",
    "Cyrillic",
    "Arabic",
    "Greek",
    "Hebrew",
    "Thai",
    "Japanese",
    "Chinese",
    "JapaneseKanji",
    "Korean",
    "SimplifiedChinese",
]
ENCODINGS: dict[str, str] = dict(
    zip(
        get_args(TextEncoding),
        (
            "ISO_IR 6",
            "ISO_IR 192",
            "ISO_IR 100",
            "ISO_IR 101",
            "ISO_IR 109",
            "ISO_IR 110",
            "ISO_IR 148",
            "ISO_IR 144",
            "ISO_IR 127",
            "ISO_IR 126",
            "ISO_IR 138",
            "ISO_IR 166",
            "ISO_IR 13",
            "GB18030",
            "ISO 2022 IR 87",
            "ISO 2022 IR 149",
            "ISO 2022 IR 58",
        ),
        strict=True,
    )
)
DEFAULT_ENCODING: TextEncoding = "Latin1"  # Orthanc's default, and pydicom's reading
LATIN1 = ENCODINGS[DEFAULT_ENCODING]

# Gives the Specific Character Set to assume now (it may change while the server runs).
CharsetSource = Callable[[], str]


def charset_of(encoding: str) -> str:
    """The Specific Character Set term of an Orthanc encoding name (``Utf8``: ISO_IR 192)."""
    return ENCODINGS[encoding]


def python_encodings(charset: str) -> tuple[str, ...]:
    """Python codec names for a Specific Character Set value (``\\``-separated terms)."""
    return tuple(convert_encodings([part.strip() for part in charset.split("\\")]))


def declares_charset(ds: Dataset) -> bool:
    """Whether the data set has a non-empty Specific Character Set of its own."""
    element = ds.get(0x00080005)
    return element is not None and bool(element.value)


def read_text_as(ds: Dataset, charset: str) -> Dataset:
    """Make pydicom decode the text of a data set that declares no character set (nested
    items included) as ``charset``; a data set that declares one is left as it is. Only how
    values are decoded changes: nothing is added to the data set."""
    if charset == LATIN1 or declares_charset(ds):
        return ds
    implicit, little = ds.original_encoding
    ds.set_original_encoding(implicit, little, list(python_encodings(charset)))
    return ds
