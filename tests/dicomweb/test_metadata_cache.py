"""The metadata cache: bounded, least recently used first out."""

from __future__ import annotations

from dicomweb.metadata_cache import MetadataCache


def test_entries_are_kept_and_evicted_by_size() -> None:
    cache = MetadataCache(max_bytes=10)
    cache.put("a", b"1234")
    cache.put("b", b"5678")
    assert cache.get("a") == b"1234"  # now the most recently used
    cache.put("c", b"90ab")  # 12 bytes: the least recently used ("b") goes
    assert cache.get("b") is None
    assert cache.get("a") == b"1234" and cache.get("c") == b"90ab"
    cache.put("huge", b"x" * 11)  # larger than the whole cache: not kept
    assert cache.get("huge") is None and cache.get("c") == b"90ab"
