"""``stridewise progress``: is the plan working? Reads plan history and cached run features.

Each run's features come from the feature cache (computed and cached on first use, exactly as
``analyze`` does); only the runs of the weeks shown are read. The per-week pooling, the noise
and the verdicts are the pure core in :mod:`planner.progress`.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING
from zoneinfo import ZoneInfo

from planner.errors import ConfigError
from planner.features import AthleteFeatures, RunFeatures
from planner.plan import IsoWeek, PlanHistoryEntry
from planner.planbuild import periodise, program_chain
from planner.progress import Progress, compute_progress, week_window
from planner.records import DEFAULT_ATHLETE, Athlete, StoredActivity
from planner.services.analysis import load_run_features, predict
from planner.store.model_io import CompiledBundle, load_compiled
from planner.store.planstore import load_history

if TYPE_CHECKING:
    from planner.store.database import Store


def _week_of(stored: StoredActivity, zone: ZoneInfo) -> IsoWeek:
    return IsoWeek.containing(stored.activity.start_utc.astimezone(zone).date())


def current_plan_start(history: list[PlanHistoryEntry]) -> IsoWeek | None:
    """The first week of the athlete's latest plan (None: no plan stored)."""
    if not history:
        return None
    return IsoWeek.parse(history[-1].plan.program_start)


def athlete_progress(
    store: Store,
    athlete: Athlete,
    *,
    history: list[PlanHistoryEntry],
    plan_start: IsoWeek | None,
    before: IsoWeek | None = None,
    weeks: int | None = None,
    bundle: CompiledBundle | None = None,
    use_cache: bool = True,
    save: bool = True,
) -> Progress:
    """Progress from the runs stored (only weeks before ``before`` when given).

    ``use_cache=False`` recomputes every run's features from its stream (the benchmark's
    baseline); ``save=False`` leaves the store untouched (fresh features are not cached).
    """
    try:
        zone = ZoneInfo(athlete.timezone)
    except (KeyError, ValueError):
        raise ConfigError(f"athlete {athlete.id}: unknown timezone {athlete.timezone!r}") from None
    by_week: dict[IsoWeek, list[StoredActivity]] = {}
    for stored in store.list_activities(athlete.id, running_only=True):
        if stored.stream_format is None:
            continue
        week = _week_of(stored, zone)
        if before is None or week < before:
            by_week.setdefault(week, []).append(stored)
    shown = week_window(list(by_week), plan_start, weeks)
    wanted = [s for w in shown for s in by_week.get(w, [])]
    features = iter(load_run_features(store, wanted, use_cache=use_cache, save=save))
    runs: dict[IsoWeek, list[RunFeatures]] = {
        w: [next(features) for _ in by_week.get(w, [])] for w in shown
    }
    model = bundle or load_compiled()

    def probabilities(af: AthleteFeatures) -> dict[str, float]:
        return predict(model, af)

    return compute_progress(
        athlete.id, runs, history, plan_start=plan_start, predict=probabilities, weeks=weeks
    )


def progress_for_week(
    store: Store,
    athlete: Athlete,
    week: IsoWeek,
    level: str,
    history: list[PlanHistoryEntry],
    *,
    save: bool = True,
) -> Progress:
    """What the plan of ``week`` knows: the weeks before it, against the plan it belongs to."""
    start = periodise(week, history, level).program_start
    chain = program_chain(week, history)
    return athlete_progress(
        store, athlete, history=list(chain), plan_start=start, before=week, save=save
    )


@dataclass(frozen=True, slots=True)
class ProgressOutput:
    """What ``stridewise progress`` produced."""

    progress: Progress
    plot: Path | None


def progress_command(
    store: Store,
    athlete_id: str | None,
    *,
    weeks: int | None = None,
    plot: Path | None = None,
    use_cache: bool = True,
) -> ProgressOutput:
    """``stridewise progress``: every area week by week, with a verdict; the PNG if asked."""
    if weeks is not None and weeks < 2:
        raise ConfigError("--weeks must be at least 2")
    athlete = store.get_athlete(athlete_id or DEFAULT_ATHLETE)
    history = load_history(store, athlete.id)
    progress = athlete_progress(
        store,
        athlete,
        history=history,
        plan_start=current_plan_start(history),
        weeks=weeks,
        use_cache=use_cache,
    )
    if not progress.weeks:
        raise ConfigError(f"athlete {athlete.id} has no runs with per-second data yet")
    if plot is not None:
        from planner.delivery.progresscharts import progress_png

        plot.parent.mkdir(parents=True, exist_ok=True)
        plot.write_bytes(progress_png(progress))
    return ProgressOutput(progress, plot)


def progress_text(progress: Progress) -> str:
    """The plain-text report: per area a table of weeks, then the verdict sentence."""
    from planner.progress import VERDICT_WORDS, VIEWS, show, show_change
    from planner.records import AREA_LABELS

    lines = [f"Progress of {progress.athlete_id}"]
    if progress.plan_start:
        lines[0] += f", plan started {progress.plan_start}"
    else:
        lines[0] += ": no plan yet (every week is a baseline week)"
    for event in progress.events:
        lines.append(f"  {event.week}: {event.text}")
    for area in progress.areas:
        view = VIEWS[area.area]
        lines.append("")
        lines.append(f"{AREA_LABELS[area.area]} — {view.label}: {VERDICT_WORDS[area.verdict]}")
        if area.verdict == "no_data":
            lines.append(f"  {area.sentence}")
            continue
        lines.append(
            f"  {'week':<9} {'value':>12} {'P(limiter)':>10} {'runs':>5} {'steady min':>10}"
        )
        for p in area.points:
            value = "-" if p.value is None else show(area.area, p.value)
            prob = "-" if p.probability is None else f"{p.probability:.0%}"
            mark = "*" if p.in_plan else " "
            lines.append(
                f"{mark} {p.week:<9} {value:>12} {prob:>10} {p.runs:>5} {p.steady_min:>10.0f}"
            )
        basis = (
            "twice your week-to-week typical error"
            if area.noise_basis == "typical_error"
            else "the smallest worthwhile change"
        )
        lines.append(f"  A change counts beyond {show_change(area.area, area.noise)} ({basis}).")
        lines.append(f"  {area.sentence}")
    lines.append("")
    lines.append("* weeks since the plan began. docs/plans.md explains the noise and verdicts.")
    return "\n".join(lines) + "\n"


#: How the roster words a plan's progress verdict (the dashboard's arrow).
_ROSTER_WORDS: dict[str, str] = {
    "improving": "improving",
    "no_real_change": "no real change",
    "worsening": "worsening",
}


def roster_verdict(store: Store, athlete_id: str) -> str | None:
    """The verdict on the focus area as the athlete's newest plan states it (None: none yet).

    Read from the stored plan rather than recomputed, so a roster of 200 athletes stays fast;
    the plan is rebuilt (and its verdict refreshed) whenever new runs arrive.
    """
    history = load_history(store, athlete_id)
    if not history:
        return None
    plan = history[-1].plan
    focus = next((e.area for e in plan.emphasis if e.role == "focus"), None)
    notes = {note.area: note for note in plan.progress}
    note = notes.get(focus) if focus is not None else None
    return None if note is None else _ROSTER_WORDS.get(note.verdict)
