"""Append-only, named schema migrations recorded in a table.

Never edit or reorder a migration that has shipped: add a new one at the end.
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Callable
from datetime import UTC, datetime, timedelta

Migration = Callable[[sqlite3.Connection], None]
MIGRATIONS: list[tuple[str, Migration]] = []


def migration(fn: Migration) -> Migration:
    MIGRATIONS.append((fn.__name__, fn))
    return fn


@migration
def m001_initial(db: sqlite3.Connection) -> None:
    _script(
        db,
        """
        CREATE TABLE athletes (
            id TEXT PRIMARY KEY,
            name TEXT,
            email TEXT,
            timezone TEXT NOT NULL DEFAULT 'UTC',
            send_day TEXT NOT NULL DEFAULT 'mon',
            send_time TEXT NOT NULL DEFAULT '07:00',
            preferences TEXT NOT NULL DEFAULT '{}',
            created_at TEXT NOT NULL
        );
        CREATE TABLE activities (
            id INTEGER PRIMARY KEY,
            athlete_id TEXT NOT NULL REFERENCES athletes(id) ON DELETE CASCADE,
            source TEXT NOT NULL,
            source_ref TEXT NOT NULL,
            content_hash TEXT,
            sport TEXT NOT NULL,
            sub_sport TEXT,
            start_ts REAL NOT NULL,
            elapsed_s REAL NOT NULL,
            moving_s REAL,
            distance_m REAL,
            name TEXT,
            device TEXT,
            sensors TEXT NOT NULL DEFAULT '[]',
            laps TEXT NOT NULL DEFAULT '[]',
            pauses TEXT NOT NULL DEFAULT '[]',
            height_m REAL,
            weight_kg REAL,
            sex TEXT,
            decoder TEXT,
            warnings TEXT NOT NULL DEFAULT '[]',
            dynamics TEXT NOT NULL DEFAULT '[]',
            n_samples INTEGER NOT NULL DEFAULT 0,
            extra TEXT NOT NULL DEFAULT '{}',
            imported_at TEXT NOT NULL,
            UNIQUE (athlete_id, source, source_ref)
        );
        CREATE INDEX activities_athlete_start ON activities (athlete_id, start_ts);
        -- Every (source, ref) we have seen for a stored activity, including the poorer copies
        -- we did not keep, so a later sync recognises them without fetching again.
        CREATE TABLE activity_aliases (
            athlete_id TEXT NOT NULL,
            source TEXT NOT NULL,
            source_ref TEXT NOT NULL,
            activity_id INTEGER NOT NULL REFERENCES activities(id) ON DELETE CASCADE,
            PRIMARY KEY (athlete_id, source, source_ref)
        );
        CREATE TABLE files (
            athlete_id TEXT NOT NULL,
            content_hash TEXT NOT NULL,
            path TEXT,
            imported_at TEXT NOT NULL,
            PRIMARY KEY (athlete_id, content_hash)
        );
        CREATE TABLE streams (
            activity_id INTEGER PRIMARY KEY REFERENCES activities(id) ON DELETE CASCADE,
            format TEXT NOT NULL,
            n_rows INTEGER NOT NULL,
            data BLOB NOT NULL
        );
        CREATE TABLE state (
            key TEXT PRIMARY KEY,
            value TEXT NOT NULL
        );
        """,
    )


@migration
def m006_outbox(db: sqlite3.Connection) -> None:
    _script(
        db,
        """
        -- One row per weekly-plan e-mail (planner/outbox.py, docs/email.md). No foreign key to
        -- athletes on purpose: removing an athlete keeps the record of what was sent.
        CREATE TABLE outbox (
            id INTEGER PRIMARY KEY,
            athlete_id TEXT NOT NULL,
            week TEXT NOT NULL,
            content_hash TEXT NOT NULL,
            message_id TEXT NOT NULL UNIQUE,
            recipient TEXT NOT NULL,
            state TEXT NOT NULL CHECK (state IN ('queued', 'sending', 'sent', 'failed')),
            attempts INTEGER NOT NULL DEFAULT 0,
            last_error TEXT,
            server_reply TEXT,
            created_at TEXT NOT NULL,
            updated_at TEXT NOT NULL,
            sent_at TEXT
        );
        CREATE INDEX outbox_athlete_week ON outbox (athlete_id, week, id);
        """,
    )


@migration
def m005_plans(db: sqlite3.Connection) -> None:
    _script(
        db,
        """
        -- Plan history (planner/planstore.py): one plan per athlete and ISO week ('2026-W49',
        -- which sorts in time order as text), with the analysis' key metric per area so the
        -- next weeks can progress doses, time deloads and show each limiter's trend.
        CREATE TABLE plans (
            athlete_id TEXT NOT NULL REFERENCES athletes(id) ON DELETE CASCADE,
            week TEXT NOT NULL,
            revision INTEGER NOT NULL DEFAULT 1,
            phase TEXT NOT NULL,
            plan TEXT NOT NULL,
            key_metrics TEXT NOT NULL DEFAULT '{}',
            content_hash TEXT NOT NULL,
            created_at TEXT NOT NULL,
            updated_at TEXT NOT NULL,
            PRIMARY KEY (athlete_id, week)
        );
        """,
    )


@migration
def m003_feature_cache(db: sqlite3.Connection) -> None:
    _script(
        db,
        """
        -- Per-run features, keyed by activity and feature version; `stamp` changes when the
        -- activity is replaced by a richer copy, so a stale row is recomputed.
        CREATE TABLE feature_cache (
            activity_id INTEGER NOT NULL REFERENCES activities(id) ON DELETE CASCADE,
            feature_version TEXT NOT NULL,
            stamp TEXT NOT NULL,
            data TEXT NOT NULL,
            computed_at TEXT NOT NULL,
            PRIMARY KEY (activity_id, feature_version)
        );
        """,
    )


@migration
def m004_coach_labels(db: sqlite3.Connection) -> None:
    _script(
        db,
        """
        -- A coach's judgement per athlete and area: 1 = limits this runner, 0 = does not.
        CREATE TABLE coach_labels (
            athlete_id TEXT NOT NULL REFERENCES athletes(id) ON DELETE CASCADE,
            area TEXT NOT NULL,
            is_limiter INTEGER NOT NULL,
            labelled_at TEXT NOT NULL,
            PRIMARY KEY (athlete_id, area)
        );
        """,
    )


@migration
def m007_garmin_workouts(db: sqlite3.Connection) -> None:
    _script(
        db,
        """
        -- What 'garmin push-plan' put on an athlete's Garmin Connect calendar
        -- (planner/store/garmin_workouts.py, docs/garmin.md): one row per plan session, with
        -- Garmin's workout and calendar-entry ids. Only workouts listed here are ever changed or
        -- deleted. 'uploading' and 'scheduling' record a request whose answer may have been
        -- lost, so a re-run looks before creating anything twice. No foreign key to athletes
        -- on purpose: removing an athlete keeps the record of what is on their calendar.
        CREATE TABLE garmin_workouts (
            athlete_id TEXT NOT NULL,
            week TEXT NOT NULL,
            session_id TEXT NOT NULL,
            plan_revision INTEGER NOT NULL,
            name TEXT NOT NULL,
            marker TEXT NOT NULL,
            content_hash TEXT NOT NULL,
            day TEXT NOT NULL,
            workout_id INTEGER,
            schedule_id INTEGER,
            scheduled_day TEXT,
            state TEXT NOT NULL
                CHECK (state IN ('uploading', 'uploaded', 'scheduling', 'scheduled')),
            updated_at TEXT NOT NULL,
            PRIMARY KEY (athlete_id, week, session_id)
        );
        """,
    )


@migration
def m008_calendar_feeds_and_strava_events(db: sqlite3.Connection) -> None:
    _script(
        db,
        """
        -- One calendar subscription token per athlete (planner/services/calendar.py). Rotating
        -- replaces the row, which revokes the old address. Looked up by the token's SHA-256 so
        -- a request never compares the secret itself.
        CREATE TABLE calendar_feeds (
            athlete_id TEXT PRIMARY KEY REFERENCES athletes(id) ON DELETE CASCADE,
            token TEXT NOT NULL,
            token_sha256 TEXT NOT NULL UNIQUE,
            created_at TEXT NOT NULL
        );
        -- Strava webhook events (planner/services/strava_webhook.py): the key is the event's
        -- identity, so the same event delivered twice is stored, and acted on, once.
        CREATE TABLE strava_events (
            event_key TEXT PRIMARY KEY,
            subscription_id INTEGER,
            owner_id INTEGER NOT NULL,
            object_type TEXT NOT NULL,
            object_id INTEGER NOT NULL,
            aspect_type TEXT NOT NULL,
            event_time INTEGER NOT NULL,
            updates TEXT NOT NULL DEFAULT '{}',
            athlete_id TEXT,
            state TEXT NOT NULL CHECK (state IN ('queued', 'running', 'done', 'ignored', 'failed')),
            outcome TEXT,
            received_at TEXT NOT NULL,
            finished_at TEXT
        );
        CREATE INDEX strava_events_state ON strava_events (state, received_at);
        -- The last thing that went wrong for an athlete, per kind of work (sync, plan, send,
        -- push), shown on the coach's roster; a later success of the same kind clears it.
        CREATE TABLE athlete_errors (
            athlete_id TEXT NOT NULL,
            kind TEXT NOT NULL,
            message TEXT NOT NULL,
            at TEXT NOT NULL,
            PRIMARY KEY (athlete_id, kind)
        );
        """,
    )


@migration
def m009_one_sync_cursor(db: sqlite3.Connection) -> None:
    """The Strava and Garmin syncs became one service with one cursor shape (issue 16):
    ``sync.<connector>.<athlete>`` = ``{"through": <ISO UTC instant>}``, every activity that
    started up to that instant being stored or known. Old cursors are converted, so an
    upgrade continues where the last sync stopped instead of listing a year again."""
    rows = db.execute(
        "SELECT key, value FROM state WHERE key LIKE 'strava:%:after' OR key LIKE 'garmin.sync.%'"
    ).fetchall()
    for key, raw in rows:
        value = json.loads(raw)
        if key.startswith("strava:"):
            # Epoch seconds of the newest activity done, as is.
            athlete = key[len("strava:") : -len(":after")]
            through = datetime.fromtimestamp(float(value), UTC)
            new_key = f"sync.strava.{athlete}"
        else:
            # The local *date* of the newest activity done: activities later that day may not
            # be, and a local date is up to a day from its UTC one. A day earlier is safe
            # (activities listed again are recognised by their id).
            athlete = key[len("garmin.sync.") :]
            day = datetime.fromisoformat(value["date"]).replace(tzinfo=UTC)
            through = day - timedelta(days=1)
            new_key = f"sync.garmin.{athlete}"
        db.execute(
            "INSERT OR REPLACE INTO state (key, value) VALUES (?, ?)",
            (new_key, json.dumps({"through": through.isoformat()}, sort_keys=True)),
        )
        db.execute("DELETE FROM state WHERE key = ?", (key,))


def _script(db: sqlite3.Connection, sql: str) -> None:
    # executescript() would COMMIT first; running statements one by one keeps a migration and
    # its record in the _migrations table in the same transaction.
    body = "\n".join(line for line in sql.splitlines() if not line.strip().startswith("--"))
    for statement in body.split(";"):
        if statement.strip():
            db.execute(statement)


def apply_migrations(db: sqlite3.Connection) -> list[str]:
    """Apply every migration not yet recorded; return the names applied now."""
    db.execute("CREATE TABLE IF NOT EXISTS _migrations (name TEXT PRIMARY KEY, applied_at TEXT)")
    done = {row[0] for row in db.execute("SELECT name FROM _migrations")}
    applied = []
    for name, fn in MIGRATIONS:
        if name in done:
            continue
        with db:
            fn(db)
            db.execute(
                "INSERT INTO _migrations (name, applied_at) VALUES (?, ?)",
                (name, datetime.now(UTC).isoformat()),
            )
        applied.append(name)
    return applied
