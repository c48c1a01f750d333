"""``send-weekly``: e-mail each athlete their week's plan at their local send time, exactly once.

Safe to run as often as you like (cron or a systemd timer, hourly): an athlete is *due* for
plan week W from their preferred send day and time until W ends, in their own time zone, and
the outbox (planner/store/outbox.py) remembers what went out. So an hourly run sends each
plan once, at the first run after the send time, and catches up after downtime within the week.

The send moment of week W: on ``mon`` it is the Monday that starts W; on any other day it is
that day of the week *before* W, so a plan arrives before its week starts (``sun 18:00`` gets
next week's plan on Sunday evening).
"""

from __future__ import annotations

import fcntl
import logging
import re
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from datetime import time as clock
from email.headerregistry import Address
from email.message import EmailMessage
from pathlib import Path
from typing import Any, Literal
from zoneinfo import ZoneInfo

from planner.delivery.exactly_once import DEFAULT_BACKOFF_S, Progress, send_exactly_once
from planner.delivery.mail import RenderedMail, build_message, content_hash, new_message_id
from planner.delivery.mailconfig import SmtpSettings, load_smtp_settings
from planner.errors import AuthError, ConfigError, DeliveryError, StridewiseError
from planner.plan import IsoWeek
from planner.records import WEEKDAYS, Athlete
from planner.store.database import Store
from planner.store.outbox import Outbox, OutboxEntry, State, next_action

log = logging.getLogger(__name__)

Status = Literal[
    "sent", "skipped_already_sent", "skipped_not_due", "queued_retry", "failed", "dry_run"
]
#: Statuses that make the run finish with "some items failed" (exit code 3).
PROBLEMS: frozenset[Status] = frozenset({"failed", "queued_retry"})


@dataclass(frozen=True, slots=True)
class AthleteResult:
    """What one run did for one athlete and week."""

    athlete_id: str
    status: Status
    reason: str
    week: str | None = None
    recipient: str | None = None
    message_id: str | None = None
    attempts: int = 0
    outbox_state: str | None = None
    eml_path: Path | None = None

    def as_json(self) -> dict[str, Any]:
        return {
            "athlete_id": self.athlete_id,
            "athlete": self.athlete_id,  # the old key, kept for scripts (CHANGELOG)
            "status": self.status,
            "reason": self.reason,
            "week": self.week,
            "recipient": self.recipient,
            "message_id": self.message_id,
            "attempts": self.attempts,
            "outbox_state": self.outbox_state,
            "eml": None if self.eml_path is None else str(self.eml_path),
        }


@dataclass(slots=True)
class SendSummary:
    """Every athlete's result, in roster order."""

    now_utc: datetime
    dry_run: bool
    results: list[AthleteResult] = field(default_factory=list)

    @property
    def has_problems(self) -> bool:
        return any(r.status in PROBLEMS for r in self.results)

    def counts(self) -> dict[str, int]:
        out: dict[str, int] = {}
        for result in self.results:
            out[result.status] = out.get(result.status, 0) + 1
        return out

    def as_json(self) -> dict[str, Any]:
        return {
            "now_utc": self.now_utc.isoformat(timespec="seconds"),
            "dry_run": self.dry_run,
            "counts": self.counts(),
            "results": [r.as_json() for r in self.results],
        }


# -- weeks and send times -------------------------------------------------------------------


def send_moment(athlete: Athlete, week: IsoWeek) -> datetime:
    """When ``athlete`` should get the plan of ``week``, in their time zone (see module doc)."""
    day_index = WEEKDAYS.index(athlete.send_day)
    local_day = week.monday() + timedelta(days=day_index - 7 if day_index else 0)
    hour, minute = (int(part) for part in athlete.send_time.split(":"))
    return datetime.combine(local_day, clock(hour, minute), tzinfo=ZoneInfo(athlete.timezone))


def due_week(athlete: Athlete, now: datetime) -> tuple[IsoWeek | None, datetime]:
    """The plan week due at ``now`` (aware), or None, and the next send moment after ``now``."""
    this_week = IsoWeek.containing(now.astimezone(ZoneInfo(athlete.timezone)).date())
    upcoming = send_moment(athlete, this_week.shift(1))
    if upcoming <= now:
        return this_week.shift(1), send_moment(athlete, this_week.shift(2))
    if send_moment(athlete, this_week) <= now:
        return this_week, upcoming
    return None, send_moment(athlete, this_week)


def subject_for(athlete: Athlete, week: IsoWeek) -> str:
    monday, sunday = week.monday(), week.day("sun")
    first = f"{monday.day} {monday:%b}" + (f" {monday.year}" if monday.year != sunday.year else "")
    span = f"{first} – {sunday.day} {sunday:%b} {sunday.year}"
    who = f"{athlete.name.split()[0]}, your" if athlete.name else "Your"
    return f"{who} stridewise plan for week {week.week} ({span})"


# -- composing the plan ---------------------------------------------------------------------


