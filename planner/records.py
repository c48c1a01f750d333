"""Typed records that cross module borders. Units live in the field names."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum
from typing import TYPE_CHECKING, Any, Final

from planner.errors import ConfigError

if TYPE_CHECKING:  # records load neither numpy nor pandas: the writing process needs neither
    from planner.schema import StreamColumns


#: The athlete id used when none is given (a runner using stridewise for themselves).
DEFAULT_ATHLETE = "me"


class Source(StrEnum):
    """Where an activity came from. Strava-sourced data is never used to train a model."""

    FIT = "fit"
    GARMIN = "garmin"
    STRAVA = "strava"
    GPX = "gpx"  # a GPX track file (e.g. an older activity of a Strava export)
    TCX = "tcx"  # a TCX file (idem)


#: Sources whose terms forbid training models on their data (Strava's API agreement,
#: domain.md §1): analysed for their owner, never trained on.
UNTRAINABLE_SOURCES = frozenset({Source.STRAVA})

#: Key in ``Activity.extra`` marking one activity as never to be trained on: the sync sets it
#: for a connector declaring ``trainable = False`` whose source tag is otherwise trainable.
UNTRAINABLE_KEY = "untrainable"

#: FIT ``sport`` values we analyse. Trail, treadmill, track and virtual runs are sub-sports of
#: ``running`` in the FIT profile, so they are included.
RUNNING_SPORTS = frozenset({"running"})

#: Sources ranked for the "richer copy wins" rule when their streams are equally rich: an
#: original FIT file beats the same file fetched from Garmin Connect, which beats a GPX or TCX
#: track (the user's own file, but fewer fields and no device metadata), which beats Strava's
#: resampled API streams (no running dynamics, and Strava's API terms apply to them).
SOURCE_RANK = {Source.FIT: 4, Source.GARMIN: 3, Source.GPX: 2, Source.TCX: 2, Source.STRAVA: 1}


@dataclass(frozen=True, slots=True)
class Lap:
    """One lap as the device recorded it."""

    start_utc: datetime
    elapsed_s: float
    distance_m: float | None
    intensity: str | None = None
    trigger: str | None = None


@dataclass(frozen=True, slots=True)
class Pause:
    """A stretch where the timer was stopped."""

    start_utc: datetime
    end_utc: datetime


@dataclass(frozen=True, slots=True)
class Activity:
    """One activity's metadata; its per-second stream travels beside it as stream columns.

    ``source_ref`` identifies it within its source (file content hash and session index for
    FIT, activity id for Strava and Garmin); ``fingerprint`` recognises the same run coming
    from two sources.
    """

    source: Source
    source_ref: str
    sport: str
    sub_sport: str | None
    start_utc: datetime
    elapsed_s: float
    moving_s: float | None
    distance_m: float | None
    name: str | None = None
    device: str | None = None
    sensors: tuple[str, ...] = ()
    laps: tuple[Lap, ...] = ()
    pauses: tuple[Pause, ...] = ()
    height_m: float | None = None
    weight_kg: float | None = None
    sex: str | None = None
    decoder: str | None = None
    warnings: tuple[str, ...] = ()
    dynamics: tuple[str, ...] = ()  # running-dynamics / Stryd columns present in the stream
    n_samples: int = 0
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def is_running(self) -> bool:
        return self.sport in RUNNING_SPORTS

    @property
    def trainable(self) -> bool:
        """Whether a model may be trained on this activity (see :data:`UNTRAINABLE_SOURCES`)."""
        return self.source not in UNTRAINABLE_SOURCES and not self.extra.get(UNTRAINABLE_KEY)


@dataclass(frozen=True, slots=True)
class ImportedActivity:
    """What a connector hands to the store: metadata plus the validated stream columns."""

    activity: Activity
    stream: StreamColumns


@dataclass(frozen=True, slots=True)
class PackedActivity:
    """An activity ready to store: its stream already packed into the store's BLOB format.

    Decoder processes pack what they decoded, so the process that writes the database
    receives a few kilobytes of bytes per run, not arrays, and needs neither numpy nor pyarrow.
    """

    activity: Activity
    stream: bytes | None  # None: no per-second data
    stream_format: str | None
    n_rows: int = 0


@dataclass(frozen=True, slots=True)
class StoredActivity:
    """An activity as the store knows it."""

    id: int
    athlete_id: str
    activity: Activity
    content_hash: str | None
    stream_format: str | None


@dataclass(frozen=True, slots=True)
class Athlete:
    """A runner in the roster. ``id`` is the short handle used on the command line."""

    id: str
    name: str | None = None
    email: str | None = None
    timezone: str = "UTC"
    send_day: str = "mon"
    send_time: str = "07:00"
    preferences: dict[str, Any] = field(default_factory=dict)

    def check_source(self, source: Source) -> None:
        """Refuse data from ``source`` when the athlete's sources are set and leave it out."""
        chosen = self.preferences.get("sources") or []
        if chosen and source.value not in chosen:
            raise ConfigError(
                f"athlete {self.id} takes data only from {', '.join(chosen)};"
                f" add {source.value} to their sources to sync it"
            )


