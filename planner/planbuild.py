"""The periodised weekly plan builder: limiters + training + preferences + history -> plan.

Pure: :func:`build_plan` reads only its arguments (no clock, store or randomness; where a
choice needs variety it is seeded by athlete and training block). The rules, with their
sources (``domain.md`` sections 4–5) or marked as our own assumptions:

* **Time follows probability.** Each judged area gets a share of the week's targeted minutes
  that grows with its probability: most to the top limiter, some to the second, a little
  maintenance for the rest. An area with a lower weight never gets more minutes than one with
  a higher weight. Areas the data cannot judge (probability None) get no targeted drills at
  all; the week's general work (warm-up, mobility) is all they get.
* **Periodised** (domain.md §5: "2–3 weeks of technique and low load, then 4–8 weeks loaded;
  progress dose week to week; deload every 3–4 weeks; keep hard strength days away from key
  runs"): a technique block of 2 weeks (3 for beginners), then loaded blocks of three building
  weeks each ended by a deload week. The dose of each drill steps up week over week from the
  stored plan history; a drill that has climbed the whole ladder is replaced by its catalogue
  progression at the start of the next block.
* **Spacing.** Hard work (plyometrics; high-load strength and run workouts) never lands the day
  before a quality or long run, nor on the long-run day; plyometrics never on consecutive days
  (the previous week's Sunday counts for Monday).
* **Strength balance.** Unilateral strength, plyometric and technique drills get one extra set
  on the weaker side (``Analysis.weaker_side``, from GCT balance; domain.md §5, practitioner).
* **Reasons.** Every block says why it is there. Only an area that stands out (probability at
  least ``planner.evidence.STAND_OUT_P``) is a focus, and only evidence that points towards a
  limiter is cited with "because"; when no area stands out the week is balanced (equal weights,
  all maintenance) and a note says why.
* **Emphasis shift.** When an area's key metric has improved since the plan began, its weight
  drops so time moves to the next limiter, and the plan says so (``Plan.shift_to``). With the
  weekly progress (:mod:`planner.progress`) "improved" means by more than the athlete's own
  week-to-week noise; without it, by IMPROVE_FRACTION over at least three analysed weeks. The
  plan carries the trend of each key metric and the progress sentences.
* Equipment, level, contraindications to avoid, available days, sessions per week and minutes
  per session are respected.
"""

from __future__ import annotations

import hashlib
import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field, replace
from itertools import combinations
from typing import Final

from drills.catalogue import Catalogue, Contraindication, Drill, Equipment, Kind
from planner.errors import ConfigError
from planner.evidence import STAND_OUT_P
from planner.plan import (
    AreaEmphasis,
    IsoWeek,
    KeyMetric,
    MetricTrend,
    Plan,
    PlanDay,
    PlanHistoryEntry,
    PlannedDose,
    PlannedDrill,
    PlanSession,
    TrendPoint,
)
from planner.progress import Progress, improved, metric_words, notes_for_plan
from planner.records import (
    AREA_LABELS,
    AREAS,
    GENERAL,
    WEEKDAYS,
    Analysis,
    LimiterEstimate,
    Preferences,
)
from planner.training import TrainingSummary

LEVELS: Final = ("beginner", "intermediate", "advanced")
TECHNIQUE, LOADED, DELOAD = "technique", "loaded", "deload"

#: Weeks of technique and low load before loading (domain.md §5: "2–3 weeks"); beginners get
#: the longer end (own choice within the range).
TECHNIQUE_WEEKS: Final = {"beginner": 3, "intermediate": 2, "advanced": 2}
#: Building weeks before a deload (domain.md §5: "deload every 3–4 weeks"): three loaded weeks,
#: then the deload, so every fourth week of a loaded block is light.
LOADED_WEEKS_BEFORE_DELOAD: Final = 3
#: More than this many weeks without a plan restarts at the technique block. Own assumption
#: (a month off undoes much tendon and skill adaptation; no primary number).
RESTART_AFTER_WEEKS: Final = 3
#: A deload keeps the drills and cuts their sets to this share (at least one set), with no
#: plyometrics and no high-load work. Own assumption (practitioner deloads cut volume 30–50 %).
DELOAD_SET_FACTOR: Final = 0.6
#: Progression ladder length: step 0 is the catalogue dose; each later step raises the volume
#: (amount, then a set, then amount again). Own assumption implementing "progress dose week to
#: week" (domain.md §5). Run workouts add one repetition per step instead (domain.md §5: hill
#: sprints "2–4 reps building to 10–12").
MAX_STEP: Final = 3
#: Minimum share of targeted time for each judged area ("a little maintenance"). Own assumption.
MAINTENANCE_SHARE: Final = 0.10
#: Shares grow with probability**2, so the top limiter clearly gets most time. Own assumption.
SHARE_EXPONENT: Final = 2.0
#: An improving area's weight is multiplied by this. Own assumption.
IMPROVING_WEIGHT: Final = 0.7
#: "Improving" = the key metric moved the good way by at least this share of its first value
#: (or the probability fell by at least IMPROVING_PROBABILITY_DROP when the metric's good
#: direction is unknown), over at least TREND_MIN_POINTS analysed weeks. Own assumptions.
IMPROVE_FRACTION: Final = 0.10
IMPROVING_PROBABILITY_DROP: Final = 0.10
TREND_MIN_POINTS: Final = 3
#: Warm-up time: this share of a session, between the bounds (min). Own assumption.
WARMUP_SHARE: Final = 0.2
WARMUP_MIN_MINUTES, WARMUP_MAX_MINUTES = 2, 8
#: Run workouts per week (domain.md §5: hill sprints "1–2×/week", practitioner sources).
MAX_RUN_SESSIONS: Final = 2
#: Plyometrics and run workouts only for athletes running at least this often (runs/week):
#: they need tissue used to impact and easy runs to attach to. Own assumption.
MIN_RUNS_PER_WEEK_FOR_IMPACT: Final = 2.0
MIN_SESSION_MINUTES, MAX_SESSION_MINUTES = 5, 180
#: At most this many plyometric drills in one session: ground contacts add up fast and quality
#: drops with fatigue. Own assumption.
MAX_PLYO_PER_SESSION: Final = 2

