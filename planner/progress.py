"""Is the plan working? Each area's key metric week by week, judged against its own noise (pure).

For every ISO week the runs of that week are pooled exactly as an analysis pools them
(:func:`planner.features.athlete_features`), giving each area's key speed-normalised metric
(:data:`planner.limiters.KEY_METRICS`), the runs and steady minutes behind it, and the model's
probability for that week alone. Weeks before the plan began are the baseline.

A change counts only when it is larger than the measurement noise (docs/plans.md, "Is the plan
working?"):

* the **typical error** of one weekly value, for this athlete (Hopkins 2000, *Sports Med*
  30:1): the SD of week-to-week differences over the baseline weeks divided by √2, or, with
  fewer than :data:`MIN_BASELINE_WEEKS_FOR_TE` baseline weeks, the run-to-run SD within weeks
  divided by √(runs per week) — the noise of a weekly mean of that many runs;
* never less than the **smallest worthwhile change**, 0.2 × the between-runner SD of the metric
  (Hopkins 2004, *Sportscience* 8:1; Batterham & Hopkins 2006, *IJSPP* 1:50), with the
  population SDs of :mod:`planner.reference`.

The threshold is ``max(NOISE_FACTOR × typical error, smallest worthwhile change)``; which one
decided is reported with each verdict.
"""

from __future__ import annotations

import itertools
import math
import statistics
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass, replace
from typing import Any, Final

from planner import reference as ref
from planner.features import AthleteFeatures, RunFeatures, athlete_features
from planner.limiters import KEY_METRICS
from planner.plan import IsoWeek, PlanHistoryEntry, ProgressNote, TrendPoint
from planner.records import AREA_LABELS, AREAS

#: Weeks before the plan began that serve as the baseline. Our choice: about a month is enough
#: for a typical error and short enough to describe the runner just before the plan.
BASELINE_WEEKS: Final = 4
#: Weeks shown without any plan. Our choice.
WEEKS_WITHOUT_PLAN: Final = 8
#: The baseline needs this many weekly values for a week-to-week typical error (two
#: differences); fewer fall back to the run-to-run spread within weeks.
MIN_BASELINE_WEEKS_FOR_TE: Final = 3
#: A change counts when it exceeds this many typical errors. Our choice: the difference of two
#: single weekly values has an SD of √2 typical errors, so 2 typical errors is about 1.4 SD of
#: pure noise (roughly 1 in 6 noise-only changes this large, in either direction).
NOISE_FACTOR: Final = 2.0
#: Smallest worthwhile change as a share of the between-runner SD (Hopkins 2004; Batterham &
#: Hopkins 2006: 0.2 SD is the smallest "small" effect).
SWC_SHARE: Final = 0.2
#: "Now" is the mean of this many latest weeks with data: one week alone is noisier. Our choice.
RECENT_WEEKS: Final = 2
#: A verdict needs this many weeks with data since the plan began. Our choice.
MIN_PLAN_WEEKS: Final = 2

IMPROVING, NO_CHANGE, WORSENING, TOO_EARLY, NO_DATA = (
    "improving",
    "no_real_change",
    "worsening",
    "too_early",
    "no_data",
)
VERDICT_WORDS: Final = {
    IMPROVING: "improving",
    NO_CHANGE: "no real change",
    WORSENING: "worsening",
    TOO_EARLY: "too early to tell",
    NO_DATA: "no data",
}


@dataclass(frozen=True, slots=True)
class MetricView:
    """How one area's key metric is judged and shown to a runner."""

    metric: str  # key metric (internal name, JSON only)
    signal: str  # the run signal behind it (RunFeatures.signals)
    run_scalar: str  # the per-run value whose spread within a week is the fallback noise
    better: str  # "lower" | "higher"
    between_sd: float  # between-runner SD in metric units (planner.reference)
    label: str  # plain words for runners
    unit: str  # display unit
    scale: float  # display = offset + scale × metric
    offset: float
    signed: bool  # show a + sign (a difference from the expected)
    digits: int


