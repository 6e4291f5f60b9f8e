"""Retention policies: how long studies of a kind are kept, and what happens after.

A policy matches a study by modality (any of its series) and by a study-description pattern
(``*`` and ``?``, case-insensitive); an empty criterion matches everything. Of the policies
matching a study, the longest keep wins (on a tie, ``report`` wins over ``delete``); a study
matching none is kept forever.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from fnmatch import fnmatchcase
from typing import Literal

RetentionAction = Literal["delete", "report"]
DAYS_PER_YEAR = 365.25


@dataclass(frozen=True)
class RetentionPolicy:
    """One ``[[storage.retention]]`` entry."""

    name: str
    keep_days: float
    modality: str = ""
    study_description: str = ""
    action: RetentionAction = "report"

    def matches(self, modalities: Iterable[str], description: str) -> bool:
        """Whether a study with these modalities and this description falls under it."""
        if self.modality and self.modality.upper() not in {m.upper() for m in modalities}:
            return False
        return not self.study_description or fnmatchcase(
            description.casefold(), self.study_description.casefold()
        )

    def describe(self) -> str:
        """One line for people."""
        years = self.keep_days / DAYS_PER_YEAR
        keep = f"{years:g} years" if years >= 1 else f"{self.keep_days:g} days"
        where = ", ".join(
            part
            for part in (
                f"modality {self.modality}" if self.modality else "",
                f"description {self.study_description!r}" if self.study_description else "",
            )
            if part
        )
        return f"{self.name}: keep {keep} ({where or 'every study'}), then {self.action}"


def winning_policy(
    policies: Sequence[RetentionPolicy], modalities: Iterable[str], description: str
) -> RetentionPolicy | None:
    """The policy that decides a study's fate (None: kept forever)."""
    modality_set = set(modalities)
    matching = [p for p in policies if p.matches(modality_set, description)]
    if not matching:
        return None
    return max(matching, key=lambda p: (p.keep_days, p.action == "report"))
