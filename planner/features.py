"""Per-run and per-athlete mechanics features: pure functions of validated stream frames.

One run becomes a :class:`RunFeatures`: the run is cut into one-minute windows of moving time;
the warm-up is skipped; windows with a pause, a speed change or too little data are dropped
(the rest are *steady*), and windows on slopes are marked (balance and stiffness are judged on
flat ground only). Every mechanics value is then compared with the population reference at the
window's own speed (:mod:`planner.reference`), which removes most of the effect of running
slowly or fast. Runs without running dynamics still give speed, cadence, step length and heart
rate features.

Several runs of one athlete become an :class:`AthleteFeatures`: windows are pooled, the
athlete's own regressions on speed are fitted (Zandbergen et al. 2023), and the model's feature
vector (:data:`MODEL_FEATURES`) is built.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import numpy as np
import numpy.typing as npt
import pandas as pd

from planner import reference as ref
from planner.records import Activity
from planner.schema import Col, StreamColumns

FloatArray = npt.NDArray[np.float64]
BoolArray = npt.NDArray[np.bool_]

#: Bump when any computation below changes: cached features of older versions are recomputed.
FEATURE_VERSION = "1"

#: Length of one analysis window of moving time. One minute holds ~170 steps, enough for a
#: stable median (Oliveira & Pirscoveanu recommend ≥ 25 steps); our choice.
WINDOW_S = 60.0
#: A gap between samples longer than this is a timer pause (auto-pause, traffic light). Our
#: choice: smart recording leaves gaps of up to ~7 s while moving.
PAUSE_GAP_S = 10.0
#: Below this speed a sample counts as standing still. Assumption.
STILL_MPS = 0.5
#: A window needs this share of its minute covered by samples. Assumption.
MIN_COVERAGE = 0.75
#: Drift and HR decoupling need this much steady running after the warm-up. Assumption: the
#: thirds compared are then ≥ 10 min each.
MIN_DRIFT_S = 30.0 * 60.0
MIN_DECOUPLING_S = 20.0 * 60.0
#: Windows per third needed to call a drift. Assumption.
MIN_DRIFT_WINDOWS = 5
#: A run is treated as intervals/fartlek when its moving windows' speeds spread this much
#: ((85th − 15th percentile) / median). Assumption.
INTERVAL_SPREAD = 0.2
#: ...and switches between fast and slow at least this often (two repeats). Assumption.
MIN_INTERVAL_SWITCHES = 3
#: A run is "trail" when fewer than half its running windows are flat. Assumption.
TRAIL_FLAT_SHARE = 0.5
#: The athlete's own speed slope needs this spread of window speeds (SD, m/s) and this many
#: windows; otherwise a slope would be noise. Assumption.
MIN_SPEED_SD_FOR_SLOPE = 0.25
MIN_WINDOWS_FOR_SLOPE = 10
#: A curved (quadratic) fit of step length on speed needs this range of speeds (5th–95th
#: percentile, m/s); narrower ranges get a straight line. Assumption.
MIN_SPEED_RANGE_FOR_CURVE = 1.0
#: Slopes beyond these bounds are clipped: they come from too little data, not from runners.
SLOPE_CLIP = 30.0

TREADMILL_SUB_SPORTS = frozenset({"treadmill", "indoor_running", "virtual_activity"})
TRAIL_SUB_SPORTS = frozenset({"trail", "mountain"})
INTERVAL_LAP_INTENSITIES = frozenset({"rest", "recovery", "interval"})

#: Per-window values kept for each steady window (raw values, then residuals at the same speed).
WINDOW_FIELDS: tuple[str, ...] = (
    "t_s",  # moving time at the window's middle, s
    "speed_mps",
    "grade_pct",
    "flat",  # 1.0 flat, 0.0 slope
    "cadence_spm",
    "step_length_m",
    "gct_ms",
    "vo_mm",
    "vr_pct",
    "balance_left_pct",
    "hr_bpm",
    "power_w",
    "form_power_ratio",
    "lss_kn_m",
    "cadence_resid_spm",
    "step_length_resid_m",
    "gct_resid_ms",
    "vo_resid_mm",
    "vr_resid_pct",
    "kvert_n_m_kg",
    "kvert_resid_pct",
    "lss_resid_pct",
)

#: The model's inputs, in order. Each is "after speed normalisation" (domain.md §4).
MODEL_FEATURES: tuple[str, ...] = (
    "cadence_resid_spm",
    "cadence_slope_resid",
    "gct_resid_ms",
    "vr_resid_pct",
    "lss_resid_pct",
    "vo_resid_mm",
    "vo_drift_mm",
    "gct_drift_ms",
    "form_power_ratio",
    "balance_dev_pts",
    "balance_drift_pts",
    "balance_speed_slope",
)

#: Which features speak for which area, and in which direction a worse value moves them
#: (+1: higher = more likely a limiter). From domain.md §4's table of watch signals.
AREA_FEATURES: dict[str, dict[str, int]] = {
    "push": {"gct_resid_ms": 1, "vr_resid_pct": 1, "lss_resid_pct": -1},
    "swing": {"cadence_resid_spm": -1, "cadence_slope_resid": -1},
    "posture_hip": {
        "vo_resid_mm": 1,
        "vo_drift_mm": 1,
        "gct_drift_ms": 1,
        "balance_drift_pts": 1,
        "form_power_ratio": 1,
    },
    "strength_balance": {
        "balance_dev_pts": 1,
        "balance_drift_pts": 1,
        "balance_speed_slope": 1,
    },
}

#: An area can be judged only when one of these is known (otherwise probability None).
AREA_REQUIRES: dict[str, tuple[str, ...]] = {
    "push": ("gct_resid_ms", "lss_resid_pct"),
    "swing": ("cadence_resid_spm",),
    "posture_hip": ("vo_resid_mm",),
    "strength_balance": ("balance_dev_pts",),
}

#: Run-level scalars (medians over steady windows unless noted).
RUN_SCALARS: tuple[str, ...] = (
    "speed_mps",
    "cadence_spm",
    "cadence_resid_spm",
    "step_length_m",
    "step_length_resid_m",
    "gct_ms",
    "gct_resid_ms",
    "duty_factor_pct",
    "vo_mm",
    "vo_resid_mm",
    "vr_pct",
    "vr_resid_pct",
    "kvert_kn_m",
    "kvert_n_m_kg",
    "kvert_resid_pct",
    "kleg_kn_m",
    "balance_left_pct",
    "hr_bpm",
    "hr_decoupling_pct",
    "form_power_ratio",
    "lss_kn_m",
    "lss_resid_pct",
    "cadence_drift_spm",
    "gct_drift_ms",
    "vo_drift_mm",
    "balance_drift_pts",
)


@dataclass(frozen=True, slots=True)
class RunFeatures:
    """One run's features: flags, run-level scalars, and its steady windows."""

    source: str
    start_utc: datetime
    sport: str
    treadmill: bool = False
    trail: bool = False
    intervals: bool = False
    moving_s: float = 0.0
    steady_s: float = 0.0
    flat_s: float = 0.0
    warmup_skipped_s: float = 0.0
    signals: tuple[str, ...] = ()
    scalars: dict[str, float] = field(default_factory=dict)
    windows: dict[str, FloatArray] = field(default_factory=dict)
    notes: tuple[str, ...] = ()
    sex: str | None = None
    height_m: float | None = None
    weight_kg: float | None = None

    def scalar(self, name: str) -> float:
        return self.scalars.get(name, math.nan)

    @property
    def n_windows(self) -> int:
        return len(self.windows.get("t_s", ()))

    def to_json(self) -> dict[str, Any]:
        """A JSON-safe dict (NaN → null) for the feature cache."""
        return {
            "source": self.source,
            "start_utc": self.start_utc.isoformat(),
            "sport": self.sport,
            "treadmill": self.treadmill,
            "trail": self.trail,
            "intervals": self.intervals,
            "moving_s": self.moving_s,
            "steady_s": self.steady_s,
            "flat_s": self.flat_s,
            "warmup_skipped_s": self.warmup_skipped_s,
            "signals": list(self.signals),
            "scalars": {k: _json_num(v) for k, v in self.scalars.items()},
            "windows": {k: [_json_num(x) for x in v.tolist()] for k, v in self.windows.items()},
            "notes": list(self.notes),
            "sex": self.sex,
            "height_m": self.height_m,
            "weight_kg": self.weight_kg,
        }

    @classmethod
    def from_json(cls, raw: Mapping[str, Any]) -> RunFeatures:
        return cls(
            source=raw["source"],
            start_utc=datetime.fromisoformat(raw["start_utc"]),
            sport=raw["sport"],
            treadmill=raw["treadmill"],
            trail=raw["trail"],
            intervals=raw["intervals"],
            moving_s=raw["moving_s"],
            steady_s=raw["steady_s"],
            flat_s=raw["flat_s"],
            warmup_skipped_s=raw["warmup_skipped_s"],
            signals=tuple(raw["signals"]),
            scalars={k: math.nan if v is None else float(v) for k, v in raw["scalars"].items()},
            windows={
                k: np.array([math.nan if x is None else x for x in v], dtype=np.float64)
                for k, v in raw["windows"].items()
            },
            notes=tuple(raw["notes"]),
            sex=raw["sex"],
            height_m=raw["height_m"],
            weight_kg=raw["weight_kg"],
        )


