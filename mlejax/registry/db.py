"""The registry's SQLite database: schema, connection settings, transactions.

WAL mode lets readers run beside one writer; ``busy_timeout`` makes a writer
wait for another instead of failing; every read-then-write (version
numbering, alias moves, gc) runs in ``BEGIN IMMEDIATE``, which takes the
write lock first, so two processes never hand out the same version number.
"""

from __future__ import annotations

import contextlib
import os
import sqlite3
from typing import Iterator

from .errors import RegistryError

__all__ = ["connect", "transaction", "SCHEMA_VERSION"]

#: Schema changelog: 1 (2026-12-07): models, versions, aliases, tags.
SCHEMA_VERSION = 1
BUSY_TIMEOUT_MS = 60_000

_SCHEMA = """
CREATE TABLE IF NOT EXISTS models (
    name TEXT PRIMARY KEY,
    created_at REAL NOT NULL,
    last_version INTEGER NOT NULL DEFAULT 0
);
CREATE TABLE IF NOT EXISTS versions (
    name TEXT NOT NULL REFERENCES models(name),
    version INTEGER NOT NULL,
    sha256 TEXT NOT NULL,
    size INTEGER NOT NULL,
    created_at REAL NOT NULL,
    description TEXT,
    framework TEXT,
    info TEXT NOT NULL,
    lineage TEXT NOT NULL,
    PRIMARY KEY (name, version)
);
CREATE INDEX IF NOT EXISTS versions_sha256 ON versions(sha256);
CREATE TABLE IF NOT EXISTS aliases (
    name TEXT NOT NULL,
    alias TEXT NOT NULL,
    version INTEGER NOT NULL,
    PRIMARY KEY (name, alias),
    FOREIGN KEY (name, version) REFERENCES versions(name, version)
);
CREATE TABLE IF NOT EXISTS tags (
    name TEXT NOT NULL,
    version INTEGER NOT NULL,
    key TEXT NOT NULL,
    value TEXT NOT NULL,
    PRIMARY KEY (name, version, key),
    FOREIGN KEY (name, version) REFERENCES versions(name, version) ON DELETE CASCADE
);
"""


def connect(path: str | os.PathLike) -> sqlite3.Connection:
    """Open (creating if needed) the registry database at ``path``."""
    conn = sqlite3.connect(os.fspath(path), timeout=BUSY_TIMEOUT_MS / 1000, isolation_level=None, check_same_thread=False)
    conn.row_factory = sqlite3.Row
    conn.execute(f"PRAGMA busy_timeout = {BUSY_TIMEOUT_MS}")
    conn.execute("PRAGMA journal_mode = WAL")
    conn.execute("PRAGMA synchronous = FULL")
    conn.execute("PRAGMA foreign_keys = ON")
    found = conn.execute("PRAGMA user_version").fetchone()[0]
    if found > SCHEMA_VERSION:
        conn.close()
        raise RegistryError(f"{path}: registry schema version {found} is newer than this mlejax's ({SCHEMA_VERSION}); upgrade mlejax")
    if found < SCHEMA_VERSION:
        with transaction(conn):
            for statement in filter(str.strip, _SCHEMA.split(";")):
                conn.execute(statement)
            conn.execute(f"PRAGMA user_version = {SCHEMA_VERSION}")
    return conn


@contextlib.contextmanager
def transaction(conn: sqlite3.Connection) -> Iterator[sqlite3.Connection]:
    """``BEGIN IMMEDIATE`` … ``COMMIT`` (``ROLLBACK`` on any exception)."""
    conn.execute("BEGIN IMMEDIATE")
    try:
        yield conn
    except BaseException:
        conn.execute("ROLLBACK")
        raise
    conn.execute("COMMIT")
