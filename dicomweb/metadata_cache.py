"""A bounded in-memory cache of encoded metadata responses, keyed by their ETag.

Viewers ask for a series' metadata every time a study is opened; the ETag changes whenever
an instance is added or replaced, so an entry can never be stale, only unused.
"""

from __future__ import annotations

import threading
from collections import OrderedDict


class MetadataCache:
    """Least-recently-used entries are dropped once ``max_bytes`` is exceeded."""

    def __init__(self, max_bytes: int = 256 * 1024 * 1024) -> None:
        self.max_bytes = max_bytes
        self._entries: OrderedDict[str, bytes] = OrderedDict()
        self._size = 0
        self._lock = threading.Lock()

    def get(self, key: str) -> bytes | None:
        """The cached body, if any (and mark it recently used)."""
        with self._lock:
            body = self._entries.get(key)
            if body is not None:
                self._entries.move_to_end(key)
            return body

    def put(self, key: str, body: bytes) -> None:
        """Keep a body; evict the oldest entries beyond the size bound."""
        if len(body) > self.max_bytes:
            return
        with self._lock:
            previous = self._entries.pop(key, None)
            if previous is not None:
                self._size -= len(previous)
            self._entries[key] = body
            self._size += len(body)
            while self._size > self.max_bytes:
                _, dropped = self._entries.popitem(last=False)
                self._size -= len(dropped)
