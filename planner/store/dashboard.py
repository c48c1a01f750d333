"""What the coach's roster reads, for every athlete at once, and each athlete's last errors.

The roster page (planner/services/dashboard.py) is built from these few queries over the
whole tables — never one query set per athlete — so it stays fast for hundreds of athletes
(bench/roster_speed.py). Errors live in ``athlete_errors`` (migration m008): one row per
athlete and kind of work, replaced by the next failure, deleted by the next success.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from planner.store.database import Store


def _marks(values: Sequence[object]) -> str:
    return ",".join("?" for _ in values)


def last_runs(store: Store) -> dict[str, datetime]:
    """Each athlete's newest running activity start (UTC)."""
    return {
        row[0]: datetime.fromtimestamp(row[1], UTC)
        for row in store.db.execute(
            "SELECT athlete_id, MAX(start_ts) FROM activities WHERE sport = 'running'"
            " GROUP BY athlete_id"
        )
    }


def newest_plan_metrics(store: Store) -> dict[str, tuple[str, dict[str, Any]]]:
    """Each athlete's newest plan week and the key metrics stored with it."""
    return {
        row[0]: (row[1], json.loads(row[2]))
        for row in store.db.execute(
            "SELECT p.athlete_id, p.week, p.key_metrics FROM plans p JOIN (SELECT athlete_id,"
            " MAX(week) AS week FROM plans GROUP BY athlete_id) n"
            " ON n.athlete_id = p.athlete_id AND n.week = p.week"
        )
    }


def plan_revisions(store: Store, weeks: Sequence[str]) -> dict[tuple[str, str], int]:
    """(athlete, week) -> the stored plan's revision, for these weeks."""
    return {
        (row[0], row[1]): int(row[2])
        for row in store.db.execute(
            f"SELECT athlete_id, week, revision FROM plans WHERE week IN ({_marks(weeks)})",
            list(weeks),
        )
    }


def mailed_weeks(
    store: Store, weeks: Sequence[str], athlete_id: str | None = None
) -> set[tuple[str, str]]:
    """(athlete, week) pairs whose plan e-mail the outbox records as sent."""
    sql = f"SELECT athlete_id, week FROM outbox WHERE state = 'sent' AND week IN ({_marks(weeks)})"
    args = list(weeks)
    if athlete_id is not None:
        sql += " AND athlete_id = ?"
        args.append(athlete_id)
    return {(row[0], row[1]) for row in store.db.execute(sql, args)}


def garmin_revisions(
    store: Store, weeks: Sequence[str], athlete_id: str | None = None
) -> dict[tuple[str, str], int]:
    """(athlete, week) -> the plan revision whose sessions are all on the Garmin calendar
    (``garmin push-plan``'s rows in ``garmin_workouts``, every one ``scheduled``)."""
    sql = (
        "SELECT athlete_id, week, MIN(plan_revision), MAX(plan_revision),"
        f" MIN(state = 'scheduled') FROM garmin_workouts WHERE week IN ({_marks(weeks)})"
    )
    args = list(weeks)
    if athlete_id is not None:
        sql += " AND athlete_id = ?"
        args.append(athlete_id)
    out = {}
    for row in store.db.execute(sql + " GROUP BY athlete_id, week", args):
        if row[2] == row[3] and row[4]:
            out[(row[0], row[1])] = int(row[2])
    return out


@dataclass(frozen=True, slots=True)
class AthleteError:
    kind: str
    message: str
    at: str


def record_error(store: Store, athlete_id: str, kind: str, message: str) -> None:
    now = datetime.now(UTC).isoformat(timespec="seconds")
    with store.transaction() as db:
        db.execute(
            "INSERT INTO athlete_errors (athlete_id, kind, message, at) VALUES (?, ?, ?, ?)"
            " ON CONFLICT(athlete_id, kind) DO UPDATE SET message = excluded.message,"
            " at = excluded.at",
            (athlete_id, kind, message, now),
        )


def clear_error(store: Store, athlete_id: str, kind: str) -> None:
    with store.transaction() as db:
        db.execute(
            "DELETE FROM athlete_errors WHERE athlete_id = ? AND kind = ?", (athlete_id, kind)
        )


def athlete_errors(store: Store, athlete_id: str | None = None) -> dict[str, list[AthleteError]]:
    """Athlete -> their recorded errors, newest first."""
    sql = "SELECT athlete_id, kind, message, at FROM athlete_errors"
    args: tuple[str, ...] = ()
    if athlete_id is not None:
        sql += " WHERE athlete_id = ?"
        args = (athlete_id,)
    out: dict[str, list[AthleteError]] = {}
    for row in store.db.execute(sql + " ORDER BY at DESC", args):
        out.setdefault(row[0], []).append(AthleteError(row[1], row[2], row[3]))
    return out
