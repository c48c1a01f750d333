"""The demo athlete's season: twelve seeded weeks of runs with one clear limiter (pure).

The demo runner ("Alex") has a typical stride except for one thing: a left–right ground contact
imbalance far outside the population (about 54.5 % on the left at the start, against the
97.5th percentile of about 52.6 %; reference.BALANCE_SD_PTS). Swing is a little weak too, so
it is the area time moves to once balance improves. From the week the plan begins
(:data:`PLAN_START_WEEK`), the imbalance shrinks week by week, as if the single-leg work helped;
nothing else changes. Day-to-day variation keeps the weekly values honest about noise.

The week is easy/long/quality, with hills (trail runs), one treadmill run and one run without
running dynamics (the strap left at home), so the demo shows how each is handled. Streams come
from :func:`planner.simulate.simulate_run`; ``planner.services.demo`` writes them as FIT files.
Every number here is a demo design choice (assumption), not a claim about real runners.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, replace
from datetime import UTC, date, datetime, time
from typing import Final

import numpy as np

from planner.plan import IsoWeek
from planner.records import WEEKDAYS, ImportedActivity
from planner.simulate import Runner, make_runner, simulate_run

DEMO_ATHLETE: Final = "demo"
DEMO_NAME: Final = "Alex Demo"
DEMO_EMAIL: Final = "alex@example.org"
DEMO_TIMEZONE: Final = "Europe/Amsterdam"
DEMO_SEED: Final = 12
#: Twelve weeks from Monday 31 August 2026 (ISO week 2026-W36); the plan after them is W48.
FIRST_WEEK: Final = IsoWeek(2026, 36)
WEEKS: Final = 12
#: The plan begins in the fifth week (index 4): four weeks of baseline before it.
PLAN_START_WEEK: Final = 4
#: |balance − 50| in points on the left: at the start, and in the last week (linear between).
BALANCE_START_PTS: Final = 4.4
BALANCE_END_PTS: Final = 1.8
#: Day-to-day SD of that imbalance, points (demo assumption).
BALANCE_DAY_SD_PTS: Final = 0.2
#: Samples are kept every this many seconds, as a watch's smart recording does (1–7 s, never
#: more than the 10 s features treat as a pause). It keeps the FIT files small and quick to
#: write: the SDK's encoder is pure Python, about 0.3 ms per record.
RECORD_EVERY_S: Final = 5


@dataclass(frozen=True, slots=True)
class DemoRun:
    """One planned run of the season."""

    index: int  # position in the season, also the run's seed
    week: int  # 0-based week of the season
    weekday: str
    kind: str  # planner.simulate RUN_KINDS
    minutes: float
    dynamics: bool = True  # False: no chest strap that day

    @property
    def day(self) -> date:
        return FIRST_WEEK.shift(self.week).day(self.weekday)

    @property
    def start_utc(self) -> datetime:
        # 07:00 local (CEST/CET) is 05:00/06:00 UTC; a fixed 06:00 UTC keeps the demo simple.
        return datetime.combine(self.day, time(6, 0), tzinfo=UTC)

    @property
    def file_name(self) -> str:
        return f"{self.day.isoformat()}-{self.kind}{'' if self.dynamics else '-no-strap'}.fit"


def season() -> tuple[DemoRun, ...]:
    """The twelve weeks: Tuesday quality, Thursday and Saturday easy, Sunday long."""
    runs: list[DemoRun] = []
    for week in range(WEEKS):
        thursday = "treadmill" if week == 5 else "trail" if week in (2, 6, 9) else "easy"
        plan = (
            ("tue", "intervals" if week % 2 == 0 else "tempo", 40.0, True),
            ("thu", thursday, 35.0, True),
            ("sat", "easy", 35.0, week != 7),
            ("sun", "long", 65.0, True),
        )
        for weekday, kind, minutes, dynamics in plan:
            runs.append(DemoRun(len(runs), week, weekday, kind, minutes, dynamics))
    return tuple(sorted(runs, key=lambda r: (r.week, WEEKDAYS.index(r.weekday))))


def balance_pts(week: int) -> float:
    """The imbalance the runner has in ``week``: flat before the plan, then shrinking."""
    if week < PLAN_START_WEEK:
        return BALANCE_START_PTS
    done = (week - PLAN_START_WEEK + 1) / (WEEKS - PLAN_START_WEEK)
    return BALANCE_START_PTS + (BALANCE_END_PTS - BALANCE_START_PTS) * done


def demo_runner(seed: int = DEMO_SEED) -> Runner:
    """Alex: typical push and posture, slightly weak swing, a strong left–right imbalance."""
    rng = np.random.default_rng([seed, 0])
    runner = make_runner(
        rng,
        DEMO_ATHLETE,
        deficits={"push": 0.0, "swing": 1.0, "posture_hip": 0.0, "strength_balance": 2.5},
        sensors="full",
        stryd=False,
        body_known=True,
        nuisance=0.2,
    )
    return replace(runner, side=1.0, easy_speed_mps=3.0, balance_pts=BALANCE_START_PTS)


def simulate_demo_run(run: DemoRun, seed: int = DEMO_SEED) -> ImportedActivity:
    """One run of the season, its stream kept every :data:`RECORD_EVERY_S` seconds."""
    rng = np.random.default_rng([seed, 1, run.index])
    runner = demo_runner(seed)
    today = max(0.3, balance_pts(run.week) + float(rng.normal(0.0, BALANCE_DAY_SD_PTS)))
    runner = replace(runner, balance_pts=today, sensors="full" if run.dynamics else "none")
    item = simulate_run(runner, run.kind, rng, run.start_utc, minutes=run.minutes)
    stream = item.stream.rows(slice(None, None, RECORD_EVERY_S))
    activity = replace(
        item.activity,
        name=f"{run.kind} run",
        n_samples=len(stream),
        extra={**item.activity.extra, "demo": True},
    )
    return ImportedActivity(activity, stream)


def season_weeks() -> list[IsoWeek]:
    """The season's ISO weeks, in order."""
    return [FIRST_WEEK.shift(k) for k in range(WEEKS)]


def plan_weeks() -> Iterator[tuple[int, IsoWeek]]:
    """(runs imported up to this week index, plan week) for every plan the demo builds."""
    for k in range(PLAN_START_WEEK - 1, WEEKS):
        yield k, FIRST_WEEK.shift(k + 1)


#: The plan the demo renders: the week after the season.
NEXT_WEEK: Final = FIRST_WEEK.shift(WEEKS)
