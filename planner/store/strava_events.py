"""Stored Strava webhook events (table ``strava_events``, migration m008).

Each event is stored once under its identity (``event_key``) and moves ``queued`` →
``running`` → ``done`` / ``ignored`` / ``failed``; claiming is one conditional UPDATE, so an
event is handled once however often it is handed over (planner/services/strava_webhook.py).
"""

from __future__ import annotations

import json
import sqlite3
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from planner.store.database import Store


@dataclass(frozen=True, slots=True)
class StoredEvent:
    key: str
    owner_id: int
    object_type: str
    aspect_type: str
    updates: dict[str, Any]
    state: str
    athlete_id: str | None
    outcome: str | None


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")


def _event(row: sqlite3.Row) -> StoredEvent:
    return StoredEvent(
        key=row["event_key"],
        owner_id=int(row["owner_id"]),
        object_type=row["object_type"],
        aspect_type=row["aspect_type"],
        updates=json.loads(row["updates"]),
        state=row["state"],
        athlete_id=row["athlete_id"],
        outcome=row["outcome"],
    )


def add_event(store: Store, key: str, fields: dict[str, Any]) -> bool:
    """Store a new event as ``queued``; False when the same event is stored already."""
    with store.transaction() as db:
        cursor = db.execute(
            "INSERT OR IGNORE INTO strava_events (event_key, subscription_id, owner_id,"
            " object_type, object_id, aspect_type, event_time, updates, state, received_at)"
            " VALUES (?, ?, ?, ?, ?, ?, ?, ?, 'queued', ?)",
            (
                key,
                fields["subscription_id"],
                fields["owner_id"],
                fields["object_type"],
                fields["object_id"],
                fields["aspect_type"],
                fields["event_time"],
                json.dumps(fields["updates"], sort_keys=True),
                _now(),
            ),
        )
    return cursor.rowcount == 1


def claim_event(store: Store, key: str) -> StoredEvent | None:
    """Move a ``queued`` event to ``running`` and return it; None when someone else has."""
    with store.transaction() as db:
        claimed = db.execute(
            "UPDATE strava_events SET state = 'running' WHERE event_key = ? AND state = 'queued'",
            (key,),
        ).rowcount
    return get_event(store, key) if claimed else None


def finish_event(store: Store, key: str, state: str, athlete_id: str | None, outcome: str) -> None:
    with store.transaction() as db:
        db.execute(
            "UPDATE strava_events SET state = ?, athlete_id = ?, outcome = ?, finished_at = ?"
            " WHERE event_key = ?",
            (state, athlete_id, outcome, _now(), key),
        )


def get_event(store: Store, key: str) -> StoredEvent | None:
    row = store.db.execute("SELECT * FROM strava_events WHERE event_key = ?", (key,)).fetchone()
    return None if row is None else _event(row)


def queued_keys(store: Store) -> list[str]:
    """Events stored but not yet handled, oldest first."""
    return [
        row[0]
        for row in store.db.execute(
            "SELECT event_key FROM strava_events WHERE state = 'queued' ORDER BY received_at"
        )
    ]


def delete_state(store: Store, *keys: str) -> None:
    """Forget ``state`` entries (the webhook's verify token and subscription id)."""
    marks = ",".join("?" for _ in keys)
    with store.transaction() as db:
        db.execute(f"DELETE FROM state WHERE key IN ({marks})", keys)
