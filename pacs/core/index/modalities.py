"""The remote modalities every door sees: the configured ones and those added at run time.

Configured modalities (the TOML ``[[modalities]]``) come from the settings; ones added over
the REST API are rows of the ``modalities`` table (migration 5), so they survive a restart and
every server process (DIMSE workers included) sees them. A stored modality with the name of
a configured one overrides it. Lookups by AE title (every association, when callers are
restricted, and every C-MOVE) read a snapshot refreshed at most once a second.
"""

from __future__ import annotations

import dataclasses
import json
import threading
import time
from collections.abc import Sequence
from typing import Any

from pacs.core.errors import InvalidQuery, NotFound
from pacs.core.index.db import Database
from pacs.core.remote import RemoteModality

_REFRESH_SECONDS = 1.0
_OPTIONS = tuple(
    f.name
    for f in dataclasses.fields(RemoteModality)
    if f.name not in ("name", "ae_title", "host", "port", "configured")
)


def check_ae_title(title: str) -> str:
    """An AE title is 1-16 printable characters without a backslash (InvalidQuery if not)."""
    if not 1 <= len(title.strip()) <= 16 or "\\" in title or not title.isprintable():
        raise InvalidQuery(f"invalid AE title {title!r}: 1-16 printable characters")
    return title.strip()


def check_modality(modality: RemoteModality) -> RemoteModality:
    """A modality whose name, AE title, host and port are usable (InvalidQuery if not)."""
    if not modality.name or "/" in modality.name or not modality.name.isprintable():
        raise InvalidQuery(f"invalid modality name {modality.name!r}")
    check_ae_title(modality.ae_title)
    if not modality.host.strip():
        raise InvalidQuery("the host of a modality must not be empty")
    if not 0 < modality.port < 65536:
        raise InvalidQuery(f"invalid port {modality.port}")
    return dataclasses.replace(modality, ae_title=modality.ae_title.strip(), configured=False)


class ModalityRegistry:
    """List, read, add, change and delete remote modalities."""

    def __init__(self, database: Database, configured: Sequence[RemoteModality] = ()) -> None:
        self.database = database
        self.configured = {m.name: dataclasses.replace(m, configured=True) for m in configured}
        self._lock = threading.Lock()
        self._snapshot: dict[str, RemoteModality] | None = None
        self._read_at = 0.0

    def _run(self, sql: str, params: Sequence[Any] = ()) -> list[Any]:
        with self.database.reader() as conn:
            return conn.execute(sql, params)

    def _stored(self) -> dict[str, RemoteModality]:
        rows = self._run("SELECT name, ae_title, host, port, options FROM modalities")
        result = {}
        for name, ae_title, host, port, options in rows:
            extra = {k: v for k, v in json.loads(options).items() if k in _OPTIONS}
            result[str(name)] = RemoteModality(
                str(name), str(ae_title), str(host), int(port), **extra
            )
        return result

    def all(self) -> dict[str, RemoteModality]:
        """Every modality by name (sorted), read afresh."""
        merged = {**self.configured, **self._stored()}
        snapshot = dict(sorted(merged.items()))
        with self._lock:
            self._snapshot, self._read_at = snapshot, time.monotonic()
        return snapshot

    def _recent(self) -> dict[str, RemoteModality]:
        with self._lock:
            if self._snapshot is not None and time.monotonic() - self._read_at < _REFRESH_SECONDS:
                return self._snapshot
        return self.all()

    def get(self, name: str) -> RemoteModality:
        """One modality by name (NotFound)."""
        modality = self.all().get(name)
        if modality is None:
            raise NotFound(f"no modality with symbolic name: {name}")
        return modality

    def by_ae(self, ae_title: str) -> RemoteModality | None:
        """The modality with this AE title (the first by name), if any."""
        wanted = ae_title.strip()
        for modality in self._recent().values():
            if modality.ae_title == wanted:
                return modality
        return None

    def ae_titles(self) -> list[str]:
        """Every known AE title (the allowed callers when callers are restricted)."""
        return [m.ae_title for m in self._recent().values()]

    def put(self, modality: RemoteModality) -> None:
        """Add or replace a modality (stored in the index)."""
        modality = check_modality(modality)
        options = json.dumps({k: getattr(modality, k) for k in _OPTIONS}, sort_keys=True)
        self._run(
            "INSERT INTO modalities (name, ae_title, host, port, options, updated_at) "
            "VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT (name) DO UPDATE SET "
            "ae_title = excluded.ae_title, host = excluded.host, port = excluded.port, "
            "options = excluded.options, updated_at = excluded.updated_at",
            (modality.name, modality.ae_title, modality.host, modality.port, options, time.time()),
        )
        self._forget()

    def delete(self, name: str) -> None:
        """Delete a stored modality (NotFound; InvalidQuery for one only in the TOML file)."""
        if not self._run("SELECT name FROM modalities WHERE name = ?", (name,)):
            if name in self.configured:
                raise InvalidQuery(
                    f"modality {name!r} is configured in the settings file: remove it there"
                )
            raise NotFound(f"unknown DICOM modality with symbolic name: {name}")
        self._run("DELETE FROM modalities WHERE name = ?", (name,))
        self._forget()

    def _forget(self) -> None:
        with self._lock:
            self._snapshot = None