def compose(store: Store, athlete: Athlete, week: IsoWeek, *, persist: bool = True) -> RenderedMail:
    """Re-analyse with the data imported so far, build ``week``'s plan and render it.

    ``persist=False`` (a dry run) keeps nothing: the plan history and caches stay as they were.
    """
    from planner.delivery.charts import limiter_chart_png
    from planner.delivery.progresscharts import trend_png
    from planner.delivery.render import render_all
    from planner.services.weekly import build_week

    plan, analysis = build_week(store, athlete.id, week, persist=persist)
    return render_all(
        plan, analysis, athlete, limiter_chart_png(analysis), trend_png=trend_png(plan)
    )


# -- the run --------------------------------------------------------------------------------


@contextmanager
def _run_lock(store: Store) -> Iterator[None]:
    """One sending run per database: an hourly cron job that overlaps a slow run backs off."""
    path = store.path.with_name(store.path.name + ".send-weekly.lock")
    with path.open("a") as fh:
        try:
            fcntl.flock(fh, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise DeliveryError(
                f"another send-weekly is still running (lock {path}); this run sent nothing"
            ) from None
        try:
            yield
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)


def _file_stem(athlete_id: str, week: str) -> str:
    return re.sub(r"[^A-Za-z0-9._-]", "_", f"{athlete_id}-{week}")


def _write_eml(message: EmailMessage, out_dir: Path, athlete_id: str, week: str) -> Path:
    out_dir.mkdir(parents=True, exist_ok=True)
    path = out_dir / f"{_file_stem(athlete_id, week)}.eml"
    path.write_bytes(message.as_bytes())
    return path


@dataclass(slots=True)
class _Run:
    store: Store
    outbox: Outbox
    settings: SmtpSettings
    now: datetime
    dry_run: bool
    resend: bool
    out_dir: Path | None
    backoff_s: Sequence[float]
    sleep: Callable[[float], None]
    progress: Progress | None
    setup_error: str | None = None

    def athlete(self, athlete: Athlete, week: IsoWeek | None) -> list[AthleteResult]:
        if not athlete.email:
            return [
                _failed(athlete, week, f"no e-mail address ('athlete edit {athlete.id} --email')")
            ]
        results: list[AthleteResult] = []
        if week is None:
            week, upcoming = due_week(athlete, self.now)
            if not self.dry_run:
                current = week or IsoWeek.containing(upcoming.date())
                results += self._expire(athlete, before_week=str(current))
            if week is None:
                when = f"{upcoming:%a %Y-%m-%d %H:%M} {athlete.timezone}"
                return [*results, _result(athlete, "skipped_not_due", f"next send {when}", None)]
        results.append(self._week(athlete, week))
        return results

    def _expire(self, athlete: Athlete, before_week: str) -> list[AthleteResult]:
        """Give up on messages still queued when their week is over, and say so once."""
        out = []
        for entry in self.outbox.stale_queued(athlete.id, before_week):
            reason = (
                f"given up: week {entry.week} is past (now {before_week}) and it never went out;"
                f" last error: {entry.last_error}"
            )
            self.outbox.mark_failed(entry, reason)
            out.append(_from_entry(athlete, "failed", reason, self.outbox.get(entry.id)))
        return out

    def _week(self, athlete: Athlete, week: IsoWeek) -> AthleteResult:
        assert athlete.email is not None
        entry = self.outbox.latest(athlete.id, str(week))
        action = next_action(entry, recipient=athlete.email, resend=self.resend)
        if entry is not None and action != "send":
            return _skipped(athlete, entry, action)
        if self.setup_error is not None:
            return _failed(athlete, week, f"not attempted: {self.setup_error}")
        try:
            rendered = compose(self.store, athlete, week, persist=not self.dry_run)
        except StridewiseError as exc:
            return _failed(athlete, week, f"could not build the plan: {exc}")
        except Exception as exc:
            # A bug met in one athlete's data must not cost everyone else their mail; the
            # traceback goes to the log (stderr) so it can be reported.
            log.exception("building %s's plan for %s failed", athlete.id, week)
            return _failed(athlete, week, f"internal error building the plan: {exc!r}")
        digest = content_hash(rendered)
        reuse = entry is not None and entry.state is State.QUEUED
        message_id = entry.message_id if reuse and entry else new_message_id(self.settings.sender)
        message = build_message(
            rendered,
            recipient=Address(display_name=athlete.name or "", addr_spec=athlete.email),
            settings=self.settings,
            subject=subject_for(athlete, week),
            message_id=message_id,
            date=self.now,
            ics_filename=f"plan-{week}.ics",
        )
        eml = None
        if self.out_dir is not None:
            eml = _write_eml(message, self.out_dir, athlete.id, str(week))
        if self.dry_run:
            return _result(
                athlete, "dry_run", "written, not sent", week, message_id=message_id, eml=eml
            )
        if reuse and entry is not None:
            entry = self.outbox.requeue(entry, digest, athlete.email)
        else:
            entry = self.outbox.enqueue(athlete.id, str(week), digest, message_id, athlete.email)
        try:
            final = send_exactly_once(
                self.outbox,
                entry,
                message,
                self.settings,
                backoff_s=self.backoff_s,
                sleep=self.sleep,
                progress=self.progress,
            )
        except (AuthError, ConfigError) as exc:
            # Every later message would meet the same wall (and repeated bad logins can lock
            # the account): stop sending, keep the rows queued for the run after the fix.
            self.setup_error = str(exc)
            return _from_entry(athlete, "failed", str(exc), self.outbox.get(entry.id), eml)
        return _delivered(athlete, final, eml)