def _json_num(value: float) -> float | None:
    return None if value is None or math.isnan(value) else round(float(value), 5)


# -- one run --------------------------------------------------------------------------------


def _column(frame: pd.DataFrame, *cols: Col, positive: bool = False) -> FloatArray | None:
    """The first of ``cols`` holding any value; zeros dropped when ``positive`` (glitches)."""
    for col in cols:
        if col.value in frame.columns:
            values = frame[col.value].to_numpy(dtype=np.float64, copy=True)
            if positive:
                values[values <= 0.0] = np.nan
            if not np.isnan(values).all():
                return values
    return None


def _nanmedian(values: FloatArray) -> float:
    finite = values[~np.isnan(values)]
    return float(np.median(finite)) if finite.size else math.nan


#: Signals named in :attr:`RunFeatures.signals`, in that order.
_LISTED_SIGNALS: tuple[str, ...] = (
    "speed",
    "cadence",
    "gct",
    "vo",
    "balance",
    "hr",
    "power",
    "form_power",
    "lss",
    "grade",
)
#: Signals summarised per window: the listed ones plus the watch's own vertical ratio and
#: step length (derived from the others where missing).
_WINDOW_SIGNALS: tuple[str, ...] = (*_LISTED_SIGNALS, "vr", "step_mm")


