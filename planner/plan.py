"""Typed records of a weekly plan: days, sessions, drills with dose, and why each is there.

A :class:`Plan` is what :func:`planner.planbuild.build_plan` returns and what the renderers,
the plan store and ``stridewise plan --format json`` read. Everything is a frozen dataclass;
:meth:`Plan.to_dict` / :meth:`Plan.from_dict` give the JSON form (round-trip exact).
"""

from __future__ import annotations

import datetime as dt
import re
from dataclasses import asdict, dataclass
from datetime import date, timedelta
from typing import Any, Final

from pydantic import TypeAdapter

from planner.records import WEEKDAYS

#: Bump when the JSON form changes in a way old readers cannot follow.
PLAN_FORMAT_VERSION: Final = 1

#: What a block is aimed at: one of the limiter areas, or ``general`` (warm-up, mobility, and
#: work for areas the data cannot judge).

#: Plain words for the key metrics the analysis tracks (runner-facing text never shows keys).
METRIC_LABELS: Final[dict[str, str]] = {
    "gct_resid_ms": "contact time against the expected for your speed (ms)",
    "cadence_resid_spm": "cadence against the expected for your speed (spm)",
    "vo_resid_mm": "vertical oscillation against the population median (mm)",
    "balance_dev_pts": "distance of your contact balance from 50 % (points)",
}


def metric_label(metric: str | None) -> str:
    """Plain words for a key metric; an unknown one is named generically, never by its key."""
    if metric is None:
        return "key measurement"
    return METRIC_LABELS.get(metric, "key measurement")


DAY_LABELS: Final[dict[str, str]] = {
    "mon": "Monday",
    "tue": "Tuesday",
    "wed": "Wednesday",
    "thu": "Thursday",
    "fri": "Friday",
    "sat": "Saturday",
    "sun": "Sunday",
}

_WEEK_RE = re.compile(r"^\s*(\d{4})-?[Ww](\d{1,2})\s*$")


@dataclass(frozen=True, slots=True, order=True)
class IsoWeek:
    """An ISO 8601 week, written ``2026-W49``; weeks start on Monday."""

    year: int
    week: int

    def __post_init__(self) -> None:
        # date.fromisocalendar knows which years have 53 weeks.
        try:
            date.fromisocalendar(self.year, self.week, 1)
        except ValueError:
            raise ValueError(f"{self.year}-W{self.week:02d} is not an ISO week") from None

    @classmethod
    def parse(cls, text: str) -> IsoWeek:
        """Read ``2026-W49`` (also ``2026W49``, ``2026-w49``); raise ValueError otherwise."""
        match = _WEEK_RE.match(text)
        if match is None:
            raise ValueError(f"{text!r} is not an ISO week like 2026-W49")
        return cls(int(match.group(1)), int(match.group(2)))

    @classmethod
    def containing(cls, day: date) -> IsoWeek:
        """The ISO week a calendar day falls in."""
        iso = day.isocalendar()
        return cls(iso.year, iso.week)

    def monday(self) -> date:
        return date.fromisocalendar(self.year, self.week, 1)

    def day(self, weekday: str) -> date:
        """The date of ``weekday`` (``mon`` … ``sun``) in this week."""
        return self.monday() + timedelta(days=WEEKDAYS.index(weekday))

    def shift(self, weeks: int) -> IsoWeek:
        return IsoWeek.containing(self.monday() + timedelta(weeks=weeks))

    def weeks_since(self, other: IsoWeek) -> int:
        """Whole weeks from ``other`` to this week (negative when ``other`` is later)."""
        return (self.monday() - other.monday()).days // 7

    def __str__(self) -> str:
        return f"{self.year}-W{self.week:02d}"


