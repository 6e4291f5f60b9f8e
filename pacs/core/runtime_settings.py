"""Settings changed while the server runs (Orthanc's ``/tools/default-encoding``,
``accepted-transfer-syntaxes``, ``unknown-sop-class-accepted``, ``log-level``).

They live in one small JSON file in the data folder, written atomically, so that every
process of ``pacs serve`` (the HTTP process and the supervised DIMSE and AI workers, which
are separate processes) sees a change within a second: readers re-read the file when its
modification time changes, checking at most once a second. ``pacs serve`` resets the file
when it starts: as in Orthanc, changes last until the next restart and the configuration
file is authoritative at start-up.
"""

from __future__ import annotations

import dataclasses
import fnmatch
import json
import logging
import os
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pydicom.uid import AllTransferSyntaxes

from pacs.core.charsets import DEFAULT_ENCODING, ENCODINGS

log = logging.getLogger("pacs.runtime")

FILE_NAME = "runtime-settings.json"
CHECK_INTERVAL = 1.0

LOG_LEVELS = ("default", "verbose", "trace")
# Every transfer syntax pydicom knows: what wildcards in accepted-transfer-syntaxes expand to.
KNOWN_TRANSFER_SYNTAXES: tuple[str, ...] = tuple(sorted(str(uid) for uid in AllTransferSyntaxes))


@dataclass(frozen=True)
class RuntimeValues:
    """The current values; the defaults are the server's behaviour without any change."""

    default_encoding: str = DEFAULT_ENCODING  # an Orthanc name (``Utf8``...), see charsets
    accepted_transfer_syntaxes: tuple[str, ...] | None = None  # None: every one
    unknown_sop_class_accepted: bool = True
    log_level: str = "default"

    def accepts_transfer_syntax(self, uid: str) -> bool:
        """Whether a storage context in this transfer syntax may be accepted."""
        return self.accepted_transfer_syntaxes is None or uid in self.accepted_transfer_syntaxes

    @property
    def transfer_syntaxes(self) -> tuple[str, ...]:
        """The accepted transfer syntaxes, explicitly."""
        if self.accepted_transfer_syntaxes is None:
            return KNOWN_TRANSFER_SYNTAXES
        return self.accepted_transfer_syntaxes

    def to_json(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_json(cls, raw: Any, default: RuntimeValues | None = None) -> RuntimeValues:
        """Values from the file; anything unreadable falls back to ``default``'s."""
        default = default or cls()
        if not isinstance(raw, dict):
            return default
        encoding = raw.get("default_encoding")
        syntaxes = raw.get("accepted_transfer_syntaxes")
        unknown = raw.get("unknown_sop_class_accepted")
        level = raw.get("log_level")
        return cls(
            default_encoding=encoding if encoding in ENCODINGS else default.default_encoding,
            accepted_transfer_syntaxes=(
                tuple(str(s) for s in syntaxes) if isinstance(syntaxes, list) else None
            ),
            unknown_sop_class_accepted=(
                unknown if isinstance(unknown, bool) else default.unknown_sop_class_accepted
            ),
            log_level=level if level in LOG_LEVELS else default.log_level,
        )


def expand_transfer_syntaxes(patterns: list[str]) -> tuple[str, ...]:
    """UIDs or Orthanc's wildcards (``1.2.840.10008.1.2.4.*``) -> known UIDs; ValueError for
    an unknown UID or a wildcard matching nothing (as Orthanc, which knows DCMTK's list)."""
    found: list[str] = []
    for pattern in patterns:
        if "*" in pattern or "?" in pattern:
            matches = [uid for uid in KNOWN_TRANSFER_SYNTAXES if fnmatch.fnmatchcase(uid, pattern)]
            if not matches:
                raise ValueError(f"no transfer syntax matches {pattern!r}")
        elif pattern in KNOWN_TRANSFER_SYNTAXES:
            matches = [pattern]
        else:
            raise ValueError(f"unknown transfer syntax {pattern!r}")
        found.extend(uid for uid in matches if uid not in found)
    return tuple(found)


class RuntimeSettings:
    """The shared file and a cached read of it (thread-safe)."""

    def __init__(self, path: Path, defaults: RuntimeValues | None = None) -> None:
        self.path = path
        self.defaults = defaults or RuntimeValues()  # the configuration file's values
        self._lock = threading.Lock()
        self._values = self.defaults
        self._mtime: int | None = None
        self._checked = 0.0

    def reset(self) -> None:
        """Back to the configured values (``pacs serve`` calls this when it starts)."""
        self._write(self.defaults)

    def current(self) -> RuntimeValues:
        """The values, re-read when the file changed (checked at most once a second)."""
        now = time.monotonic()
        with self._lock:
            if now - self._checked < CHECK_INTERVAL:
                return self._values
            self._checked = now
            try:
                mtime = self.path.stat().st_mtime_ns
            except FileNotFoundError:
                self._values, self._mtime = self.defaults, None
                return self._values
            if mtime != self._mtime:
                try:
                    raw = json.loads(self.path.read_bytes())
                    self._values = RuntimeValues.from_json(raw, self.defaults)
                except (OSError, ValueError) as exc:
                    log.warning("cannot read %s: %s", self.path, exc)
                self._mtime = mtime
            return self._values

    def update(self, **changes: Any) -> RuntimeValues:
        """Change some values (names of :class:`RuntimeValues` fields); the new values."""
        with self._lock:
            self._checked = 0.0
        values = dataclasses.replace(self._reread(), **changes)
        self._write(values)
        return values

    def _reread(self) -> RuntimeValues:
        try:
            return RuntimeValues.from_json(json.loads(self.path.read_bytes()), self.defaults)
        except (OSError, ValueError):
            return self.defaults

    def _write(self, values: RuntimeValues) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        temporary = self.path.with_name(f".{self.path.name}.{os.getpid()}.tmp")
        temporary.write_text(json.dumps(values.to_json(), indent=1), encoding="utf-8")
        os.replace(temporary, self.path)
        with self._lock:
            self._values = values
            self._mtime = self.path.stat().st_mtime_ns
            self._checked = time.monotonic()


def default_charset(settings: RuntimeSettings) -> str:
    """The Specific Character Set assumed now for data sets that declare none."""
    return ENCODINGS[settings.current().default_encoding]


def apply_log_level(level: str, configured: str) -> None:
    """Orthanc's verbosity in this process: ``default`` is the configured level (pynetdicom
    at WARNING), ``verbose`` DEBUG for everything but pynetdicom, ``trace`` DEBUG for all."""
    root = logging.getLogger()
    if level == "default":
        root.setLevel(configured.upper())
        logging.getLogger("pynetdicom").setLevel(max(logging.WARNING, root.level))
    elif level == "verbose":
        root.setLevel(logging.DEBUG)
        logging.getLogger("pynetdicom").setLevel(logging.WARNING)
    elif level == "trace":
        root.setLevel(logging.DEBUG)
        logging.getLogger("pynetdicom").setLevel(logging.DEBUG)
    else:
        raise ValueError(f"unknown log level {level!r}")


def follow_log_level(settings: RuntimeSettings, configured: str, stop: threading.Event) -> None:
    """Apply the shared log level in this process whenever it changes (a worker's thread)."""
    applied = "default"
    while not stop.wait(CHECK_INTERVAL):
        wanted = settings.current().log_level
        if wanted != applied:
            apply_log_level(wanted, configured)
            applied = wanted