_LOAD_RANK: Final = {"low": 0, "moderate": 1, "high": 2}
_KIND_ORDER: Final = ("warmup", "technique", "plyometric", "run_workout", "strength", "mobility")
#: Kinds an area's drills are interleaved by, best first, per phase.
_KIND_PRIORITY: Final = {
    TECHNIQUE: ("technique", "strength", "run_workout", "mobility"),
    LOADED: ("strength", "plyometric", "technique", "run_workout", "mobility"),
    DELOAD: ("strength", "technique", "run_workout", "mobility"),
}

#: Which way is good for the key metrics the analysis reports, matched on name fragments (first
#: match wins). A convention shared with planner.services.analysis; an unknown metric falls back
#: to the area's probability trend.
_METRIC_BETTER: Final = (
    ("balance_dev", "toward_0"),
    ("asym", "toward_0"),
    ("balance", "toward_50"),
    ("cadence", "higher"),
    ("stiffness", "higher"),
    ("k_vert", "higher"),
    ("k_leg", "higher"),
    ("lss", "higher"),
    ("step_length", "higher"),
    ("gct", "lower"),
    ("contact", "lower"),
    ("duty", "lower"),
    ("vertical_ratio", "lower"),
    ("oscillation", "lower"),
    ("vo_", "lower"),
    ("drift", "lower"),
    ("overstride", "lower"),
    ("flight", "lower"),
    ("form_power", "lower"),
)


# -- inputs ---------------------------------------------------------------------------------


def check_preferences(prefs: Preferences) -> Preferences:
    """Return ``prefs`` if it can make a plan; raise ConfigError naming the bad setting."""
    if prefs.level not in LEVELS:
        raise ConfigError(f"level {prefs.level!r}: choose one of {', '.join(LEVELS)}")
    days = (*prefs.available_days, *prefs.quality_days, *filter(None, [prefs.long_run_day]))
    bad = sorted({d for d in days if d not in WEEKDAYS})
    if bad:
        raise ConfigError(f"unknown weekday {bad[0]!r}: use {', '.join(WEEKDAYS)}")
    if not prefs.available_days:
        raise ConfigError("available_days is empty: name at least one day for drills")
    if not 1 <= prefs.sessions_per_week <= 7:
        raise ConfigError(f"sessions_per_week {prefs.sessions_per_week}: give 1 to 7")
    if not MIN_SESSION_MINUTES <= prefs.minutes_per_session <= MAX_SESSION_MINUTES:
        raise ConfigError(
            f"minutes_per_session {prefs.minutes_per_session}: give"
            f" {MIN_SESSION_MINUTES} to {MAX_SESSION_MINUTES}"
        )
    known_equipment = {e.value for e in Equipment}
    for item in prefs.equipment:
        if item not in known_equipment:
            raise ConfigError(
                f"unknown equipment {item!r}: use {', '.join(sorted(known_equipment))}"
            )
    known_avoid = {c.value for c in Contraindication}
    for item in prefs.avoid:
        if item not in known_avoid:
            raise ConfigError(
                f"unknown 'avoid' entry {item!r}: use {', '.join(sorted(known_avoid))}"
            )
    return prefs


def history_entry(plan: Plan, analysis: Analysis) -> PlanHistoryEntry:
    """What the plan store keeps of a built week: the plan and the analysis' key numbers."""
    return PlanHistoryEntry(plan=plan, key_metrics=key_metrics(analysis))


def key_metrics(analysis: Analysis) -> dict[str, KeyMetric]:
    """Each area's key metric, value and probability from an analysis."""
    return {
        lim.area: KeyMetric(lim.key_metric, lim.key_value, lim.probability)
        for lim in analysis.limiters
    }


# -- periodisation ----------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Periodisation:
    """Where this week sits in the athlete's plan."""

    phase: str
    program_week: int
    program_start: IsoWeek
    block: int
    chain: tuple[PlanHistoryEntry, ...]  # this program's earlier weeks, oldest first
    restarted: bool  # earlier plans exist but a long break started a new program


def program_chain(
    week: IsoWeek, history: Iterable[PlanHistoryEntry]
) -> tuple[PlanHistoryEntry, ...]:
    """The earlier weeks of the current program: no gap longer than RESTART_AFTER_WEEKS."""
    earlier = sorted((h for h in history if h.week < week), key=lambda h: h.week)
    chain: list[PlanHistoryEntry] = []
    after = week
    for entry in reversed(earlier):
        if after.weeks_since(entry.week) > RESTART_AFTER_WEEKS:
            break
        chain.append(entry)
        after = entry.week
    return tuple(reversed(chain))


def periodise(week: IsoWeek, history: Iterable[PlanHistoryEntry], level: str) -> Periodisation:
    """Phase, program week and block of ``week`` from the stored plans before it."""
    history = tuple(history)
    chain = program_chain(week, history)
    restarted = not chain and any(h.week < week for h in history)
    if not chain:
        return Periodisation(TECHNIQUE, 1, week, 0, (), restarted)
    last = chain[-1].plan
    program_week = last.program_week + 1
    start = IsoWeek.parse(last.program_start)
    if program_week <= TECHNIQUE_WEEKS[level] and last.phase == TECHNIQUE:
        return Periodisation(TECHNIQUE, program_week, start, 0, chain, False)
    if last.phase == DELOAD:
        return Periodisation(LOADED, program_week, start, last.block + 1, chain, False)
    if last.phase == TECHNIQUE:
        return Periodisation(LOADED, program_week, start, 1, chain, False)
    building = 0
    for entry in reversed(chain):
        if entry.plan.phase != LOADED:
            break
        building += 1
    phase = DELOAD if building >= LOADED_WEEKS_BEFORE_DELOAD else LOADED
    return Periodisation(phase, program_week, start, last.block, chain, False)


# -- trends and emphasis ----------------------------------------------------------------------


def metric_better(metric: str) -> str | None:
    """Which way is good for a key metric, if we know.

    ``lower``, ``higher``, ``toward_0`` (a deviation or asymmetry, either sign) or
    ``toward_50`` (a left/right balance in percent).
    """
    name = metric.lower()
    for fragment, better in _METRIC_BETTER:
        if fragment in name:
            return better
    return None


