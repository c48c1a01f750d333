"""The one sync service: new activities from any connector into the store, resumably.

Every connector (Strava, Garmin Connect, plugins; :mod:`planner.connector`) only lists and
fetches. This service owns everything else, so all of them behave alike:

* **Where to start.** ``--since`` (a UTC date), else the stored cursor, else
  :data:`DEFAULT_HISTORY_DAYS` back. Activities listed from before the start are dropped.
* **The cursor** (store state ``sync.<connector>.<athlete>``, an ISO UTC instant): every
  activity that started up to it is stored or known. It advances, never backwards, with each
  activity, in the same transaction that stores it, so an interruption (Ctrl-C, a dropped
  network, a rate limit) loses nothing and the next run continues right there. The listing
  starts at the cursor, so the activity at the cursor is listed again and recognised.
* **What costs no request.** An activity already known by its id is a duplicate; a run of which
  a copy at least as rich is stored (:data:`planner.records.SOURCE_RANK`) is recorded as an
  alias of it; a non-running activity is stored as metadata from the listing.
* **Errors** (what a connector raises, see :mod:`planner.connector`): a rate limit or a refused
  authorisation stops the sync with everything so far kept; an outage fails the activity and
  holds the cursor before it (the next run tries it again), and :data:`MAX_CONSECUTIVE_OUTAGES`
  in a row stop the sync; any other error fails only that activity and the sync moves on.
* **Training ban.** A connector whose terms forbid training (``trainable = False``) has each of
  its activities marked, so it is analysed for its owner and never trained on.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from typing import Literal

from planner.connector import Connector, FitDownload, ListedPage, SyncSession
from planner.errors import (
    AuthError,
    ConfigError,
    FitImportError,
    RateLimitedError,
    ServiceUnavailableError,
    StridewiseError,
)
from planner.records import (
    DEFAULT_ATHLETE,
    SOURCE_RANK,
    UNTRAINABLE_KEY,
    Activity,
    ImportedActivity,
)
from planner.schema import empty_stream
from planner.services.registry import load_connector
from planner.store.database import Store

#: First sync without ``--since``: this much history. Our own choice — a year of runs is
#: enough for the per-athlete baselines and costs a few requests to list.
DEFAULT_HISTORY_DAYS = 365

#: Stop after this many activities in a row failed on outages (each already retried by the
#: connector): the service is down, and hammering it would only earn a rate limit. Our choice.
MAX_CONSECUTIVE_OUTAGES = 3

#: ``progress(done, total, activity)`` after each listed activity; ``total`` is None while
#: more pages may follow.
Progress = Callable[[int, int | None, Activity], None]
Outcome = Literal["imported", "replaced", "duplicate", "non_running"]


def cursor_key(connector_name: str, athlete_id: str) -> str:
    return f"sync.{connector_name}.{athlete_id}"


def read_cursor(store: Store, connector_name: str, athlete_id: str) -> datetime | None:
    """The instant up to which this athlete's activities from this connector are all done."""
    value = store.get_state(cursor_key(connector_name, athlete_id))
    through = value.get("through") if isinstance(value, dict) else None
    if not isinstance(through, str):
        return None
    try:
        return datetime.fromisoformat(through)
    except ValueError:
        return None


@dataclass
class SyncSummary:
    """What one ``stridewise sync NAME`` did; ``failed`` lists (the service's id, reason)."""

    connector: str
    ref_key: str
    athlete_id: str
    since: str = ""
    listed: int = 0
    imported: list[int] = field(default_factory=list)
    replaced: list[int] = field(default_factory=list)
    duplicates: int = 0
    skipped_non_running: int = 0
    failed: list[tuple[str, str]] = field(default_factory=list)
    unreadable: list[str] = field(default_factory=list)  # list entries we could not use
    rate_limited: bool = False
    resume_at: datetime | None = None
    interrupted: bool = False
    message: str | None = None  # why the sync stopped early, in one sentence
    error: str | None = None  # a refused authorisation that stopped it (exit 1)
    synced_through: datetime | None = None
    report: dict[str, object] = field(default_factory=dict)  # the connector's own facts
    notes: tuple[str, ...] = ()

    def as_json(self) -> dict[str, object]:
        through = None if self.synced_through is None else self.synced_through.isoformat()
        return {
            "connector": self.connector,
            "athlete_id": self.athlete_id,
            "since": self.since,
            "listed": self.listed,
            "fetched": self.listed,  # the Strava sync's name for it (kept for scripts)
            "imported": len(self.imported),
            "imported_ids": self.imported,
            "replaced": len(self.replaced),
            "replaced_ids": self.replaced,
            "duplicates": self.duplicates,
            "skipped_non_running": self.skipped_non_running,
            "failed": [
                {"ref": ref, self.ref_key: ref, "reason": reason} for ref, reason in self.failed
            ],
            "unreadable": self.unreadable,
            "rate_limited": self.rate_limited,
            "resume_at": None if self.resume_at is None else self.resume_at.isoformat(),
            "interrupted": self.interrupted,
            "message": self.message,
            "stop_reason": self.message,  # the Strava sync's name for it (kept for scripts)
            "error": self.error,
            "synced_through": through,
            "cursor": through,
            **self.report,
        }