#: The four areas' key metrics. Display units follow the evidence sentences (cm for oscillation,
#: % for balance: 50 % + the distance from 50 on the longer-contact side).
VIEWS: Final[dict[str, MetricView]] = {
    "push": MetricView(
        KEY_METRICS["push"], "gct", "gct_resid_ms", "lower", ref.GCT_SD_MS,
        "ground contact time beyond the expected for your speed", "ms", 1.0, 0.0, True, 0,
    ),
    "swing": MetricView(
        KEY_METRICS["swing"], "cadence", "cadence_resid_spm", "higher", ref.CADENCE_SD_SPM,
        "cadence against the expected for your speed", "spm", 1.0, 0.0, True, 1,
    ),
    "posture_hip": MetricView(
        KEY_METRICS["posture_hip"], "vo", "vo_resid_mm", "lower", ref.VO_SD_MM,
        "bounce above the typical runner's", "cm", 0.1, 0.0, True, 1,
    ),
    "strength_balance": MetricView(
        KEY_METRICS["strength_balance"], "balance", "balance_left_pct", "lower",
        ref.BALANCE_SD_PTS, "left–right balance", "%", 1.0, ref.BALANCE_CENTRE_PCT, False, 1,
    ),
}  # fmt: skip


def display(area: str, value: float) -> float:
    """A key-metric value in the units a runner reads."""
    view = VIEWS[area]
    return view.offset + view.scale * value


def show(area: str, value: float) -> str:
    """``+14 ms``, ``53.1 %``: a display value with its unit."""
    view = VIEWS[area]
    number = f"{display(area, value):{'+' if view.signed else ''}.{view.digits}f}"
    return f"{number} {'steps/min' if view.unit == 'spm' else view.unit}"


def show_change(area: str, delta: float) -> str:
    """``0.4 %``: a size of change (no offset) with its unit."""
    view = VIEWS[area]
    unit = "steps/min" if view.unit == "spm" else view.unit
    return f"{abs(view.scale * delta):.{view.digits}f} {unit}"


@dataclass(frozen=True, slots=True)
class WeekPoint:
    """One area in one ISO week."""

    week: str
    value: float | None  # key metric from that week's runs (None: not measured)
    probability: float | None  # the model on that week's runs alone
    plan_probability: float | None  # what the stored plan of that week was built on
    runs: int  # runs holding the area's signal
    steady_min: float  # steady running minutes in those runs
    in_plan: bool  # the week is on or after the plan start


@dataclass(frozen=True, slots=True)
class AreaProgress:
    """One area's weeks and verdict."""

    area: str
    metric: str
    better: str
    points: tuple[WeekPoint, ...]
    typical_error: float | None
    typical_error_basis: str | None  # "baseline_weeks" | "runs_within_weeks"
    smallest_worthwhile_change: float
    noise: float  # the threshold a change must exceed
    noise_basis: str  # "typical_error" | "smallest_worthwhile_change"
    baseline: float | None
    current: float | None
    weeks: int  # weeks from the plan start to the last week with data (inclusive)
    verdict: str
    sentence: str

    @property
    def change(self) -> float | None:
        if self.baseline is None or self.current is None:
            return None
        return self.current - self.baseline


@dataclass(frozen=True, slots=True)
class PlanEvent:
    """A mark on the progress chart: the plan start, a block change, a new focus."""

    week: str
    text: str