def _badness(value: float, better: str) -> float:
    if better == "higher":
        return -value
    if better == "toward_50":
        return abs(value - 50.0)
    if better == "toward_0":
        return abs(value)
    return value


def metric_trend(
    limiter: LimiterEstimate, week: IsoWeek, chain: Sequence[PlanHistoryEntry]
) -> tuple[MetricTrend | None, bool]:
    """The key metric's trend since the program began, and whether the limiter is improving."""
    if limiter.key_metric is None or limiter.key_value is None:
        return None, False
    points: list[TrendPoint] = []
    probabilities: list[float] = []
    for entry in chain:
        known = entry.key_metrics.get(limiter.area)
        if known is None or known.metric != limiter.key_metric or known.value is None:
            continue
        points.append(TrendPoint(str(entry.week), float(known.value)))
        if known.probability is not None:
            probabilities.append(known.probability)
    points.append(TrendPoint(str(week), float(limiter.key_value)))
    if limiter.probability is not None:
        probabilities.append(limiter.probability)
    better = metric_better(limiter.key_metric)
    improving = False
    if len(points) < TREND_MIN_POINTS:
        direction = "too_early"
    elif better is not None:
        first, last = _badness(points[0].value, better), _badness(points[-1].value, better)
        threshold = IMPROVE_FRACTION * max(abs(first), 1e-9)
        if first - last >= threshold:
            direction, improving = "improving", True
        elif last - first >= threshold:
            direction = "worsening"
        else:
            direction = "flat"
    else:
        drop = probabilities[0] - probabilities[-1] if len(probabilities) >= 2 else 0.0
        if drop >= IMPROVING_PROBABILITY_DROP:
            direction, improving = "improving", True
        elif -drop >= IMPROVING_PROBABILITY_DROP:
            direction = "worsening"
        else:
            direction = "flat"
    trend = MetricTrend(limiter.area, limiter.key_metric, tuple(points), better, direction)
    return trend, improving


def area_shares(weights: dict[str, float]) -> dict[str, float]:
    """Share of targeted time per judged area: grows with weight; each gets a maintenance floor.

    Parameters
    ----------
    weights
        Area -> weight (probability after any emphasis shift), 0..1.

    Returns
    -------
    dict
        Area -> share (sums to 1). A higher weight never gets a smaller share.
    """
    if not weights:
        return {}
    raw = {a: max(w, 0.0) ** SHARE_EXPONENT for a, w in weights.items()}
    total = sum(raw.values())
    if total <= 0:
        return {a: 1.0 / len(raw) for a in raw}
    floor = MAINTENANCE_SHARE if len(raw) * MAINTENANCE_SHARE < 1 else 0.0
    floored = {a: max(v / total, floor) for a, v in raw.items()}
    norm = sum(floored.values())
    return {a: v / norm for a, v in floored.items()}


# -- doses ------------------------------------------------------------------------------------


def _increment(name: str, value: int) -> int:
    """One amount step: +10 % (at least 1 rep, or 5 s / 5 m, rounded to 5)."""
    if name == "reps":
        return value + max(1, round(0.1 * value))
    return value + max(5, 5 * round(0.1 * value / 5))


def planned_dose(
    drill: Drill, level: str, step: int, *, deload: bool, weaker_side: str | None
) -> tuple[PlannedDose, int]:
    """The dose and minutes of ``drill`` at progression ``step`` for ``level``.

    Parameters
    ----------
    drill
        The catalogue drill; its dose for ``level`` is step 0.
    level
        ``beginner``, ``intermediate`` or ``advanced``.
    step
        Progression step, 0..MAX_STEP. Steps raise the amount per set (+10 %), then add a set,
        then raise the amount again; run workouts add one repetition per step.
    deload
        Cut the sets to DELOAD_SET_FACTOR (at least one), keeping the amount.
    weaker_side
        ``left``/``right``: unilateral strength, plyometric and technique drills get one extra
        set on that side.

    Returns
    -------
    (PlannedDose, int)
        The dose and the minutes it takes (work and rest, both sides), scaled from the
        catalogue's minutes by the volume ratio, rounded up.
    """
    base = drill.dose.for_level(level)
    name, value = base.measure
    step = max(0, min(step, MAX_STEP))
    sets, amount = base.sets, value
    if drill.kind == Kind.RUN_WORKOUT:
        sets += step
    else:
        if step >= 1:
            amount = _increment(name, amount)
        if step >= 2:
            sets += 1
        if step >= 3:
            amount = _increment(name, amount)
    if deload:
        sets = max(1, math.floor(sets * DELOAD_SET_FACTOR + 0.5))
    minutes = max(1, math.ceil(base.minutes * (sets * amount) / (base.sets * value) - 1e-9))
    extra = None
    if (
        weaker_side in ("left", "right")
        and drill.unilateral
        and drill.kind in (Kind.STRENGTH, Kind.PLYOMETRIC, Kind.TECHNIQUE)
    ):
        extra = weaker_side
        minutes += math.ceil(minutes / (2 * sets))
    dose = PlannedDose(
        sets=sets,
        rest_s=base.rest_s,
        per_side=drill.unilateral,
        extra_set_side=extra,
        step=step,
        **{name: amount},
    )
    return dose, minutes


# -- the builder ------------------------------------------------------------------------------


@dataclass
class _Slot:
    """A session being filled."""

    id: str
    weekday: str
    kind: str  # "drills" | "run"
    budget: int
    hard_ok: bool
    drills: list[PlannedDrill] = field(default_factory=list)

    @property
    def used(self) -> int:
        return sum(d.minutes for d in self.drills)

    @property
    def free(self) -> int:
        return self.budget - self.used


@dataclass(frozen=True, slots=True)
class _Context:
    """Everything the selection rules read, computed once per build."""

    athlete_id: str
    week: IsoWeek
    prefs: Preferences
    period: Periodisation
    unjudged: frozenset[str]
    impact_ok: bool
    weaker_side: str | None
    catalogue: Catalogue
    steps: dict[str, int]  # drill id -> step reached when last planned in this program
    previous: Plan | None  # last week's plan in this program

    @property
    def deload(self) -> bool:
        return self.period.phase == DELOAD