@dataclass(frozen=True, slots=True)
class _Signals:
    """A run's per-second columns; None where the run does not hold one."""

    speed: FloatArray | None
    cadence: FloatArray | None
    gct: FloatArray | None
    vo: FloatArray | None
    vr: FloatArray | None
    step_mm: FloatArray | None
    balance: FloatArray | None
    hr: FloatArray | None
    power: FloatArray | None
    form_power: FloatArray | None
    lss: FloatArray | None
    grade: FloatArray | None
    stryd_gct: bool  # contact time from a Stryd pod, on its own (shorter) scale
    has_gps: bool

    def present(self) -> tuple[str, ...]:
        """The listed signals this run holds."""
        return tuple(name for name in _LISTED_SIGNALS if getattr(self, name) is not None)

    def per_second(self) -> dict[str, FloatArray]:
        """The columns to summarise per window, by signal name."""
        columns = ((name, getattr(self, name)) for name in _WINDOW_SIGNALS)
        return {name: arr for name, arr in columns if arr is not None}


def _read_signals(frame: pd.DataFrame) -> _Signals:
    """Pick each signal's column; the watch's contact time wins over a Stryd pod's."""
    gct_watch = _column(frame, Col.GCT_MS, positive=True)
    gct_stryd = None if gct_watch is not None else _column(frame, Col.STRYD_GCT_MS, positive=True)
    return _Signals(
        speed=_column(frame, Col.SPEED_MPS),
        cadence=_column(frame, Col.CADENCE_SPM, Col.STRYD_CADENCE_SPM, positive=True),
        gct=gct_watch if gct_watch is not None else gct_stryd,
        vo=_column(
            frame, Col.VERTICAL_OSCILLATION_MM, Col.STRYD_VERTICAL_OSCILLATION_MM, positive=True
        ),
        vr=_column(frame, Col.VERTICAL_RATIO_PCT, positive=True),
        step_mm=_column(frame, Col.STEP_LENGTH_MM, positive=True),
        balance=_column(frame, Col.GCT_BALANCE_LEFT_PCT, positive=True),
        hr=_column(frame, Col.HEART_RATE_BPM, positive=True),
        power=_column(frame, Col.STRYD_POWER_W, Col.POWER_W, positive=True),
        form_power=_column(frame, Col.FORM_POWER_W, positive=True),
        lss=_column(frame, Col.LEG_SPRING_STIFFNESS_KN_M, positive=True),
        grade=_column(frame, Col.GRADE_PCT),
        stryd_gct=gct_watch is None and gct_stryd is not None,
        has_gps=_column(frame, Col.LAT_DEG) is not None,
    )


@dataclass(frozen=True, slots=True)
class _Clock:
    """Moving time per sample: pauses and standing still do not count."""

    moving: BoolArray  # the sample is not standing still
    contrib: FloatArray  # seconds the sample adds to moving time
    paused: FloatArray  # 1.0 where the sample follows a pause or stands still
    t_mov: FloatArray  # moving time at the sample, s

    @property
    def moving_s(self) -> float:
        return float(self.t_mov[-1])

    @property
    def warmup_s(self) -> float:
        """Moving time skipped as warm-up: at most half of a short run."""
        return min(ref.WARMUP_S, 0.5 * self.moving_s)


def _moving_clock(index: pd.Index, speed: FloatArray | None) -> _Clock:
    ns = pd.DatetimeIndex(index).as_unit("ns").asi8
    t = (ns - ns[0]).astype(np.float64) / 1e9
    dt = np.diff(t, prepend=t[0])
    gap = dt > PAUSE_GAP_S
    # NaN speed (a dropout) counts as moving; without any speed, every sample does.
    moving = np.ones(len(t), dtype=bool) if speed is None else ~(speed < STILL_MPS)
    paused = gap | ~moving
    contrib = np.where(paused, 0.0, dt)
    return _Clock(moving, contrib, paused.astype(float), np.cumsum(contrib))


@dataclass(frozen=True, slots=True)
class _Windows:
    """One run cut into windows of moving time: medians and what qualifies each window."""

    medians: pd.DataFrame  # one row per window, one column per signal
    mid_s: FloatArray  # moving time at the window's middle, s
    cover: FloatArray  # share of the minute covered by samples
    paused: BoolArray  # the window holds a pause or standing still
    speed_cv: FloatArray  # speed SD / mean within the window; inf without speed

    def col(self, name: str) -> FloatArray:
        """A signal's window medians (NaN when the run does not hold it)."""
        if name in self.medians.columns:
            return self.medians[name].to_numpy(dtype=np.float64)
        return np.full(len(self.medians), np.nan)


def _window_medians(clock: _Clock, signals: _Signals) -> _Windows:
    # Windows are contiguous in the sample order because moving time never decreases.
    win = np.floor(clock.t_mov / WINDOW_S).astype(np.int64)
    table = pd.DataFrame({"contrib": clock.contrib, "paused": clock.paused, **signals.per_second()})
    groups = table.groupby(win, sort=True)
    medians = groups.median()
    cover = groups["contrib"].sum().to_numpy() / WINDOW_S
    paused = groups["paused"].max().to_numpy() > 0
    cv = np.full(len(cover), np.inf)
    if signals.speed is not None:
        sd = groups["speed"].std(ddof=0).to_numpy()
        mean = groups["speed"].mean().to_numpy()
        with np.errstate(invalid="ignore", divide="ignore"):
            cv = sd / mean
    mid_s = (medians.index.to_numpy() + 0.5) * WINDOW_S
    return _Windows(medians, mid_s, cover, paused, cv)