@dataclass(frozen=True, slots=True)
class Progress:
    """Every area's progress for one athlete."""

    athlete_id: str
    weeks: tuple[str, ...]
    plan_start: str | None
    focus: str | None  # the area the plan aimed at first
    events: tuple[PlanEvent, ...]
    areas: tuple[AreaProgress, ...]

    def area(self, name: str) -> AreaProgress:
        return next(a for a in self.areas if a.area == name)

    def to_dict(self) -> dict[str, Any]:
        """The ``progress --json`` document (internal metric names kept for scripts)."""
        out: dict[str, Any] = {
            "athlete": self.athlete_id,
            "weeks": list(self.weeks),
            "plan_start": self.plan_start,
            "focus": self.focus,
            "events": [asdict(e) for e in self.events],
            "areas": {},
        }
        for a in self.areas:
            view = VIEWS[a.area]
            out["areas"][a.area] = {
                "metric": a.metric,
                "label": view.label,
                "unit": view.unit,
                "better": a.better,
                "points": [
                    {
                        **asdict(p),
                        "display": None if p.value is None else round(display(a.area, p.value), 3),
                    }
                    for p in a.points
                ],
                "typical_error": _r(a.typical_error),
                "typical_error_basis": a.typical_error_basis,
                "smallest_worthwhile_change": _r(a.smallest_worthwhile_change),
                "noise": _r(a.noise),
                "noise_basis": a.noise_basis,
                "baseline": _r(a.baseline),
                "current": _r(a.current),
                "change": _r(a.change),
                "weeks_since_plan_start": a.weeks,
                "verdict": a.verdict,
                "sentence": a.sentence,
            }
        return out


def _r(x: float | None) -> float | None:
    return None if x is None else round(x, 4)


# -- the computation --------------------------------------------------------------------------

Predict = Callable[[AthleteFeatures], Mapping[str, float]]


def week_window(
    data_weeks: Sequence[IsoWeek], plan_start: IsoWeek | None, weeks: int | None
) -> list[IsoWeek]:
    """The weeks to show: ``weeks`` up to the last one with data, or by default the plan's
    weeks plus :data:`BASELINE_WEEKS` before it (:data:`WEEKS_WITHOUT_PLAN` without a plan)."""
    if not data_weeks:
        return []
    last = max(data_weeks)
    if weeks is None:
        first = (
            plan_start.shift(-BASELINE_WEEKS)
            if plan_start is not None and plan_start <= last
            else last.shift(1 - WEEKS_WITHOUT_PLAN)
        )
        weeks = last.weeks_since(first) + 1
    return [last.shift(-k) for k in range(weeks - 1, -1, -1)]


def plan_events(history: Sequence[PlanHistoryEntry], shown: Sequence[str]) -> list[PlanEvent]:
    """Plan start, block changes and focus changes within the shown weeks."""
    events: list[PlanEvent] = []
    previous: PlanHistoryEntry | None = None
    for entry in sorted(history, key=lambda h: h.week):
        plan = entry.plan
        focus = _focus(entry)
        if previous is None or plan.program_start != previous.plan.program_start:
            text = "plan starts"
        elif (plan.phase, plan.block) != (previous.plan.phase, previous.plan.block):
            text = {"deload": "deload week", "technique": "technique block"}.get(
                plan.phase, f"loaded block {plan.block}"
            )
        else:
            text = ""
        if previous is not None and focus and focus != _focus(previous):
            moved = f"focus moves to {AREA_LABELS[focus].lower()}"
            text = f"{text}; {moved}" if text else moved
        if text and plan.week in shown:
            events.append(PlanEvent(plan.week, text))
        previous = entry
    return events


def _focus(entry: PlanHistoryEntry) -> str | None:
    return next((e.area for e in entry.plan.emphasis if e.role == "focus"), None)