def _result(
    athlete: Athlete,
    status: Status,
    reason: str,
    week: IsoWeek | None,
    *,
    message_id: str | None = None,
    eml: Path | None = None,
) -> AthleteResult:
    return AthleteResult(
        athlete.id,
        status,
        reason,
        None if week is None else str(week),
        athlete.email,
        message_id,
        eml_path=eml,
    )


def _failed(athlete: Athlete, week: IsoWeek | None, reason: str) -> AthleteResult:
    return _result(athlete, "failed", reason, week)


def _from_entry(
    athlete: Athlete, status: Status, reason: str, entry: OutboxEntry, eml: Path | None = None
) -> AthleteResult:
    return AthleteResult(
        athlete.id,
        status,
        reason,
        entry.week,
        entry.recipient,
        entry.message_id,
        entry.attempts,
        entry.state.value,
        eml,
    )


def _skipped(athlete: Athlete, entry: OutboxEntry, action: str) -> AthleteResult:
    if action == "skip_sent":
        reason = f"sent {entry.sent_at} to {entry.recipient}"
        return _from_entry(athlete, "skipped_already_sent", reason, entry)
    if action == "skip_uncertain":
        reason = (
            f"possibly delivered: a run stopped after handing it to the server ({entry.updated_at},"
            f" {entry.last_error or 'no answer recorded'}); ask {entry.recipient}, and use"
            " --resend to send it again"
        )
        return _from_entry(athlete, "skipped_already_sent", reason, entry)
    reason = (
        f"refused earlier: {entry.last_error}; fix the address ('athlete edit') and the next run"
        " tries again, or use --resend"
    )
    return _from_entry(athlete, "failed", reason, entry)


def _delivered(athlete: Athlete, entry: OutboxEntry, eml: Path | None) -> AthleteResult:
    if entry.state is State.SENT:
        return _from_entry(athlete, "sent", entry.server_reply or "accepted", entry, eml)
    if entry.state is State.QUEUED:
        reason = f"not delivered yet, the next run retries: {entry.last_error}"
        return _from_entry(athlete, "queued_retry", reason, entry, eml)
    if entry.state is State.SENDING:
        reason = (
            f"possibly delivered ({entry.last_error}); not resent automatically, use --resend"
            " once you know it did not arrive"
        )
        return _from_entry(athlete, "failed", reason, entry, eml)
    return _from_entry(athlete, "failed", str(entry.last_error), entry, eml)


def send_weekly(
    store: Store,
    *,
    athlete_ids: Sequence[str] = (),
    week: IsoWeek | None = None,
    dry_run: bool = False,
    resend: bool = False,
    out_dir: Path | None = None,
    now: datetime | None = None,
    settings: SmtpSettings | None = None,
    backoff_s: Sequence[float] = DEFAULT_BACKOFF_S,
    sleep: Callable[[float], None] = time.sleep,
    progress: Progress | None = None,
) -> SendSummary:
    """Send (or with ``dry_run`` write as ``.eml`` into ``out_dir``) each due athlete's plan.

    Without ``athlete_ids`` every athlete with an e-mail address is considered; without
    ``week`` each gets the week due at ``now`` (aware; default: the current time) in their
    time zone, while an explicit ``week`` is sent now. ``out_dir`` also keeps a copy of each
    message a real run sends.
    """
    now = now or datetime.now(UTC)
    if now.tzinfo is None:
        raise ValueError("now must be timezone-aware")
    if dry_run and out_dir is None:
        raise ConfigError("a dry run needs a folder for the .eml files")
    if athlete_ids:
        athletes = [store.get_athlete(a) for a in dict.fromkeys(athlete_ids)]
    else:
        athletes = [a for a in store.list_athletes() if a.email]
    run = _Run(
        store=store,
        outbox=Outbox(store),
        settings=settings or load_smtp_settings(sending=not dry_run),
        now=now,
        dry_run=dry_run,
        resend=resend,
        out_dir=out_dir,
        backoff_s=backoff_s,
        sleep=sleep,
        progress=progress,
    )
    summary = SendSummary(now_utc=now.astimezone(UTC), dry_run=dry_run)
    with _run_lock(store):
        for athlete in athletes:
            summary.results.extend(run.athlete(athlete, week))
    return summary
