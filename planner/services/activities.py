"""Opening the store, listing what it holds, exporting one activity's stream."""

from __future__ import annotations

from pathlib import Path
from typing import Any, TextIO

from planner.store.database import Store

__all__ = ["Store", "activity_records", "export_activity", "open_store"]


def open_store(db: Path | None) -> Store:
    """The SQLite store at ``db`` (default: under ``$STRIDEWISE_HOME``), migrated."""
    return Store(db)


def activity_records(store: Store, athlete_id: str | None) -> list[dict[str, Any]]:
    """Every stored activity (one athlete's when given) as the JSON ``activities`` prints."""
    if athlete_id is not None:
        store.get_athlete(athlete_id)  # an unknown athlete is an error, not an empty list
    return [
        {
            "id": r.id,
            "athlete_id": r.athlete_id,
            "athlete": r.athlete_id,  # the old key, kept for scripts (CHANGELOG)
            "source": r.activity.source.value,
            "sport": r.activity.sport,
            "sub_sport": r.activity.sub_sport,
            "start_utc": r.activity.start_utc.isoformat(),
            "elapsed_s": r.activity.elapsed_s,
            "distance_m": r.activity.distance_m,
            "name": r.activity.name,
            "dynamics": list(r.activity.dynamics),
            "decoder": r.activity.decoder,
            "samples": r.activity.n_samples,
        }
        for r in store.list_activities(athlete_id)
    ]


def export_activity(store: Store, activity_id: int, fmt: str, output: Path | TextIO) -> int:
    """Write one activity's validated per-second stream; return the number of rows."""
    # Imported here: opening the store is on every command's path and must not load pandas.
    from planner.store.export import write_stream

    frame = store.load_stream(activity_id)
    write_stream(frame, fmt, output)
    return len(frame)
