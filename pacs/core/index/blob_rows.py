"""The index rows that refer to blobs, read for integrity checks (``pacs verify``, the
scrub, backups): stored instances and those kept in the trash, in keyset-paginated
batches, and which blob keys are referred to."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any

from pacs.core.index.db import Database

BATCH = 500


@dataclass(frozen=True)
class IndexedBlob:
    """What the index says about one instance's blob."""

    pk: int
    sop_uid: str
    study_uid: str
    blob_key: str
    size: int
    sha256: str


def indexed_blobs(
    database: Database, *, after_pk: int = 0, since: float = 0.0, batch: int = BATCH
) -> Iterator[list[IndexedBlob]]:
    """Instances in primary-key order, a batch at a time (keyset pagination: each batch is a
    short read, so a long run never holds a snapshot open against the writer)."""
    return _blob_batches(
        database,
        "SELECT i.pk, i.sop_uid, st.study_uid, i.blob_key, i.size, i.sha256 "
        "FROM instances i JOIN series se ON se.pk = i.series_pk "
        "JOIN studies st ON st.pk = se.study_pk "
        "WHERE i.pk > ? AND i.received_at >= ? ORDER BY i.pk LIMIT ?",
        (since,),
        after_pk,
        batch,
    )


def trashed_blobs(database: Database, *, batch: int = BATCH) -> Iterator[list[IndexedBlob]]:
    """Instances kept in the trash (restorable: their blobs must be intact too), a batch at
    a time; the trash of deletions being purged is left out (its blobs are going)."""
    return _blob_batches(
        database,
        "SELECT d.pk, d.sop_uid, d.study_uid, d.blob_key, d.size, d.sha256 "
        "FROM deleted_instances d JOIN deletions del ON del.pk = d.deletion_pk "
        "WHERE d.pk > ? AND del.state <> 'purging' ORDER BY d.pk LIMIT ?",
        (),
        0,
        batch,
    )


def _blob_batches(
    database: Database, sql: str, filters: tuple[Any, ...], after_pk: int, batch: int
) -> Iterator[list[IndexedBlob]]:
    """Keyset pagination of ``sql`` (parameters: the last pk, ``filters``, the batch size)."""
    while True:
        with database.reader() as conn:
            rows = conn.execute(sql, (after_pk, *filters, batch))
        if not rows:
            return
        yield [
            IndexedBlob(int(r[0]), str(r[1]), str(r[2]), str(r[3]), int(r[4]), str(r[5]))
            for r in rows
        ]
        after_pk = int(rows[-1][0])


def still_trashed(database: Database, entry: IndexedBlob) -> bool:
    """Whether the trashed instance is still in the trash with the same blob (not restored,
    not being purged)."""
    with database.reader() as conn:
        rows = conn.execute(
            "SELECT d.blob_key FROM deleted_instances d JOIN deletions del "
            "ON del.pk = d.deletion_pk WHERE d.pk = ? AND del.state <> 'purging'",
            (entry.pk,),
        )
    return bool(rows) and str(rows[0][0]) == entry.blob_key


def still_indexed(database: Database, entry: IndexedBlob) -> bool:
    """Whether the instance still points at the same blob (it may have been replaced)."""
    with database.reader() as conn:
        rows = conn.execute("SELECT blob_key FROM instances WHERE pk = ?", (entry.pk,))
    return bool(rows) and str(rows[0][0]) == entry.blob_key


def indexed_keys(database: Database, keys: Sequence[str], *, purging: bool = True) -> set[str]:
    """Those of ``keys`` that an index row refers to (looked up by the blob-key indexes): a
    stored instance, or one kept in the trash of a deletion (restorable: not an orphan);
    ``purging=False`` leaves out the trash of deletions being purged."""
    trash_filter = (
        ""
        if purging
        else " AND deletion_pk NOT IN (SELECT pk FROM deletions WHERE state = 'purging')"
    )
    found: set[str] = set()
    with database.reader() as conn:
        for start in range(0, len(keys), BATCH):
            chunk = list(keys[start : start + BATCH])
            marks = ", ".join("?" * len(chunk))
            found.update(
                str(r[0])
                for r in conn.execute(
                    f"SELECT blob_key FROM instances WHERE blob_key IN ({marks}) UNION "
                    f"SELECT blob_key FROM deleted_instances WHERE blob_key IN ({marks})"
                    + trash_filter,
                    chunk + chunk,
                )
            )
    return found
