"""The ``coach_labels`` table: a coach's judgement of which areas limit an athlete."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import UTC, datetime

from planner.store.database import Store


def save_labels(store: Store, athlete_id: str, labels: Iterable[tuple[str, int]]) -> None:
    """Store (area, 1 = limiter / 0 = not) pairs; a later judgement replaces an earlier one."""
    now = datetime.now(UTC).isoformat(timespec="seconds")
    with store.transaction() as db:
        for area, value in labels:
            db.execute(
                "INSERT INTO coach_labels (athlete_id, area, is_limiter, labelled_at)"
                " VALUES (?, ?, ?, ?) ON CONFLICT(athlete_id, area) DO UPDATE SET"
                " is_limiter = excluded.is_limiter, labelled_at = excluded.labelled_at",
                (athlete_id, area, value, now),
            )


def all_labels(store: Store) -> dict[str, dict[str, int]]:
    """Every stored coach label: athlete → area → 1 (limiter) / 0 (not)."""
    out: dict[str, dict[str, int]] = {}
    for row in store.db.execute(
        "SELECT athlete_id, area, is_limiter FROM coach_labels ORDER BY athlete_id, area"
    ):
        out.setdefault(row[0], {})[row[1]] = int(row[2])
    return out
