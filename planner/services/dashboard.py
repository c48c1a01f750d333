"""The coach's dashboard: what the roster and athlete pages show, and what their buttons do.

``stridewise serve`` (planner/web) renders these records and calls these actions; nothing here
knows about HTTP. The roster is built from a handful of queries over the whole table set —
never one analysis per athlete — so it stays fast for hundreds of athletes
(bench/roster_speed.py): the top limiter comes from the key metrics stored with the athlete's
newest plan (every plan build stores them), the plan state from the plan history, the outbox
and the Garmin push state.

The actions (rebuild, send, push) are the same services the command line calls, with the same
idempotence: rebuilding an unchanged week keeps its revision, sending a week already sent is
skipped by the outbox, pushing follows the Garmin push service's own state.
"""

from __future__ import annotations

import dataclasses
import functools
import hashlib
import importlib
import json
import threading
from collections import OrderedDict
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from types import ModuleType
from typing import Any, Literal

from planner.errors import ConfigError, NotFoundError, StridewiseError
from planner.plan import IsoWeek, Plan
from planner.records import AREA_LABELS, AREAS, Analysis, Athlete
from planner.store import dashboard as facts
from planner.store.dashboard import AthleteError
from planner.store.database import Store
from planner.store.planstore import get_plan, load_history

#: The top area is named on the roster only when it is more likely than not to limit the
#: runner; below that the roster says "no area stands out". Assumption: 0.5 is the natural
#: cut for a calibrated probability (docs/model.md: the model's probabilities are calibrated).
STANDS_OUT_PROBABILITY = 0.5

NO_AREA = "no area stands out"
NOT_ANALYSED = "no plan yet"
UNKNOWN = "unknown"

#: The progress verdicts (issue 12's ``progress`` service), plus "unknown" without it.
PROGRESS_VERDICTS: tuple[str, ...] = ("improving", "no real change", "worsening")
Progress = str
ErrorKind = Literal["sync", "plan", "send", "push"]
SORTS: tuple[str, ...] = ("name", "limiter", "probability", "last_run", "plan")


# -- the progress verdict: issue 12's service, "unknown" while it is not in this version --------


@functools.cache
def _optional(name: str) -> ModuleType | None:
    """A service module that may not exist in this version; None when it does not (looked
    up once: a failed import is not cached by Python and costs a path search each time)."""
    try:
        return importlib.import_module(f"planner.services.{name}")
    except ModuleNotFoundError as exc:
        if exc.name != f"planner.services.{name}":
            raise  # the module exists but something it imports is missing: a bug, not absence
        return None


def _ask(module_name: str, function: str, *args: Any) -> Any:
    """Call ``function`` of an optional service module; None when either is missing or the
    service cannot tell (its error is the athlete's to see on that service's own page)."""
    module = _optional(module_name)
    fn = None if module is None else getattr(module, function, None)
    if fn is None:
        return None
    try:
        return fn(*args)
    except StridewiseError:
        return None


def progress_verdict(store: Store, athlete_id: str) -> Progress:
    """Improving / no real change / worsening for the athlete's top area, or "unknown"."""
    value = str(_ask("progress", "roster_verdict", store, athlete_id))
    return value if value in PROGRESS_VERDICTS else UNKNOWN


def on_garmin(store: Store, athlete_id: str, week: IsoWeek, revision: int) -> bool:
    """Whether every session of the week's plan at ``revision`` is on the Garmin calendar."""
    pushed = facts.garmin_revisions(store, [str(week)], athlete_id)
    return pushed.get((athlete_id, str(week))) == revision


# -- errors shown on the roster ---------------------------------------------------------------


def record_error(store: Store, athlete_id: str, kind: ErrorKind, message: str) -> None:
    """Show ``message`` as the athlete's last error of this kind on the roster."""
    facts.record_error(store, athlete_id, kind, message)


def clear_error(store: Store, athlete_id: str, kind: ErrorKind) -> None:
    facts.clear_error(store, athlete_id, kind)


# -- the roster -------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Limiter:
    """The top area as the roster shows it."""

    area: str | None  # None: no area stands out, or not analysed yet
    probability: float | None
    text: str
    as_of_week: str | None = None