def _rotation(ctx: _Context, salt: str, drill_id: str) -> str:
    """A stable pseudo-random order, seeded by athlete, program, block and ``salt``."""
    key = f"{ctx.athlete_id}|{ctx.period.program_start}|{ctx.period.block}|{salt}|{drill_id}"
    return hashlib.sha256(key.encode()).hexdigest()


def _max_load(ctx: _Context, kind: str) -> int | None:
    """The heaviest load allowed for a kind of drill this week (None: kind not allowed)."""
    phase = ctx.period.phase
    if phase == TECHNIQUE:
        # domain.md §5: technique and low load first. Skill drills and strides are allowed
        # at moderate load (they are light on tissue); strength stays low; no plyometrics.
        if kind == Kind.PLYOMETRIC:
            return None
        return _LOAD_RANK["low"] if kind == Kind.STRENGTH else _LOAD_RANK["moderate"]
    if phase == DELOAD:
        return None if kind == Kind.PLYOMETRIC else _LOAD_RANK["moderate"]
    if ctx.prefs.level == "beginner" and ctx.period.block <= 1:
        # Own assumption: beginners build a first loaded block at moderate load before
        # heavy strength and plyometrics.
        return _LOAD_RANK["moderate"]
    return _LOAD_RANK["high"]


def eligible(drill: Drill, ctx: _Context) -> bool:
    """Whether the athlete can do ``drill`` this week (equipment, avoid list, phase, data)."""
    have = {*ctx.prefs.equipment, Equipment.NONE.value}
    if any(e.value not in have for e in drill.equipment):
        return False
    if any(c.value in ctx.prefs.avoid for c in drill.contraindications):
        return False
    if any(a.value in ctx.unjudged for a in drill.primary_areas):
        return False
    if drill.kind in (Kind.PLYOMETRIC, Kind.RUN_WORKOUT) and not ctx.impact_ok:
        return False
    cap = _max_load(ctx, drill.kind.value)
    return cap is not None and _LOAD_RANK[drill.load.value] <= cap


def _carried_over(
    area: str, ctx: _Context, by_id: dict[str, Drill]
) -> tuple[list[Drill], set[str]]:
    """Last week's drills for ``area`` that go on this week, and the ids they replace."""
    first: list[Drill] = []
    replaced: set[str] = set()
    previous = ctx.previous
    if previous is None:
        return first, replaced
    earlier = list(dict.fromkeys(d.id for d in previous.drills if d.target == area))
    same_block = previous.block == ctx.period.block
    for drill_id in earlier:
        if drill_id not in ctx.catalogue:
            continue
        capped = ctx.steps.get(drill_id, 0) >= MAX_STEP
        if same_block and drill_id in by_id:
            first.append(by_id[drill_id])  # keep progressing within a block
        elif not same_block and capped:
            nxt = ctx.catalogue.by_id(drill_id).progression
            if nxt in by_id:
                # Climbed the whole ladder: the catalogue progression takes its place.
                first.append(by_id[nxt])
                replaced.add(drill_id)
    return first, replaced


def _area_queue(area: str, ctx: _Context) -> list[Drill]:
    """Drills for ``area`` in the order the allocator should take them."""
    pool = [d for d in ctx.catalogue.for_area(area) if eligible(d, ctx)]
    first, replaced = _carried_over(area, ctx, {d.id: d for d in pool})
    seen = {d.id for d in first} | replaced
    load_high_first = ctx.period.phase == LOADED
    groups: dict[str, list[Drill]] = {}
    for drill in pool:
        if drill.id not in seen:
            groups.setdefault(drill.kind.value, []).append(drill)
    for kind, drills in groups.items():
        drills.sort(
            key=lambda d: (
                -_LOAD_RANK[d.load.value] if load_high_first else _LOAD_RANK[d.load.value],
                _rotation(ctx, area + kind, d.id),
            )
        )
    order = [k for k in _KIND_PRIORITY[ctx.period.phase] if k in groups]
    rest: list[Drill] = []
    while any(groups[k] for k in order):
        for kind in order:
            if groups[kind]:
                rest.append(groups[kind].pop(0))
    return first + rest


def _steps_so_far(chain: Sequence[PlanHistoryEntry]) -> dict[str, int]:
    steps: dict[str, int] = {}
    for entry in chain:
        for drill in entry.plan.drills:
            steps[drill.id] = drill.dose.step  # later weeks overwrite earlier ones
    return steps


def _key_days(prefs: Preferences, training: TrainingSummary) -> dict[str, str]:
    """Weekday -> "long run" / "quality run", from preferences and from the runs themselves."""
    days: dict[str, str] = {}
    for day in (*prefs.quality_days, *training.quality_days):
        days[day] = "quality run"
    for day in filter(None, (prefs.long_run_day, training.long_run_day)):
        days[day] = "long run"
    return days


def _next_day(day: str) -> str:
    return WEEKDAYS[(WEEKDAYS.index(day) + 1) % 7]


def _hard_ok(day: str, key_days: dict[str, str]) -> bool:
    """Hard work is fine unless tomorrow is a key run (domain.md §5) or today is the long run."""
    return _next_day(day) not in key_days and key_days.get(day) != "long run"


def choose_days(available: Sequence[str], n: int, key_days: dict[str, str]) -> tuple[str, ...]:
    """Pick ``n`` of the available days: at least one fit for hard work, then spread out."""
    ordered = sorted(set(available), key=WEEKDAYS.index)
    n = min(n, len(ordered))

    def score(combo: tuple[str, ...]) -> tuple[int, int, int, tuple[int, ...]]:
        idx = [WEEKDAYS.index(d) for d in combo]
        gaps = [(idx[(i + 1) % len(idx)] - idx[i]) % 7 or 7 for i in range(len(idx))]
        hard = sum(_hard_ok(d, key_days) for d in combo)
        return (min(hard, 1), min(gaps), hard, tuple(-i for i in idx))

    return max(combinations(ordered, n), key=score)


