"""The embedded SQLite store: athletes, activities, their streams and sync state.

Each import of one file (or one synced activity) is one transaction, so a crash or Ctrl-C
loses nothing already committed and a re-run continues where it stopped.
"""

from __future__ import annotations

import json
import sqlite3
from dataclasses import dataclass, fields
from datetime import UTC, datetime
from pathlib import Path
from types import TracebackType
from typing import TYPE_CHECKING, Any, Literal

from planner.errors import ConfigError, NotFoundError
from planner.records import (
    DEFAULT_ATHLETE,
    SOURCE_RANK,
    Activity,
    Athlete,
    ImportedActivity,
    Lap,
    PackedActivity,
    Pause,
    Source,
    StoredActivity,
)
from planner.store.config import default_db_path
from planner.store.migrations import apply_migrations

if TYPE_CHECKING:
    import pandas as pd

#: Two copies are the same run when they start within this many seconds of each other...
FINGERPRINT_START_TOLERANCE_S = 120.0
#: ...and their elapsed times differ by less than this share (or 60 s, whichever is larger).
#: Devices and services round and trim differently; these bounds are our own choice, wide enough
#: for a watch file vs. its Strava upload and far too narrow for two distinct runs.
FINGERPRINT_DURATION_TOLERANCE = 0.05

Outcome = Literal["imported", "duplicate", "replaced"]


@dataclass(frozen=True, slots=True)
class SaveResult:
    """What happened to one activity handed to the store."""

    outcome: Outcome
    activity_id: int


def richness(activity: Activity) -> tuple[int, int, int, int]:
    """Order copies of one run: dynamics first, then source rank, then sample count."""
    return (
        int(bool(activity.dynamics)),
        len(activity.dynamics),
        SOURCE_RANK[activity.source],
        activity.n_samples,
    )


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")


def _ts(value: datetime) -> float:
    return value.timestamp()


def _dt(ts: float) -> datetime:
    return datetime.fromtimestamp(ts, UTC)