def sync_account(
    store: Store,
    connector: Connector | str,
    athlete_id: str | None = None,
    *,
    since: date | datetime | None = None,
    session: SyncSession | None = None,
    progress: Progress | None = None,
    now: datetime | None = None,
) -> SyncSummary:
    """Fetch the athlete's new activities from ``connector`` (an object or its registered name).

    ``session`` replaces the connector's own (tests pass one with fast retries). Raises only
    before anything was listed: not connected (:class:`AuthError`), no application configured
    (:class:`ConfigError`), or a source the athlete's roster entry does not allow.
    """
    if isinstance(connector, str):
        connector = load_connector(connector)
    athlete_id = athlete_id or DEFAULT_ATHLETE
    known = store.find_athlete(athlete_id)
    if known is not None:  # the roster says where this athlete's data may come from
        known.check_source(connector.source)
    if session is None:
        session = connector.open(athlete_id)
    store.ensure_athlete(athlete_id)
    stored = read_cursor(store, connector.name, athlete_id)
    start = _start(since, stored, now)
    summary = SyncSummary(
        connector.name,
        connector.ref_key,
        athlete_id,
        since=start.date().isoformat(),
        synced_through=stored,
    )
    run = _Run(store, connector, athlete_id, session, summary)
    try:
        run.all(session.list_since(start), start, progress)
    except RateLimitedError as exc:
        summary.rate_limited = True
        summary.resume_at = exc.reset_at
        summary.message = str(exc)
    except (AuthError, ConfigError) as exc:
        # Refused tokens mid-sync: every further request would fail the same way.
        summary.error = str(exc)
    except StridewiseError as exc:  # the listing itself failed: nothing to hold on to
        summary.error = str(exc)
    except KeyboardInterrupt:
        summary.interrupted = True
    finally:
        summary.report = dict(session.report())
        summary.notes = tuple(session.notes())
    return summary


def _start(
    since: date | datetime | None, stored: datetime | None, now: datetime | None
) -> datetime:
    if isinstance(since, datetime):
        return since if since.tzinfo is not None else since.replace(tzinfo=UTC)
    if isinstance(since, date):
        return datetime(since.year, since.month, since.day, tzinfo=UTC)
    if stored is not None:
        return stored
    return (now or datetime.now(UTC)) - timedelta(days=DEFAULT_HISTORY_DAYS)