@dataclass(frozen=True, slots=True)
class _RunKind:
    """What kind of run this is, and which of its windows count."""

    treadmill: bool
    trail: bool
    intervals: bool
    flat: BoolArray  # per window: on flat ground (or no slope known)
    steady: BoolArray  # per window: steady running after the warm-up


def _is_treadmill(activity: Activity, signals: _Signals) -> bool:
    # Speed without GPS comes from the watch's own estimate, as on a treadmill.
    sub_sport = (activity.sub_sport or "").lower()
    return sub_sport in TREADMILL_SUB_SPORTS or (signals.speed is not None and not signals.has_gps)


def _flat_windows(windows: _Windows, graded: bool) -> BoolArray:
    """Windows on flat ground; all of them when the run has no usable grade."""
    if not graded:
        return np.ones(len(windows.medians), dtype=bool)
    grade = windows.col("grade")
    return (np.abs(grade) <= ref.FLAT_GRADE_PCT) & ~np.isnan(grade)


def _is_intervals(activity: Activity, windows: _Windows, warmup_s: float) -> bool:
    """Laps marked as work/rest, or window speeds that swing back and forth."""
    intensities = {(lap.intensity or "").lower() for lap in activity.laps}
    if intensities & INTERVAL_LAP_INTENSITIES:
        return True
    speed = windows.col("speed")
    moving = (
        (windows.cover >= MIN_COVERAGE)
        & ~windows.paused
        & (windows.mid_s >= warmup_s)
        & (speed >= STILL_MPS)
    )
    return _alternating(speed[moving])


def _is_trail(activity: Activity, graded: bool, running: BoolArray, flat: BoolArray) -> bool:
    """Marked as trail, or fewer than :data:`TRAIL_FLAT_SHARE` of the running is flat."""
    if (activity.sub_sport or "").lower() in TRAIL_SUB_SPORTS:
        return True
    return bool(graded and running.sum() >= 5 and float(flat[running].mean()) < TRAIL_FLAT_SHARE)


def _classify(activity: Activity, signals: _Signals, clock: _Clock, windows: _Windows) -> _RunKind:
    """Treadmill, trail or intervals, and which windows are flat and steady (docs/model.md)."""
    treadmill = _is_treadmill(activity, signals)
    # Treadmill runs count as flat (docs/model.md), whatever grade the file carries.
    graded = signals.grade is not None and not treadmill
    flat = _flat_windows(windows, graded)
    # Without speed every window's speed is NaN, so no window counts as running.
    running = (
        (windows.col("speed") >= ref.RUN_MIN_SPEED_MPS)
        & (windows.cover >= MIN_COVERAGE)
        & ~windows.paused
    )
    after_warmup = windows.mid_s >= clock.warmup_s
    return _RunKind(
        treadmill=treadmill,
        trail=_is_trail(activity, graded, running, flat),
        intervals=_is_intervals(activity, windows, clock.warmup_s),
        flat=flat,
        steady=running & after_warmup & (windows.speed_cv <= ref.STEADY_SPEED_CV),
    )


def _window_measures(windows: _Windows, kind: _RunKind) -> dict[str, FloatArray]:
    """The steady windows' values; step length and vertical ratio derived where not recorded."""
    keep = np.flatnonzero(kind.steady)
    speed = windows.col("speed")[keep]
    cadence = windows.col("cadence")[keep]
    vo = windows.col("vo")[keep]
    power = windows.col("power")[keep]
    measured_sl = windows.col("step_mm")[keep] / 1000.0
    measured_vr = windows.col("vr")[keep]
    with np.errstate(invalid="ignore", divide="ignore"):
        step_length = np.where(np.isnan(measured_sl), speed * 60.0 / cadence, measured_sl)
        vr_derived = 100.0 * vo / (1000.0 * step_length)
        form_power_ratio = windows.col("form_power")[keep] / power
    return {
        "t_s": windows.mid_s[keep],
        "speed_mps": speed,
        "grade_pct": windows.col("grade")[keep],
        "flat": kind.flat[keep].astype(np.float64),
        "cadence_spm": cadence,
        "step_length_m": step_length,
        "gct_ms": windows.col("gct")[keep],
        "vo_mm": vo,
        "vr_pct": np.where(np.isnan(measured_vr), vr_derived, measured_vr),
        "balance_left_pct": windows.col("balance")[keep],
        "hr_bpm": windows.col("hr")[keep],
        "power_w": power,
        "form_power_ratio": form_power_ratio,
        "lss_kn_m": windows.col("lss")[keep],
    }


def _kvert_n_m_kg(wins: Mapping[str, FloatArray], stryd_gct: bool) -> FloatArray:
    """Vertical stiffness per window, flat windows only (invalid on inclines, Meyer 2023)."""
    # On the force-plate scale: watch GCT minus the watch offset (reference.py).
    gct = wins["gct_ms"]
    gct_phys = gct if stryd_gct else gct - ref.WATCH_GCT_OFFSET_MS
    k_vert = ref.spring_mass(gct_phys, wins["cadence_spm"], wins["speed_mps"]).k_vert_n_m
    return np.where(wins["flat"] > 0, k_vert, np.nan)


