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
    frame = stream.to_frame() if isinstance(stream, StreamColumns) else stream
    base: dict[str, Any] = {
        "source": activity.source.value,
        "start_utc": activity.start_utc,
        "sport": activity.sport,
        "sex": activity.sex,
        "height_m": activity.height_m,
        "weight_kg": activity.weight_kg,
    }
    if len(frame.index) < 2:
        return RunFeatures(**base, notes=("no per-second data",))
    notes: list[str] = []
    ns = pd.DatetimeIndex(frame.index).as_unit("ns").asi8
    t = (ns - ns[0]).astype(np.float64) / 1e9
    dt = np.diff(t, prepend=t[0])
    gap = dt > PAUSE_GAP_S
    speed = _column(frame, Col.SPEED_MPS)
    cadence = _column(frame, Col.CADENCE_SPM, Col.STRYD_CADENCE_SPM, positive=True)
    gct_watch = _column(frame, Col.GCT_MS, positive=True)
    gct_stryd = None if gct_watch is not None else _column(frame, Col.STRYD_GCT_MS, positive=True)
    vo = _column(
        frame, Col.VERTICAL_OSCILLATION_MM, Col.STRYD_VERTICAL_OSCILLATION_MM, positive=True
    )
    vr = _column(frame, Col.VERTICAL_RATIO_PCT, positive=True)
    step_mm = _column(frame, Col.STEP_LENGTH_MM, positive=True)
    balance = _column(frame, Col.GCT_BALANCE_LEFT_PCT, positive=True)
    hr = _column(frame, Col.HEART_RATE_BPM, positive=True)
    power = _column(frame, Col.STRYD_POWER_W, Col.POWER_W, positive=True)
    form_power = _column(frame, Col.FORM_POWER_W, positive=True)
    lss = _column(frame, Col.LEG_SPRING_STIFFNESS_KN_M, positive=True)
    grade = _column(frame, Col.GRADE_PCT)
    has_gps = _column(frame, Col.LAT_DEG) is not None

    signals = [
        name
        for name, arr in (
            ("speed", speed),
            ("cadence", cadence),
            ("gct", gct_watch if gct_watch is not None else gct_stryd),
            ("vo", vo),
            ("balance", balance),
            ("hr", hr),
            ("power", power),
            ("form_power", form_power),
            ("lss", lss),
            ("grade", grade),
        )
        if arr is not None
    ]
    sub_sport = (activity.sub_sport or "").lower()
    treadmill = sub_sport in TREADMILL_SUB_SPORTS or (speed is not None and not has_gps)
    if speed is None:
        notes.append("no speed: nothing can be compared at the same speed")
        moving = np.ones(len(t), dtype=bool)
    else:
        moving = ~(speed < STILL_MPS)  # NaN speed (dropout) counts as moving
    contrib = np.where(gap, 0.0, dt) * moving
    t_mov = np.cumsum(contrib)
    moving_s = float(t_mov[-1])
    warmup = min(ref.WARMUP_S, 0.5 * moving_s)
    if moving_s < 2.0 * ref.WARMUP_S:
        notes.append(
            f"short run: skipped only the first {warmup / 60:.0f} min as warm-up"
            " (values settle after 11–17 min)"
        )

    # Per-window medians (windows of moving time; contiguous because t_mov never decreases).
    win = np.floor(t_mov / WINDOW_S).astype(np.int64)
    cols: dict[str, FloatArray] = {"contrib": contrib, "paused": (gap | ~moving).astype(float)}
    for name, arr in (
        ("speed", speed),
        ("cadence", cadence),
        ("gct", gct_watch if gct_watch is not None else gct_stryd),
        ("vo", vo),
        ("vr", vr),
        ("step_mm", step_mm),
        ("balance", balance),
        ("hr", hr),
        ("power", power),
        ("form_power", form_power),
        ("lss", lss),
        ("grade", grade),
    ):
        if arr is not None:
            cols[name] = arr
    table = pd.DataFrame(cols)
    groups = table.groupby(win, sort=True)
    med = groups.median()
    cover = groups["contrib"].sum().to_numpy() / WINDOW_S
    paused = groups["paused"].max().to_numpy() > 0
    cv = np.full(len(cover), np.inf)
    if speed is not None:
        sd = groups["speed"].std(ddof=0).to_numpy()
        mean = groups["speed"].mean().to_numpy()
        with np.errstate(invalid="ignore", divide="ignore"):
            cv = sd / mean
    w_index = med.index.to_numpy()
    w_mid = (w_index + 0.5) * WINDOW_S

    def wcol(name: str) -> FloatArray:
        if name in med.columns:
            return med[name].to_numpy(dtype=np.float64)
        return np.full(len(med), np.nan)

    w_speed = wcol("speed")
    w_grade = wcol("grade")
    running = (w_speed >= ref.RUN_MIN_SPEED_MPS) & (cover >= MIN_COVERAGE) & ~paused
    if speed is None:
        running = np.zeros(len(med), dtype=bool)
    if grade is None or treadmill:
        flat_w = np.ones(len(med), dtype=bool)
        if grade is None and not treadmill and speed is not None:
            notes.append("no elevation data: the flat-ground filter could not be applied")
    else:
        flat_w = np.abs(w_grade) <= ref.FLAT_GRADE_PCT
        flat_w &= ~np.isnan(w_grade)

    intervals = bool(
        {(lap.intensity or "").lower() for lap in activity.laps} & INTERVAL_LAP_INTENSITIES
    )
    moving_w = (cover >= MIN_COVERAGE) & ~paused & (w_mid >= warmup) & (w_speed >= STILL_MPS)
    intervals = intervals or _alternating(w_speed[moving_w])
    trail = sub_sport in TRAIL_SUB_SPORTS or bool(
        grade is not None
        and not treadmill
        and running.sum() >= 5
        and float(flat_w[running].mean()) < TRAIL_FLAT_SHARE
    )
    steady = running & (w_mid >= warmup) & (cv <= ref.STEADY_SPEED_CV)
    if intervals:
        notes.append("intervals or fartlek: drift and heart-rate decoupling not computed")
    if trail:
        notes.append("trail or hilly run: only flat stretches count for balance and stiffness")
    if treadmill:
        notes.append("treadmill: speed comes from the watch's own estimate")

    keep = np.flatnonzero(steady)
    v = w_speed[keep]
    wins: dict[str, FloatArray] = {
        "t_s": w_mid[keep],
        "speed_mps": v,
        "grade_pct": w_grade[keep],
        "flat": flat_w[keep].astype(np.float64),
    }
    cad_w = wcol("cadence")[keep]
    gct_w = wcol("gct")[keep]
    vo_w = wcol("vo")[keep]
    wins["cadence_spm"] = cad_w
    with np.errstate(invalid="ignore", divide="ignore"):
        sl_derived = v * 60.0 / cad_w
    measured_sl = wcol("step_mm")[keep] / 1000.0
    wins["step_length_m"] = np.where(np.isnan(measured_sl), sl_derived, measured_sl)
    wins["gct_ms"] = gct_w
    wins["vo_mm"] = vo_w
    vr_w = wcol("vr")[keep]
    with np.errstate(invalid="ignore", divide="ignore"):
        vr_derived = 100.0 * vo_w / (1000.0 * wins["step_length_m"])
    wins["vr_pct"] = np.where(np.isnan(vr_w), vr_derived, vr_w)
    wins["balance_left_pct"] = wcol("balance")[keep]
    wins["hr_bpm"] = wcol("hr")[keep]
    wins["power_w"] = wcol("power")[keep]
    with np.errstate(invalid="ignore", divide="ignore"):
        wins["form_power_ratio"] = wcol("form_power")[keep] / wins["power_w"]
    wins["lss_kn_m"] = wcol("lss")[keep]

    sex = activity.sex
    stryd_gct = gct_watch is None and gct_stryd is not None
    wins["cadence_resid_spm"] = cad_w - ref.cadence_ref_spm(v)
    wins["step_length_resid_m"] = wins["step_length_m"] - ref.step_length_ref_m(v)
    wins["gct_resid_ms"] = gct_w - ref.gct_ref_ms(v, sex, stryd=stryd_gct)
    wins["vo_resid_mm"] = vo_w - ref.vo_ref_mm(v)
    wins["vr_resid_pct"] = wins["vr_pct"] - ref.vr_ref_pct(v)
    # Stiffness on the force-plate scale: watch GCT minus the watch offset (reference.py).
    gct_phys = gct_w if stryd_gct else gct_w - ref.WATCH_GCT_OFFSET_MS
    k_vert = ref.spring_mass(gct_phys, cad_w, v).k_vert_n_m
    k_vert = np.where(wins["flat"] > 0, k_vert, np.nan)  # invalid on inclines (Meyer 2023)
    wins["kvert_n_m_kg"] = k_vert
    k_ref = ref.k_vert_ref_n_m_kg(v, sex)
    wins["kvert_resid_pct"] = 100.0 * (k_vert - k_ref) / k_ref
    if activity.height_m and activity.weight_kg:
        kleg_ref = ref.k_leg_ref_kn_m(v, activity.weight_kg, activity.height_m, sex)
        wins["lss_resid_pct"] = 100.0 * (wins["lss_kn_m"] - kleg_ref) / kleg_ref
    else:
        wins["lss_resid_pct"] = np.full(len(keep), np.nan)

    flat_mask = wins["flat"] > 0
    scalars = _run_scalars(wins, flat_mask, activity, stryd_gct)
    if not intervals:
        scalars.update(_drifts(wins, flat_mask))
    else:
        scalars.update(
            dict.fromkeys(
                (
                    "cadence_drift_spm",
                    "gct_drift_ms",
                    "vo_drift_mm",
                    "balance_drift_pts",
                    "hr_decoupling_pct",
                ),
                math.nan,
            )
        )
    if speed is not None and not len(keep):
        notes.append("no steady running after the warm-up")
    if speed is None and cadence is not None:
        scalars["cadence_spm"] = _nanmedian(cadence[moving])
    return RunFeatures(
        **base,
        treadmill=treadmill,
        trail=trail,
        intervals=intervals,
        moving_s=moving_s,
        steady_s=float(len(keep) * WINDOW_S),
        flat_s=float(flat_mask.sum() * WINDOW_S),
        warmup_skipped_s=warmup,
        signals=tuple(signals),
        scalars=scalars,
        windows=wins,
        notes=tuple(notes),
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
    wins: dict[str, FloatArray], flat: npt.NDArray[np.bool_], activity: Activity, stryd_gct: bool
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


def _thirds(t: FloatArray, mask: npt.NDArray[np.bool_]) -> tuple[npt.NDArray[np.bool_], ...]:
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


def _drifts(wins: dict[str, FloatArray], flat: npt.NDArray[np.bool_]) -> dict[str, float]:
    """Late-run drift after speed correction, and heart-rate decoupling (steady runs only).

    Drift = median residual in the last third of the steady running after warm-up minus the
    first third (Clermont et al. 2019; residuals are already corrected for speed, Zandbergen
    et al. 2023). Balance drift is in points of % left (signed).
    """
    out = dict.fromkeys(
        (
            "cadence_drift_spm",
            "gct_drift_ms",
            "vo_drift_mm",
            "balance_drift_pts",
            "hr_decoupling_pct",
        ),
        math.nan,
    )
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


def athlete_features(runs: Sequence[RunFeatures]) -> AthleteFeatures:
    """Pool one athlete's runs into the model's feature row (pure).

    Residuals are pooled over the flat steady windows of all runs (median); drifts are averaged
    over the runs long and steady enough to show one, weighted by steady minutes; the athlete's
    own slopes on speed come from the pooled windows (Zandbergen et al. 2023).
    """
    runs = list(runs)
    pooled: dict[str, list[FloatArray]] = {name: [] for name in (*WINDOW_FIELDS, "run")}
    for i, run in enumerate(runs):
        if not run.n_windows:
            continue
        flat = run.windows["flat"] > 0
        for name in WINDOW_FIELDS:
            pooled[name].append(run.windows.get(name, np.full(run.n_windows, np.nan))[flat])
        pooled["run"].append(np.full(int(flat.sum()), float(i)))
    pool = {
        k: (np.concatenate(v) if v else np.empty(0, dtype=np.float64)) for k, v in pooled.items()
    }
    values: dict[str, float] = dict.fromkeys(MODEL_FEATURES, math.nan)
    for name in ("speed_mps", *_FLAT_MEDIANS, "hr_bpm"):
        values[name] = _nanmedian(pool[name])
    speed = pool["speed_mps"]
    side_sign = 0.0
    side = None
    balance_mid = values["balance_left_pct"]
    if not math.isnan(balance_mid):
        # 50.0 exactly counts as left so that a worsening never flips the side.
        side_sign = 1.0 if balance_mid >= ref.BALANCE_CENTRE_PCT else -1.0
        side = "left" if side_sign > 0 else "right"
        values["balance_dev_pts"] = abs(balance_mid - ref.BALANCE_CENTRE_PCT)
        values["balance_speed_slope"] = _slope(
            speed, (pool["balance_left_pct"] - ref.BALANCE_CENTRE_PCT) * side_sign
        )
    cad_slope = _slope(speed, pool["cadence_spm"])
    values["cadence_slope_spm_per_mps"] = cad_slope
    values["cadence_slope_resid"] = cad_slope - ref.CADENCE_SLOPE_SPM_PER_MPS
    weights = [r.steady_s for r in runs]
    for name in ("cadence_drift_spm", "gct_drift_ms", "vo_drift_mm", "hr_decoupling_pct"):
        values[name] = _weighted_mean([r.scalar(name) for r in runs], weights)
    if side_sign:
        values["balance_drift_pts"] = _weighted_mean(
            [r.scalar("balance_drift_pts") * side_sign for r in runs], weights
        )
    body = next((r for r in reversed(runs) if r.height_m and r.weight_kg), None)
    weight = (
        body.weight_kg if body else next((r.weight_kg for r in reversed(runs) if r.weight_kg), None)
    )
    height = (
        body.height_m if body else next((r.height_m for r in reversed(runs) if r.height_m), None)
    )
    sex = next((r.sex for r in reversed(runs) if r.sex), None)
    if weight and not math.isnan(values["kvert_n_m_kg"]):
        values["kvert_kn_m"] = values["kvert_n_m_kg"] * weight / 1000.0
    values["steady_min"] = sum(r.steady_s for r in runs) / 60.0
    values["flat_min"] = sum(r.flat_s for r in runs) / 60.0
    fits: dict[str, LineFit] = {}
    for name in ("cadence_spm", "gct_ms", "vo_mm", "vr_pct", "balance_left_pct"):
        fitted = _fit(speed, pool[name])
        if fitted is not None:
            fits[name] = fitted
    # Step length vs speed: quadratic per runner (Bailey et al. 2017).
    sl_fit = _fit(speed, pool["step_length_m"], degree=2)
    if sl_fit is not None:
        fits["step_length_m"] = sl_fit
    runs_with = {
        sig: sum(1 for r in runs if sig in r.signals)
        for sig in ("speed", "cadence", "gct", "vo", "balance", "hr", "power", "form_power", "lss")
    }
    runs_with["steady"] = sum(1 for r in runs if r.n_windows)
    run_flags = {
        "treadmill": sum(r.treadmill for r in runs),
        "trail": sum(r.trail for r in runs),
        "intervals": sum(r.intervals for r in runs),
        "with_drift": sum(
            1
            for r in runs
            if not math.isnan(r.scalar("gct_drift_ms"))
            or not math.isnan(r.scalar("cadence_drift_spm"))
        ),
    }
    sources: dict[str, int] = {}
    for r in runs:
        sources[r.source] = sources.get(r.source, 0) + 1
    finite_speed = speed[~np.isnan(speed)]
    speed_range = (
        (float(np.percentile(finite_speed, 5)), float(np.percentile(finite_speed, 95)))
        if finite_speed.size
        else None
    )
    return AthleteFeatures(
        values=values,
        runs=len(runs),
        runs_with=runs_with,
        pooled=pool,
        fits=fits,
        side=side,
        sex=sex,
        height_m=height,
        weight_kg=weight,
        speed_range_mps=speed_range,
        run_flags=run_flags,
        sources=sources,
    )