def _reason(drill: Drill, target: str, emphasis: dict[str, AreaEmphasis]) -> str:
    if target == GENERAL:
        lead = "Warm-up" if drill.kind == Kind.WARMUP else "General mobility"
        return f"{lead}: {drill.why}"
    em = emphasis[target]
    label = AREA_LABELS[target]
    assert em.probability is not None  # only judged areas get targeted blocks
    pct = f"{em.probability:.0%}"
    balanced = all(e.role in ("maintenance", "general") for e in emphasis.values())
    if em.role == "focus":
        lead = f"{label} is your most likely limiter ({pct})"
    elif em.role == "second":
        lead = f"{label} is your second most likely limiter ({pct})"
    elif balanced:
        lead = (
            f"No area stands out, so {label.lower()} gets an even share of a balanced week ({pct})"
        )
    else:
        lead = f"{label} is less likely to limit you ({pct}), so this is a little maintenance"
    if em.role in ("focus", "second") and em.support:
        # Only evidence that points towards a limiter is ever given as the reason.
        lead += f" because {_lowerfirst(em.support[0].rstrip('.'))}"
    lead += "."
    if em.improving:
        lead += " It is improving, so it gets less time than before."
    return f"{lead} {drill.why}"


def _lowerfirst(text: str) -> str:
    # Keep acronyms such as "GCT" intact; only lower a capitalised ordinary first word.
    if len(text) > 1 and text[0].isupper() and text[1].islower():
        return text[0].lower() + text[1:]
    return text


def _planned(
    drill: Drill, target: str, ctx: _Context, emphasis: dict[str, AreaEmphasis]
) -> PlannedDrill:
    if target == GENERAL:
        # Warm-up and mobility keep the catalogue dose: they prepare, they do not progress.
        step, deload, side = 0, False, None
    else:
        last = ctx.steps.get(drill.id)
        step = 0 if last is None else last if ctx.deload else last + 1
        deload, side = ctx.deload, ctx.weaker_side
    dose, minutes = planned_dose(drill, ctx.prefs.level, step, deload=deload, weaker_side=side)
    reason = _reason(drill, target, emphasis)
    if dose.extra_set_side:
        reason += (
            f" Extra set on your {dose.extra_set_side} side: the analysis found it the weaker"
            " one (ground contact time balance)."
        )
    evidence = emphasis[target].evidence if target in emphasis else ()
    return PlannedDrill(
        id=drill.id,
        name=drill.name,
        kind=drill.kind.value,
        load=drill.load.value,
        target=target,
        areas=tuple(a.value for a in drill.areas),
        unilateral=drill.unilateral,
        equipment=tuple(e.value for e in drill.equipment),
        dose=dose,
        minutes=minutes,
        reason=reason,
        evidence=evidence,
        cues=drill.cues,
        source=drill.source,
        garmin_exercise=(
            None if drill.garmin is None else (drill.garmin.category, drill.garmin.exercise or "")
        ),
    )


def _plyo_ok(day: str, slots: list[_Slot], previous_plyo_days: set[str]) -> bool:
    """No plyometrics on consecutive days, within the week and across last week's Sunday."""
    i = WEEKDAYS.index(day)
    plyo_days = {s.weekday for s in slots if any(d.kind == "plyometric" for d in s.drills)}
    if i > 0 and WEEKDAYS[i - 1] in plyo_days:
        return False
    if i < 6 and WEEKDAYS[i + 1] in plyo_days:
        return False
    return not (i == 0 and "sun" in previous_plyo_days)


def _emphasis(
    analysis: Analysis,
    week: IsoWeek,
    chain: Sequence[PlanHistoryEntry],
    progress: Progress | None = None,
) -> tuple[dict[str, AreaEmphasis], list[MetricTrend]]:
    """Weight, share and role of every area, and the key-metric trends since the plan began.

    Areas keep the analysis' rank order (evidence first, planner.evidence); a weight never
    exceeds that of a higher-ranked area. Roles follow STAND_OUT_P: only an area that stands
    out is a focus; when none does, the week is balanced (equal weights, all maintenance).
    """
    by_area = {lim.area: lim for lim in analysis.limiters if lim.area in AREAS}
    trends: list[MetricTrend] = []
    improving: set[str] = set()
    for area, lim in sorted(by_area.items(), key=lambda kv: AREAS.index(kv[0])):
        trend, better = metric_trend(lim, week, chain)
        beyond_noise = improved(progress, area)
        if beyond_noise is not None:
            better = beyond_noise  # the weekly values against noise decide when known
        elif progress is not None:
            better = False  # too early to tell: no shift yet
        if trend is not None:
            trends.append(trend)
        if lim.probability is not None and better:
            improving.add(area)
    judged = sorted(
        (lim for lim in by_area.values() if lim.probability is not None),
        key=lambda lim: (
            lim.rank if lim.rank is not None else math.inf,
            -(lim.probability or 0.0),
            AREAS.index(lim.area),
        ),
    )
    balanced = bool(judged) and not any(standing_out(lim) for lim in judged)
    weights: dict[str, float] = {}
    ceiling = math.inf
    for lim in judged:
        assert lim.probability is not None
        ceiling = min(ceiling, lim.probability)  # rank order wins over a raw probability
        weights[lim.area] = ceiling * (IMPROVING_WEIGHT if lim.area in improving else 1.0)
    if balanced:
        even = sum(weights.values()) / len(weights)
        weights = dict.fromkeys(weights, even)
    ranked = sorted(weights, key=lambda a: (-weights[a], judged.index(by_area[a])))
    shares = area_shares(weights)
    emphasis: dict[str, AreaEmphasis] = {}
    for i, area in enumerate(ranked):
        lim = by_area[area]
        stands = standing_out(lim) and not balanced
        role = "focus" if i == 0 and stands else "second" if i == 1 and stands else "maintenance"
        emphasis[area] = AreaEmphasis(
            area=area,
            probability=lim.probability,
            weight=round(weights[area], 4),
            share=round(shares[area], 4),
            minutes=0,
            role=role,
            evidence=lim.evidence,
            improving=area in improving,
            support=lim.support,
            summary=lim.summary,
        )
    for area in AREAS:
        if area not in emphasis:
            found = by_area.get(area)
            emphasis[area] = AreaEmphasis(
                area=area,
                probability=None,
                weight=None,
                share=0.0,
                minutes=0,
                role="general",
                evidence=found.evidence if found else (),
            )
    return emphasis, trends


