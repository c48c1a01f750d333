"""A throwaway copy of the database, for dry runs that must leave the real one untouched."""

from __future__ import annotations

import sqlite3
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from planner.store.database import Store


@contextmanager
def scratch_copy(store: Store) -> Iterator[Store]:
    """A copy of ``store`` in a temporary folder (SQLite's backup API), deleted afterwards.

    A dry run does everything a real run does against the copy (analysis caches, plan history,
    pushed-state rows), so what it reports is what a real run would do, while the database
    itself stays byte for byte as it was.
    """
    with tempfile.TemporaryDirectory(prefix="stridewise-dry-run-") as folder:
        path = Path(folder) / "scratch.db"
        target = sqlite3.connect(path)
        try:
            store.db.backup(target)
        finally:
            target.close()
        with Store(path) as scratch:
            yield scratch
