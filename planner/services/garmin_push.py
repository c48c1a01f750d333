"""Put a week's plan on the athlete's Garmin Connect calendar, exactly once.

``stridewise garmin push-plan`` and ``send-weekly --garmin`` call :func:`push_plan`. For each
session of the week's plan (built as ``stridewise plan`` builds it, and kept in the plan
history) there is one Garmin workout, scheduled on the session's day:

* a session not pushed yet is uploaded, then scheduled;
* a session whose workout is unchanged is left alone, so re-running changes nothing;
* a revised session is updated in place (its calendar entry stays), and moved when its day
  changed; a session the revised plan dropped is taken off the calendar and deleted;
* only workouts recorded in ``garmin_workouts`` (planner/store/garmin_workouts.py) are ever
  changed or deleted: nothing stridewise did not create is touched.

Each request is recorded around it in its own transaction. Creating a workout or a calendar
entry is not idempotent, so the row says ``uploading`` / ``scheduling`` while the request is
out; when a push is interrupted there (a dropped connection, Ctrl-C), the next run first looks
on Garmin Connect for what the lost answer would have named, and only creates it if it is not
there. A 429 stops the push with one message (wait, do not retry in a loop); a refused login
asks for ``stridewise garmin login``; nothing here logs in.

``dry_run`` runs the same steps on a scratch copy of the database with a client that sends
nothing and records each request, so the real database is left untouched byte for byte.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, date, datetime
from typing import Any, Literal, Protocol

from connectors.garmin_workouts import SessionWorkout, plan_workouts
from planner.errors import AuthError, ConfigError, RateLimitedError, StridewiseError
from planner.plan import IsoWeek
from planner.records import DEFAULT_ATHLETE
from planner.store.database import Store
from planner.store.garmin_workouts import (
    PushedWorkout,
    PushState,
    forget_pushed,
    pushed_week,
    save_pushed,
)
from planner.store.scratch import scratch_copy

#: The roster preference that opts an athlete in (``athlete add/edit --garmin-calendar``).
GARMIN_CALENDAR = "garmin_calendar"

Action = Literal["created", "updated", "moved", "resumed", "unchanged", "removed"]


class GarminCalendar(Protocol):
    """What the push needs from Garmin Connect (``connectors.garmin.GarminConnect``)."""

    def create_workout(self, body: dict[str, Any]) -> int: ...
    def update_workout(self, workout_id: int, body: dict[str, Any]) -> bool: ...
    def delete_workout(self, workout_id: int) -> bool: ...
    def schedule_workout(self, workout_id: int, day: date) -> int: ...
    def unschedule_workout(self, schedule_id: int) -> bool: ...
    def find_workout(self, name: str, marker: str) -> int | None: ...
    def find_schedule(self, workout_id: int, day: date) -> int | None: ...


@dataclass(slots=True)
class SessionResult:
    """What happened to one session's workout (``action`` is the last thing done)."""

    session_id: str
    day: str
    name: str
    action: Action = "unchanged"
    workout_id: int | None = None
    schedule_id: int | None = None

    def as_json(self) -> dict[str, Any]:
        return {
            "session": self.session_id,
            "date": self.day,
            "name": self.name,
            "action": self.action,
            "workout_id": _shown_id(self.workout_id),
            "schedule_id": _shown_id(self.schedule_id),
        }


@dataclass(slots=True)
class PushSummary:
    """One athlete's week: per-session results, request counts, and why it stopped, if so."""

    athlete_id: str
    week: str
    revision: int | None = None
    dry_run: bool = False
    sessions: list[SessionResult] = field(default_factory=list)
    counts: dict[str, int] = field(default_factory=dict)
    requests: list[dict[str, Any]] = field(default_factory=list)  # dry run: what would be sent
    rate_limited: bool = False
    message: str | None = None  # why the push stopped before the end

    @property
    def complete(self) -> bool:
        return self.message is None

    def count(self, what: str) -> None:
        self.counts[what] = self.counts.get(what, 0) + 1

    def as_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "athlete": self.athlete_id,
            "week": self.week,
            "revision": self.revision,
            "dry_run": self.dry_run,
            "complete": self.complete,
            "rate_limited": self.rate_limited,
            "message": self.message,
            "sessions": [s.as_json() for s in self.sessions],
            "requests": {
                name: self.counts.get(name, 0)
                for name in ("uploaded", "updated", "scheduled", "unscheduled", "deleted")
            },
        }
        if self.dry_run:
            out["would_send"] = self.requests
        return out