def standing_out(lim: LimiterEstimate) -> bool:
    """Whether an area stands out: the analysis says so (planner.evidence); an estimate made
    without the evidence checks (no interval) stands out at STAND_OUT_P."""
    if lim.probability is None:
        return False
    if lim.interval is not None:
        return lim.stands_out
    return lim.probability >= STAND_OUT_P


class _Week:
    """The mutable state of one build: sessions being filled, minutes given to each area."""

    def __init__(
        self,
        ctx: _Context,
        emphasis: dict[str, AreaEmphasis],
        key_days: dict[str, str],
        training: TrainingSummary,
    ):
        self.ctx = ctx
        self.emphasis = emphasis
        self.key_days = key_days
        days = choose_days(ctx.prefs.available_days, ctx.prefs.sessions_per_week, key_days)
        self.slots = [
            _Slot(f"s{i + 1}", d, "drills", ctx.prefs.minutes_per_session, _hard_ok(d, key_days))
            for i, d in enumerate(days)
        ]
        self.run_slots: list[_Slot] = []
        # Run workouts ride on easy runs: never on key-run days, preferably on usual run days.
        self.run_days = sorted(
            (d for d in WEEKDAYS if d not in key_days),
            key=lambda d: (d not in training.run_days, WEEKDAYS.index(d)),
        )
        previous = ctx.previous
        self.previous_plyo = (
            {s.weekday for s in previous.sessions if s.has_plyometrics}
            if previous is not None and previous.iso_week == ctx.week.shift(-1)
            else set()
        )
        self.ranked = [a for a, e in emphasis.items() if e.weight is not None]
        self.ranked.sort(key=lambda a: (-self.weight(a), AREAS.index(a)))
        self.assigned = dict.fromkeys(self.ranked, 0)
        self.target: dict[str, float] = {}

    def weight(self, area: str) -> float:
        return self.emphasis[area].weight or 0.0

    def general(self, kind: Kind, salt: str) -> list[Drill]:
        """Eligible general (warm-up or mobility) drills in a stable rotation."""
        return sorted(
            (
                d
                for d in self.ctx.catalogue
                if d.kind == kind
                and eligible(d, self.ctx)
                and all(a.value == GENERAL for a in d.primary_areas)
            ),
            key=lambda d: _rotation(self.ctx, salt, d.id),
        )

    def warm_up(self) -> None:
        """Start each session with general warm-up drills filling about a fifth of it."""
        warmups = self.general(Kind.WARMUP, "warmup")
        for i, slot in enumerate(self.slots):
            share = round(WARMUP_SHARE * slot.budget)
            budget = min(slot.budget, max(WARMUP_MIN_MINUTES, min(WARMUP_MAX_MINUTES, share)))
            # Rotate which warm-up leads, so sessions differ.
            k = i % len(warmups) if warmups else 0
            for drill in warmups[k:] + warmups[:k]:
                planned = _planned(drill, GENERAL, self.ctx, self.emphasis)
                if planned.minutes <= budget - slot.used:
                    slot.drills.append(planned)

    def ceiling(self, area: str) -> float:
        """Time follows probability: no area passes the minutes of a higher-weighted one."""
        higher = [self.assigned[b] for b in self.ranked if self.weight(b) > self.weight(area)]
        return min(higher) if higher else math.inf

    def place(self, planned: PlannedDrill) -> bool:
        """Put a drill into a session that has room and allows it; False if none does."""
        if planned.kind == Kind.RUN_WORKOUT:
            if len(self.run_slots) >= MAX_RUN_SESSIONS:
                return False
            for day in self.run_days:
                if any(s.weekday == day for s in self.run_slots):
                    continue
                if planned.hard and not _hard_ok(day, self.key_days):
                    continue
                rid = f"r{len(self.run_slots) + 1}"
                self.run_slots.append(_Slot(rid, day, "run", planned.minutes, True, [planned]))
                return True
            return False
        plyo = planned.kind == Kind.PLYOMETRIC
        options = [
            s
            for s in self.slots
            if s.free >= planned.minutes
            and all(d.id != planned.id for d in s.drills)
            and (s.hard_ok or not planned.hard)
            and (
                not plyo
                or (
                    _plyo_ok(s.weekday, self.slots, self.previous_plyo)
                    and sum(d.kind == Kind.PLYOMETRIC for d in s.drills) < MAX_PLYO_PER_SESSION
                )
            )
        ]
        if not options:
            return False
        best = max(options, key=lambda s: (s.free, -WEEKDAYS.index(s.weekday)))
        best.drills.append(planned)
        return True

    def allocate(self) -> None:
        """Give each judged area drills until it reaches its share of the targeted minutes.

        The area furthest below its target goes next. Each area's queue is used twice: the
        second pass repeats drills on other days (strength work 2–3×/week, domain.md §5).
        """
        total = sum(s.free for s in self.slots)
        self.target = {a: self.emphasis[a].share * total for a in self.ranked}
        queues = {a: _area_queue(a, self.ctx) for a in self.ranked}
        pending = {a: list(q) for a, q in queues.items()}
        passes = dict.fromkeys(self.ranked, 1)

        def step(area: str) -> bool:
            while True:
                if not pending[area]:
                    if passes[area] >= 2 or not queues[area]:
                        return False
                    passes[area] += 1
                    pending[area] = list(queues[area])
                for drill in list(pending[area]):
                    planned = _planned(drill, area, self.ctx, self.emphasis)
                    if self.assigned[area] + planned.minutes > self.ceiling(area):
                        continue  # waits until a higher-weighted area has more time
                    pending[area].remove(drill)
                    if self.place(planned):
                        self.assigned[area] += planned.minutes
                        return True
                    break  # fits nowhere this week; look at the rest again
                else:
                    return False

        while True:
            order = sorted(
                (a for a in self.ranked if self.assigned[a] < self.target[a]),
                key=lambda a: (self.assigned[a] - self.target[a], -self.weight(a)),
            )
            if not any(step(area) for area in order):
                return

    def cool_down(self) -> None:
        """Fill what is left of each session with general mobility."""
        mobility = self.general(Kind.MOBILITY, "mobility")
        for slot in self.slots:
            for drill in mobility:
                planned = _planned(drill, GENERAL, self.ctx, self.emphasis)
                if planned.minutes <= slot.free and all(d.id != drill.id for d in slot.drills):
                    slot.drills.append(planned)

    def minutes_by_area(self) -> dict[str, int]:
        out = dict.fromkeys(self.emphasis, 0)
        for slot in (*self.slots, *self.run_slots):
            for d in slot.drills:
                if d.target in out:
                    out[d.target] += d.minutes
        return out