def top_limiter(probabilities: dict[str, float | None], as_of: str | None = None) -> Limiter:
    """The most likely limiting area if it stands out (:data:`STANDS_OUT_PROBABILITY`)."""
    judged = {a: p for a, p in probabilities.items() if p is not None and a in AREAS}
    if not judged:
        return Limiter(None, None, NOT_ANALYSED if as_of is None else NO_AREA, as_of)
    area = max(judged, key=lambda a: (judged[a], -AREAS.index(a)))
    p = judged[area]
    if p < STANDS_OUT_PROBABILITY:
        return Limiter(None, p, NO_AREA, as_of)
    return Limiter(area, p, f"{AREA_LABELS.get(area, area)} {p:.0%}", as_of)


@dataclass(frozen=True, slots=True)
class RosterRow:
    """One athlete on the roster page."""

    athlete_id: str
    name: str
    last_run_utc: datetime | None
    limiter: Limiter
    progress: Progress
    week: str
    plan_state: str  # "not built", "built", "e-mailed", "on Garmin"
    plan_revision: int | None
    last_error: AthleteError | None


def _plan_state(built: bool, mailed: bool, garmin: bool) -> str:
    if not built:
        return "not built"
    states = ["built"]
    if mailed:
        states.append("e-mailed")
    if garmin:
        states.append("on Garmin")
    return ", ".join(states)


def roster(
    store: Store,
    *,
    sort: str = "name",
    limiter: str | None = None,
    now: datetime | None = None,
) -> list[RosterRow]:
    """Every athlete with last run, top limiter, progress, this week's plan state, last error.

    ``sort`` is one of :data:`SORTS`; ``limiter`` keeps only athletes whose top limiter is that
    area (``none`` keeps those where no area stands out).
    """
    from planner.services.weekly import current_week

    if sort not in SORTS:
        raise ConfigError(f"unknown sort {sort!r}: use {', '.join(SORTS)}")
    if limiter is not None and limiter not in (*AREAS, "none"):
        raise ConfigError(f"unknown limiter {limiter!r}: use {', '.join(AREAS)} or none")
    now = now or datetime.now(UTC)
    athletes = store.list_athletes()
    weeks = {a.id: str(current_week(a, now)) for a in athletes}
    last_runs = facts.last_runs(store)
    newest = facts.newest_plan_metrics(store)
    wanted = sorted(set(weeks.values()))
    built = facts.plan_revisions(store, wanted)
    mailed = facts.mailed_weeks(store, wanted)
    garmin = facts.garmin_revisions(store, wanted)
    errors = facts.athlete_errors(store)
    rows = []
    for athlete in athletes:
        week = weeks[athlete.id]
        plan_week, metrics = newest.get(athlete.id, (None, {}))
        top = top_limiter({a: m.get("probability") for a, m in metrics.items()}, plan_week)
        if limiter is not None and (top.area or "none") != limiter:
            continue
        key = (athlete.id, week)
        revision = built.get(key)
        pushed = revision is not None and garmin.get(key) == revision
        errs = errors.get(athlete.id, [])
        rows.append(
            RosterRow(
                athlete_id=athlete.id,
                name=athlete.name or athlete.id,
                last_run_utc=last_runs.get(athlete.id),
                limiter=top,
                progress=progress_verdict(store, athlete.id),
                week=week,
                plan_state=_plan_state(revision is not None, key in mailed, pushed),
                plan_revision=revision,
                last_error=errs[0] if errs else None,
            )
        )
    return sorted(rows, key=_sort_key(sort))


def _sort_key(sort: str) -> Any:
    far_past = datetime.min.replace(tzinfo=UTC)
    if sort == "limiter":
        return lambda r: (r.limiter.area is None, r.limiter.area or "", r.name.casefold())
    if sort == "probability":
        return lambda r: (-(r.limiter.probability or -1.0), r.name.casefold())
    if sort == "last_run":
        return lambda r: (-(r.last_run_utc or far_past).timestamp(), r.name.casefold())
    if sort == "plan":
        return lambda r: (r.plan_state, r.name.casefold())
    return lambda r: r.name.casefold()


# -- one athlete ------------------------------------------------------------------------------


