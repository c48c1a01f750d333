"""Calendar subscription tokens (table ``calendar_feeds``, migration m008): one per athlete.

Rotating replaces the row, which revokes the old address; rows are found by the token's
SHA-256 (planner/services/calendar.py says why).
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from planner.store.database import Store


def feed_token(store: Store, athlete_id: str) -> str | None:
    row = store.db.execute(
        "SELECT token FROM calendar_feeds WHERE athlete_id = ?", (athlete_id,)
    ).fetchone()
    return None if row is None else str(row[0])


def save_feed_token(store: Store, athlete_id: str, token: str, token_sha256: str) -> None:
    """Set the athlete's token (replacing, and so revoking, any earlier one)."""
    now = datetime.now(UTC).isoformat(timespec="seconds")
    with store.transaction() as db:
        db.execute(
            "INSERT INTO calendar_feeds (athlete_id, token, token_sha256, created_at)"
            " VALUES (?, ?, ?, ?) ON CONFLICT(athlete_id) DO UPDATE SET"
            " token = excluded.token, token_sha256 = excluded.token_sha256,"
            " created_at = excluded.created_at",
            (athlete_id, token, token_sha256, now),
        )


def delete_feed_token(store: Store, athlete_id: str) -> bool:
    with store.transaction() as db:
        cursor = db.execute("DELETE FROM calendar_feeds WHERE athlete_id = ?", (athlete_id,))
    return cursor.rowcount > 0


def athlete_of_feed(store: Store, token_sha256: str) -> str | None:
    row = store.db.execute(
        "SELECT athlete_id FROM calendar_feeds WHERE token_sha256 = ?", (token_sha256,)
    ).fetchone()
    return None if row is None else str(row[0])