def _lss_resid_pct(wins: Mapping[str, FloatArray], activity: Activity) -> FloatArray:
    """Stryd's leg stiffness against the spring-mass estimate (needs height and weight)."""
    if not (activity.height_m and activity.weight_kg):
        return np.full(len(wins["t_s"]), np.nan)
    kleg_ref = ref.k_leg_ref_kn_m(
        wins["speed_mps"], activity.weight_kg, activity.height_m, activity.sex
    )
    return 100.0 * (wins["lss_kn_m"] - kleg_ref) / kleg_ref


def _window_residuals(
    wins: Mapping[str, FloatArray], activity: Activity, stryd_gct: bool
) -> dict[str, FloatArray]:
    """Each window's values against the population reference at the window's own speed."""
    v, sex = wins["speed_mps"], activity.sex
    k_vert = _kvert_n_m_kg(wins, stryd_gct)
    k_ref = ref.k_vert_ref_n_m_kg(v, sex)
    return {
        "cadence_resid_spm": wins["cadence_spm"] - ref.cadence_ref_spm(v),
        "step_length_resid_m": wins["step_length_m"] - ref.step_length_ref_m(v),
        "gct_resid_ms": wins["gct_ms"] - ref.gct_ref_ms(v, sex, stryd=stryd_gct),
        "vo_resid_mm": wins["vo_mm"] - ref.vo_ref_mm(v),
        "vr_resid_pct": wins["vr_pct"] - ref.vr_ref_pct(v),
        "kvert_n_m_kg": k_vert,
        "kvert_resid_pct": 100.0 * (k_vert - k_ref) / k_ref,
        "lss_resid_pct": _lss_resid_pct(wins, activity),
    }


def _scalars(
    wins: dict[str, FloatArray],
    activity: Activity,
    signals: _Signals,
    clock: _Clock,
    kind: _RunKind,
) -> dict[str, float]:
    """Run-level medians and drifts (no drift for intervals: the pace changes on purpose)."""
    flat = wins["flat"] > 0
    scalars = _run_scalars(wins, flat, activity, signals.stryd_gct)
    if kind.intervals:
        scalars.update(dict.fromkeys(_DRIFT_SCALARS, math.nan))
    else:
        scalars.update(_drifts(wins, flat))
    if signals.speed is None and signals.cadence is not None:
        # Without speed no window is steady; the cadence of the run still says something.
        scalars["cadence_spm"] = _nanmedian(signals.cadence[clock.moving])
    return scalars


def _run_notes(
    signals: _Signals, clock: _Clock, kind: _RunKind, steady_windows: int
) -> tuple[str, ...]:
    """What limits this run's features, in plain words."""
    notes: list[str] = []
    if signals.speed is None:
        notes.append("no speed: nothing can be compared at the same speed")
    if clock.moving_s < 2.0 * ref.WARMUP_S:
        notes.append(
            f"short run: skipped only the first {clock.warmup_s / 60:.0f} min as warm-up"
            " (values settle after 11–17 min)"
        )
    if signals.grade is None and not kind.treadmill and signals.speed is not None:
        notes.append("no elevation data: the flat-ground filter could not be applied")
    if kind.intervals:
        notes.append("intervals or fartlek: drift and heart-rate decoupling not computed")
    if kind.trail:
        notes.append("trail or hilly run: only flat stretches count for balance and stiffness")
    if kind.treadmill:
        notes.append("treadmill: speed comes from the watch's own estimate")
    if signals.speed is not None and not steady_windows:
        notes.append("no steady running after the warm-up")
    return tuple(notes)


def run_features(stream: pd.DataFrame | StreamColumns, activity: Activity) -> RunFeatures:
    """Features of one run from its validated stream and metadata (pure).

    Parameters
    ----------
    stream : a validated stream: the columns a connector or the simulator built, or the frame
        the store's ``load_stream`` reads (the feature code works on a frame).
    activity : the run's metadata (sub-sport, laps, body data, source).

    Returns
    -------
    RunFeatures; runs without speed or without running dynamics yield what they support, and
    ``notes`` says what was missing.
    """
    identity: dict[str, Any] = {
        "source": activity.source.value,
        "start_utc": activity.start_utc,
        "sport": activity.sport,
        "sex": activity.sex,
        "height_m": activity.height_m,
        "weight_kg": activity.weight_kg,
    }
    frame = stream.to_frame() if isinstance(stream, StreamColumns) else stream
    if len(frame.index) < 2:
        return RunFeatures(**identity, notes=("no per-second data",))
    signals = _read_signals(frame)
    clock = _moving_clock(frame.index, signals.speed)
    windows = _window_medians(clock, signals)
    kind = _classify(activity, signals, clock, windows)
    wins = _window_measures(windows, kind)
    wins.update(_window_residuals(wins, activity, signals.stryd_gct))
    steady_windows = len(wins["t_s"])
    return RunFeatures(
        **identity,
        treadmill=kind.treadmill,
        trail=kind.trail,
        intervals=kind.intervals,
        moving_s=clock.moving_s,
        steady_s=float(steady_windows * WINDOW_S),
        flat_s=float((wins["flat"] > 0).sum() * WINDOW_S),
        warmup_skipped_s=clock.warmup_s,
        signals=signals.present(),
        scalars=_scalars(wins, activity, signals, clock, kind),
        windows=wins,
        notes=_run_notes(signals, clock, kind, steady_windows),
    )