def build_plan(
    analysis: Analysis,
    training: TrainingSummary,
    preferences: Preferences,
    week: IsoWeek | str,
    history: Sequence[PlanHistoryEntry],
    catalogue: Catalogue,
    progress: Progress | None = None,
) -> Plan:
    """Build one athlete's plan for one ISO week.

    Parameters
    ----------
    analysis
        The latest limiter analysis (probabilities, evidence, key metrics, weaker side).
    training
        The athlete's recent running (:func:`planner.training.summarize_training`).
    preferences
        Available days, sessions per week, minutes per session, equipment, level, avoid list,
        long-run and quality days.
    week
        The ISO week to plan (``IsoWeek`` or ``"2026-W49"``).
    history
        The athlete's stored plans (any weeks; only earlier weeks are used).
    catalogue
        The drill catalogue.
    progress
        The weeks before this one, per area (:func:`planner.progress.compute_progress`): decides
        whether a limiter improved by more than noise, and gives the plan its progress sentences.

    Returns
    -------
    Plan
        Seven days; sessions with drills, dose, minutes and a reason each.

    Raises
    ------
    ConfigError
        If the preferences cannot make a plan (unknown level, day, equipment or avoid entry;
        out-of-range sessions or minutes).
    """
    prefs = check_preferences(preferences)
    week = IsoWeek.parse(week) if isinstance(week, str) else week
    period = periodise(week, history, prefs.level)
    emphasis, trends = _emphasis(analysis, week, period.chain, progress)
    shift = _shift(emphasis)
    weaker = analysis.weaker_side if analysis.weaker_side in ("left", "right") else None
    ctx = _Context(
        athlete_id=analysis.athlete_id,
        week=week,
        prefs=prefs,
        period=period,
        unjudged=frozenset(a for a, e in emphasis.items() if e.weight is None),
        impact_ok=training.runs_per_week >= MIN_RUNS_PER_WEEK_FOR_IMPACT,
        weaker_side=weaker,
        catalogue=catalogue,
        steps=_steps_so_far(period.chain),
        previous=period.chain[-1].plan if period.chain else None,
    )
    key_days = _key_days(prefs, training)
    plan_week = _Week(ctx, emphasis, key_days, training)
    plan_week.warm_up()
    plan_week.allocate()
    plan_week.cool_down()
    minutes = plan_week.minutes_by_area()
    emphasis = {a: replace(e, minutes=minutes[a]) for a, e in emphasis.items()}
    notes = [_phase_note(period, prefs.level)]
    notes += _notes(
        ctx, emphasis, trends, training, plan_week.slots, plan_week.target, progress, shift
    )
    days = _days(week, plan_week.slots, plan_week.run_slots, key_days, emphasis, ctx)
    return Plan(
        athlete_id=analysis.athlete_id,
        week=str(week),
        phase=period.phase,
        program_week=period.program_week,
        program_start=str(period.program_start),
        block=period.block,
        level=prefs.level,
        days=days,
        emphasis=tuple(emphasis.values()),
        trends=tuple(trends),
        notes=tuple(notes),
        training=training.to_dict(),
        weaker_side=weaker,
        # The focus area's sentence first: the order of the week's emphasis.
        progress=tuple(
            sorted(
                notes_for_plan(progress) if progress is not None else (),
                key=lambda n: list(emphasis).index(n.area) if n.area in emphasis else len(AREAS),
            )
        ),
        shift_to=shift[1] if shift else None,
    )


def _shift(emphasis: dict[str, AreaEmphasis]) -> tuple[str, str] | None:
    """(improved top limiter, the area time moves to), or None when there is no shift."""
    judged = [e for e in emphasis.values() if e.probability is not None]
    if not judged:
        return None
    top = max(judged, key=lambda e: (e.probability or 0.0, -AREAS.index(e.area)))
    if not top.improving:
        return None
    rest = [e for e in judged if e.area != top.area]
    if not rest:
        return None
    return top.area, max(rest, key=lambda e: (e.weight or 0.0, -AREAS.index(e.area))).area


def _phase_note(period: Periodisation, level: str) -> str:
    pw = period.program_week
    if period.phase == TECHNIQUE:
        note = (
            f"Week {pw} of your plan: technique and low-load work first"
            f" ({TECHNIQUE_WEEKS[level]} weeks), before loaded strength and plyometrics."
        )
        if period.restarted:
            note = (
                f"Your last plan was more than {RESTART_AFTER_WEEKS} weeks ago, so the plan"
                " starts again. " + note
            )
        return note
    if period.phase == DELOAD:
        return (
            f"Week {pw} of your plan: deload week. Fewer sets, no plyometrics and no heavy"
            " lifts, so the last weeks' work can sink in (a deload every 3–4 weeks)."
        )
    building = 1
    for entry in reversed(period.chain):
        if entry.plan.phase != LOADED:
            break
        building += 1
    return (
        f"Week {pw} of your plan: loaded block {period.block}, building week {building} of"
        f" {LOADED_WEEKS_BEFORE_DELOAD}. Doses step up from last week."
    )


def _fmt(value: float) -> str:
    return f"{value:.3g}" if abs(value) < 100 else f"{value:.0f}"


