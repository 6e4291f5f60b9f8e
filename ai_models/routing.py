"""Routing: which series (and which of their images) a model reads.

A route names a model and criteria; every non-empty criterion must hold. Body part and
description are alternatives when both are given ("BodyPartExamined CHEST, or a description
that says chest"), matched with ``*``/``?`` patterns, case- and diacritic-insensitively
(``*NGUC*`` matches "X-quang ngực thẳng"). View positions filter images, not series, and an
image without a View Position is kept (many CR units leave it empty).
"""

from __future__ import annotations

import fnmatch
import re
import unicodedata
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass

from ai_models.card import ModelCard

CHEST_DESCRIPTIONS = (
    "*CHEST*",
    "*THORAX*",
    "*THORAC*",
    "*LUNG*",
    "*CXR*",
    "*NGUC*",  # Vietnamese ngực (chest)
    "*PHOI*",  # Vietnamese phổi (lungs)
)


@dataclass(frozen=True)
class Route:
    """Which series a model reads."""

    model: str
    modalities: tuple[str, ...] = ()
    body_parts: tuple[str, ...] = ()
    descriptions: tuple[str, ...] = ()
    view_positions: tuple[str, ...] = ()
    description_regexes: tuple[str, ...] = ()  # model cards give regular expressions

    def matches_series(self, attributes: Mapping[str, str]) -> bool:
        """Whether the series (attributes of one of its images) is for this model."""
        modality = fold(attributes.get("Modality", ""))
        if self.modalities and modality not in {fold(m) for m in self.modalities}:
            return False
        if not (self.body_parts or self.descriptions or self.description_regexes):
            return True
        body_part = fold(attributes.get("BodyPartExamined", ""))
        if body_part and any(_match(body_part, p) for p in self.body_parts):
            return True
        texts = [
            fold(attributes.get(key, ""))
            for key in ("SeriesDescription", "StudyDescription", "ProtocolName")
        ]
        texts = [text for text in texts if text]
        return any(_match(text, p) for text in texts for p in self.descriptions) or any(
            re.search(p, text, re.IGNORECASE) for text in texts for p in self.description_regexes
        )

    def accepts_image(self, attributes: Mapping[str, str]) -> bool:
        """Whether one image of a routed series is read (its view position)."""
        view = fold(attributes.get("ViewPosition", ""))
        return not self.view_positions or not view or view in {fold(v) for v in self.view_positions}


def default_chest_route(model: str) -> Route:
    """The route a model gets when neither the settings nor its card give one: frontal
    chest radiographs."""
    return Route(
        model=model,
        modalities=("CR", "DX"),
        body_parts=("CHEST", "THORAX", "LUNG"),
        descriptions=CHEST_DESCRIPTIONS,
        view_positions=("PA", "AP"),
    )


def routes_for(cards: Iterable[ModelCard], configured: Sequence[Route]) -> list[Route]:
    """Configured routes for the models present; for a model without one, its card's
    routing, else the chest radiograph default. Routes naming an absent model are dropped."""
    cards = list(cards)
    names = {card.name for card in cards}
    routes = [route for route in configured if route.model in names]
    routed = {route.model for route in routes}
    for card in cards:
        if card.name in routed:
            continue
        if card.routing is not None:
            routes.append(
                Route(
                    model=card.name,
                    modalities=card.routing.modalities,
                    body_parts=card.routing.body_parts,
                    description_regexes=card.routing.description_patterns,
                    view_positions=card.routing.view_positions,
                )
            )
        else:
            routes.append(default_chest_route(card.name))
    return routes


def queued_modalities(routes: Sequence[Route]) -> frozenset[str]:
    """Modalities worth queueing at ingest (empty: a route takes every modality)."""
    if any(not route.modalities for route in routes):
        return frozenset()
    return frozenset(fold(m) for route in routes for m in route.modalities)


def fold(text: str) -> str:
    """Upper case without diacritics (đ/Đ become D), surrounding spaces removed."""
    decomposed = unicodedata.normalize("NFKD", text.replace("đ", "d").replace("Đ", "D"))
    return "".join(c for c in decomposed if not unicodedata.combining(c)).upper().strip()


def _match(text: str, pattern: str) -> bool:
    return fnmatch.fnmatchcase(text, fold(pattern))
