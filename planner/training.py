"""An athlete's recent running, summarised for the plan builder.

:func:`summarize_training` is pure (activities in, :class:`TrainingSummary` out); the weekly
service reads the activities from the store and hands them in.
"""

from __future__ import annotations

import math
import statistics
from collections import Counter
from collections.abc import Iterable
from dataclasses import asdict, dataclass, field
from datetime import datetime, timedelta
from typing import Any, Final
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from planner.errors import ConfigError
from planner.records import WEEKDAYS, Activity

#: Weeks of running the summary looks at. Own assumption: long enough to see a weekly pattern,
#: short enough to be "recent".
DEFAULT_WEEKS: Final = 6
#: A week's longest run counts as a "long run" when it is at least this long (s) and this many
#: times the athlete's median run. Own assumptions (no primary source for a definition).
LONG_RUN_MIN_S: Final = 60 * 60
LONG_RUN_MEDIAN_RATIO: Final = 1.3
#: A run is "quality" (tempo) when its average speed is this many times the athlete's median
#: run speed, or (intervals) when its fastest lap is this many times its median lap speed.
#: Own assumptions.
TEMPO_SPEED_RATIO: Final = 1.08
INTERVAL_LAP_RATIO: Final = 1.15
QUALITY_MIN_S: Final = 20 * 60
#: A weekday is a *usual* long-run/quality/run day when that kind of run fell on it in at least
#: this share of the weeks looked at (and at least twice). Own assumption.
USUAL_DAY_SHARE: Final = 0.4


@dataclass(frozen=True, slots=True)
class TrainingSummary:
    """What the athlete's recent running looks like.

    Attributes
    ----------
    weeks
        Weeks the averages are taken over (at most the window asked for; fewer when the
        athlete's data is younger than the window).
    runs_per_week, weekly_distance_km, weekly_time_min
        Averages over ``weeks`` (runs, km, minutes).
    long_run_day, quality_days, run_days
        Usual weekdays (``mon`` … ``sun``) for the long run, for quality runs (tempo and
        intervals), and for any run, most frequent first. Empty when no pattern shows.
    window_end_utc, latest_run_utc
        The end of the window looked at, and the start of the last run in the store before the
        plan's week (None without runs). The window ends at that last run when the athlete's
        data stops before the plan's week.
    """

    weeks: int
    runs: int
    runs_per_week: float
    weekly_distance_km: float
    weekly_time_min: float
    long_run_day: str | None = None
    quality_days: tuple[str, ...] = ()
    run_days: tuple[str, ...] = ()
    window_end_utc: datetime | None = None
    latest_run_utc: datetime | None = None
    notes: tuple[str, ...] = field(default_factory=tuple)

    def to_dict(self) -> dict[str, Any]:
        """The JSON form (ISO timestamps, lists), as plans carry it."""
        raw = asdict(self)
        for key in ("window_end_utc", "latest_run_utc"):
            value = raw[key]
            raw[key] = value.isoformat() if value is not None else None
        for key in ("quality_days", "run_days", "notes"):
            raw[key] = list(raw[key])
        return raw


def _zone(tz: str) -> ZoneInfo:
    try:
        return ZoneInfo(tz)
    except (ZoneInfoNotFoundError, ValueError):
        raise ConfigError(f"unknown timezone {tz!r}") from None


def _speed_mps(activity: Activity) -> float | None:
    duration = activity.moving_s or activity.elapsed_s
    if not activity.distance_m or not duration:
        return None
    return activity.distance_m / duration


def _is_intervals(activity: Activity) -> bool:
    if any(lap.intensity == "interval" for lap in activity.laps):
        return True
    speeds = [
        lap.distance_m / lap.elapsed_s
        for lap in activity.laps
        if lap.distance_m and lap.elapsed_s > 0
    ]
    if len(speeds) < 3:
        return False
    return max(speeds) >= INTERVAL_LAP_RATIO * statistics.median(speeds)


def _usual_days(days: list[str], n_weeks: int) -> tuple[str, ...]:
    counts = Counter(days)
    need = max(2, USUAL_DAY_SHARE * n_weeks)
    usual = [day for day, n in counts.items() if n >= need]
    return tuple(sorted(usual, key=lambda d: (-counts[d], WEEKDAYS.index(d))))