CHARTS: tuple[str, ...] = ("limiters", "metrics", "progress")
#: Rendered charts kept in memory, newest last: matplotlib takes a second or more per chart
#: on a busy machine, and the same analysis always draws the same picture. Our own size.
_CHART_CACHE_SIZE = 64
_chart_cache: OrderedDict[tuple[str, str, str], bytes] = OrderedDict()
_chart_lock = threading.Lock()


@dataclass(frozen=True, slots=True)
class AthleteView:
    """Everything the athlete page shows (charts are fetched apart: :func:`athlete_chart`)."""

    athlete: Athlete
    week: IsoWeek
    this_week: IsoWeek
    analysis: Analysis
    plan: Plan | None
    plan_html: str | None
    plan_state: str
    progress: Progress
    mailed: bool
    garmin: bool
    calendar: bool
    errors: tuple[AthleteError, ...]
    chart_version: str
    has_progress_chart: bool
    limits: tuple[str, ...] = field(default_factory=tuple)


def _history(store: Store, athlete_id: str) -> list[tuple[str, dict[str, float | None]]]:
    return [
        (str(entry.week), {a: km.probability for a, km in entry.key_metrics.items()})
        for entry in load_history(store, athlete_id)
    ]


def _digest(*parts: Any) -> str:
    return hashlib.sha256(json.dumps(parts, sort_keys=True, default=str).encode()).hexdigest()[:16]


def _analysis_digest(analysis: Analysis) -> str:
    from planner.services.analysis import analysis_json

    doc = analysis_json(analysis)
    doc.pop("generated_utc")
    return _digest(doc)


def athlete_view(
    store: Store, athlete_id: str, week: IsoWeek | None = None, *, now: datetime | None = None
) -> AthleteView:
    """The athlete page for ``week`` (default: the athlete's current week)."""
    from planner.delivery.render import render_plan_fragment
    from planner.services.analysis import analyze_athlete
    from planner.services.calendar import has_calendar
    from planner.services.weekly import current_week

    athlete = store.get_athlete(athlete_id)
    this_week = current_week(athlete, now)
    week = week or this_week
    analysis = analyze_athlete(store, athlete_id)
    plan = get_plan(store, athlete_id, week)
    history = _history(store, athlete_id)
    mailed = bool(facts.mailed_weeks(store, [str(week)], athlete_id))
    garmin = plan is not None and on_garmin(store, athlete_id, week, plan.revision)
    return AthleteView(
        athlete=athlete,
        week=week,
        this_week=this_week,
        analysis=analysis,
        plan=plan,
        plan_html=None if plan is None else render_plan_fragment(plan, analysis, athlete),
        plan_state=_plan_state(plan is not None, mailed, garmin),
        progress=progress_verdict(store, athlete_id),
        mailed=mailed,
        garmin=garmin,
        calendar=has_calendar(store, athlete_id),
        errors=tuple(facts.athlete_errors(store, athlete_id).get(athlete_id, [])),
        chart_version=_digest(_analysis_digest(analysis), history),
        has_progress_chart=len(history) >= 2,
        limits=() if analysis.data is None else analysis.data.limits,
    )


def athlete_chart(store: Store, athlete_id: str, name: str) -> bytes:
    """One chart of the athlete page as PNG: ``limiters``, ``metrics`` (against speed) or
    ``progress`` (each area's probability week by week, from the plan history)."""
    from planner.delivery import charts
    from planner.services.analysis import run_analysis

    if name not in CHARTS:
        raise NotFoundError(f"no chart {name!r}")
    store.get_athlete(athlete_id)
    if name == "progress":
        history = _history(store, athlete_id)
        if len(history) < 2:
            raise NotFoundError("a progress chart needs two weeks of plans")
        key = (athlete_id, name, _digest(history))
        draw: Any = lambda: charts.progress_chart_png(history)  # noqa: E731
    else:
        result = run_analysis(store, athlete_id)
        key = (athlete_id, name, _analysis_digest(result.analysis))
        if name == "limiters":
            draw = lambda: charts.limiter_chart_png(result.analysis)  # noqa: E731
        else:
            draw = lambda: charts.metrics_vs_speed_png(result.features)  # noqa: E731
    with _chart_lock:
        if key in _chart_cache:
            _chart_cache.move_to_end(key)
            return _chart_cache[key]
    png: bytes = draw()
    with _chart_lock:
        _chart_cache[key] = png
        while len(_chart_cache) > _CHART_CACHE_SIZE:
            _chart_cache.popitem(last=False)
    return png


