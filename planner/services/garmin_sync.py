"""Incremental, resumable Garmin Connect sync: list by date, import each run's original FIT.

For every listed activity, oldest first:

* a (source, ref) the store already knows is skipped without a download;
* a run's ORIGINAL download (a zip holding ``<id>_ACTIVITY.fit``) is unzipped in memory and
  decoded by the FIT importer, so Garmin runs carry full running dynamics and developer
  fields; it is stored as ``Source.GARMIN`` with ``source_ref`` = the Garmin activity id, and
  the store's fingerprint recognises a run already imported from a FIT file, an export or
  Strava (the richer copy wins);
* any other activity is stored as metadata only, from the list entry (no download).

Each activity is stored in its own transaction. The cursor (``store`` state, one per athlete)
holds the local date of the newest activity up to which everything is done; the next sync lists
from that date (inclusive, so same-day activities are seen again and skipped as known).
A per-activity failure is reported and the sync goes on; a transient one (Garmin down after
retries) also holds the cursor there so the next sync tries it again, and several in a row stop
the sync. A 429 stops the sync with one clear message; a refused login raises
:class:`AuthError`. Nothing here logs in.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field, replace
from datetime import UTC, date, datetime, timedelta
from typing import Any, Literal

from connectors.archives import Hints
from connectors.fit import decode_fit
from connectors.garmin import ActivitySummary, GarminConnect, GarminUnavailableError, extract_fit
from planner.errors import (
    AuthError,
    ConfigError,
    FitImportError,
    RateLimitedError,
    StridewiseError,
)
from planner.records import DEFAULT_ATHLETE, Activity, ImportedActivity, Source
from planner.schema import empty_stream
from planner.store.database import Store

#: First sync without ``--since``: this many days back. Our own choice: a season of history
#: for baselines, in a handful of list requests.
DEFAULT_LOOKBACK_DAYS = 365

#: Stop after this many activities in a row failed on transient errors (each already retried):
#: the service is down, and hammering it would only earn a 429. Our own choice.
MAX_CONSECUTIVE_OUTAGES = 3

Progress = Callable[[int, int, str], None]  # (activities done, activities listed, label)
Handled = Literal["imported", "replaced", "duplicate", "non_running"]


def cursor_key(athlete_id: str) -> str:
    return f"garmin.sync.{athlete_id}"


@dataclass
class GarminSyncSummary:
    """What one ``stridewise sync garmin`` did; ``failed`` lists (activity id, reason)."""

    since: str = ""
    listed: int = 0
    imported: list[int] = field(default_factory=list)
    replaced: list[int] = field(default_factory=list)
    duplicates: int = 0
    skipped_non_running: int = 0
    failed: list[tuple[str, str]] = field(default_factory=list)
    unreadable: list[str] = field(default_factory=list)  # list entries we could not use
    rate_limited: bool = False
    interrupted: bool = False
    message: str | None = None  # why the sync stopped early, in one sentence
    cursor: str | None = None

    def as_json(self) -> dict[str, object]:
        return {
            "since": self.since,
            "listed": self.listed,
            "imported": len(self.imported),
            "imported_ids": self.imported,
            "duplicates": self.duplicates,
            "replaced": len(self.replaced),
            "replaced_ids": self.replaced,
            "skipped_non_running": self.skipped_non_running,
            "failed": [{"activity_id": a, "reason": r} for a, r in self.failed],
            "unreadable": self.unreadable,
            "rate_limited": self.rate_limited,
            "interrupted": self.interrupted,
            "message": self.message,
            "cursor": self.cursor,
        }


def sync_garmin(
    store: Store,
    athlete_id: str | None,
    *,
    client: GarminConnect | None = None,
    since: date | None = None,
    today: date | None = None,
    progress: Progress | None = None,
) -> GarminSyncSummary:
    """Fetch new Garmin Connect activities into the store; per-activity failures are collected.

    Raises
    ------
    AuthError
        When there are no stored tokens or Garmin refuses them (log in again).
    ServiceError
        When the activity list itself cannot be fetched.
    """
    athlete_id = athlete_id or DEFAULT_ATHLETE
    known = store.find_athlete(athlete_id)
    if known is not None:  # the roster says where this athlete's data may come from
        known.check_source(Source.GARMIN)
    store.ensure_athlete(athlete_id)
    state = store.get_state(cursor_key(athlete_id)) or {}
    stored_cursor = state.get("date") if isinstance(state, dict) else None
    start = since or _parse_date(stored_cursor)
    if start is None:
        start = (today or datetime.now(UTC).date()) - timedelta(days=DEFAULT_LOOKBACK_DAYS)
    summary = GarminSyncSummary(since=start.isoformat(), cursor=stored_cursor)
    session = client if client is not None else GarminConnect()
    try:
        listing = session.list_activities(start)
    except RateLimitedError as exc:
        summary.rate_limited = True
        summary.message = str(exc)
        return summary
    summary.listed = len(listing.activities)
    summary.unreadable = list(listing.unreadable)

    held = False  # True once an activity failed transiently: the cursor stays before it
    outages = 0
    for done, listed in enumerate(listing.activities, start=1):
        try:
            handled = _sync_one(store, athlete_id, session, listed)
        except RateLimitedError as exc:
            summary.rate_limited = True
            summary.message = str(exc)
            break
        except GarminUnavailableError as exc:
            summary.failed.append((str(listed.activity_id), _short(exc)))
            held = True
            outages += 1
            if outages >= MAX_CONSECUTIVE_OUTAGES:
                summary.message = (
                    f"stopped after {outages} activities in a row failed: {_short(exc)}"
                )
                break
        except KeyboardInterrupt:
            summary.interrupted = True
            break
        except (AuthError, ConfigError):
            raise  # not about this activity: every further request would fail the same way
        except StridewiseError as exc:
            # A file Garmin serves but we cannot read, or a 4xx for this one activity: it will
            # not get better by retrying, so it is reported and the cursor moves on.
            summary.failed.append((str(listed.activity_id), _short(exc)))
            outages = 0
            if not held:
                summary.cursor = _advance(store, athlete_id, summary.cursor, listed)
        else:
            outages = 0
            _count(summary, handled)
            if not held:
                summary.cursor = _advance(store, athlete_id, summary.cursor, listed)
        try:
            if progress is not None:
                progress(done, summary.listed, str(listed.activity_id))
        except KeyboardInterrupt:
            summary.interrupted = True
            break
    return summary


def _sync_one(
    store: Store, athlete_id: str, session: GarminConnect, listed: ActivitySummary
) -> list[tuple[Handled, int]]:
    """Store one listed activity; returns what happened to each stored item."""
    ref = str(listed.activity_id)
    known = store.find_source_ref(athlete_id, Source.GARMIN, ref)
    if known is not None:
        return [("duplicate", known)]
    if not listed.is_running:
        result = store.save_activity(
            athlete_id, ImportedActivity(_metadata_activity(listed), empty_stream())
        )
        return [
            ("duplicate" if result.outcome == "duplicate" else "non_running", result.activity_id)
        ]
    if listed.elapsed_s:
        same = store.find_same_run(athlete_id, "running", listed.start_utc, listed.elapsed_s)
        if same is not None and same.activity.source in (Source.FIT, Source.GARMIN):
            # The device's original file of this run is already stored (a FIT import or an
            # export): Garmin's copy is that same file, so no download is spent on it.
            store.add_alias(athlete_id, Source.GARMIN, ref, same.id)
            return [("duplicate", same.id)]
    fit = extract_fit(session.download_original(listed.activity_id), listed.activity_id)
    display = f"garmin activity {ref}"
    decoded = decode_fit(fit, display, Hints(name=listed.name, sport="running"))
    if not decoded.items:
        raise FitImportError(display, decoded.not_activity or "no activity in the file")
    handled: list[tuple[Handled, int]] = []
    # One transaction for every session of the file: the ref marks the whole activity done.
    with store.transaction():
        for index, item in enumerate(decoded.items):
            activity = _as_garmin(item.activity, listed, ref if index == 0 else f"{ref}#{index}")
            result = store.save_activity(athlete_id, ImportedActivity(activity, item.stream))
            if result.outcome == "duplicate":
                handled.append(("duplicate", result.activity_id))
            elif not activity.is_running:
                handled.append(("non_running", result.activity_id))
            else:
                handled.append((result.outcome, result.activity_id))
    return handled


def _as_garmin(activity: Activity, listed: ActivitySummary, source_ref: str) -> Activity:
    extra: dict[str, Any] = {
        **activity.extra,
        "garmin_activity_id": listed.activity_id,
        "garmin_type": listed.type_key,
    }
    return replace(
        activity,
        source=Source.GARMIN,
        source_ref=source_ref,
        name=activity.name or listed.name,
        extra=extra,
    )


def _metadata_activity(listed: ActivitySummary) -> Activity:
    """A non-running activity from its list entry: counts for training load, not analysed."""
    return Activity(
        source=Source.GARMIN,
        source_ref=str(listed.activity_id),
        sport=listed.sport,
        sub_sport=None,
        start_utc=listed.start_utc,
        elapsed_s=listed.elapsed_s or 0.0,
        moving_s=listed.moving_s,
        distance_m=listed.distance_m,
        name=listed.name,
        extra={"garmin_activity_id": listed.activity_id, "garmin_type": listed.type_key},
    )


def _count(summary: GarminSyncSummary, handled: list[tuple[Handled, int]]) -> None:
    for outcome, activity_id in handled:
        if outcome == "imported":
            summary.imported.append(activity_id)
        elif outcome == "replaced":
            summary.replaced.append(activity_id)
        elif outcome == "duplicate":
            summary.duplicates += 1
        else:
            summary.skipped_non_running += 1


def _advance(
    store: Store, athlete_id: str, cursor: str | None, listed: ActivitySummary
) -> str | None:
    """Move the cursor to this activity's local date; it never moves backwards."""
    if cursor is not None and cursor >= listed.local_date:
        return cursor
    store.set_state(
        cursor_key(athlete_id),
        {"date": listed.local_date, "activity_id": listed.activity_id},
    )
    return listed.local_date


def _parse_date(value: object) -> date | None:
    if not isinstance(value, str):
        return None
    try:
        return date.fromisoformat(value)
    except ValueError:
        return None


def _short(exc: BaseException) -> str:
    return str(exc).split("\n", 1)[0]