def _shown_id(value: int | None) -> int | None:
    # A dry run's stand-in ids are negative: Garmin has not given one.
    return value if value is not None and value > 0 else None


class _Recorder:
    """A dry run's Garmin: sends nothing, records each request, hands out stand-in ids."""

    def __init__(self, summary: PushSummary) -> None:
        self.summary = summary
        self.last_id = 0

    def _new_id(self) -> int:
        self.last_id -= 1
        return self.last_id

    def _record(self, call: str, **fields: Any) -> None:
        shown = {k: _shown_id(v) if k.endswith("_id") else v for k, v in fields.items()}
        self.summary.requests.append({"call": call, **shown})

    def create_workout(self, body: dict[str, Any]) -> int:
        self._record("upload_workout", json=body)
        return self._new_id()

    def update_workout(self, workout_id: int, body: dict[str, Any]) -> bool:
        self._record("update_workout", workout_id=workout_id, json=body)
        return True

    def delete_workout(self, workout_id: int) -> bool:
        self._record("delete_workout", workout_id=workout_id)
        return True

    def schedule_workout(self, workout_id: int, day: date) -> int:
        self._record("schedule_workout", workout_id=workout_id, date=day.isoformat())
        return self._new_id()

    def unschedule_workout(self, schedule_id: int) -> bool:
        self._record("unschedule_workout", schedule_id=schedule_id)
        return True

    def find_workout(self, name: str, marker: str) -> int | None:
        # Offline, nothing can be found: the dry run shows the upload a real run would make
        # if the interrupted one never reached Garmin.
        self._record("get_workouts", looking_for=name)
        return None

    def find_schedule(self, workout_id: int, day: date) -> int | None:
        self._record("get_scheduled_workouts", workout_id=workout_id, date=day.isoformat())
        return None


