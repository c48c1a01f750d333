"""Incremental, resumable Strava sync: list new activities, fetch runs' streams, store each.

The cursor ``strava:<athlete>:after`` (store state, epoch seconds) is the start time of the
newest activity such that it and every activity before it are stored or known. Each run lists
activities after the cursor, oldest first, and stores each in its own transaction together
with the advanced cursor, so an interruption (Ctrl-C, dropped network, rate limit) loses
nothing and the next run continues right there. The listing overlaps the cursor by a second;
an activity already known by its Strava id costs no further request and is never duplicated.

When one activity fails, the cursor stops advancing (later activities are still stored), so
the next run lists from the failed one and tries it again.

Strava-sourced activities keep the ``strava`` source tag: they are analysed for their owner
but never used for model training (Strava API terms, domain.md §1).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

from connectors.strava import StravaConnector, StravaUnavailableError
from planner.errors import (
    AuthError,
    NotFoundError,
    RateLimitedError,
    ServiceError,
    StreamValidationError,
)
from planner.records import DEFAULT_ATHLETE, Activity, ImportedActivity, Source
from planner.schema import empty_stream
from planner.store.database import Store

#: First sync without ``--since``: this much history. Our own choice — a year of runs is
#: enough for the per-athlete baselines and takes a few rate-limit windows to fetch.
DEFAULT_HISTORY_DAYS = 365

#: Strava's maximum page size for the activity list (Strava API reference): fewest requests.
PER_PAGE = 200

#: Strava's ``after`` is exclusive; listing from one second earlier re-lists the activity at
#: the cursor, which is recognised by its id and costs nothing more.
_OVERLAP = timedelta(seconds=1)

Progress = Callable[[Activity], None]


def cursor_key(athlete_id: str) -> str:
    return f"strava:{athlete_id}:after"


@dataclass
class SyncSummary:
    """What one ``stridewise sync strava`` did; ``failed`` lists (Strava id, reason)."""

    fetched: int = 0
    imported: list[int] = field(default_factory=list)
    replaced: list[int] = field(default_factory=list)
    duplicates: int = 0
    skipped_non_running: int = 0
    failed: list[tuple[str, str]] = field(default_factory=list)
    rate_limited: bool = False
    resume_at: datetime | None = None
    stop_reason: str | None = None
    error: str | None = None
    requests: int = 0
    synced_through: datetime | None = None
    api_fallback: str | None = None  # the new API base that did not answer (old one used)

    def as_json(self) -> dict[str, object]:
        return {
            "fetched": self.fetched,
            "imported": len(self.imported),
            "imported_ids": self.imported,
            "replaced": len(self.replaced),
            "replaced_ids": self.replaced,
            "duplicates": self.duplicates,
            "skipped_non_running": self.skipped_non_running,
            "failed": [{"strava_id": ref, "reason": reason} for ref, reason in self.failed],
            "rate_limited": self.rate_limited,
            "resume_at": None if self.resume_at is None else self.resume_at.isoformat(),
            "stop_reason": self.stop_reason,
            "error": self.error,
            "requests": self.requests,
            "synced_through": (
                None if self.synced_through is None else self.synced_through.isoformat()
            ),
            "api_fallback": self.api_fallback,
        }


def sync_strava(
    store: Store,
    athlete_id: str | None = None,
    *,
    since: datetime | None = None,
    connector: StravaConnector | None = None,
    progress: Progress | None = None,
    per_page: int = PER_PAGE,
    clock: Callable[[], float] = time.time,
) -> SyncSummary:
    """Fetch the athlete's Strava activities after the cursor (or ``since``) into the store.

    Runs get their streams converted to the canonical frame; other activities are stored as
    metadata only (no stream request). Stops cleanly, keeping everything stored, when Strava's
    rate limit is near (``rate_limited``, ``resume_at``), and on a refused authorisation or an
    outage that retries did not fix (``error``). Raises only before anything was fetched
    (not connected, no application configured).
    """
    athlete_id = athlete_id or DEFAULT_ATHLETE
    known = store.find_athlete(athlete_id)
    if known is not None:  # the roster says where this athlete's data may come from
        known.check_source(Source.STRAVA)
    if connector is None:
        connector = StravaConnector(athlete_id, clock=clock)
    connector.tokens()  # not connected → AuthError before anything else
    store.ensure_athlete(athlete_id)
    key = cursor_key(athlete_id)
    stored = store.get_state(key)
    if since is not None:
        start = since if since.tzinfo is not None else since.replace(tzinfo=UTC)
    elif stored is not None:
        start = datetime.fromtimestamp(float(stored), UTC)
    else:
        start = datetime.fromtimestamp(clock(), UTC) - timedelta(days=DEFAULT_HISTORY_DAYS)
    after = start - _OVERLAP
    summary = SyncSummary(synced_through=None if stored is None else _utc(float(stored)))

    contiguous = True  # every activity so far is stored or known: the cursor may advance
    newest_seen: datetime | None = None
    page = 1
    try:
        while True:
            batch = connector.list_activities(after, page, per_page)
            summary.fetched += len(batch)
            ordered = sorted(batch, key=lambda a: a.start_utc)
            if ordered and newest_seen is not None and ordered[0].start_utc < newest_seen:
                # Pages out of order: the cursor could skip an activity, so freeze it; the
                # rest of this run still stores everything it lists.
                contiguous = False
            for activity in ordered:
                done = _sync_one(store, connector, athlete_id, activity, summary, contiguous)
                contiguous = contiguous and done
                if contiguous:
                    summary.synced_through = activity.start_utc
                newest_seen = max(newest_seen or activity.start_utc, activity.start_utc)
                if progress is not None:
                    progress(activity)
            if len(batch) < per_page:
                break
            page += 1
    except RateLimitedError as exc:
        summary.rate_limited = True
        summary.resume_at = exc.reset_at
        summary.stop_reason = str(exc)
    except (AuthError, ServiceError) as exc:
        # Refused authorisation, an outage retries did not fix, or a listing Strava answered
        # with nonsense: stop, keeping everything stored so far.
        summary.error = str(exc)
    finally:
        summary.requests = connector.requests_sent
        summary.api_fallback = connector.fell_back_from
    return summary


def _sync_one(
    store: Store,
    connector: StravaConnector,
    athlete_id: str,
    activity: Activity,
    summary: SyncSummary,
    advance: bool,
) -> bool:
    """Store one listed activity; False when it failed and must be tried again next run."""
    if store.find_source_ref(athlete_id, Source.STRAVA, activity.source_ref) is not None:
        summary.duplicates += 1
        if advance:
            _advance(store, athlete_id, activity)
        return True
    same = store.find_same_run(athlete_id, activity.sport, activity.start_utc, activity.elapsed_s)
    if same is not None and same.activity.source is not Source.STRAVA:
        # A FIT or Garmin copy of this run is stored and always richer than Strava's streams
        # (no running dynamics, lowest source rank): spend no request on it.
        with store.transaction():
            store.add_alias(athlete_id, Source.STRAVA, activity.source_ref, same.id)
            if advance:
                _advance(store, athlete_id, activity)
        summary.duplicates += 1
        return True
    if activity.is_running:
        try:
            item = connector.fetch_run(activity)
        except StravaUnavailableError:
            raise  # the whole sync stops: the next activity would fail the same way
        except (StreamValidationError, NotFoundError, ServiceError) as exc:
            summary.failed.append((activity.source_ref, str(exc)))
            return False
    else:
        item = ImportedActivity(activity, empty_stream())  # metadata only: no stream request
    with store.transaction():
        result = store.save_activity(athlete_id, item)
        if advance:
            _advance(store, athlete_id, activity)
    if result.outcome == "duplicate":
        summary.duplicates += 1
    elif not activity.is_running:
        summary.skipped_non_running += 1
    elif result.outcome == "replaced":
        summary.replaced.append(result.activity_id)
    else:
        summary.imported.append(result.activity_id)
    return True


def _advance(store: Store, athlete_id: str, activity: Activity) -> None:
    store.set_state(cursor_key(athlete_id), int(activity.start_utc.timestamp()))


def _utc(ts: float) -> datetime:
    return datetime.fromtimestamp(ts, UTC)