# -- the buttons ------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class ActionResult:
    """What a button did, in one plain sentence."""

    ok: bool
    message: str
    week: str | None = None


def _guarded(store: Store, athlete_id: str, kind: ErrorKind, fn: Any) -> ActionResult:
    try:
        result: ActionResult = fn()
    except StridewiseError as exc:
        record_error(store, athlete_id, kind, str(exc))
        return ActionResult(False, str(exc))
    if result.ok:
        clear_error(store, athlete_id, kind)
    else:
        record_error(store, athlete_id, kind, result.message)
    return result


def rebuild_plan(store: Store, athlete_id: str, week: IsoWeek) -> ActionResult:
    """Analyse and build the week's plan (idempotent: unchanged data keeps the revision)."""
    from planner.services.weekly import build_week

    store.get_athlete(athlete_id)
    before = get_plan(store, athlete_id, week)

    def run() -> ActionResult:
        plan, _ = build_week(store, athlete_id, week)
        if before is None:
            return ActionResult(True, f"Plan for {week} built (revision {plan.revision}).")
        if plan.revision == before.revision:
            return ActionResult(True, f"Plan for {week} is up to date (revision {plan.revision}).")
        return ActionResult(True, f"Plan for {week} rebuilt: revision {plan.revision}.")

    return _guarded(store, athlete_id, "plan", run)


def send_plan(store: Store, athlete_id: str, week: IsoWeek) -> ActionResult:
    """E-mail the week's plan now, exactly once (the outbox skips a week already sent)."""
    from planner.services.sendweekly import PROBLEMS, send_weekly

    store.get_athlete(athlete_id)

    def run() -> ActionResult:
        summary = send_weekly(store, athlete_ids=[athlete_id], week=week)
        result = summary.results[-1]
        ok = result.status not in PROBLEMS
        words = {
            "sent": f"Plan for {week} e-mailed to {result.recipient}.",
            "skipped_already_sent": f"Plan for {week} was already e-mailed: not sent again.",
        }
        return ActionResult(ok, words.get(result.status, f"{result.status}: {result.reason}"))

    return _guarded(store, athlete_id, "send", run)


def push_plan(store: Store, athlete_id: str, week: IsoWeek) -> ActionResult:
    """Put the week's plan on the athlete's Garmin calendar, exactly once (``garmin
    push-plan``: unchanged sessions are left alone, revised ones updated in place)."""
    from planner.services.garmin_push import push_plan as push_to_garmin

    store.get_athlete(athlete_id)

    def run() -> ActionResult:
        summary = push_to_garmin(store, athlete_id, week)
        if not summary.complete:
            return ActionResult(False, summary.message or "the push stopped")
        changed = sum(1 for s in summary.sessions if s.action != "unchanged")
        n = len(summary.sessions)
        what = "nothing changed" if not changed else f"{changed} of {n} sessions sent"
        return ActionResult(True, f"Plan for {week} is on Garmin ({what}).")

    return _guarded(store, athlete_id, "push", run)


def athlete_exists(store: Store, athlete_id: str) -> None:
    """NotFoundError unless ``athlete_id`` is on the roster."""
    store.get_athlete(athlete_id)


def week_param(text: str | None) -> IsoWeek | None:
    """An ISO week given by a page (``2026-W49``), or None when not given."""
    if not text:
        return None
    try:
        return IsoWeek.parse(text)
    except ValueError as exc:
        raise ConfigError(str(exc)) from None


def action(store: Store, name: str, athlete_id: str, week: str | None) -> ActionResult:
    """Run one of the athlete page's buttons by name, for ``week`` (default: this week)."""
    from planner.services.weekly import current_week

    actions = {"rebuild": rebuild_plan, "send": send_plan, "push": push_plan}
    if name not in actions:
        raise ConfigError(f"unknown action {name!r}")
    chosen = week_param(week) or current_week(store.get_athlete(athlete_id))
    result = actions[name](store, athlete_id, chosen)
    return dataclasses.replace(result, week=str(chosen))


def limiter_choices() -> Sequence[tuple[str, str]]:
    """(value, label) of the roster's limiter filter."""
    return [(a, AREA_LABELS.get(a, a)) for a in AREAS] + [("none", NO_AREA)]