def _alternating(speeds: FloatArray) -> bool:
    """Whether window speeds after the warm-up swing between fast and slow, repeatedly.

    A spread alone is not enough (a warm-up then a tempo, or a progression run, spread too);
    intervals and fartlek switch back and forth at least :data:`MIN_INTERVAL_SWITCHES` times.
    """
    if len(speeds) < 6:
        return False
    p15, p50, p85 = np.percentile(speeds, [15, 50, 85])
    if (p85 - p15) / p50 <= INTERVAL_SPREAD:
        return False
    state = np.where(speeds > p50 * 1.08, 1, np.where(speeds < p50 * 0.92, -1, 0))
    state = state[state != 0]
    return int(np.count_nonzero(np.diff(state))) >= MIN_INTERVAL_SWITCHES


#: Window metrics summarised by their median over flat steady windows, per run and pooled
#: over an athlete's runs (flat: balance and stiffness are invalid on inclines, domain.md §3).
_FLAT_MEDIANS: tuple[str, ...] = (
    "cadence_spm",
    "cadence_resid_spm",
    "step_length_m",
    "step_length_resid_m",
    "gct_ms",
    "gct_resid_ms",
    "vo_mm",
    "vo_resid_mm",
    "vr_pct",
    "vr_resid_pct",
    "kvert_n_m_kg",
    "kvert_resid_pct",
    "balance_left_pct",
    "form_power_ratio",
    "lss_kn_m",
    "lss_resid_pct",
)


def _run_scalars(
    wins: dict[str, FloatArray], flat: BoolArray, activity: Activity, stryd_gct: bool
) -> dict[str, float]:
    """Medians over the flat steady windows (all steady windows for speed and heart rate)."""
    out = dict.fromkeys(RUN_SCALARS, math.nan)
    if not len(wins["t_s"]):
        return out
    out["speed_mps"] = _nanmedian(wins["speed_mps"])
    out["hr_bpm"] = _nanmedian(wins["hr_bpm"])
    for name in _FLAT_MEDIANS:
        out[name] = _nanmedian(wins[name][flat])
    gct, cad, v = out["gct_ms"], out["cadence_spm"], out["speed_mps"]
    # Duty factor per stride, as Garmin's "stance time %": contact / (2 × step time).
    out["duty_factor_pct"] = 100.0 * gct / (2.0 * 60000.0 / cad)
    if activity.weight_kg:
        out["kvert_kn_m"] = out["kvert_n_m_kg"] * activity.weight_kg / 1000.0
        if activity.height_m and not math.isnan(gct):
            gct_phys = gct if stryd_gct else gct - ref.WATCH_GCT_OFFSET_MS
            est = ref.spring_mass(
                gct_phys, cad, v, mass_kg=activity.weight_kg, height_m=activity.height_m
            )
            assert est.k_leg_n_m is not None
            out["kleg_kn_m"] = float(est.k_leg_n_m) / 1000.0
    return out


#: Run scalars that compare the late run with the early run.
_DRIFT_SCALARS: tuple[str, ...] = (
    "cadence_drift_spm",
    "gct_drift_ms",
    "vo_drift_mm",
    "balance_drift_pts",
    "hr_decoupling_pct",
)


def _thirds(t: FloatArray, mask: BoolArray) -> tuple[BoolArray, ...]:
    """Masks of the first and last third (by time) of the masked windows."""
    if mask.sum() < 3 * MIN_DRIFT_WINDOWS:
        return ()
    lo, hi = float(t[mask].min()), float(t[mask].max())
    if hi - lo < MIN_DRIFT_S - WINDOW_S:
        return ()
    span = (hi - lo) / 3.0
    early = mask & (t <= lo + span)
    late = mask & (t >= hi - span)
    if early.sum() < MIN_DRIFT_WINDOWS or late.sum() < MIN_DRIFT_WINDOWS:
        return ()
    return early, late


def _drifts(wins: dict[str, FloatArray], flat: BoolArray) -> dict[str, float]:
    """Late-run drift after speed correction, and heart-rate decoupling (steady runs only).

    Drift = median residual in the last third of the steady running after warm-up minus the
    first third (Clermont et al. 2019; residuals are already corrected for speed, Zandbergen
    et al. 2023). Balance drift is in points of % left (signed).
    """
    out = dict.fromkeys(_DRIFT_SCALARS, math.nan)
    t = wins["t_s"]
    for out_name, name, mask in (
        ("cadence_drift_spm", "cadence_resid_spm", flat),
        ("gct_drift_ms", "gct_resid_ms", flat),
        ("vo_drift_mm", "vo_resid_mm", flat),
        ("balance_drift_pts", "balance_left_pct", flat),
    ):
        m = mask & ~np.isnan(wins[name])
        parts = _thirds(t, m)
        if parts:
            early, late = parts
            out[out_name] = _nanmedian(wins[name][late]) - _nanmedian(wins[name][early])
    # Aerobic decoupling: efficiency (speed / HR) of the first half vs the second half.
    m = ~np.isnan(wins["hr_bpm"])
    if m.sum() >= 2 * MIN_DRIFT_WINDOWS:
        lo, hi = float(t[m].min()), float(t[m].max())
        if hi - lo >= MIN_DECOUPLING_S - WINDOW_S:
            mid = (lo + hi) / 2.0
            first, second = m & (t <= mid), m & (t > mid)
            ef1 = _nanmedian(wins["speed_mps"][first] / wins["hr_bpm"][first])
            ef2 = _nanmedian(wins["speed_mps"][second] / wins["hr_bpm"][second])
            out["hr_decoupling_pct"] = 100.0 * (ef1 - ef2) / ef1
    return out