class Store:
    """SQLite-backed store. Use as a context manager, or call :meth:`close`."""

    def __init__(self, path: Path | str | None = None):
        self.path = Path(path) if path is not None else default_db_path()
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self.db = sqlite3.connect(self.path, isolation_level=None)
        except (OSError, sqlite3.Error) as exc:
            raise ConfigError(f"cannot open database {self.path}: {exc}") from None
        self.db.row_factory = sqlite3.Row
        self.db.execute("PRAGMA journal_mode=WAL")
        self.db.execute("PRAGMA foreign_keys=ON")
        self.db.execute("PRAGMA synchronous=NORMAL")
        self.db.execute("PRAGMA busy_timeout=5000")
        apply_migrations(self.db)

    def __enter__(self) -> Store:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def close(self) -> None:
        self.db.close()

    def transaction(self) -> _Transaction:
        return _Transaction(self.db)

    # -- athletes ---------------------------------------------------------------------------

    def ensure_athlete(self, athlete_id: str | None = None) -> Athlete:
        """The athlete with this id, created on first use (default: the one local athlete)."""
        athlete_id = athlete_id or DEFAULT_ATHLETE
        found = self.find_athlete(athlete_id)
        if found is not None:
            return found
        athlete = Athlete(id=athlete_id)
        self.save_athlete(athlete)
        return athlete

    def find_athlete(self, athlete_id: str) -> Athlete | None:
        row = self.db.execute("SELECT * FROM athletes WHERE id = ?", (athlete_id,)).fetchone()
        return None if row is None else _athlete(row)

    def get_athlete(self, athlete_id: str) -> Athlete:
        athlete = self.find_athlete(athlete_id)
        if athlete is None:
            raise NotFoundError(f"no athlete {athlete_id!r} (see 'stridewise athlete list')")
        return athlete

    def list_athletes(self) -> list[Athlete]:
        return [_athlete(r) for r in self.db.execute("SELECT * FROM athletes ORDER BY id")]

    def save_athlete(self, athlete: Athlete) -> None:
        """Insert or update an athlete."""
        with self.transaction():
            self.db.execute(
                """INSERT INTO athletes (id, name, email, timezone, send_day, send_time,
                       preferences, created_at)
                   VALUES (?, ?, ?, ?, ?, ?, ?, ?)
                   ON CONFLICT(id) DO UPDATE SET name=excluded.name, email=excluded.email,
                       timezone=excluded.timezone, send_day=excluded.send_day,
                       send_time=excluded.send_time, preferences=excluded.preferences""",
                (
                    athlete.id,
                    athlete.name,
                    athlete.email,
                    athlete.timezone,
                    athlete.send_day,
                    athlete.send_time,
                    json.dumps(athlete.preferences, sort_keys=True),
                    _now(),
                ),
            )

    def delete_athlete(self, athlete_id: str) -> None:
        self.get_athlete(athlete_id)
        with self.transaction():
            self.db.execute("DELETE FROM files WHERE athlete_id = ?", (athlete_id,))
            self.db.execute("DELETE FROM activity_aliases WHERE athlete_id = ?", (athlete_id,))
            self.db.execute("DELETE FROM athletes WHERE id = ?", (athlete_id,))

    # -- files ------------------------------------------------------------------------------

    def has_file(self, athlete_id: str, content_hash: str) -> bool:
        row = self.db.execute(
            "SELECT 1 FROM files WHERE athlete_id = ? AND content_hash = ?",
            (athlete_id, content_hash),
        ).fetchone()
        return row is not None

    def save_file_import(
        self,
        athlete_id: str,
        content_hash: str,
        path: str,
        items: list[PackedActivity],
    ) -> list[SaveResult]:
        """Store every activity decoded from one file, and the file's hash, atomically.

        The streams arrive packed (:func:`planner.store.streamcodec.pack`, run by the
        decoder processes), so the process that writes needs neither numpy nor pyarrow.
        """
        with self.transaction():
            self.ensure_athlete(athlete_id)
            results = [self._save(athlete_id, item, content_hash) for item in items]
            self.db.execute(
                "INSERT OR IGNORE INTO files (athlete_id, content_hash, path, imported_at)"
                " VALUES (?, ?, ?, ?)",
                (athlete_id, content_hash, path, _now()),
            )
        return results

    # -- activities -------------------------------------------------------------------------

    def save_activity(self, athlete_id: str, item: ImportedActivity) -> SaveResult:
        """Store one activity (from a sync) in its own transaction."""
        from planner.store.streamcodec import pack  # pyarrow: only when a stream is here

        packed = pack(item)
        with self.transaction():
            self.ensure_athlete(athlete_id)
            return self._save(athlete_id, packed, None)

    def find_source_ref(self, athlete_id: str, source: Source, source_ref: str) -> int | None:
        """The stored activity a (source, ref) was saved as or recognised as, if any."""
        row = self.db.execute(
            "SELECT activity_id FROM activity_aliases"
            " WHERE athlete_id = ? AND source = ? AND source_ref = ?",
            (athlete_id, source.value, source_ref),
        ).fetchone()
        return None if row is None else int(row[0])

    def find_same_run(
        self, athlete_id: str, sport: str, start_utc: datetime, elapsed_s: float
    ) -> StoredActivity | None:
        """The stored activity that is this run by fingerprint (start, duration, sport)."""
        row = self._find_same_run(athlete_id, sport, start_utc, elapsed_s)
        return None if row is None else self.get_activity(int(row["id"]))

    def add_alias(self, athlete_id: str, source: Source, source_ref: str, activity_id: int) -> None:
        """Remember that (source, ref) is a copy of a stored activity, so syncs skip it."""
        with self.transaction():
            self.db.execute(
                "INSERT OR REPLACE INTO activity_aliases"
                " (athlete_id, source, source_ref, activity_id) VALUES (?, ?, ?, ?)",
                (athlete_id, source.value, source_ref, activity_id),
            )

    def _find_same_run(
        self, athlete_id: str, sport: str, start_utc: datetime, elapsed_s: float
    ) -> sqlite3.Row | None:
        start = _ts(start_utc)
        # A walk and a run started together are two activities: the sport must match.
        rows = self.db.execute(
            "SELECT * FROM activities WHERE athlete_id = ? AND sport = ?"
            " AND start_ts BETWEEN ? AND ? ORDER BY ABS(start_ts - ?)",
            (
                athlete_id,
                sport,
                start - FINGERPRINT_START_TOLERANCE_S,
                start + FINGERPRINT_START_TOLERANCE_S,
                start,
            ),
        ).fetchall()
        tolerance = max(60.0, FINGERPRINT_DURATION_TOLERANCE * elapsed_s)
        for row in rows:
            if abs(row["elapsed_s"] - elapsed_s) <= tolerance:
                return row
        return None

    def _save(self, athlete_id: str, item: PackedActivity, content_hash: str | None) -> SaveResult:
        activity = item.activity
        known = self.find_source_ref(athlete_id, activity.source, activity.source_ref)
        if known is not None:
            return SaveResult("duplicate", known)
        same = self._find_same_run(
            athlete_id, activity.sport, activity.start_utc, activity.elapsed_s
        )
        if same is None:
            cursor = self.db.execute(
                f"INSERT INTO activities ({_COLUMNS_SQL}, athlete_id, content_hash, imported_at)"
                f" VALUES ({_PLACEHOLDERS}, ?, ?, ?)",
                (*_activity_values(activity), athlete_id, content_hash, _now()),
            )
            activity_id = int(cursor.lastrowid or 0)
            outcome: Outcome = "imported"
        else:
            activity_id = int(same["id"])
            if richness(activity) <= richness(_activity(same)):
                self._alias(athlete_id, activity, activity_id)
                return SaveResult("duplicate", activity_id)
            # The richer copy wins: it takes over the row (keeping the id users already know)
            # and the stream; the poorer copy stays known as an alias.
            assignments = ", ".join(f"{c} = ?" for c in _COLUMNS)
            self.db.execute(
                f"UPDATE activities SET {assignments}, content_hash = ?, imported_at = ?"
                " WHERE id = ?",
                (*_activity_values(activity), content_hash, _now(), activity_id),
            )
            self.db.execute("DELETE FROM streams WHERE activity_id = ?", (activity_id,))
            outcome = "replaced"
        self._alias(athlete_id, activity, activity_id)
        if item.stream is not None:
            self.db.execute(
                "INSERT INTO streams (activity_id, format, n_rows, data) VALUES (?, ?, ?, ?)",
                (activity_id, item.stream_format, item.n_rows, item.stream),
            )
        return SaveResult(outcome, activity_id)

    def _alias(self, athlete_id: str, activity: Activity, activity_id: int) -> None:
        self.add_alias(athlete_id, activity.source, activity.source_ref, activity_id)

    def list_activities(
        self,
        athlete_id: str | None = None,
        *,
        running_only: bool = False,
        since: datetime | None = None,
        last: int | None = None,
    ) -> list[StoredActivity]:
        """Stored activities, oldest first."""
        where: list[str] = []
        args: list[object] = []
        if athlete_id is not None:
            where.append("athlete_id = ?")
            args.append(athlete_id)
        if running_only:
            where.append("sport = 'running'")
        if since is not None:
            where.append("start_ts >= ?")
            args.append(_ts(since))
        sql = "SELECT a.*, s.format AS stream_format FROM activities a"
        sql += " LEFT JOIN streams s ON s.activity_id = a.id"
        if where:
            sql += " WHERE " + " AND ".join(where)
        sql += " ORDER BY start_ts DESC, a.id DESC"
        if last is not None:
            sql += " LIMIT ?"
            args.append(last)
        rows = self.db.execute(sql, args).fetchall()
        return [_stored(r) for r in reversed(rows)]

    def get_activity(self, activity_id: int) -> StoredActivity:
        row = self.db.execute(
            "SELECT a.*, s.format AS stream_format FROM activities a"
            " LEFT JOIN streams s ON s.activity_id = a.id WHERE a.id = ?",
            (activity_id,),
        ).fetchone()
        if row is None:
            raise NotFoundError(f"no activity {activity_id} (see 'stridewise activities')")
        return _stored(row)

    def load_stream(self, activity_id: int, columns: list[str] | None = None) -> pd.DataFrame:
        """The validated per-second frame of an activity (empty when it has none)."""
        from planner.schema import empty_stream
        from planner.store import streamcodec

        row = self.db.execute(
            "SELECT format, data FROM streams WHERE activity_id = ?", (activity_id,)
        ).fetchone()
        if row is None:
            self.get_activity(activity_id)  # raises NotFoundError for an unknown id
            return empty_stream().to_frame()
        if row["format"] not in streamcodec.READABLE:
            raise ConfigError(f"activity {activity_id}: unknown stream format {row['format']!r}")
        return streamcodec.decode(row["data"], columns)

    # -- key/value state for syncs and caches ----------------------------------------------

    def get_state(self, key: str) -> Any:
        row = self.db.execute("SELECT value FROM state WHERE key = ?", (key,)).fetchone()
        return None if row is None else json.loads(row[0])

    def set_state(self, key: str, value: Any) -> None:
        with self.transaction():
            self.db.execute(
                "INSERT INTO state (key, value) VALUES (?, ?)"
                " ON CONFLICT(key) DO UPDATE SET value = excluded.value",
                (key, json.dumps(value, sort_keys=True)),
            )


