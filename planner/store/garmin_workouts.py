"""What was put on each athlete's Garmin Connect calendar (table ``garmin_workouts``, m007).

One row per plan session pushed by ``stridewise garmin push-plan``: Garmin's workout id and
calendar-entry id, the content hash of the workout sent and the plan revision it came from.
Each change is its own transaction, written around the request it records, so an interrupted
push leaves rows that say exactly how far it got (see :mod:`planner.services.garmin_push`).
"""

from __future__ import annotations

from dataclasses import dataclass, fields, replace
from datetime import UTC, date, datetime
from typing import TYPE_CHECKING, Literal

if TYPE_CHECKING:
    import sqlite3

    from planner.store.database import Store

PushState = Literal["uploading", "uploaded", "scheduling", "scheduled"]


@dataclass(frozen=True, slots=True)
class PushedWorkout:
    """One session's workout on Garmin Connect, as far as stridewise knows.

    ``state``: ``uploading`` (upload sent, answer not yet stored: it may exist on Garmin),
    ``uploaded`` (``workout_id`` known, not on the calendar), ``scheduling`` (calendar request
    sent, answer not stored), ``scheduled`` (``schedule_id`` known, on ``scheduled_day``).
    """

    athlete_id: str
    week: str
    session_id: str
    plan_revision: int
    name: str
    marker: str
    content_hash: str
    day: date
    state: PushState
    workout_id: int | None = None
    schedule_id: int | None = None
    scheduled_day: date | None = None
    updated_at: str = ""


_COLUMNS = tuple(f.name for f in fields(PushedWorkout))


def _row(row: sqlite3.Row) -> PushedWorkout:
    values = {name: row[name] for name in _COLUMNS}
    for name in ("day", "scheduled_day"):
        if values[name] is not None:
            values[name] = date.fromisoformat(values[name])
    return PushedWorkout(**values)


def pushed_week(store: Store, athlete_id: str, week: str) -> dict[str, PushedWorkout]:
    """The week's pushed sessions by session id."""
    rows = store.db.execute(
        "SELECT * FROM garmin_workouts WHERE athlete_id = ? AND week = ? ORDER BY session_id",
        (athlete_id, week),
    ).fetchall()
    return {row["session_id"]: _row(row) for row in rows}


def save_pushed(store: Store, pushed: PushedWorkout) -> PushedWorkout:
    """Insert or replace one session's row (its own transaction); returns it as stored."""
    stored = replace(pushed, updated_at=datetime.now(UTC).isoformat(timespec="seconds"))
    values = [getattr(stored, name) for name in _COLUMNS]
    values = [v.isoformat() if isinstance(v, date) else v for v in values]
    with store.transaction() as db:
        db.execute(
            f"INSERT OR REPLACE INTO garmin_workouts ({', '.join(_COLUMNS)})"
            f" VALUES ({', '.join('?' for _ in _COLUMNS)})",
            values,
        )
    return stored


def forget_pushed(store: Store, pushed: PushedWorkout) -> None:
    """Drop a session's row once its workout is gone from Garmin Connect."""
    with store.transaction() as db:
        db.execute(
            "DELETE FROM garmin_workouts WHERE athlete_id = ? AND week = ? AND session_id = ?",
            (pushed.athlete_id, pushed.week, pushed.session_id),
        )