# -- one athlete ----------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class LineFit:
    """An athlete's own linear (or quadratic) fit of a metric on speed."""

    coef: tuple[float, ...]  # highest power first, as numpy.polyfit
    speed_lo: float
    speed_hi: float
    n: int

    def __call__(self, speed_mps: FloatArray | float) -> FloatArray:
        return np.asarray(np.polyval(self.coef, speed_mps))

    @property
    def slope(self) -> float:
        return float(self.coef[-2]) if len(self.coef) == 2 else math.nan


@dataclass(frozen=True, slots=True)
class AthleteFeatures:
    """Pooled features of one athlete's recent runs: the model's input plus what explains it."""

    values: dict[str, float]  # MODEL_FEATURES and display values; NaN when unknown
    runs: int
    runs_with: dict[str, int]  # signal → number of runs holding it
    pooled: dict[str, FloatArray]  # flat steady windows of all runs, plus "run" (index)
    fits: dict[str, LineFit]
    side: str | None  # "left" | "right": the side with longer contact, when balance is known
    sex: str | None
    height_m: float | None
    weight_kg: float | None
    speed_range_mps: tuple[float, float] | None
    run_flags: dict[str, int]  # treadmill / trail / intervals / drift-capable counts
    sources: dict[str, int]

    def vector(self) -> FloatArray:
        """The model's input row, in :data:`MODEL_FEATURES` order."""
        return np.array([self.values.get(k, math.nan) for k in MODEL_FEATURES], dtype=np.float64)

    def value(self, name: str) -> float:
        return self.values.get(name, math.nan)

    def judgeable(self, area: str) -> bool:
        return any(not math.isnan(self.value(k)) for k in AREA_REQUIRES[area])


def _weighted_mean(values: Sequence[float], weights: Sequence[float]) -> float:
    pairs = [(v, w) for v, w in zip(values, weights, strict=True) if not math.isnan(v) and w > 0]
    if not pairs:
        return math.nan
    total = sum(w for _, w in pairs)
    return sum(v * w for v, w in pairs) / total


def _slope(x: FloatArray, y: FloatArray) -> float:
    m = ~np.isnan(x) & ~np.isnan(y)
    if m.sum() < MIN_WINDOWS_FOR_SLOPE or float(np.std(x[m])) < MIN_SPEED_SD_FOR_SLOPE:
        return math.nan
    slope = float(np.polyfit(x[m], y[m], 1)[0])
    return float(np.clip(slope, -SLOPE_CLIP, SLOPE_CLIP))


def _fit(x: FloatArray, y: FloatArray, degree: int = 1) -> LineFit | None:
    m = ~np.isnan(x) & ~np.isnan(y)
    if m.sum() < 3:
        return None
    xs, ys = x[m], y[m]
    spread = float(np.std(xs))
    lo, hi = np.percentile(xs, [5, 95])
    if spread < MIN_SPEED_SD_FOR_SLOPE:
        degree = 0  # about one pace: the athlete's level only
    elif hi - lo < MIN_SPEED_RANGE_FOR_CURVE or m.sum() < 20:
        degree = min(degree, 1)
    coef = np.polyfit(xs, ys, degree)
    if degree == 0:
        coef = np.array([0.0, coef[0]])
    return LineFit(tuple(float(c) for c in coef), float(xs.min()), float(xs.max()), int(m.sum()))


def _pool_flat_windows(runs: Sequence[RunFeatures]) -> dict[str, FloatArray]:
    """The flat steady windows of all runs, one array per window field, plus "run" (index)."""
    pooled: dict[str, list[FloatArray]] = {name: [] for name in (*WINDOW_FIELDS, "run")}
    for i, run in enumerate(runs):
        if not run.n_windows:
            continue
        flat = run.windows["flat"] > 0
        for name in WINDOW_FIELDS:
            pooled[name].append(run.windows.get(name, np.full(run.n_windows, np.nan))[flat])
        pooled["run"].append(np.full(int(flat.sum()), float(i)))
    return {
        k: (np.concatenate(v) if v else np.empty(0, dtype=np.float64)) for k, v in pooled.items()
    }


def _side_sign(balance_left_pct: float) -> float:
    """+1 when the left foot stays longer on the ground, −1 the right, 0 unknown."""
    if math.isnan(balance_left_pct):
        return 0.0
    # 50.0 exactly counts as left so that a worsening never flips the side.
    return 1.0 if balance_left_pct >= ref.BALANCE_CENTRE_PCT else -1.0


def _balance_values(
    pool: Mapping[str, FloatArray], balance_left_pct: float, side_sign: float
) -> dict[str, float]:
    """How far the balance is off centre, and how that changes with speed (toward the side)."""
    if not side_sign:
        return {}
    off_centre = (pool["balance_left_pct"] - ref.BALANCE_CENTRE_PCT) * side_sign
    return {
        "balance_dev_pts": abs(balance_left_pct - ref.BALANCE_CENTRE_PCT),
        "balance_speed_slope": _slope(pool["speed_mps"], off_centre),
    }


def _cadence_slope(pool: Mapping[str, FloatArray]) -> dict[str, float]:
    """The athlete's own cadence gain with speed, and how it compares with the population's."""
    slope = _slope(pool["speed_mps"], pool["cadence_spm"])
    return {
        "cadence_slope_spm_per_mps": slope,
        "cadence_slope_resid": slope - ref.CADENCE_SLOPE_SPM_PER_MPS,
    }