@dataclass(slots=True)
class _Push:
    store: Store
    garmin: GarminCalendar
    summary: PushSummary
    revision: int

    def session(self, want: SessionWorkout, have: PushedWorkout | None) -> SessionResult:
        result = SessionResult(want.session_id, want.day.isoformat(), want.name)
        self.summary.sessions.append(result)
        row = have
        if row is None:
            row = self._upload(self._fresh(want), want, result)
        elif row.state == "uploading":
            # The last upload's answer was lost: it may exist on Garmin under our marker.
            found = self.garmin.find_workout(row.name, row.marker)
            if found is None:
                row = self._upload(row, want, result)
            else:
                row = save_pushed(self.store, replace(row, workout_id=found, state="uploaded"))
                result.action = "resumed"
        assert row.workout_id is not None
        if row.content_hash != want.content_hash:
            if self.garmin.update_workout(row.workout_id, want.body):
                self.summary.count("updated")
                row = save_pushed(
                    self.store, replace(row, content_hash=want.content_hash, name=want.name)
                )
                result.action = "updated"
            else:
                # Deleted in Garmin Connect since: put the revised session back as new.
                if row.schedule_id is not None:
                    self.garmin.unschedule_workout(row.schedule_id)
                row = self._upload(self._fresh(want), want, result)
        row = self._calendar(row, want, result)
        if (row.plan_revision, row.day) != (self.revision, want.day):
            row = save_pushed(self.store, replace(row, plan_revision=self.revision, day=want.day))
        result.workout_id, result.schedule_id = row.workout_id, row.schedule_id
        return result

    def _fresh(self, want: SessionWorkout) -> PushedWorkout:
        return PushedWorkout(
            athlete_id=self.summary.athlete_id,
            week=self.summary.week,
            session_id=want.session_id,
            plan_revision=self.revision,
            name=want.name,
            marker=want.marker,
            content_hash=want.content_hash,
            day=want.day,
            state="uploading",
        )

    def _upload(
        self, row: PushedWorkout, want: SessionWorkout, result: SessionResult
    ) -> PushedWorkout:
        intent = replace(
            row,
            name=want.name,
            marker=want.marker,
            content_hash=want.content_hash,
            state="uploading",
            workout_id=None,
            schedule_id=None,
            scheduled_day=None,
        )
        intent = save_pushed(self.store, intent)  # before the request: its answer may be lost
        workout_id = self.garmin.create_workout(want.body)
        self.summary.count("uploaded")
        result.action = "created"
        return save_pushed(self.store, replace(intent, workout_id=workout_id, state="uploaded"))

    def _calendar(
        self, row: PushedWorkout, want: SessionWorkout, result: SessionResult
    ) -> PushedWorkout:
        workout_id = row.workout_id
        assert workout_id is not None
        if row.state == "scheduling" and row.scheduled_day is not None:
            found = self.garmin.find_schedule(workout_id, row.scheduled_day)
            state: PushState = "uploaded" if found is None else "scheduled"
            row = save_pushed(self.store, replace(row, schedule_id=found, state=state))
            if result.action == "unchanged":
                result.action = "resumed"
        if row.state == "scheduled" and row.scheduled_day != want.day:
            assert row.schedule_id is not None
            self.garmin.unschedule_workout(row.schedule_id)
            self.summary.count("unscheduled")
            row = save_pushed(
                self.store, replace(row, schedule_id=None, scheduled_day=None, state="uploaded")
            )
            result.action = "moved" if result.action == "unchanged" else result.action
        if row.state in ("uploaded", "scheduling"):
            row = save_pushed(self.store, replace(row, scheduled_day=want.day, state="scheduling"))
            schedule_id = self.garmin.schedule_workout(workout_id, want.day)
            self.summary.count("scheduled")
            row = save_pushed(self.store, replace(row, schedule_id=schedule_id, state="scheduled"))
        return row

    def remove(self, row: PushedWorkout) -> None:
        """Take a session the plan no longer has off the calendar and out of the library."""
        result = SessionResult(row.session_id, row.day.isoformat(), row.name, "removed")
        self.summary.sessions.append(result)
        if row.schedule_id is not None:
            self.garmin.unschedule_workout(row.schedule_id)
            self.summary.count("unscheduled")
            row = save_pushed(
                self.store, replace(row, schedule_id=None, scheduled_day=None, state="uploaded")
            )
        elif row.state == "scheduling" and row.workout_id is not None and row.scheduled_day:
            found = self.garmin.find_schedule(row.workout_id, row.scheduled_day)
            if found is not None:
                self.garmin.unschedule_workout(found)
                self.summary.count("unscheduled")
        workout_id = row.workout_id
        if workout_id is None and row.state == "uploading":
            workout_id = self.garmin.find_workout(row.name, row.marker)
        if workout_id is not None:
            self.garmin.delete_workout(workout_id)
            self.summary.count("deleted")
        forget_pushed(self.store, row)


def _week_of(store: Store, athlete_id: str, week: IsoWeek | None) -> IsoWeek:
    from planner.services.weekly import next_week

    return week or next_week(store.get_athlete(athlete_id))


def _run(
    store: Store,
    athlete_id: str,
    week: IsoWeek,
    garmin: GarminCalendar | None,
    summary: PushSummary,
) -> None:
    from planner.services.weekly import build_week

    if garmin is None:
        from connectors.garmin import GarminConnect

        garmin = GarminConnect()  # reads the stored tokens: not logged in stops here
    plan, _ = build_week(store, athlete_id, week)
    summary.revision = plan.revision
    wanted = plan_workouts(plan)
    have = pushed_week(store, athlete_id, str(week))
    push = _Push(store, garmin, summary, plan.revision)
    try:
        for want in wanted:
            push.session(want, have.pop(want.session_id, None))
        for stale in have.values():
            push.remove(stale)
    except RateLimitedError as exc:
        summary.rate_limited = True
        summary.message = str(exc)
    except (AuthError, ConfigError):
        raise  # every further request would fail the same way: the caller stops
    except StridewiseError as exc:
        # Garmin down after retries, or a request it refused: what was done is recorded,
        # and the same command continues from there.
        summary.message = f"{exc}. What was pushed is kept; run the same command to continue"


