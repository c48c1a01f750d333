"""The ``feature_cache`` table: each run's features, keyed by feature version and a stamp.

The stamp says what the features were computed from (stream, activity, athlete body data), so
a changed input misses the cache; a new feature version replaces old rows as runs are seen.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from datetime import UTC, datetime

from planner.store.database import Store

#: SQLite's default limit on bound parameters is 999 on old builds: query in chunks below it.
_CHUNK = 500


def cached_features(
    store: Store, activity_ids: Sequence[int], version: str
) -> dict[int, tuple[str, str]]:
    """activity id → (stamp, JSON data) for the rows of ``version`` that exist."""
    cached: dict[int, tuple[str, str]] = {}
    for start in range(0, len(activity_ids), _CHUNK):
        chunk = activity_ids[start : start + _CHUNK]
        marks = ",".join("?" for _ in chunk)
        for row in store.db.execute(
            f"SELECT activity_id, stamp, data FROM feature_cache"
            f" WHERE feature_version = ? AND activity_id IN ({marks})",
            (version, *chunk),
        ):
            cached[int(row[0])] = (row[1], row[2])
    return cached


def save_features(store: Store, rows: Iterable[tuple[int, str, str]], version: str) -> None:
    """Store (activity id, stamp, JSON data) rows of ``version``; older versions are dropped."""
    now = datetime.now(UTC).isoformat(timespec="seconds")
    with store.transaction() as db:
        for activity_id, stamp, data in rows:
            db.execute(
                "DELETE FROM feature_cache WHERE activity_id = ? AND feature_version != ?",
                (activity_id, version),
            )
            db.execute(
                "INSERT OR REPLACE INTO feature_cache"
                " (activity_id, feature_version, stamp, data, computed_at)"
                " VALUES (?, ?, ?, ?, ?)",
                (activity_id, version, stamp, data, now),
            )