def _drift_means(runs: Sequence[RunFeatures], side_sign: float) -> dict[str, float]:
    """Drifts averaged over the runs, weighted by steady time; balance drift toward the side."""
    weights = [r.steady_s for r in runs]
    out = {
        name: _weighted_mean([r.scalar(name) for r in runs], weights)
        for name in ("cadence_drift_spm", "gct_drift_ms", "vo_drift_mm", "hr_decoupling_pct")
    }
    if side_sign:
        out["balance_drift_pts"] = _weighted_mean(
            [r.scalar("balance_drift_pts") * side_sign for r in runs], weights
        )
    return out


@dataclass(frozen=True, slots=True)
class _Body:
    sex: str | None
    height_m: float | None
    weight_kg: float | None


def _latest_body(runs: Sequence[RunFeatures]) -> _Body:
    """The newest body data; height and weight from one run when a run holds both."""
    newest_first = runs[::-1]
    sex = next((r.sex for r in newest_first if r.sex), None)
    both = next((r for r in newest_first if r.height_m and r.weight_kg), None)
    if both is not None:
        return _Body(sex, both.height_m, both.weight_kg)
    return _Body(
        sex,
        next((r.height_m for r in newest_first if r.height_m), None),
        next((r.weight_kg for r in newest_first if r.weight_kg), None),
    )


def _speed_fits(pool: Mapping[str, FloatArray]) -> dict[str, LineFit]:
    """The athlete's own fits on speed, for the metrics that have enough data."""
    speed = pool["speed_mps"]
    fits = {
        name: _fit(speed, pool[name])
        for name in ("cadence_spm", "gct_ms", "vo_mm", "vr_pct", "balance_left_pct")
    }
    # Step length vs speed: quadratic per runner (Bailey et al. 2017).
    fits["step_length_m"] = _fit(speed, pool["step_length_m"], degree=2)
    return {name: fitted for name, fitted in fits.items() if fitted is not None}


def _speed_range(speed: FloatArray) -> tuple[float, float] | None:
    """The 5th–95th percentile of window speeds (m/s), None without speed."""
    finite = speed[~np.isnan(speed)]
    if not finite.size:
        return None
    return float(np.percentile(finite, 5)), float(np.percentile(finite, 95))


def _runs_with(runs: Sequence[RunFeatures]) -> dict[str, int]:
    """How many runs hold each signal, and how many have steady running."""
    counts = {
        sig: sum(1 for r in runs if sig in r.signals)
        for sig in ("speed", "cadence", "gct", "vo", "balance", "hr", "power", "form_power", "lss")
    }
    counts["steady"] = sum(1 for r in runs if r.n_windows)
    return counts


def _has_drift(run: RunFeatures) -> bool:
    return not math.isnan(run.scalar("gct_drift_ms")) or not math.isnan(
        run.scalar("cadence_drift_spm")
    )


def _run_flags(runs: Sequence[RunFeatures]) -> dict[str, int]:
    return {
        "treadmill": sum(r.treadmill for r in runs),
        "trail": sum(r.trail for r in runs),
        "intervals": sum(r.intervals for r in runs),
        "with_drift": sum(1 for r in runs if _has_drift(r)),
    }


def _values(
    runs: Sequence[RunFeatures], pool: Mapping[str, FloatArray], body: _Body
) -> dict[str, float]:
    """The model's features and the display values, NaN where unknown."""
    values: dict[str, float] = dict.fromkeys(MODEL_FEATURES, math.nan)
    for name in ("speed_mps", *_FLAT_MEDIANS, "hr_bpm"):
        values[name] = _nanmedian(pool[name])
    side_sign = _side_sign(values["balance_left_pct"])
    values.update(_balance_values(pool, values["balance_left_pct"], side_sign))
    values.update(_cadence_slope(pool))
    values.update(_drift_means(runs, side_sign))
    if body.weight_kg and not math.isnan(values["kvert_n_m_kg"]):
        values["kvert_kn_m"] = values["kvert_n_m_kg"] * body.weight_kg / 1000.0
    values["steady_min"] = sum(r.steady_s for r in runs) / 60.0
    values["flat_min"] = sum(r.flat_s for r in runs) / 60.0
    return values


def athlete_features(runs: Sequence[RunFeatures]) -> AthleteFeatures:
    """Pool one athlete's runs into the model's feature row (pure).

    Residuals are pooled over the flat steady windows of all runs (median); drifts are averaged
    over the runs long and steady enough to show one, weighted by steady minutes; the athlete's
    own slopes on speed come from the pooled windows (Zandbergen et al. 2023).
    """
    runs = list(runs)
    pool = _pool_flat_windows(runs)
    body = _latest_body(runs)
    values = _values(runs, pool, body)
    side = {1.0: "left", -1.0: "right"}.get(_side_sign(values["balance_left_pct"]))
    return AthleteFeatures(
        values=values,
        runs=len(runs),
        runs_with=_runs_with(runs),
        pooled=pool,
        fits=_speed_fits(pool),
        side=side,
        sex=body.sex,
        height_m=body.height_m,
        weight_kg=body.weight_kg,
        speed_range_mps=_speed_range(pool["speed_mps"]),
        run_flags=_run_flags(runs),
        sources=dict(Counter(r.source for r in runs)),
    )