def summarize_training(
    activities: Iterable[Activity],
    *,
    end_utc: datetime,
    weeks: int = DEFAULT_WEEKS,
    tz: str = "UTC",
) -> TrainingSummary:
    """Summarise the running in the ``weeks`` before ``end_utc``.

    Parameters
    ----------
    activities
        The athlete's activities (any sport; only runs count).
    end_utc
        The end of the window, usually the Monday the plan starts. When the athlete's last run
        is older than the window, the window ends at that run instead, so an archive of old
        runs still describes how the athlete trained (the summary says so in ``notes``).
    weeks
        Window length in weeks.
    tz
        The athlete's timezone (IANA name): weekdays are local.

    Returns
    -------
    TrainingSummary
        Runs per week, weekly volume (km, min), usual long-run, quality and run days.
    """
    zone = _zone(tz)
    runs = sorted(
        (a for a in activities if a.is_running and a.start_utc < end_utc),
        key=lambda a: a.start_utc,
    )
    if not runs:
        return TrainingSummary(
            weeks=0,
            runs=0,
            runs_per_week=0.0,
            weekly_distance_km=0.0,
            weekly_time_min=0.0,
            window_end_utc=end_utc,
            notes=("No runs stored before this week.",),
        )
    latest = runs[-1].start_utc
    notes: list[str] = []
    window_end = end_utc
    if latest < end_utc - timedelta(weeks=weeks):
        window_end = latest + timedelta(seconds=1)
        notes.append(
            f"Your last stored run was on {latest.astimezone(zone):%Y-%m-%d}; "
            "this summary describes the weeks before it."
        )
    window_start = window_end - timedelta(weeks=weeks)
    recent = [a for a in runs if a.start_utc >= window_start]
    first = recent[0].start_utc
    # A young data set is averaged over the weeks it covers, not the whole window.
    n_weeks = max(1, min(weeks, math.ceil((window_end - first) / timedelta(weeks=1))))

    def weekday(a: Activity) -> str:
        return WEEKDAYS[a.start_utc.astimezone(zone).weekday()]

    def week_key(a: Activity) -> tuple[int, int]:
        iso = a.start_utc.astimezone(zone).isocalendar()
        return iso.year, iso.week

    durations = [a.moving_s or a.elapsed_s for a in recent]
    median_s = statistics.median(durations)
    speeds = [s for s in (_speed_mps(a) for a in recent) if s is not None]
    median_speed = statistics.median(speeds) if speeds else None

    by_week: dict[tuple[int, int], list[Activity]] = {}
    for a in recent:
        by_week.setdefault(week_key(a), []).append(a)
    long_runs: list[Activity] = []
    for week_runs in by_week.values():
        longest = max(week_runs, key=lambda a: a.moving_s or a.elapsed_s)
        length = longest.moving_s or longest.elapsed_s
        if length >= LONG_RUN_MIN_S and length >= LONG_RUN_MEDIAN_RATIO * median_s:
            long_runs.append(longest)
    long_ids = {id(a) for a in long_runs}

    quality: list[Activity] = []
    for a in recent:
        if id(a) in long_ids or (a.moving_s or a.elapsed_s) < QUALITY_MIN_S:
            continue
        speed = _speed_mps(a)
        tempo = (
            speed is not None
            and median_speed is not None
            and speed >= TEMPO_SPEED_RATIO * median_speed
        )
        if tempo or _is_intervals(a):
            quality.append(a)

    long_days = _usual_days([weekday(a) for a in long_runs], n_weeks)
    distance_km = sum(a.distance_m or 0.0 for a in recent) / 1000.0
    return TrainingSummary(
        weeks=n_weeks,
        runs=len(recent),
        runs_per_week=round(len(recent) / n_weeks, 2),
        weekly_distance_km=round(distance_km / n_weeks, 1),
        weekly_time_min=round(sum(durations) / 60.0 / n_weeks, 1),
        long_run_day=long_days[0] if long_days else None,
        quality_days=_usual_days([weekday(a) for a in quality], n_weeks),
        run_days=_usual_days([weekday(a) for a in recent], n_weeks),
        window_end_utc=window_end,
        latest_run_utc=latest,
        notes=tuple(notes),
    )