def _coverage_notes(ctx: _Context, emphasis: dict[str, AreaEmphasis]) -> list[str]:
    """Which areas cannot be judged, or that none stands out."""
    notes: list[str] = []
    for area in AREAS:
        em = emphasis.get(area)
        if em is None or em.role != "general":
            continue
        notes.append(
            f"{AREA_LABELS[area]} cannot be judged from your data, so it gets general work"
            " this week, not targeted drills."
        )
    if len(ctx.unjudged) == len(AREAS):
        notes.append(
            "No area could be judged yet, so this week is general preparation. Runs recorded"
            " with running dynamics (a chest strap, pod or recent watch) let the next plan aim"
            " at what limits you."
        )
    judged = [e for e in emphasis.values() if e.role != "general"]
    if judged and all(e.role == "maintenance" for e in judged):
        notes.append(
            f"No area stands out: none is at least {STAND_OUT_P:.0%} likely to limit you, so"
            " this is a balanced maintenance week with the same weight for every area your"
            " data can judge."
        )
    return notes


def _progress_notes(
    emphasis: dict[str, AreaEmphasis],
    trends: list[MetricTrend],
    progress: Progress | None,
    shift: tuple[str, str] | None,
) -> list[str]:
    """What has improved, and where its time moves this week."""
    notes: list[str] = []
    if shift is not None:
        moved_from, shift_to = shift
        notes.append(
            f"{AREA_LABELS[moved_from]} has improved by more than week-to-week noise."
            if progress is not None
            else f"{AREA_LABELS[moved_from]} is improving."
        )
        notes.append(
            f"So this week moves part of its time from {AREA_LABELS[moved_from].lower()} to"
            f" {AREA_LABELS[shift_to].lower()}, the next area."
        )
    for trend in trends:
        if (
            progress is None
            and trend.direction == "improving"
            and emphasis.get(trend.area) is not None
            and (shift is None or trend.area != shift[0])
        ):
            first, last = trend.points[0], trend.points[-1]
            notes.append(
                f"{AREA_LABELS[trend.area]} is improving: your {metric_words(trend.metric)} went"
                f" from {_fmt(first.value)} in {first.week} to {_fmt(last.value)} now."
            )
    return notes


def _notes(
    ctx: _Context,
    emphasis: dict[str, AreaEmphasis],
    trends: list[MetricTrend],
    training: TrainingSummary,
    slots: list[_Slot],
    target: dict[str, float],
    progress: Progress | None = None,
    shift: tuple[str, str] | None = None,
) -> list[str]:
    """The week's notes to the runner, in the order the plan shows them."""
    notes = _coverage_notes(ctx, emphasis)
    notes += _progress_notes(emphasis, trends, progress, shift)
    if ctx.weaker_side:
        notes.append(
            f"Single-leg work gets one extra set on your {ctx.weaker_side} side, the weaker one"
            " by ground contact time balance."
        )
    if not ctx.impact_ok:
        notes.append(
            f"You ran {training.runs_per_week:.1f} times a week recently: plyometrics and run"
            f" workouts wait until you run at least {MIN_RUNS_PER_WEEK_FOR_IMPACT:.0f} times"
            " a week."
        )
    notes += list(training.notes)
    if ctx.period.phase == LOADED and not any(s.hard_ok for s in slots):
        notes.append(
            "Every drill day this week is the day before a quality or long run (or the long run"
            " itself), so it has no plyometrics or heavy lifts."
        )
    for area, goal in target.items():
        got = emphasis[area].minutes
        if goal >= 5 and got < 0.5 * goal:
            notes.append(
                f"Only {got} of about {goal:.0f} minutes of {AREA_LABELS[area].lower()} work"
                " fit your equipment, avoid list and days this week."
            )
    return notes


def _session_order(drill: PlannedDrill) -> tuple[int, int]:
    # Warm up, then skill and plyometrics while fresh, then strength, then mobility.
    return (_KIND_ORDER.index(drill.kind), 0 if drill.target != GENERAL else 1)


def _session(
    slot: _Slot, week: IsoWeek, emphasis: dict[str, AreaEmphasis], deload: bool
) -> PlanSession:
    drills = tuple(sorted(slot.drills, key=_session_order))
    minutes_by: dict[str, int] = {}
    for d in drills:
        if d.target != GENERAL:
            minutes_by[d.target] = minutes_by.get(d.target, 0) + d.minutes
    # The session is named after the most likely limiter it works on, not the one with the
    # most minutes in it.
    main = (
        max(minutes_by, key=lambda a: (emphasis[a].weight or 0.0, -AREAS.index(a)))
        if minutes_by
        else None
    )
    if slot.kind == "run":
        drill = drills[0]
        title = f"{drill.name} on an easy run"
        reason = (
            "Do this within an easy run: at least 10 minutes of easy running first, and easy"
            " running to finish."
        )
    else:
        focus = AREA_LABELS[main].lower() if main else "general"
        title = f"Drills and strength: {focus} focus" if main else "General preparation"
        parts = [
            f"{AREA_LABELS[a]} {m} min"
            for a, m in sorted(minutes_by.items(), key=lambda kv: (-kv[1], AREAS.index(kv[0])))
        ]
        general = sum(d.minutes for d in drills if d.target == GENERAL)
        if general:
            parts.append(f"warm-up and mobility {general} min")
        reason = "; ".join(parts) + "."
        if main is not None and emphasis[main].role in ("focus", "second"):
            why = next(iter(emphasis[main].support), emphasis[main].summary)
            if why:
                reason += f" Main reason: {_lowerfirst(why)}"
                if not reason.endswith("."):
                    reason += "."
    if deload:
        reason += " Deload week: lighter on purpose."
    return PlanSession(
        id=slot.id,
        weekday=slot.weekday,
        date=week.day(slot.weekday),
        kind=slot.kind,
        title=title,
        minutes=sum(d.minutes for d in drills),
        reason=reason,
        drills=drills,
    )


def _days(
    week: IsoWeek,
    slots: list[_Slot],
    run_slots: list[_Slot],
    key_days: dict[str, str],
    emphasis: dict[str, AreaEmphasis],
    ctx: _Context,
) -> tuple[PlanDay, ...]:
    days = []
    for day in WEEKDAYS:
        sessions = [
            _session(s, week, emphasis, ctx.deload)
            for s in (*slots, *run_slots)
            if s.weekday == day and s.drills
        ]
        days.append(PlanDay(day, week.day(day), key_days.get(day), tuple(sessions)))
    return tuple(days)
