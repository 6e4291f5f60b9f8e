"""Person-name normalisation so that "nguyen^van*" finds "Nguyễn^Văn A"."""

from __future__ import annotations

import unicodedata

_SPECIAL = str.maketrans({"đ": "d", "Đ": "d", "ø": "o", "Ø": "o", "ł": "l", "Ł": "l", "ß": "ss"})


def fold(text: str) -> str:
    """Lower-case, diacritics removed (ễ -> e, đ -> d), as used for insensitive matching."""
    decomposed = unicodedata.normalize("NFKD", text.translate(_SPECIAL))
    stripped = "".join(ch for ch in decomposed if not unicodedata.combining(ch))
    return stripped.casefold()


def normalize_person_name(name: str) -> str:
    """The searchable form of a PN value: its first (alphabetic) group, folded, with the
    component separator '^' and runs of spaces made one space, so "NGUYEN VAN A" and
    "Nguyễn^Văn^A" match the same queries."""
    alphabetic = name.split("=", 1)[0]
    parts = alphabetic.replace("^", " ").split()
    return fold(" ".join(parts))


def normalize_name_pattern(pattern: str) -> str:
    """The same folding for a query value, keeping the '*' and '?' wildcards."""
    alphabetic = pattern.split("=", 1)[0]
    text = alphabetic.rstrip("^").replace("^", " ")
    collapsed = " ".join(text.split(" "))
    while "  " in collapsed:
        collapsed = collapsed.replace("  ", " ")
    return fold(collapsed.strip())
