"""A content-addressed cache of expensive steps (generations, scores), safe for two runs at once.

Entries live in one SQLite file (WAL mode: concurrent readers, serialised writers, and
each write is a transaction, so a killed run leaves either the whole batch or none of
it). A key is the hash of everything that determines the value: for a generation, the
model fingerprint, backend, decoding parameters, seed and prompt; for a score, the
scorer fingerprint and the text. One model's entries can never be served for another.
"""

from __future__ import annotations

import json
import sqlite3
import threading
import time
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any, cast

from toxbench.io import ensure_writable_dir, sha256_json

_BUSY_TIMEOUT_S = 60.0


def _enable_wal(db: sqlite3.Connection) -> None:
    """Switch the file to WAL mode (persistent once set), waiting out another process doing it.

    Changing the journal mode needs the file to itself, and SQLite answers "database is
    locked" at once rather than calling the busy handler when two connections try it
    together (two runs starting side by side), so the switch is retried here.
    """
    deadline = time.monotonic() + _BUSY_TIMEOUT_S
    delay = 0.01
    while True:
        try:
            if db.execute("PRAGMA journal_mode").fetchone()[0].lower() != "wal":
                db.execute("PRAGMA journal_mode=WAL")
            return
        except sqlite3.OperationalError as err:
            if "locked" not in str(err) or time.monotonic() > deadline:
                raise
            time.sleep(delay)
            delay = min(delay * 2, 0.5)


def cache_key(namespace: str, **parts: Any) -> str:
    return sha256_json({"ns": namespace, **parts})


class Cache:
    """Key -> JSON value store in ``<root>/cache.sqlite``; ``Cache(None)`` stores nothing."""

    def __init__(self, root: Path | None) -> None:
        self.root = root
        self._local = threading.local()
        if root is not None:
            ensure_writable_dir(root, "cache")
            with self._connect() as db:
                db.execute("CREATE TABLE IF NOT EXISTS entries (key TEXT PRIMARY KEY, ns TEXT, value TEXT)")

    def _connect(self) -> sqlite3.Connection:
        db = getattr(self._local, "db", None)
        if db is None:
            assert self.root is not None
            db = sqlite3.connect(self.root / "cache.sqlite", timeout=_BUSY_TIMEOUT_S)
            _enable_wal(db)
            db.execute("PRAGMA synchronous=NORMAL")
            self._local.db = db
        return db

    @property
    def enabled(self) -> bool:
        return self.root is not None

    def get_many(self, keys: Iterable[str]) -> dict[str, Any]:
        keys = list(keys)
        if not self.enabled or not keys:
            return {}
        db, found = self._connect(), {}
        for start in range(0, len(keys), 500):
            chunk = keys[start : start + 500]
            marks = ",".join("?" * len(chunk))
            for key, value in db.execute(f"SELECT key, value FROM entries WHERE key IN ({marks})", chunk):
                found[key] = json.loads(value)
        return found

    def put_many(self, namespace: str, items: Mapping[str, Any]) -> None:
        if not self.enabled or not items:
            return
        db = self._connect()
        with db:  # one transaction: all of the batch or none of it
            db.executemany(
                "INSERT OR REPLACE INTO entries (key, ns, value) VALUES (?, ?, ?)",
                [(k, namespace, json.dumps(v)) for k, v in items.items()],
            )

    def count(self, namespace: str | None = None) -> int:
        if not self.enabled:
            return 0
        sql, args = "SELECT COUNT(*) FROM entries", cast(tuple[str, ...], ())
        if namespace:
            sql, args = sql + " WHERE ns = ?", (namespace,)
        return int(self._connect().execute(sql, args).fetchone()[0])