@dataclass
class _Run:
    """One sync in progress: the cursor it may advance and the outages in a row."""

    store: Store
    connector: Connector
    athlete_id: str
    session: SyncSession
    summary: SyncSummary
    held: bool = False  # an activity failed on an outage, or pages came out of order
    outages: int = 0
    newest: datetime | None = None

    def all(self, pages: Iterator[ListedPage], start: datetime, progress: Progress | None) -> None:
        done = 0
        for page in pages:
            self.summary.unreadable.extend(page.unreadable)
            wanted = [a for a in page.activities if a.start_utc >= start]
            self.summary.listed += len(wanted)
            total = self.summary.listed if page.last else None
            for activity in sorted(wanted, key=lambda a: a.start_utc):
                if self.newest is not None and activity.start_utc < self.newest:
                    # Out of order: the cursor could skip an activity, so freeze it; this run
                    # still stores everything it lists.
                    self.held = True
                self.newest = max(self.newest or activity.start_utc, activity.start_utc)
                if not self.one(activity):
                    return
                done += 1
                if progress is not None:
                    progress(done, total, activity)

    def one(self, activity: Activity) -> bool:
        """Handle one listed activity; False when the sync must stop."""
        try:
            outcomes = self._store(activity)
        except ServiceUnavailableError as exc:
            self._failed(activity, exc)
            self.held = True
            self.outages += 1
            if self.outages >= MAX_CONSECUTIVE_OUTAGES:
                self.summary.message = (
                    f"stopped after {self.outages} activities in a row failed: {_short(exc)}"
                )
                return False
            return True
        except (AuthError, ConfigError, RateLimitedError):
            raise  # not about this activity: the sync stops
        except StridewiseError as exc:
            # A 4xx for this one activity or a file we cannot read: retrying will not help,
            # so it is reported and the cursor moves on (``--since`` fetches it again).
            self._failed(activity, exc)
            self.outages = 0
            self._advance(activity)
            return True
        self.outages = 0
        for outcome, activity_id in outcomes:
            self._count(outcome, activity_id)
        return True

    def _store(self, listed: Activity) -> list[tuple[Outcome, int]]:
        store, athlete_id, source = self.store, self.athlete_id, self.connector.source
        known = store.find_source_ref(athlete_id, source, listed.source_ref)
        if known is not None:
            self._advance(listed)
            return [("duplicate", known)]
        if listed.elapsed_s:
            same = store.find_same_run(athlete_id, listed.sport, listed.start_utc, listed.elapsed_s)
            if same is not None and SOURCE_RANK[same.activity.source] >= SOURCE_RANK[source]:
                # A copy at least as rich is stored (a FIT file beats everything): spend no
                # request on this one, remember its id so the next listing knows it.
                with store.transaction():
                    store.add_alias(athlete_id, source, listed.source_ref, same.id)
                    self._advance(listed)
                return [("duplicate", same.id)]
        items = (
            self._fetch(listed)
            if listed.is_running
            else (ImportedActivity(listed, empty_stream()),)
        )
        outcomes: list[tuple[Outcome, int]] = []
        # One transaction for every session of the activity, with the advanced cursor.
        with store.transaction():
            for item in items:
                result = store.save_activity(athlete_id, self._mark(item))
                if result.outcome == "duplicate":
                    outcomes.append(("duplicate", result.activity_id))
                elif not item.activity.is_running:
                    outcomes.append(("non_running", result.activity_id))
                else:
                    outcomes.append((result.outcome, result.activity_id))
            self._advance(listed)
        return outcomes

    def _fetch(self, listed: Activity) -> tuple[ImportedActivity, ...]:
        fetched = self.session.fetch(listed)
        if not isinstance(fetched, FitDownload):
            return fetched
        return _decode(fetched, listed)

    def _mark(self, item: ImportedActivity) -> ImportedActivity:
        if self.connector.trainable or not item.activity.trainable:
            return item  # trainable, or untrainable by its source tag already (Strava)
        extra = {**item.activity.extra, UNTRAINABLE_KEY: True}
        return dataclasses.replace(item, activity=dataclasses.replace(item.activity, extra=extra))

    def _advance(self, listed: Activity) -> None:
        """Move the cursor to this activity's start, unless held; never backwards."""
        through = self.summary.synced_through
        if self.held or (through is not None and through >= listed.start_utc):
            return
        self.store.set_state(
            cursor_key(self.connector.name, self.athlete_id),
            {"through": listed.start_utc.isoformat(), "ref": listed.source_ref},
        )
        self.summary.synced_through = listed.start_utc

    def _failed(self, activity: Activity, exc: BaseException) -> None:
        self.summary.failed.append((activity.source_ref, _short(exc)))

    def _count(self, outcome: Outcome, activity_id: int) -> None:
        if outcome == "imported":
            self.summary.imported.append(activity_id)
        elif outcome == "replaced":
            self.summary.replaced.append(activity_id)
        elif outcome == "duplicate":
            self.summary.duplicates += 1
        else:
            self.summary.skipped_non_running += 1


def _decode(download: FitDownload, listed: Activity) -> tuple[ImportedActivity, ...]:
    """A downloaded FIT file through the FIT importer, each session filed under the listing's
    id (``<id>``, then ``<id>#1``, ...) with the listing's name and extra fields."""
    from connectors.archives import Hints
    from connectors.fit import decode_fit

    decoded = decode_fit(
        download.data, download.display, Hints(name=listed.name, sport=listed.sport)
    )
    if not decoded.activities:
        raise FitImportError(download.display, decoded.not_activity or "no activity in the file")
    items = []
    for index, item in enumerate(decoded.items):
        activity = dataclasses.replace(
            item.activity,
            source=listed.source,
            source_ref=listed.source_ref if index == 0 else f"{listed.source_ref}#{index}",
            name=item.activity.name or listed.name,
            extra={**item.activity.extra, **listed.extra},
        )
        items.append(ImportedActivity(activity, item.stream))
    return tuple(items)


def _short(exc: BaseException) -> str:
    return str(exc).split("\n", 1)[0]