class _Transaction:
    """BEGIN/COMMIT that nests: inner blocks join the outer transaction."""

    def __init__(self, db: sqlite3.Connection):
        self.db = db
        self.outer = False

    def __enter__(self) -> sqlite3.Connection:
        if not self.db.in_transaction:
            self.db.execute("BEGIN IMMEDIATE")
            self.outer = True
        return self.db

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if not self.outer:
            return
        if exc_type is None:
            self.db.execute("COMMIT")
        else:
            self.db.execute("ROLLBACK")


_COLUMNS = (
    "source",
    "source_ref",
    "sport",
    "sub_sport",
    "start_ts",
    "elapsed_s",
    "moving_s",
    "distance_m",
    "name",
    "device",
    "sensors",
    "laps",
    "pauses",
    "height_m",
    "weight_kg",
    "sex",
    "decoder",
    "warnings",
    "dynamics",
    "n_samples",
    "extra",
)
_COLUMNS_SQL = ", ".join(_COLUMNS)
_PLACEHOLDERS = ", ".join("?" for _ in _COLUMNS)


def _json_default(value: object) -> str:
    if isinstance(value, datetime):
        return value.isoformat()
    raise TypeError(f"cannot store {type(value).__name__} as JSON")


def _flat(record: Lap | Pause) -> dict[str, object]:
    # dataclasses.asdict deep-copies every value; laps hold only scalars, so a shallow read
    # gives the same dict for a fraction of the cost (a long run has dozens of laps).
    return {f.name: getattr(record, f.name) for f in fields(record)}