@dataclass(frozen=True, slots=True)
class PlannedDose:
    """How much of a drill to do this week.

    ``sets`` of exactly one of ``reps``, ``duration_s`` (s) or ``distance_m`` (m), with
    ``rest_s`` (s) between sets; for unilateral drills the amount is per side, and
    ``extra_set_side`` (``left``/``right``) gets ``sets + 1``. ``step`` is the progression step
    reached (0 = the catalogue dose for the athlete's level).
    """

    sets: int
    rest_s: int
    reps: int | None = None
    duration_s: int | None = None
    distance_m: int | None = None
    per_side: bool = False
    extra_set_side: str | None = None
    step: int = 0

    @property
    def amount(self) -> tuple[str, int]:
        """The one measure given per set, e.g. ``("reps", 12)``."""
        for name in ("reps", "duration_s", "distance_m"):
            value = getattr(self, name)
            if value is not None:
                return name, int(value)
        raise ValueError("a dose needs reps, duration_s or distance_m")

    @property
    def volume(self) -> int:
        """Sets × amount on the stronger side: what progression raises week over week."""
        return self.sets * self.amount[1]

    def text(self, times: str = "×") -> str:
        """``3 × 12 reps per side (+1 set on the left), rest 60 s``."""
        name, value = self.amount
        unit = {"reps": "reps", "duration_s": "s", "distance_m": "m"}[name]
        out = f"{self.sets} {times} {value} {unit}"
        if self.per_side:
            out += " per side"
        if self.extra_set_side:
            out += f" (+1 set on the {self.extra_set_side})"
        if self.sets > 1 and self.rest_s:
            out += f", rest {self.rest_s} s"
        return out


@dataclass(frozen=True, slots=True)
class PlannedDrill:
    """One drill in a session, with its dose, time and the reason it is in the plan.

    ``target`` is the area the block was planned for (an area, or ``general``); ``areas`` are
    the drill's own primary then secondary areas from the catalogue. ``evidence`` holds the
    analysis sentences the reason rests on. ``garmin_exercise`` is the catalogue's Garmin
    (category, exercise) pair (exercise ``""``: the category alone), or None for a drill with
    no Garmin equivalent.
    """

    id: str
    name: str
    kind: str
    load: str
    target: str
    areas: tuple[str, ...]
    unilateral: bool
    equipment: tuple[str, ...]
    dose: PlannedDose
    minutes: int
    reason: str
    evidence: tuple[str, ...] = ()
    cues: tuple[str, ...] = ()
    source: str = ""
    garmin_exercise: tuple[str, str] | None = None

    @property
    def hard(self) -> bool:
        """Plyometrics and high-load strength or run work: kept away from key runs."""
        return self.kind == "plyometric" or (
            self.load == "high" and self.kind in ("strength", "run_workout")
        )


@dataclass(frozen=True, slots=True)
class PlanSession:
    """One session on one day: a drill/strength session, or a run workout on an easy run."""

    id: str  # stable within a week ("s1", "s2", "r1"): calendar UIDs and FIT names use it
    weekday: str
    date: dt.date
    kind: str  # "drills" | "run"
    title: str
    minutes: int
    reason: str
    drills: tuple[PlannedDrill, ...]

    @property
    def hard(self) -> bool:
        return any(d.hard for d in self.drills)

    @property
    def has_plyometrics(self) -> bool:
        return any(d.kind == "plyometric" for d in self.drills)


@dataclass(frozen=True, slots=True)
class PlanDay:
    """One day of the week; ``key_run`` names a long or quality run the athlete does that day."""

    weekday: str
    date: dt.date
    key_run: str | None
    sessions: tuple[PlanSession, ...]


@dataclass(frozen=True, slots=True)
class AreaEmphasis:
    """How much of the week goes to one area, and why.

    ``weight`` is the probability after the emphasis shift for an improving limiter (equal for
    every judged area in a balanced week); shares and minutes follow it. ``role`` is ``focus``
    (top area, when it stands out), ``second`` (next area, when it stands out too),
    ``maintenance``, or ``general`` when the data cannot judge the area (``probability``
    None). Only ``support`` sentences are ever cited as the reason ("because").
    """

    area: str
    probability: float | None
    weight: float | None
    share: float
    minutes: int
    role: str
    evidence: tuple[str, ...] = ()
    improving: bool = False
    support: tuple[str, ...] = ()  # evidence sentences that point towards a limiter
    summary: str | None = None  # the analysis' one-sentence verdict for the area


@dataclass(frozen=True, slots=True)
class TrendPoint:
    week: str
    value: float


@dataclass(frozen=True, slots=True)
class MetricTrend:
    """A limiter's key metric since the plan began (one value per analysed week).

    ``better`` says which way is good (``lower``, ``higher``, ``toward_0``, ``toward_50``) or
    None when the
    metric is unknown to us; ``direction`` is ``improving``, ``worsening``, ``flat`` or
    ``too_early``.
    """

    area: str
    metric: str
    points: tuple[TrendPoint, ...]
    better: str | None
    direction: str

    @property
    def change(self) -> float | None:
        if len(self.points) < 2:
            return None
        return self.points[-1].value - self.points[0].value