def compute_progress(
    athlete_id: str,
    runs_by_week: Mapping[IsoWeek, Sequence[RunFeatures]],
    history: Sequence[PlanHistoryEntry],
    *,
    plan_start: IsoWeek | None,
    predict: Predict | None = None,
    weeks: int | None = None,
) -> Progress:
    """Each area's key metric per week since (and before) the plan began, with a verdict.

    Parameters
    ----------
    athlete_id
        Whose progress.
    runs_by_week
        Each ISO week's run features (weeks without runs may be missing).
    history
        The athlete's stored plans (for the chart's marks and the plans' probabilities).
    plan_start
        The first week of the current plan (None: no plan yet, every week is baseline).
    predict
        The model: athlete features → P(limiter) per area (None: no weekly probabilities).
    weeks
        How many weeks to show, ending at the last week with runs (default: see
        :func:`week_window`).
    """
    shown = week_window([w for w, r in runs_by_week.items() if r], plan_start, weeks)
    names = tuple(str(w) for w in shown)
    plans = {h.plan.week: h for h in history}
    pooled: dict[str, tuple[AthleteFeatures | None, Mapping[str, float]]] = {}
    for week in shown:
        runs = runs_by_week.get(week, ())
        if not runs:
            pooled[str(week)] = (None, {})
            continue
        pooled_af = athlete_features(runs)
        pooled[str(week)] = (pooled_af, predict(pooled_af) if predict is not None else {})
    areas = []
    for area in AREAS:
        points = []
        for week in shown:
            af, probs = pooled[str(week)]  # af None: no runs that week
            entry = plans.get(str(week))
            km = entry.key_metrics.get(area) if entry is not None else None
            in_plan = plan_start is not None and week >= plan_start
            if af is None or not af.judgeable(area):
                value, prob, runs_n, steady = None, None, 0, 0.0
            else:
                raw = af.value(VIEWS[area].metric)
                value = None if math.isnan(raw) else float(raw)
                prob = probs.get(area)
                runs_n = af.runs_with.get(VIEWS[area].signal, 0)
                steady = _steady_minutes(runs_by_week.get(week, ()), VIEWS[area].signal)
            points.append(
                WeekPoint(
                    week=str(week),
                    value=value,
                    probability=None if prob is None else round(float(prob), 4),
                    plan_probability=None if km is None else km.probability,
                    runs=runs_n,
                    steady_min=round(steady, 1),
                    in_plan=in_plan,
                )
            )
        within = [runs_by_week.get(w, ()) for w in shown]
        areas.append(_judge(area, tuple(points), within, plan_start))
    return Progress(
        athlete_id=athlete_id,
        weeks=names,
        plan_start=None if plan_start is None else str(plan_start),
        focus=_first_focus(history, plan_start),
        events=tuple(plan_events(history, names)),
        areas=tuple(areas),
    )


def _first_focus(history: Sequence[PlanHistoryEntry], plan_start: IsoWeek | None) -> str | None:
    if plan_start is None:
        return None
    for entry in sorted(history, key=lambda h: h.week):
        if entry.plan.program_start == str(plan_start):
            return _focus(entry)
    return None


def _steady_minutes(runs: Sequence[RunFeatures], signal: str) -> float:
    return sum(r.steady_s for r in runs if signal in r.signals) / 60.0


def typical_error(
    area: str, baseline: Sequence[float], runs_by_week: Sequence[Sequence[RunFeatures]]
) -> tuple[float | None, str | None]:
    """The typical error of one weekly value and how it was estimated (None: cannot tell).

    Hopkins (2000): TE = SD(consecutive differences) / √2 over at least
    :data:`MIN_BASELINE_WEEKS_FOR_TE` baseline weeks; otherwise the pooled run-to-run SD within
    weeks divided by √(median runs per week).
    """
    if len(baseline) >= MIN_BASELINE_WEEKS_FOR_TE:
        diffs = [b - a for a, b in itertools.pairwise(baseline)]
        return statistics.stdev(diffs) / math.sqrt(2.0), "baseline_weeks"
    view = VIEWS[area]
    squares, dof, counts = 0.0, 0, []
    for runs in runs_by_week:
        values = [
            r.scalar(view.run_scalar)
            for r in runs
            if view.signal in r.signals and not math.isnan(r.scalar(view.run_scalar))
        ]
        if len(values) >= 2:
            mean = sum(values) / len(values)
            squares += sum((v - mean) ** 2 for v in values)
            dof += len(values) - 1
            counts.append(len(values))
    if dof < 2:
        return None, None
    return math.sqrt(squares / dof) / math.sqrt(statistics.median(counts)), "runs_within_weeks"