# -- analysis → plan interface ----------------------------------------------------------------


class Area(StrEnum):
    """A mechanical area (domain.md §4); ``general`` is warm-up and mobility work, no limiter.

    The one definition of the vocabulary: the model's outputs, the drill catalogue's schema,
    the command line's choices and every label a runner reads come from here.
    """

    PUSH = "push"
    SWING = "swing"
    POSTURE_HIP = "posture_hip"
    STRENGTH_BALANCE = "strength_balance"
    GENERAL = "general"


#: The mechanical areas the model judges (domain.md §4). Add one only with a source.
AREAS: tuple[str, ...] = (Area.PUSH, Area.SWING, Area.POSTURE_HIP, Area.STRENGTH_BALANCE)

#: Work that trains no one area (warm-up, mobility): a plan focus, never a limiter.
GENERAL: Final = Area.GENERAL


#: How every page, e-mail and chart names an area.
AREA_LABELS: Final[dict[str, str]] = {
    Area.PUSH: "Push",
    Area.SWING: "Swing",
    Area.POSTURE_HIP: "Posture and hip",
    Area.STRENGTH_BALANCE: "Strength balance",
    Area.GENERAL: "General",
}
WEEKDAYS: tuple[str, ...] = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")


@dataclass(frozen=True, slots=True)
class LimiterEstimate:
    """How likely one mechanical area limits the runner, and why we think so.

    ``probability`` is None when the data cannot judge this area (e.g. no running dynamics);
    such an area gets general work in the plan, never targeted work.
    """

    area: str
    probability: float | None
    rank: int | None
    evidence: tuple[str, ...] = ()
    key_metric: str | None = None  # e.g. "gct_residual_ms": tracked week over week in plans
    key_value: float | None = None
    # What the evidence checks (planner.evidence) made of the model's number:
    interval: tuple[float, float] | None = None  # 90 % interval, wider with less data
    stands_out: bool = False  # probability reaches evidence.STAND_OUT_P
    verdict: str | None = None  # key metric: "extreme" | "elevated" | "in_line"
    summary: str | None = None  # one plain sentence: what the key evidence says
    support: tuple[str, ...] = ()  # evidence sentences that point towards a limiter
    z: dict[str, float] = field(default_factory=dict)  # signal → z against the population
    out_of_support: bool = False  # outside the training cohort: the transparent rule decided
    model_probability: float | None = None  # the model's own number, before the checks
    adjustments: tuple[str, ...] = ()  # "rule_fallback", "in_line_cap", "evidence_floor", ...


@dataclass(frozen=True, slots=True)
class DecisionRules:
    """The evidence rules an analysis was decided by (:mod:`planner.evidence`)."""

    base_rate: float
    stand_out_probability: float
    evidence_floor: float
    extreme_z: float
    in_line_z: float
    run_cap: float  # the highest probability this many runs may give
    support_checked: bool  # the model carried its training cohort's range

    def to_json(self) -> dict[str, Any]:
        return {
            "base_rate": self.base_rate,
            "stand_out_probability": self.stand_out_probability,
            "evidence_floor": self.evidence_floor,
            "extreme_z": self.extreme_z,
            "in_line_z": self.in_line_z,
            "run_cap": self.run_cap,
            "support_checked": self.support_checked,
        }


@dataclass(frozen=True, slots=True)
class AnalysisWindow:
    """Which runs an analysis looked at: as asked (``--since``/``--last``) and as found."""

    since: datetime | None = None
    last: int | None = None
    default_days: int | None = None  # set when neither --since nor --last was given
    first_run_utc: datetime | None = None
    last_run_utc: datetime | None = None

    def to_json(self) -> dict[str, Any]:
        return {
            "since": _iso(self.since),
            "last": self.last,
            "default_days": self.default_days,
            "first_run_utc": _iso(self.first_run_utc),
            "last_run_utc": _iso(self.last_run_utc),
        }


@dataclass(frozen=True, slots=True)
class ModelInfo:
    """The model an analysis used."""

    version: str
    trained_on: str | None = None  # e.g. "2000 simulated athletes"
    path: str | None = None  # the model file, None for one built in memory

    def to_json(self) -> dict[str, Any]:
        return {"version": self.version, "trained_on": self.trained_on, "path": self.path}


