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


def _duration_s(activity: Activity) -> float:
    return activity.moving_s or activity.elapsed_s


def _speed_mps(activity: Activity) -> float | None:
    duration = _duration_s(activity)
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


@dataclass(frozen=True, slots=True)
class _Window:
    """The weeks looked at, and the runs in them (oldest first)."""

    end_utc: datetime
    runs: tuple[Activity, ...]
    n_weeks: int  # weeks the averages are taken over
    zone: ZoneInfo
    notes: tuple[str, ...]

    def weekday(self, activity: Activity) -> str:
        return WEEKDAYS[activity.start_utc.astimezone(self.zone).weekday()]

    def weekdays(self, activities: Iterable[Activity]) -> list[str]:
        return [self.weekday(a) for a in activities]


def _window(runs: list[Activity], end_utc: datetime, weeks: int, zone: ZoneInfo) -> _Window:
    """The ``weeks`` before ``end_utc``, or before the last run when the data stops earlier."""
    latest = runs[-1].start_utc
    notes: tuple[str, ...] = ()
    window_end = end_utc
    if latest < end_utc - timedelta(weeks=weeks):
        window_end = latest + timedelta(seconds=1)
        notes = (
            f"Your last stored run was on {latest.astimezone(zone):%Y-%m-%d}; "
            "this summary describes the weeks before it.",
        )
    window_start = window_end - timedelta(weeks=weeks)
    recent = tuple(a for a in runs if a.start_utc >= window_start)
    # A young data set is averaged over the weeks it covers, not the whole window.
    covered = math.ceil((window_end - recent[0].start_utc) / timedelta(weeks=1))
    return _Window(window_end, recent, max(1, min(weeks, covered)), zone, notes)


def _long_runs(window: _Window) -> list[Activity]:
    """Each week's longest run, when it is long for this athlete."""
    median_s = statistics.median(_duration_s(a) for a in window.runs)
    by_week: dict[tuple[int, int], list[Activity]] = {}
    for a in window.runs:
        iso = a.start_utc.astimezone(window.zone).isocalendar()
        by_week.setdefault((iso.year, iso.week), []).append(a)
    longest = (max(week_runs, key=_duration_s) for week_runs in by_week.values())
    return [
        a
        for a in longest
        if _duration_s(a) >= LONG_RUN_MIN_S and _duration_s(a) >= LONG_RUN_MEDIAN_RATIO * median_s
    ]


def _is_tempo(activity: Activity, median_speed: float | None) -> bool:
    speed = _speed_mps(activity)
    if speed is None or median_speed is None:
        return False
    return speed >= TEMPO_SPEED_RATIO * median_speed


def _quality_runs(window: _Window, long_runs: list[Activity]) -> list[Activity]:
    """Tempo and interval runs of at least :data:`QUALITY_MIN_S`, long runs aside."""
    speeds = [s for s in (_speed_mps(a) for a in window.runs) if s is not None]
    median_speed = statistics.median(speeds) if speeds else None
    long_ids = {id(a) for a in long_runs}
    return [
        a
        for a in window.runs
        if id(a) not in long_ids
        and _duration_s(a) >= QUALITY_MIN_S
        and (_is_tempo(a, median_speed) or _is_intervals(a))
    ]


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
    window = _window(runs, end_utc, weeks, zone)
    recent, n_weeks = window.runs, window.n_weeks
    long_runs = _long_runs(window)
    long_days = _usual_days(window.weekdays(long_runs), n_weeks)
    quality = _quality_runs(window, long_runs)
    distance_km = sum(a.distance_m or 0.0 for a in recent) / 1000.0
    time_min = sum(_duration_s(a) for a in recent) / 60.0
    return TrainingSummary(
        weeks=n_weeks,
        runs=len(recent),
        runs_per_week=round(len(recent) / n_weeks, 2),
        weekly_distance_km=round(distance_km / n_weeks, 1),
        weekly_time_min=round(time_min / n_weeks, 1),
        long_run_day=long_days[0] if long_days else None,
        quality_days=_usual_days(window.weekdays(quality), n_weeks),
        run_days=_usual_days(window.weekdays(recent), n_weeks),
        window_end_utc=window.end_utc,
        latest_run_utc=runs[-1].start_utc,
        notes=window.notes,
    )