def _activity_values(a: Activity) -> tuple[object, ...]:
    def dump(value: object) -> str:
        return json.dumps(value, default=_json_default, sort_keys=True)

    return (
        a.source.value,
        a.source_ref,
        a.sport,
        a.sub_sport,
        _ts(a.start_utc),
        a.elapsed_s,
        a.moving_s,
        a.distance_m,
        a.name,
        a.device,
        dump(list(a.sensors)),
        dump([_flat(lap) for lap in a.laps]),
        dump([_flat(p) for p in a.pauses]),
        a.height_m,
        a.weight_kg,
        a.sex,
        a.decoder,
        dump(list(a.warnings)),
        dump(list(a.dynamics)),
        a.n_samples,
        dump(a.extra),
    )


def _activity(row: sqlite3.Row) -> Activity:
    laps = tuple(
        Lap(
            start_utc=datetime.fromisoformat(lap["start_utc"]),
            elapsed_s=lap["elapsed_s"],
            distance_m=lap["distance_m"],
            intensity=lap["intensity"],
            trigger=lap["trigger"],
        )
        for lap in json.loads(row["laps"])
    )
    pauses = tuple(
        Pause(datetime.fromisoformat(p["start_utc"]), datetime.fromisoformat(p["end_utc"]))
        for p in json.loads(row["pauses"])
    )
    return Activity(
        source=Source(row["source"]),
        source_ref=row["source_ref"],
        sport=row["sport"],
        sub_sport=row["sub_sport"],
        start_utc=_dt(row["start_ts"]),
        elapsed_s=row["elapsed_s"],
        moving_s=row["moving_s"],
        distance_m=row["distance_m"],
        name=row["name"],
        device=row["device"],
        sensors=tuple(json.loads(row["sensors"])),
        laps=laps,
        pauses=pauses,
        height_m=row["height_m"],
        weight_kg=row["weight_kg"],
        sex=row["sex"],
        decoder=row["decoder"],
        warnings=tuple(json.loads(row["warnings"])),
        dynamics=tuple(json.loads(row["dynamics"])),
        n_samples=row["n_samples"],
        extra=json.loads(row["extra"]),
    )


def _stored(row: sqlite3.Row) -> StoredActivity:
    return StoredActivity(
        id=int(row["id"]),
        athlete_id=row["athlete_id"],
        activity=_activity(row),
        content_hash=row["content_hash"],
        stream_format=row["stream_format"],
    )


def _athlete(row: sqlite3.Row) -> Athlete:
    return Athlete(
        id=row["id"],
        name=row["name"],
        email=row["email"],
        timezone=row["timezone"],
        send_day=row["send_day"],
        send_time=row["send_time"],
        preferences=json.loads(row["preferences"]),
    )
