"""One log for the whole server: standard error, and a file when configured."""

from __future__ import annotations

import logging
import sys

from pacs.settings import Settings

_FORMAT = "%(asctime)s %(levelname)s %(name)s [%(process)d] %(message)s"


def configure_logging(settings: Settings) -> None:
    """Send every log record at the configured level to stderr (and the log file)."""
    handlers: list[logging.Handler] = [logging.StreamHandler(sys.stderr)]
    if settings.server.log_file:
        handlers.append(logging.FileHandler(settings.server.log_file, encoding="utf-8"))
    logging.basicConfig(
        level=settings.server.log_level.upper(), format=_FORMAT, handlers=handlers, force=True
    )
    # pynetdicom logs every PDU at INFO; its warnings and errors are still shown.
    logging.getLogger("pynetdicom").setLevel(max(logging.WARNING, logging.getLogger().level))
