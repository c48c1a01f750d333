"""Plan history: one stored plan per athlete and ISO week (table ``plans``, migration m005).

The builder reads the history to progress doses, time deloads and show each limiter's key
metric since the plan began; :func:`save_plan` keeps a week's plan idempotently (saving the
same plan again changes nothing; a changed plan gets the next revision, which calendar
files carry as SEQUENCE so a re-imported week updates its events).
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, replace
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from pydantic import ValidationError

from planner.errors import ConfigError
from planner.plan import PLAN_FORMAT_VERSION, IsoWeek, KeyMetric, Plan, PlanHistoryEntry

if TYPE_CHECKING:
    import sqlite3

    from planner.store.database import Store


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")


def _content(plan: Plan, key_metrics: dict[str, KeyMetric]) -> tuple[str, str, str]:
    """JSON of the plan (revision left out), JSON of the key metrics, and their hash."""
    body = plan.to_dict()
    body.pop("revision")
    body.pop("revised_utc")
    plan_json = json.dumps(body, sort_keys=True, ensure_ascii=False)
    metrics_json = json.dumps(
        {area: asdict(km) for area, km in sorted(key_metrics.items())}, sort_keys=True
    )
    digest = hashlib.sha256(f"{plan_json}\n{metrics_json}".encode()).hexdigest()
    return plan_json, metrics_json, digest


def _stored(db: sqlite3.Connection, plan: Plan) -> sqlite3.Row | None:
    return db.execute(
        "SELECT revision, content_hash, updated_at FROM plans WHERE athlete_id = ? AND week = ?",
        (plan.athlete_id, plan.week),
    ).fetchone()


def preview_plan(store: Store, plan: Plan, key_metrics: dict[str, KeyMetric]) -> Plan:
    """The plan as :func:`save_plan` would return it, without writing anything.

    A preview (``send-weekly --dry-run``) must not advance the plan history: the history drives
    the dose ladder, so a coach's look at next week would otherwise change next week.
    """
    digest = _content(plan, key_metrics)[2]
    row = _stored(store.db, plan)
    if row is not None and row["content_hash"] == digest:
        return replace(
            plan,
            revision=int(row["revision"]),
            revised_utc=datetime.fromisoformat(row["updated_at"]),
        )
    revision = 1 if row is None else int(row["revision"]) + 1
    return replace(plan, revision=revision, revised_utc=datetime.fromisoformat(_now()))


def save_plan(store: Store, plan: Plan, key_metrics: dict[str, KeyMetric]) -> Plan:
    """Store a week's plan; return it with its revision.

    Saving content identical to the stored plan for that week changes nothing and returns the
    stored revision; different content replaces it with the next revision.
    """
    plan_json, metrics_json, digest = _content(plan, key_metrics)
    with store.transaction() as db:
        row = _stored(db, plan)
        if row is not None and row["content_hash"] == digest:
            stored = datetime.fromisoformat(row["updated_at"])
            return replace(plan, revision=int(row["revision"]), revised_utc=stored)
        revision = 1 if row is None else int(row["revision"]) + 1
        now = _now()
        db.execute(
            """INSERT INTO plans (athlete_id, week, revision, phase, plan, key_metrics,
                   content_hash, created_at, updated_at)
               VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)
               ON CONFLICT(athlete_id, week) DO UPDATE SET revision = excluded.revision,
                   phase = excluded.phase, plan = excluded.plan,
                   key_metrics = excluded.key_metrics, content_hash = excluded.content_hash,
                   updated_at = excluded.updated_at""",
            (
                plan.athlete_id,
                plan.week,
                revision,
                plan.phase,
                plan_json,
                metrics_json,
                digest,
                now,
                now,
            ),
        )
    return replace(plan, revision=revision, revised_utc=datetime.fromisoformat(now))


def _entry(row: sqlite3.Row) -> PlanHistoryEntry:
    raw: dict[str, Any] = json.loads(row["plan"])
    where = f"stored plan {row['athlete_id']} {row['week']}"
    if raw.get("format_version") != PLAN_FORMAT_VERSION:
        raise ConfigError(
            f"{where}: format {raw.get('format_version')} is not {PLAN_FORMAT_VERSION};"
            " rebuild it with 'stridewise plan --week WEEK'"
        )
    raw["revision"] = int(row["revision"])
    raw["revised_utc"] = row["updated_at"]
    try:
        plan = Plan.from_dict(raw)
    except ValidationError as exc:
        raise ConfigError(f"{where}: unreadable ({exc.error_count()} errors)") from None
    metrics = {
        area: KeyMetric(km.get("metric"), km.get("value"), km.get("probability"))
        for area, km in json.loads(row["key_metrics"]).items()
    }
    return PlanHistoryEntry(plan=plan, key_metrics=metrics)


def load_history(
    store: Store, athlete_id: str, *, before: IsoWeek | None = None
) -> list[PlanHistoryEntry]:
    """The athlete's stored plans, oldest first (only weeks before ``before`` if given)."""
    sql = "SELECT * FROM plans WHERE athlete_id = ?"
    args: list[Any] = [athlete_id]
    if before is not None:
        sql += " AND week < ?"
        args.append(str(before))
    rows = store.db.execute(sql + " ORDER BY week", args).fetchall()
    return [_entry(row) for row in rows]


def get_plan(store: Store, athlete_id: str, week: IsoWeek) -> Plan | None:
    """The stored plan for one week, if any."""
    row = store.db.execute(
        "SELECT * FROM plans WHERE athlete_id = ? AND week = ?", (athlete_id, str(week))
    ).fetchone()
    return None if row is None else _entry(row).plan