@dataclass(frozen=True, slots=True)
class ProgressNote:
    """One area's progress since the plan began, as a plan shows it (:mod:`planner.progress`).

    Values are in the units a runner reads (``unit``); ``noise`` is the change that counts as
    more than week-to-week noise; ``verdict`` is ``improving``, ``no_real_change``,
    ``worsening`` or ``too_early``.
    """

    area: str
    label: str
    unit: str
    verdict: str
    sentence: str
    start: float | None
    now: float | None
    noise: float
    weeks: int
    points: tuple[TrendPoint, ...]
    plan_start: str | None = None


@dataclass(frozen=True, slots=True)
class Plan:
    """A 7-day plan for one athlete and ISO week."""

    athlete_id: str
    week: str
    phase: str  # "technique" | "loaded" | "deload"
    program_week: int  # 1 in the week the plan began (or restarted after a long break)
    program_start: str
    block: int  # 0 = technique block, then 1, 2, … for each loaded block ended by a deload
    level: str
    days: tuple[PlanDay, ...]
    emphasis: tuple[AreaEmphasis, ...]
    trends: tuple[MetricTrend, ...]
    notes: tuple[str, ...]
    training: dict[str, Any]
    weaker_side: str | None = None
    revision: int = 1
    # When this revision was stored (set by planner.store.planstore; None for an unsaved plan).
    # Calendar DTSTAMP and FIT time_created use it, so re-rendering a revision is byte-stable.
    revised_utc: dt.datetime | None = None
    format_version: int = PLAN_FORMAT_VERSION
    # Each area's key metric week by week and whether it moved more than noise (issue 12).
    progress: tuple[ProgressNote, ...] = ()
    # When the focus area improved enough: the area the time moves to (else None).
    shift_to: str | None = None

    @property
    def iso_week(self) -> IsoWeek:
        return IsoWeek.parse(self.week)

    @property
    def revision_time(self) -> dt.datetime:
        """When this revision was stored; for an unsaved plan, 00:00 UTC on its Monday."""
        if self.revised_utc is not None:
            return self.revised_utc
        return dt.datetime.combine(self.iso_week.monday(), dt.time(0), tzinfo=dt.UTC)

    @property
    def sessions(self) -> tuple[PlanSession, ...]:
        return tuple(s for day in self.days for s in day.sessions)

    @property
    def drills(self) -> tuple[PlannedDrill, ...]:
        return tuple(d for s in self.sessions for d in s.drills)

    @property
    def total_minutes(self) -> int:
        return sum(s.minutes for s in self.sessions)

    def minutes_by_target(self) -> dict[str, int]:
        """Planned minutes per target (each area, and ``general``)."""
        out: dict[str, int] = {}
        for drill in self.drills:
            out[drill.target] = out.get(drill.target, 0) + drill.minutes
        return out

    def to_dict(self) -> dict[str, Any]:
        """The JSON form: dates as ISO strings, tuples as lists."""
        raw = asdict(self)
        if self.revised_utc is not None:
            raw["revised_utc"] = self.revised_utc.isoformat()
        for day in raw["days"]:
            day["date"] = day["date"].isoformat()
            for session in day["sessions"]:
                session["date"] = session["date"].isoformat()
        return raw

    @classmethod
    def from_dict(cls, raw: dict[str, Any]) -> Plan:
        """Rebuild a plan from :meth:`to_dict` output (validated; wrong shapes raise)."""
        return _PLAN_ADAPTER.validate_python(raw)


_PLAN_ADAPTER: Final = TypeAdapter(Plan)


@dataclass(frozen=True, slots=True)
class KeyMetric:
    """One area's key metric and probability as analysed for a stored week's plan."""

    metric: str | None
    value: float | None
    probability: float | None


@dataclass(frozen=True, slots=True)
class PlanHistoryEntry:
    """A stored plan and the analysis numbers it was built from (:mod:`planner.store.planstore`)."""

    plan: Plan
    key_metrics: dict[str, KeyMetric]

    @property
    def week(self) -> IsoWeek:
        return self.plan.iso_week