@dataclass(frozen=True, slots=True)
class DataSummary:
    """What data an analysis had, and how that limits what it can say.

    Counts are of runs; minutes are of steady (and flat steady) running; values are rounded as
    shown. :meth:`to_json` is the ``data`` object of ``analyze --json``.
    """

    runs: int
    runs_with_steady_running: int
    runs_with: dict[str, int]  # signal → runs holding it
    running_dynamics: bool
    balance: bool
    stryd: bool
    height_weight: bool
    height_m: float | None
    weight_kg: float | None
    sex: str | None
    sources: dict[str, int]  # source → runs
    treadmill_runs: int
    trail_runs: int
    interval_runs: int
    runs_with_drift: int
    steady_minutes: float | None
    flat_minutes: float | None
    typical_speed_mps: float | None
    speed_range_mps: tuple[float, float] | None  # 5th–95th percentile of window speeds
    features: dict[str, float | None]  # the model's inputs, None when unknown
    hr_decoupling_pct: float | None
    limits: tuple[str, ...]  # runner-facing sentences: what cannot be judged, and why
    notes: tuple[str, ...]  # the runs' own notes (short run, treadmill, ...)
    decision: DecisionRules
    window: AnalysisWindow | None
    model: ModelInfo

    def to_json(self) -> dict[str, Any]:
        return {
            "runs": self.runs,
            "runs_with_steady_running": self.runs_with_steady_running,
            "runs_with": dict(self.runs_with),
            "running_dynamics": self.running_dynamics,
            "balance": self.balance,
            "stryd": self.stryd,
            "height_weight": self.height_weight,
            "height_m": self.height_m,
            "weight_kg": self.weight_kg,
            "sex": self.sex,
            "sources": dict(self.sources),
            "treadmill_runs": self.treadmill_runs,
            "trail_runs": self.trail_runs,
            "interval_runs": self.interval_runs,
            "runs_with_drift": self.runs_with_drift,
            "steady_minutes": self.steady_minutes,
            "flat_minutes": self.flat_minutes,
            "typical_speed_mps": self.typical_speed_mps,
            "speed_range_mps": None if self.speed_range_mps is None else list(self.speed_range_mps),
            "features": dict(self.features),
            "hr_decoupling_pct": self.hr_decoupling_pct,
            "limits": list(self.limits),
            "notes": list(self.notes),
            "decision": self.decision.to_json(),
            # An analysis made without a run selection (a test, a preview) has an empty window.
            "window": {} if self.window is None else self.window.to_json(),
            "model": self.model.to_json(),
        }


def _iso(value: datetime | None) -> str | None:
    return None if value is None else value.isoformat()


@dataclass(frozen=True, slots=True)
class Analysis:
    """The answer of ``stridewise analyze`` for one athlete at one time."""

    athlete_id: str
    generated_utc: datetime
    limiters: tuple[LimiterEstimate, ...]
    runs_used: int
    data: DataSummary | None = None  # what was available, and its limits (None: not recorded)
    weaker_side: str | None = None  # "left" | "right" from GCT balance, when judged
    model_version: str | None = None


@dataclass(frozen=True, slots=True)
class Preferences:
    """An athlete's plan preferences (stored in ``Athlete.preferences``)."""

    available_days: tuple[str, ...] = ("mon", "wed", "fri", "sat")
    sessions_per_week: int = 3
    minutes_per_session: int = 25
    equipment: tuple[str, ...] = ("none", "band", "step", "wall", "mat")
    level: str = "intermediate"  # beginner | intermediate | advanced
    avoid: tuple[str, ...] = ()  # contraindication tags to stay clear of (e.g. "achilles")
    long_run_day: str | None = "sun"
    quality_days: tuple[str, ...] = ("tue",)

    @classmethod
    def from_dict(cls, raw: dict[str, Any]) -> Preferences:
        known = {k: v for k, v in raw.items() if k in cls.__dataclass_fields__}
        for key in ("available_days", "equipment", "avoid", "quality_days"):
            if key in known:
                known[key] = tuple(known[key])
        return cls(**known)

    def to_dict(self) -> dict[str, Any]:
        return {
            "available_days": list(self.available_days),
            "sessions_per_week": self.sessions_per_week,
            "minutes_per_session": self.minutes_per_session,
            "equipment": list(self.equipment),
            "level": self.level,
            "avoid": list(self.avoid),
            "long_run_day": self.long_run_day,
            "quality_days": list(self.quality_days),
        }