def push_plan(
    store: Store,
    athlete_id: str | None,
    week: IsoWeek | None = None,
    *,
    dry_run: bool = False,
    garmin: GarminCalendar | None = None,
) -> PushSummary:
    """Put ``week``'s plan on the athlete's Garmin Connect calendar.

    Defaults: the default athlete, and the week after this one in their timezone.

    Raises
    ------
    AuthError
        Not logged in, or Garmin refuses the stored login (``stridewise garmin login``).
    NotFoundError
        No such athlete.
    """
    athlete_id = athlete_id or DEFAULT_ATHLETE
    target = _week_of(store, athlete_id, week)
    summary = PushSummary(athlete_id=athlete_id, week=str(target), dry_run=dry_run)
    if dry_run:
        with scratch_copy(store) as scratch:
            _run(scratch, athlete_id, target, _Recorder(summary), summary)
    else:
        _run(store, athlete_id, target, garmin, summary)
    return summary


@dataclass(slots=True)
class WeeklyPush:
    """``send-weekly --garmin``: one summary per opted-in athlete, or why it was skipped."""

    pushed: list[PushSummary] = field(default_factory=list)
    skipped: list[tuple[str, str]] = field(default_factory=list)  # (athlete, reason)
    failed: list[tuple[str, str]] = field(default_factory=list)

    @property
    def has_problems(self) -> bool:
        return bool(self.failed) or any(not p.complete for p in self.pushed)

    def as_json(self) -> dict[str, Any]:
        return {
            "pushed": [p.as_json() for p in self.pushed],
            "skipped": [{"athlete": a, "reason": r} for a, r in self.skipped],
            "failed": [{"athlete": a, "reason": r} for a, r in self.failed],
        }


def push_weekly(
    store: Store,
    *,
    athlete_ids: Sequence[str] = (),
    week: IsoWeek | None = None,
    dry_run: bool = False,
    now: datetime | None = None,
    garmin: GarminCalendar | None = None,
) -> WeeklyPush:
    """Push the due week of every athlete who opted in to the Garmin calendar.

    The due week follows ``send-weekly``'s rule (the athlete's send day and time, in their
    time zone); an explicit ``week`` is pushed now. A refused login or a 429 stops the pushes
    of everyone after it: each further request would meet the same answer.
    """
    from planner.services.sendweekly import due_week

    now = now or datetime.now(UTC)
    athletes = (
        [store.get_athlete(a) for a in dict.fromkeys(athlete_ids)]
        if athlete_ids
        else store.list_athletes()
    )
    out = WeeklyPush()
    stop: str | None = None
    for athlete in athletes:
        if not athlete.preferences.get(GARMIN_CALENDAR):
            if athlete_ids:
                out.skipped.append((athlete.id, "not opted in (athlete edit --garmin-calendar)"))
            continue
        if stop is not None:
            out.failed.append((athlete.id, f"not attempted: {stop}"))
            continue
        target = week or due_week(athlete, now)[0]
        if target is None:
            out.skipped.append((athlete.id, "no week due yet"))
            continue
        try:
            summary = push_plan(store, athlete.id, target, dry_run=dry_run, garmin=garmin)
        except (AuthError, ConfigError) as exc:
            stop = str(exc)
            out.failed.append((athlete.id, stop))
            continue
        except StridewiseError as exc:
            out.failed.append((athlete.id, f"could not build the plan: {exc}"))
            continue
        out.pushed.append(summary)
        if summary.rate_limited:
            stop = summary.message
    return out