def _judge(
    area: str,
    points: tuple[WeekPoint, ...],
    runs_by_week: Sequence[Sequence[RunFeatures]],
    plan_start: IsoWeek | None,
) -> AreaProgress:
    view = VIEWS[area]
    before = [p.value for p in points if not p.in_plan and p.value is not None]
    during = [p for p in points if p.in_plan and p.value is not None]
    te, basis = typical_error(area, before, runs_by_week)
    swc = SWC_SHARE * view.between_sd
    noise, noise_basis = swc, "smallest_worthwhile_change"
    if te is not None and NOISE_FACTOR * te > swc:
        noise, noise_basis = NOISE_FACTOR * te, "typical_error"
    baseline: float | None = None
    if before:
        baseline = sum(before) / len(before)
    elif during:
        baseline = during[0].value  # no week before the plan: its first week stands in
    recent = [p.value for p in during if p.value is not None][-RECENT_WEEKS:]
    current = sum(recent) / len(recent) if recent and (before or len(during) > 1) else None
    n_weeks = 0
    if plan_start is not None and during:
        n_weeks = IsoWeek.parse(during[-1].week).weeks_since(plan_start) + 1
    if not any(p.value is not None for p in points):
        verdict = NO_DATA
    elif plan_start is None or len(during) < MIN_PLAN_WEEKS or baseline is None or current is None:
        verdict = TOO_EARLY
    else:
        gain = baseline - current if view.better == "lower" else current - baseline
        verdict = IMPROVING if gain > noise else WORSENING if -gain > noise else NO_CHANGE
    area_progress = AreaProgress(
        area=area,
        metric=view.metric,
        better=view.better,
        points=points,
        typical_error=te,
        typical_error_basis=basis,
        smallest_worthwhile_change=swc,
        noise=noise,
        noise_basis=noise_basis,
        baseline=baseline,
        current=current,
        weeks=n_weeks,
        verdict=verdict,
        sentence="",
    )
    return _with_sentence(area_progress)


def _with_sentence(a: AreaProgress) -> AreaProgress:
    return replace(a, sentence=sentence(a))


def sentence(a: AreaProgress) -> str:
    """One plain sentence for runners: what moved, over how long, and whether it beats noise."""
    label = VIEWS[a.area].label
    what = label[0].upper() + label[1:]
    if a.verdict == NO_DATA:
        return f"{what}: your runs of these weeks do not measure it."
    if a.verdict == TOO_EARLY or a.baseline is None or a.current is None:
        return f"{what}: too early to tell, as it needs two weeks of runs since your plan began."
    span = f"{a.weeks} week{'s' if a.weeks != 1 else ''}"
    moved = f"Your {label} moved from {show(a.area, a.baseline)} to {show(a.area, a.current)}"
    if a.verdict == IMPROVING:
        return f"{moved} over {span} — more than week-to-week noise."
    if a.verdict == WORSENING:
        return f"{moved} over {span} — the wrong way, and more than week-to-week noise."
    return f"{moved} over {span} — within week-to-week noise, so no real change yet."


def notes_for_plan(progress: Progress) -> tuple[ProgressNote, ...]:
    """What a weekly plan carries of the progress: a sentence and the weekly values per area."""
    out = []
    for a in progress.areas:
        if a.verdict == NO_DATA:
            continue
        view = VIEWS[a.area]
        out.append(
            ProgressNote(
                area=a.area,
                label=view.label,
                unit=view.unit,
                verdict=a.verdict,
                sentence=a.sentence,
                start=None if a.baseline is None else round(display(a.area, a.baseline), 3),
                now=None if a.current is None else round(display(a.area, a.current), 3),
                noise=round(a.noise * view.scale, 3),
                weeks=a.weeks,
                points=tuple(
                    TrendPoint(p.week, round(display(a.area, p.value), 3))
                    for p in a.points
                    if p.value is not None
                ),
                plan_start=progress.plan_start,
            )
        )
    return tuple(out)


def improved(progress: Progress | None, area: str) -> bool | None:
    """Whether ``area`` improved by more than noise (None: no verdict yet)."""
    if progress is None:
        return None
    found = next((a for a in progress.areas if a.area == area), None)
    if found is None or found.verdict in (TOO_EARLY, NO_DATA):
        return None
    return found.verdict == IMPROVING


def metric_words(metric: str | None) -> str:
    """Plain words for a key metric (runner-facing text never shows the internal name)."""
    for view in VIEWS.values():
        if view.metric == metric:
            return view.label
    return "key measurement"
