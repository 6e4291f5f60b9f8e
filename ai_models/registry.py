"""The model registry: every subfolder of ``models_dir`` holding a ``model_card.json``."""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from pathlib import Path

from ai_models.card import CARD_FILE, ModelCard, ModelCardError, load_card

log = logging.getLogger(__name__)


@dataclass
class ModelRegistry:
    """Valid model cards by name; folders that failed, with the reason."""

    cards: list[ModelCard] = field(default_factory=list)
    errors: list[tuple[Path, str]] = field(default_factory=list)

    @classmethod
    def scan(cls, models_dir: Path) -> ModelRegistry:
        """Load each subfolder with a card; invalid ones are logged and skipped, never raised."""
        registry = cls()
        models_dir = Path(models_dir)
        if not models_dir.is_dir():
            registry._skip(models_dir, "the models folder does not exist")
            return registry
        for folder in sorted(p for p in models_dir.iterdir() if p.is_dir()):
            if not (folder / CARD_FILE).exists():
                continue
            try:
                card = load_card(folder)
            except ModelCardError as exc:
                registry._skip(folder, str(exc))
                continue
            except OSError as exc:
                registry._skip(folder, f"cannot read: {exc}")
                continue
            if any(c.name == card.name for c in registry.cards):
                registry._skip(folder, f"a model named {card.name!r} is already registered")
                continue
            registry.cards.append(card)
            log.info(
                "model %s version %s loaded from %s (%s; threshold %.3g: %s)",
                card.name,
                card.version,
                folder,
                card.use_label,
                card.threshold,
                card.threshold_source,
            )
        return registry

    def _skip(self, folder: Path, reason: str) -> None:
        log.error("model folder %s skipped: %s", folder, reason)
        self.errors.append((folder, reason))

    def get(self, name: str) -> ModelCard:
        """The card of that name; ``KeyError`` naming the known models otherwise."""
        for card in self.cards:
            if card.name == name:
                return card
        known = ", ".join(c.name for c in self.cards) or "none"
        raise KeyError(f"no model named {name!r} (known: {known})")

    def names(self) -> list[str]:
        """Registered model names, in folder order."""
        return [c.name for c in self.cards]
