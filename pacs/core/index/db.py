"""Connections to the index database: SQLite (embedded default) or PostgreSQL.

SQL in the project is written once with ``?`` placeholders; the PostgreSQL connection
translates them.  Each thread gets its own connection.
"""

from __future__ import annotations

import contextlib
import sqlite3
import threading
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Literal, Protocol
from urllib.parse import unquote, urlparse

from pacs.core.errors import ConfigError, OutOfResources

Dialect = Literal["sqlite", "postgresql"]
_MAX_IDLE = 16
Row = tuple[Any, ...]


class Connection(Protocol):
    """The little the index needs from a DB-API connection."""

    dialect: Dialect

    def execute(self, sql: str, params: Sequence[Any] = ()) -> list[Row]: ...

    def execute_many(self, sql: str, rows: Sequence[Sequence[Any]]) -> None: ...

    def transaction(self) -> Any: ...

    def close(self) -> None: ...


class SqliteConnection:
    """SQLite in WAL mode, fully synchronous, case-sensitive LIKE (as PostgreSQL)."""

    dialect: Dialect = "sqlite"

    def __init__(self, path: str) -> None:
        self._conn = sqlite3.connect(
            path, isolation_level=None, check_same_thread=False, timeout=60.0
        )
        for pragma in (
            "PRAGMA journal_mode=WAL",
            "PRAGMA synchronous=FULL",
            "PRAGMA foreign_keys=ON",
            "PRAGMA case_sensitive_like=ON",
            "PRAGMA busy_timeout=60000",
            "PRAGMA cache_size=-65536",
            "PRAGMA temp_store=MEMORY",
        ):
            self._conn.execute(pragma)

    def execute(self, sql: str, params: Sequence[Any] = ()) -> list[Row]:
        try:
            return self._conn.execute(sql, params).fetchall()
        except sqlite3.OperationalError as exc:
            if "disk is full" in str(exc) or "database or disk is full" in str(exc):
                raise OutOfResources("index database: disk full") from exc
            raise

    def execute_many(self, sql: str, rows: Sequence[Sequence[Any]]) -> None:
        self._conn.executemany(sql, rows)

    @contextmanager
    def transaction(self) -> Iterator[None]:
        """BEGIN IMMEDIATE ... COMMIT (or ROLLBACK on error)."""
        self._conn.execute("BEGIN IMMEDIATE")
        try:
            yield
        except BaseException:
            self._conn.execute("ROLLBACK")
            raise
        self._conn.execute("COMMIT")

    def close(self) -> None:
        self._conn.close()


class PostgresConnection:
    """A psycopg 3 connection in autocommit mode, transactions made explicit."""

    dialect: Dialect = "postgresql"

    def __init__(self, url: str) -> None:
        try:
            import psycopg
        except ImportError as exc:  # pragma: no cover - depends on the install extras
            raise ConfigError("PostgreSQL index needs psycopg: pip install '.[postgres]'") from exc
        self._conn = psycopg.connect(url, autocommit=True)

    @staticmethod
    def _translate(sql: str) -> str:
        return sql.replace("?", "%s")

    def execute(self, sql: str, params: Sequence[Any] = ()) -> list[Row]:
        with self._conn.cursor() as cursor:
            cursor.execute(self._translate(sql), params)  # type: ignore[arg-type]
            if cursor.description is None:
                return []
            return list(cursor.fetchall())

    def execute_many(self, sql: str, rows: Sequence[Sequence[Any]]) -> None:
        with self._conn.cursor() as cursor:
            cursor.executemany(self._translate(sql), rows)  # type: ignore[arg-type]

    @contextmanager
    def transaction(self) -> Iterator[None]:
        with self._conn.transaction():
            yield

    def close(self) -> None:
        self._conn.close()


class Database:
    """Opens connections for one index URL; one connection per thread for reads."""

    def __init__(self, url: str) -> None:
        self.url = url
        parsed = urlparse(url)
        if parsed.scheme == "sqlite":
            # sqlite:///relative/path or sqlite:////absolute/path
            raw_path = unquote(url[len("sqlite:///") :]) if url.startswith("sqlite:///") else ""
            if not raw_path:
                raise ConfigError(f"invalid SQLite URL {url!r} (use sqlite:///PATH)")
            self.dialect: Dialect = "sqlite"
            self.sqlite_path = raw_path
            Path(raw_path).parent.mkdir(parents=True, exist_ok=True)
        elif parsed.scheme in ("postgresql", "postgres"):
            self.dialect = "postgresql"
        else:
            raise ConfigError(f"unsupported index URL {url!r} (sqlite:/// or postgresql://)")
        self._idle: list[Connection] = []
        self._all: list[Connection] = []
        self._lock = threading.Lock()

    def connect(self) -> Connection:
        """A new connection (the caller owns it)."""
        conn: Connection
        if self.dialect == "sqlite":
            conn = SqliteConnection(self.sqlite_path)
        else:
            conn = PostgresConnection(self.url)
        with self._lock:
            self._all.append(conn)
        return conn

    @contextmanager
    def reader(self) -> Iterator[Connection]:
        """Borrow a pooled connection for reads (associations come and go with their
        threads, so connections are pooled rather than kept per thread)."""
        with self._lock:
            conn = self._idle.pop() if self._idle else None
        if conn is None:
            conn = self.connect()
        try:
            yield conn
        except BaseException:
            self._discard(conn)
            raise
        with self._lock:
            if len(self._idle) < _MAX_IDLE:
                self._idle.append(conn)
                return
        self._discard(conn)

    def _discard(self, conn: Connection) -> None:
        with self._lock:
            if conn in self._all:
                self._all.remove(conn)
        with contextlib.suppress(Exception):
            conn.close()

    def close(self) -> None:
        """Close every connection this object opened."""
        with self._lock:
            for conn in self._all:
                with contextlib.suppress(Exception):  # closing during shutdown
                    conn.close()
            self._all.clear()
            self._idle.clear()
