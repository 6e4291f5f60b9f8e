"""One query model for C-FIND, QIDO-RS and Orthanc's /tools/find (PS3.4 C.2.2.2 matching).

A :class:`Query` names a level, the attributes to match (keyword -> DICOM matching value)
and the attributes to return.  The index translates indexed attributes to SQL; any other
attribute is matched here, in Python, with the same rules (:func:`value_matches`).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from pydicom.dataset import Dataset
from pydicom.multival import MultiValue

from pacs.core.errors import InvalidQuery
from pacs.core.model import INDEXED, Level, MatchKind
from pacs.core.names import normalize_name_pattern, normalize_person_name

_IGNORED_KEYWORDS = frozenset(
    {"QueryRetrieveLevel", "SpecificCharacterSet", "TimezoneOffsetFromUTC"}
)


@dataclass(frozen=True)
class Query:
    """What to find: a level, matching values by keyword, and the keys to return."""

    level: Level
    filters: dict[str, str] = field(default_factory=dict)
    return_keys: tuple[str, ...] = ()
    limit: int = 0
    offset: int = 0
    kinds: dict[str, MatchKind] = field(default_factory=dict)
    # Text values (not UIDs, dates or numbers) matched without regard to case, as Orthanc's
    # /tools/find does by default; person names are always matched so.
    ignore_case: bool = False

    def kind_of(self, keyword: str) -> MatchKind:
        """How a filter on this keyword is matched."""
        if keyword in INDEXED:
            return INDEXED[keyword].kind
        return self.kinds.get(keyword, "text")


def kind_for_vr(vr: str) -> MatchKind:
    """The matching rules that apply to a value representation."""
    kinds: dict[str, MatchKind] = {
        "PN": "pn",
        "DA": "date",
        "TM": "time",
        "DT": "date",
        "UI": "uid",
        "IS": "int",
        "US": "int",
        "UL": "int",
        "SS": "int",
        "SL": "int",
    }
    return kinds.get(vr, "text")


def _element_text(value: object) -> str:
    if value is None:
        return ""
    if isinstance(value, MultiValue | list | tuple):
        return "\\".join(str(v) for v in value)
    return str(value)


def query_from_identifier(identifier: Dataset, level: Level | None = None) -> Query:
    """Translate a C-FIND identifier: non-empty values are filters, every key is returned."""
    if level is None:
        raw_level = identifier.get("QueryRetrieveLevel", "")
        try:
            level = Level.parse(str(raw_level))
        except ValueError as exc:
            raise InvalidQuery(str(exc)) from None
    filters: dict[str, str] = {}
    kinds: dict[str, MatchKind] = {}
    keys: list[str] = []
    for element in identifier:
        keyword = element.keyword
        if not keyword or keyword in _IGNORED_KEYWORDS or element.tag.group == 0x0002:
            continue
        keys.append(keyword)
        if element.VR == "SQ":
            continue  # sequence matching is not supported; the sequence is returned
        try:
            text = _element_text(element.value).strip()
        except Exception as exc:  # undecodable value in the identifier
            raise InvalidQuery(f"cannot decode {keyword}: {exc}") from None
        if text and text.replace("*", "") != "":
            filters[keyword] = text
            kinds[keyword] = kind_for_vr(str(element.VR))
    return Query(level=level, filters=filters, return_keys=tuple(keys), kinds=kinds)


# --- matching values, shared by SQL translation and Python matching ---------------------------


def split_values(value: str) -> list[str]:
    """A value with several alternatives (``CT\\MR``, UID lists) as its parts."""
    return [part for part in value.split("\\") if part != ""]


def has_wildcard(value: str) -> bool:
    """Whether the value uses ``*`` or ``?``."""
    return "*" in value or "?" in value


def wildcard_to_like(value: str) -> str:
    """``Nguy*n?`` -> ``Nguy%n_`` with LIKE's own specials escaped by backslash."""
    escaped = value.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
    return escaped.replace("*", "%").replace("?", "_")


def date_bounds(value: str) -> tuple[str, str] | None:
    """``20200101-20201231`` -> bounds; ``-x`` and ``x-`` are open ranges; None if single."""
    value = value.replace(".", "").strip()
    if "-" not in value:
        return None
    low, _, high = value.partition("-")
    return low.strip(), high.strip()


def time_bounds(value: str) -> tuple[str, str] | None:
    """Like :func:`date_bounds`, with times normalised and the upper bound made inclusive."""
    value = value.replace(":", "").strip()
    if "-" not in value:
        return None
    low, _, high = value.partition("-")
    return _time_low(low.strip()), _time_high(high.strip())


def _time_low(value: str) -> str:
    if not value:
        return ""
    whole, _, fraction = value.partition(".")
    return whole.ljust(6, "0") + (f".{fraction}" if fraction else "")


def _time_high(value: str) -> str:
    if not value:
        return ""
    whole, dot, fraction = value.partition(".")
    if dot:
        return whole.ljust(6, "0") + "." + fraction.ljust(6, "9")
    return whole + {2: "5959.999999", 4: "59.999999"}.get(len(whole), ".999999")


def normalize_pattern(kind: MatchKind, value: str) -> str:
    """The pattern as compared with the stored column (names folded)."""
    if kind == "pn":
        return normalize_name_pattern(value)
    return value


def _regex_for(pattern: str, flags: int = 0) -> re.Pattern[str]:
    parts = (".*" if ch == "*" else "." if ch == "?" else re.escape(ch) for ch in pattern)
    return re.compile("".join(parts) + r"\Z", flags | re.DOTALL)


def value_matches(kind: MatchKind, pattern: str, value: str, *, ignore_case: bool = False) -> bool:
    """PS3.4 C.2.2.2 matching of one stored value (used for attributes not in columns)."""
    value = value.strip()
    if ignore_case and kind == "text":
        pattern, value = pattern.lower(), value.lower()
    if kind == "pn":
        stored = normalize_person_name(value)
        wanted = normalize_name_pattern(pattern)
        return bool(_regex_for(wanted).match(stored))
    if kind in ("date", "time"):
        bounds = date_bounds(pattern) if kind == "date" else time_bounds(pattern)
        if bounds is None:
            return any(value.replace(".", "") == v.replace(".", "") for v in split_values(pattern))
        if not value:
            return False
        low, high = bounds
        comparable = value.replace(":", "").replace(".", "") if kind == "date" else value
        return (not low or comparable >= low) and (not high or comparable <= high)
    if kind == "int":
        try:
            return int(float(value)) in {int(v) for v in split_values(pattern)}
        except ValueError:
            return False
    alternatives = split_values(pattern) if kind in ("uid", "text") else [pattern]
    stored_values = value.split("\\") if "\\" in value else [value]
    for alternative in alternatives:
        regex = _regex_for(alternative) if has_wildcard(alternative) else None
        for stored in stored_values:
            if regex is not None and regex.match(stored):
                return True
            if regex is None and stored == alternative:
                return True
    return False
