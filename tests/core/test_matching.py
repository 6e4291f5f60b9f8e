"""PS3.4 C.2.2.2 matching rules, shared by SQL translation and Python matching."""

from __future__ import annotations

import pytest

from pacs.core.names import normalize_name_pattern, normalize_person_name
from pacs.core.query import date_bounds, time_bounds, value_matches, wildcard_to_like


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        ("Nguyễn^Văn A", "nguyen van a"),
        ("NGUYEN VAN A", "nguyen van a"),
        ("Đặng^Thị^Hồng", "dang thi hong"),
        ("Doe^John^^^", "doe john"),
        ("Yamada^Tarou=山田^太郎", "yamada tarou"),
    ],
)
def test_person_names_fold(name: str, expected: str) -> None:
    assert normalize_person_name(name) == expected


def test_name_patterns_fold_and_keep_wildcards() -> None:
    assert normalize_name_pattern("nguyen^van*") == "nguyen van*"
    assert normalize_name_pattern("NGUYỄN*") == "nguyen*"
    assert normalize_name_pattern("Tr?n^") == "tr?n"


@pytest.mark.parametrize(
    ("kind", "pattern", "value", "expected"),
    [
        ("pn", "nguyen^van*", "Nguyễn^Văn A", True),
        ("pn", "nguyen^thi*", "Nguyễn^Văn A", False),
        ("pn", "*van*", "NGUYEN VAN A", True),
        ("text", "CT", "CT", True),
        ("text", "CT", "ct", False),
        ("text", "C?", "CT", True),
        ("text", "CT\\MR", "MR", True),
        ("text", "AB*", "ABCD", True),
        ("text", "*CD", "ABCD", True),
        ("text", "A%", "ABCD", False),
        ("uid", "1.2.3\\1.2.4", "1.2.4", True),
        ("uid", "1.2.3", "1.2.33", False),
        ("date", "20240101-20240131", "20240115", True),
        ("date", "20240101-20240131", "20240201", False),
        ("date", "-20240131", "20200101", True),
        ("date", "20240101-", "20231231", False),
        ("date", "20240101-", "", False),
        ("date", "20240115", "20240115", True),
        ("time", "1000-1100", "103000", True),
        ("time", "1000-1100", "110059", True),
        ("time", "1000-1100", "110100", False),
        ("int", "3\\4", "4", True),
        ("int", "3", "4", False),
    ],
)
def test_value_matches(kind: str, pattern: str, value: str, expected: bool) -> None:
    assert value_matches(kind, pattern, value) is expected  # type: ignore[arg-type]


def test_ranges_and_like() -> None:
    assert date_bounds("20240101-20240131") == ("20240101", "20240131")
    assert date_bounds("2024.01.01-") == ("20240101", "")
    assert date_bounds("20240101") is None
    assert time_bounds("10-11") == ("100000", "115959.999999")
    assert time_bounds("1030-") == ("103000", "")
    assert wildcard_to_like("a_b%c*d?") == "a\\_b\\%c%d_"
