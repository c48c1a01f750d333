"""A seeded, simulated cohort of runners: the model's prior, since no labelled data set exists.

Each simulated runner has a latent *deficit* per mechanical area (standard-normal units,
higher = weaker). The deficits shape per-second streams through the published relationships in
:mod:`planner.reference` (cadence, contact time, oscillation and balance at each speed), plus
warm-up settling, fatigue, terrain, pauses, sensor noise, sensor dropouts and missing sensors.
The streams pass :func:`planner.schema.validate_columns` and go through the *same* feature code
as real runs. Labels come from the deficits.

Every generator number lives in :data:`PARAMS`, with its source or the word "assumption".
Most effect sizes are assumptions: the literature gives directions (domain.md §4), not effect
sizes per unit of a latent capacity. This is why ``docs/model.md`` says what the model can and
cannot claim.
"""

from __future__ import annotations

import itertools
import math
import multiprocessing
from collections.abc import Iterator
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import NamedTuple

import numpy as np
import numpy.typing as npt
from scipy.signal import lfilter

from planner import reference as ref
from planner.features import RunFeatures, run_features
from planner.grade import derive_grade_pct
from planner.records import AREAS, Activity, ImportedActivity, Lap, Source
from planner.schema import Col, StreamColumns, epoch_us, present_dynamics, validate_columns

FloatArray = npt.NDArray[np.float64]


class Param(NamedTuple):
    """One generator number and where it comes from."""

    value: float
    source: str


A = "assumption"

#: Every number the generator uses. Sources name reference.py / domain.md entries.
PARAMS: dict[str, Param] = {
    # -- labels --
    "limiter_threshold_sd": Param(0.84, f"{A}: deficit above the 80th percentile = limiter"),
    # -- area effects per SD of deficit (directions from domain.md §4; sizes assumed). Each
    # runner's deficit shows through a random subset of its area's signals (its "signature"),
    # each at a random share of the size below: we do not know any limiter's signature. --
    "signal_p_include": Param(
        0.6, f"{A}: chance that a signal carries its area's deficit in one runner"
    ),
    "signal_size_min": Param(0.5, f"{A}: smallest effect, as a share of the sizes below"),
    "signal_size_max": Param(1.5, f"{A}: largest effect, as a share of the sizes below"),
    "signal_boost_max": Param(
        2.0,
        f"{A}: a deficit carried by fewer signals shows more in each (×√(k/used), at most this)",
    ),
    "push_gct_ms": Param(14.0, f"{A}: about half the between-runner GCT SD (reference.GCT_SD_MS)"),
    "push_lss_frac": Param(0.06, f"{A}: Stryd LSS lower by 6 % per SD"),
    "push_vo_mm": Param(4.0, f"{A}: more bounce with less ground force: a higher vertical ratio"),
    "swing_cadence_spm": Param(
        4.5, f"{A}: about half the between-runner SD (8 spm, van_oeveren_2020)"
    ),
    "swing_slope_spm_per_mps": Param(
        2.5, f"{A}: 'step length grows with no cadence gain at faster paces' (domain.md §4)"
    ),
    "swing_overstride_vo_mm": Param(
        3.0, f"{A}: 'long flight with overstride' (domain.md §4): more flight, more bounce"
    ),
    "swing_overstride_cadence_spm": Param(2.0, f"{A}: an overstride lowers cadence a little"),
    "posture_vo_mm": Param(7.0, f"{A}: about half the VO SD (reference.VO_SD_MM)"),
    "posture_gct_ms": Param(3.0, f"{A}: small cross-talk into contact time"),
    "posture_vo_drift_mm": Param(8.0, f"{A}: extra VO per hour of fatigue (J Athl Train 2020)"),
    "posture_gct_drift_ms": Param(8.0, f"{A}: extra GCT per hour of fatigue (clermont_2019)"),
    "posture_balance_drift_pts": Param(0.6, f"{A}: balance widening per hour of fatigue"),
    "posture_fpr": Param(0.03, f"{A}: Stryd form-power ratio per SD (no published norm)"),
    "balance_median_pts": Param(
        0.9, "median |balance − 50| of N(50, 1.34) (garmin_balance via reference.BALANCE_SD_PTS)"
    ),
    "balance_log_per_sd": Param(
        0.6, f"{A}: |balance − 50| = 0.9·exp(0.6·d) puts d = 1.645 at 2.4 pts (garmin 90 % ≈ 2.2)"
    ),
    "balance_drift_pts": Param(0.8, f"{A}: balance widening per hour of fatigue per SD"),
    "balance_speed_pts_per_mps": Param(0.6, f"{A}: balance widening per m/s faster per SD"),
    # -- couplings and per-runner quirks that are not limiters (randomised per runner) --
    "gct_step_coupling_max": Param(
        0.5,
        f"{A}: GCT follows a longer step time by up to half of it (contact is a share of the"
        " step, weyand_2005)",
    ),
    "vo_flight_coupling_max": Param(
        0.15, f"{A}: up to 0.15 mm more VO per ms more flight (ballistic flight, morin_2005)"
    ),
    "vo_drift_noise_mm_h": Param(
        10.0,
        f"{A}: per-runner VO drift unrelated to posture; covers the fixture runs' late-run VO"
        " drift of −8.8 to +5.0 mm",
    ),
    "gct_drift_noise_ms_h": Param(
        10.0, f"{A}: per-runner GCT drift; covers the fixture runs' −8 to +6 ms"
    ),
    "balance_drift_noise_pts_h": Param(0.8, f"{A}: per-runner balance drift unrelated to limits"),
    "device_gct_ms": Param(8.0, f"{A}: SD of GCT offsets between watch and strap models"),
    "device_vo_mm": Param(4.0, f"{A}: SD of VO offsets between watch and strap models"),
    # -- nuisance between-runner variation (not limiters) --
    "cadence_noise_spm": Param(
        5.0, f"{A}: with swing effect gives SD ≈ 7 spm (van_oeveren_2020: 8)"
    ),
    "cadence_per_cm_height": Param(
        -0.3, f"{A}: taller runners use lower cadence (van_oeveren_2019)"
    ),
    "cadence_slope_noise": Param(1.5, f"{A}: runner-to-runner slope spread, spm per m/s"),
    "gct_noise_ms": Param(15.0, f"{A}: with push effect gives SD ≈ 21 ms (garmin 27 incl. speed)"),
    "vo_noise_mm": Param(
        9.0, f"{A}: with posture effect gives SD ≈ 11 mm (garmin 15.5 incl. speed)"
    ),
    # -- within-run dynamics --
    "warmup_tau_s": Param(
        240.0, f"{A}: settling time constant; values settle in ~12–15 min (domain §3)"
    ),
    "warmup_cadence_spm": Param(-3.0, f"{A}: lower cadence at the start"),
    "warmup_gct_ms": Param(8.0, f"{A}: longer contact at the start"),
    "fatigue_onset_s": Param(1200.0, f"{A}: drift starts after 20 min"),
    "fatigue_gct_ms": Param(3.0, f"{A}: everyone's GCT drift per hour (clermont_2019: all drift)"),
    "fatigue_vo_mm": Param(1.0, f"{A}: everyone's VO drift per hour"),
    "fatigue_cadence_spm": Param(-1.0, f"{A}: everyone's cadence drift per hour"),
    "grade_gct_ms_per_pct": Param(1.5, f"{A}: uphill lengthens contact"),
    "grade_balance_pts_per_pct": Param(0.15, f"{A}: balance drifts on slopes (garmin_balance)"),
    "grade_speed_per_pct": Param(0.03, f"{A}: 3 % slower per % of grade"),
    # -- measurement noise (per second) --
    "noise_speed_mps": Param(0.08, f"{A}: GPS speed noise"),
    "noise_cadence_spm": Param(1.5, A),
    "noise_gct_ms": Param(5.0, A),
    "noise_vo_mm": Param(3.0, A),
    "noise_balance_pts": Param(0.5, A),
    "noise_hr_bpm": Param(1.5, A),
    # -- runners --
    "easy_speed_mps": Param(
        2.9, "near malisoux_2023 preferred speed (2.5–2.9) and van_oeveren_2020"
    ),
    "easy_speed_sd": Param(0.3, A),
    "height_male_m": Param(1.78, A),
    "height_female_m": Param(1.65, A),
    "height_sd_m": Param(0.07, A),
    "bmi": Param(22.5, A),
    "share_female": Param(0.385, "malisoux_2023: 38.5 % women"),
    "p_full_dynamics": Param(0.55, f"{A}: chest strap/pod or watch with balance"),
    "p_dynamics_no_balance": Param(0.15, f"{A}: wrist dynamics without balance"),
    "p_stryd": Param(0.15, A),
    "p_body_known": Param(0.6, f"{A}: height and weight in the watch profile"),
    "p_pause": Param(0.3, f"{A}: a traffic-light stop in a run"),
    "dropouts_max": Param(3.0, f"{A}: sensor dropouts per run (10–90 s each)"),
    "power_w_per_kg_per_mps": Param(1.0, f"{A}: Stryd-like running power ≈ 1 W/kg per m/s"),
    "fpr_mean": Param(
        0.31,
        f"{A}: form-power ratio; Stryd publishes no norm we could check. Centre of the fixture"
        " runs' 0.27–0.42",
    ),
    "fpr_sd": Param(0.045, f"{A}: with the posture effect covers the fixture runs' 0.27–0.42"),
    "lss_sd_frac": Param(0.08, f"{A}: covers the fixture runs' −22 to −9 % around the estimate"),
    # -- run types --
    "easy_speed_min_mps": Param(2.2, A),
    "easy_speed_max_mps": Param(3.8, A),
    "height_ref_m": Param(1.75, f"{A}: height at which the height effect on cadence is zero"),
    "weight_log_sd": Param(0.1, f"{A}: body-mass spread around the BMI"),
    "p_left_longer": Param(0.5, f"{A}: the longer-contact side is left or right equally often"),
    "balance_log_sd": Param(0.15, f"{A}: spread of |balance − 50| at a given deficit"),
    "hr_easy_bpm": Param(140.0, f"{A}: heart rate at easy pace"),
    "hr_easy_sd": Param(8.0, A),
    "hr_per_mps": Param(22.0, f"{A}: heart rate per m/s faster"),
    "hr_drift_per_h": Param(6.0, f"{A}: cardiac drift per hour of fatigue"),
    "hr_warmup_bpm": Param(-25.0, f"{A}: lower heart rate at the start, settling like mechanics"),
    "speed_wander_mps": Param(0.06, f"{A}: SD of the runner's slow pace wander"),
    "speed_wander_rho": Param(0.98, f"{A}: second-to-second persistence of that wander"),
    "start_ramp_s": Param(180.0, f"{A}: easing into pace over the first 3 min"),
    "start_ramp_factor": Param(0.85, f"{A}: starting at 85 % of the target pace"),
    "pause_min_s": Param(20.0, A),
    "pause_max_s": Param(60.0, A),
    "p_timer_pause": Param(0.5, f"{A}: share of stops with the timer paused (a gap) vs running"),
    "gct_max_step_share": Param(0.9, f"{A}: contact never fills more than 90 % of a step"),
    "road_grade_pct": Param(1.2, f"{A}: amplitude of gentle road undulation"),
    "trail_grade_pct": Param(6.0, f"{A}: amplitude of trail hills"),
    "trail_grade_small_pct": Param(2.0, f"{A}: amplitude of short trail bumps"),
    "treadmill_step_mps": Param(0.2, f"{A}: belt-speed changes during a treadmill run"),
    "noise_power_w": Param(5.0, A),
    "power_per_pct_grade": Param(0.005, f"{A}: extra power per % of grade"),
    "noise_lss_kn_m": Param(0.2, A),
    "noise_stryd_gct_ms": Param(3.0, A),
    "dropout_min_s": Param(10.0, A),
    "dropout_max_s": Param(90.0, A),
    "tempo_start_s": Param(600.0, f"{A}: 10 min easy before the tempo"),
    "tempo_factor": Param(1.2, f"{A}: tempo pace relative to easy pace"),
    "long_factor": Param(0.95, A),
    "interval_work_factor": Param(1.3, A),
    "interval_rest_factor": Param(0.75, A),
    "interval_start_s": Param(720.0, f"{A}: 12 min warm-up before the first repeat"),
    "interval_work_s": Param(240.0, A),
    "interval_rest_s": Param(120.0, A),
    "interval_cooldown_s": Param(480.0, A),
}


def p(name: str) -> float:
    """The value of one generator parameter."""
    return PARAMS[name].value


RUN_KINDS: tuple[str, ...] = ("easy", "tempo", "long", "intervals", "treadmill", "trail")
#: How often each kind appears in a simulated training history. Assumption.
RUN_KIND_WEIGHTS: tuple[float, ...] = (0.35, 0.15, 0.15, 0.15, 0.1, 0.1)
#: Duration range per kind, minutes. Assumption.
RUN_MINUTES: dict[str, tuple[float, float]] = {
    "easy": (30.0, 60.0),
    "tempo": (30.0, 45.0),
    "long": (70.0, 100.0),
    "intervals": (45.0, 55.0),
    "treadmill": (30.0, 45.0),
    "trail": (40.0, 75.0),
}


#: The watch signals through which each area's deficit can show (domain.md §4). A runner's
#: *signature* is a random subset of them with random sizes (:func:`draw_signature`).
AREA_SIGNALS: dict[str, tuple[str, ...]] = {
    "push": ("push_gct", "push_vr", "push_lss"),
    "swing": ("swing_cadence", "swing_slope", "swing_overstride"),
    "posture_hip": (
        "posture_vo",
        "posture_vo_drift",
        "posture_gct_drift",
        "posture_balance_drift",
        "posture_fpr",
    ),
    "strength_balance": ("balance_offset", "balance_fatigue", "balance_speed"),
}


@dataclass(frozen=True, slots=True)
class Generator:
    """A way of generating runners: the training prior, or a shifted one for evaluation.

    ``stridewise model evaluate --generator NAME`` scores the model on runners it was not
    trained on: signatures with one signal only, effects half or twice as large, contact time
    fully tied to step time, more noise.
    """

    name: str
    description: str
    effect_scale: float = 1.0
    single_signal: bool = False
    gct_step_coupling: float | None = None  # None: drawn per runner
    noise_scale: float = 1.0


GENERATORS: dict[str, Generator] = {
    g.name: g
    for g in (
        Generator("training", "the training prior (randomised signatures), a held-out seed"),
        Generator(
            "single_signal",
            "each area's deficit shows through exactly one of its signals",
            single_signal=True,
        ),
        Generator("effects_half", "every effect size × 0.5", effect_scale=0.5),
        Generator("effects_double", "every effect size × 2", effect_scale=2.0),
        Generator(
            "coupled_gct_cadence",
            "contact time follows step time fully (lower cadence, longer contact)",
            gct_step_coupling=1.0,
        ),
        Generator("noise_1.5", "between-runner and sensor noise × 1.5", noise_scale=1.5),
    )
}
TRAINING = GENERATORS["training"]


@dataclass(frozen=True, slots=True)
class Runner:
    """One simulated runner: latent deficits, signature, body, sensors and personal quirks."""

    id: str
    deficits: dict[str, float]
    sex: str
    height_m: float
    weight_kg: float
    easy_speed_mps: float
    side: float  # +1: longer contact on the left
    cadence_offset_spm: float
    cadence_slope_dev: float
    gct_offset_ms: float
    vo_offset_mm: float
    balance_pts: float  # |balance − 50| at easy pace, rested
    fpr: float
    lss_factor: float
    sensors: str  # "full" | "no_balance" | "none"
    stryd: bool
    body_known: bool
    seed: int
    hr_base: float = 140.0
    signature: dict[str, float] = field(default_factory=dict)  # signal → effect multiplier
    vo_drift_mm_h: float = 0.0  # per-runner drift unrelated to a limiter
    gct_drift_ms_h: float = 0.0
    balance_drift_pts_h: float = 0.0
    gct_step_coupling: float = 0.0
    vo_flight_coupling: float = 0.0
    noise_scale: float = 1.0

    def labels(self) -> dict[str, int]:
        """1 where an area's deficit is above the limiter threshold."""
        cut = p("limiter_threshold_sd")
        return {a: int(self.deficits[a] > cut) for a in AREAS}

    @property
    def top_area(self) -> str:
        return max(AREAS, key=lambda a: self.deficits[a])

    def effect(self, signal: str) -> float:
        """This runner's multiplier for one signal (0 when it does not carry the deficit)."""
        return self.signature.get(signal, 0.0)


def draw_signature(rng: np.random.Generator, generator: Generator = TRAINING) -> dict[str, float]:
    """Which signals carry each area's deficit in one runner, and how strongly.

    Each signal is used with probability ``signal_p_include`` (at least one per area; exactly
    one for a single-signal generator), at a size drawn uniformly between ``signal_size_min``
    and ``signal_size_max``, boosted by √(k / used) (at most ``signal_boost_max``) so that a
    deficit carried by fewer signals shows more in each.
    """
    out: dict[str, float] = {}
    for signals in AREA_SIGNALS.values():
        k = len(signals)
        if generator.single_signal:
            used = np.zeros(k, dtype=bool)
            used[int(rng.integers(0, k))] = True
        else:
            used = rng.random(k) < p("signal_p_include")
            if not used.any():
                used[int(rng.integers(0, k))] = True
        sizes = rng.uniform(p("signal_size_min"), p("signal_size_max"), k)
        boost = min(math.sqrt(k / int(used.sum())), p("signal_boost_max"))
        for name, on, size in zip(signals, used, sizes, strict=True):
            out[name] = float(size * boost * generator.effect_scale) if on else 0.0
    return out


def make_runner(
    rng: np.random.Generator,
    runner_id: str,
    *,
    deficits: dict[str, float] | None = None,
    sensors: str | None = None,
    stryd: bool | None = None,
    body_known: bool | None = None,
    nuisance: float = 1.0,
    generator: Generator = TRAINING,
    signature: dict[str, float] | None = None,
) -> Runner:
    """Draw one runner; any argument given overrides the draw (for tests).

    ``nuisance`` scales the between-runner variation that has nothing to do with the deficits
    (1 = the cohort's; tests use less to get a runner whose signals show their deficits).
    ``signature`` replaces the drawn one (signal → multiplier, :data:`AREA_SIGNALS`).
    """
    drawn = {a: float(rng.standard_normal()) for a in AREAS}
    d = {**drawn, **(deficits or {})}
    sig = draw_signature(rng, generator)
    if signature is not None:
        sig = {name: signature.get(name, 0.0) for name in sig}
    nuisance = nuisance * generator.noise_scale
    sex = "female" if rng.random() < p("share_female") else "male"
    height = float(
        rng.normal(
            p("height_female_m") if sex == "female" else p("height_male_m"), p("height_sd_m")
        )
    )
    weight = float(p("bmi") * height**2 * rng.lognormal(0.0, p("weight_log_sd")))
    u = rng.random()
    drawn_sensors = (
        "full"
        if u < p("p_full_dynamics")
        else "no_balance"
        if u < p("p_full_dynamics") + p("p_dynamics_no_balance")
        else "none"
    )
    coupling = (
        float(rng.uniform(0.0, p("gct_step_coupling_max")))
        if generator.gct_step_coupling is None
        else generator.gct_step_coupling
    )
    return Runner(
        id=runner_id,
        deficits=d,
        sex=sex,
        height_m=height,
        weight_kg=weight,
        easy_speed_mps=float(
            np.clip(
                rng.normal(p("easy_speed_mps"), p("easy_speed_sd")),
                p("easy_speed_min_mps"),
                p("easy_speed_max_mps"),
            )
        ),
        side=1.0 if rng.random() < p("p_left_longer") else -1.0,
        cadence_offset_spm=float(
            -p("swing_cadence_spm") * sig["swing_cadence"] * d["swing"]
            - p("swing_overstride_cadence_spm") * sig["swing_overstride"] * d["swing"]
            + nuisance * rng.normal(0.0, p("cadence_noise_spm"))
            + p("cadence_per_cm_height") * (height - p("height_ref_m")) * 100.0
        ),
        cadence_slope_dev=float(
            -p("swing_slope_spm_per_mps") * sig["swing_slope"] * d["swing"]
            + nuisance * rng.normal(0.0, p("cadence_slope_noise"))
        ),
        gct_offset_ms=float(
            p("push_gct_ms") * sig["push_gct"] * d["push"]
            + p("posture_gct_ms") * d["posture_hip"]
            + nuisance * rng.normal(0.0, p("gct_noise_ms"))
            + nuisance * rng.normal(0.0, p("device_gct_ms"))
        ),
        vo_offset_mm=float(
            p("posture_vo_mm") * sig["posture_vo"] * d["posture_hip"]
            + p("push_vo_mm") * sig["push_vr"] * d["push"]
            + p("swing_overstride_vo_mm") * sig["swing_overstride"] * d["swing"]
            + nuisance * rng.normal(0.0, p("vo_noise_mm"))
            + nuisance * rng.normal(0.0, p("device_vo_mm"))
        ),
        balance_pts=float(
            p("balance_median_pts")
            * math.exp(p("balance_log_per_sd") * sig["balance_offset"] * d["strength_balance"])
            * rng.lognormal(0.0, p("balance_log_sd") * nuisance)
        ),
        fpr=float(
            p("fpr_mean")
            + p("posture_fpr") * sig["posture_fpr"] * d["posture_hip"]
            + nuisance * rng.normal(0.0, p("fpr_sd"))
        ),
        lss_factor=float(
            1.0
            - p("push_lss_frac") * sig["push_lss"] * d["push"]
            + nuisance * rng.normal(0.0, p("lss_sd_frac"))
        ),
        sensors=sensors or drawn_sensors,
        stryd=bool(rng.random() < p("p_stryd")) if stryd is None else stryd,
        body_known=bool(rng.random() < p("p_body_known")) if body_known is None else body_known,
        seed=int(rng.integers(0, 2**31 - 1)),
        hr_base=float(rng.normal(p("hr_easy_bpm"), p("hr_easy_sd"))),
        signature=sig,
        vo_drift_mm_h=float(nuisance * rng.normal(0.0, p("vo_drift_noise_mm_h"))),
        gct_drift_ms_h=float(nuisance * rng.normal(0.0, p("gct_drift_noise_ms_h"))),
        balance_drift_pts_h=float(nuisance * rng.normal(0.0, p("balance_drift_noise_pts_h"))),
        gct_step_coupling=coupling,
        vo_flight_coupling=float(rng.uniform(0.0, p("vo_flight_coupling_max"))),
        noise_scale=generator.noise_scale,
    )


# -- one run ----------------------------------------------------------------------------------


def _ar1(rng: np.random.Generator, n: int, sd: float, rho: float) -> FloatArray:
    """A smooth random wander (AR(1) with stationary SD ``sd``)."""
    shocks = rng.normal(0.0, sd * math.sqrt(1.0 - rho**2), n)
    return np.asarray(lfilter([1.0], [1.0, -rho], shocks), dtype=np.float64)


def _speed_plan(
    kind: str, runner: Runner, n: int, rng: np.random.Generator
) -> tuple[FloatArray, list[Lap], FloatArray]:
    """Target speed per second, laps, and grade per second for one kind of run."""
    t = np.arange(n, dtype=np.float64)
    v_e = runner.easy_speed_mps
    target = np.full(n, v_e)
    laps: list[Lap] = []
    grade = np.zeros(n)
    if kind == "tempo":
        target[t >= p("tempo_start_s")] = v_e * p("tempo_factor")
    elif kind == "long":
        target[:] = v_e * p("long_factor")
    elif kind == "intervals":
        start = int(p("interval_start_s"))
        work, rest = int(p("interval_work_s")), int(p("interval_rest_s"))
        reps = max(1, (n - start - int(p("interval_cooldown_s"))) // (work + rest))
        for r in range(reps):
            a = start + r * (work + rest)
            target[a : a + work] = v_e * p("interval_work_factor")
            target[a + work : a + work + rest] = v_e * p("interval_rest_factor")
    elif kind == "treadmill":
        # A few belt-speed changes, as people do on a treadmill.
        for cut in sorted(rng.integers(600, max(601, n - 300), 2)):
            target[cut:] += rng.choice([-1.0, 1.0]) * p("treadmill_step_mps")
    if kind == "trail":
        # Hills every 7–15 min with short bumps on top (periods: assumption).
        grade = p("trail_grade_pct") * np.sin(2 * np.pi * t / rng.uniform(400, 900)) + p(
            "trail_grade_small_pct"
        ) * np.sin(2 * np.pi * t / rng.uniform(90, 200))
    elif kind != "treadmill":
        grade = p("road_grade_pct") * np.sin(
            2 * np.pi * t / rng.uniform(600, 1500) + rng.uniform(0, 6)
        )
    target = target * (1.0 - p("grade_speed_per_pct") * np.clip(grade, -8, 8) / 2.0)
    ramp = np.clip(t / p("start_ramp_s"), 0.0, 1.0)
    target = target * (p("start_ramp_factor") + (1.0 - p("start_ramp_factor")) * ramp)
    return target, laps, grade


def simulate_run(
    runner: Runner,
    kind: str,
    rng: np.random.Generator,
    start_utc: datetime,
    *,
    minutes: float | None = None,
) -> ImportedActivity:
    """One simulated run: a validated per-second stream and its metadata."""
    lo, hi = RUN_MINUTES[kind]
    n = int(60.0 * (minutes if minutes is not None else rng.uniform(lo, hi)))
    t = np.arange(n, dtype=np.float64)
    target, laps, grade = _speed_plan(kind, runner, n, rng)
    wander = _ar1(rng, n, p("speed_wander_mps"), p("speed_wander_rho"))
    true_v = np.clip(target + wander, 1.0, None)
    if kind == "intervals":
        laps = _interval_laps(start_utc, true_v, runner.easy_speed_mps)
    # A stop at a traffic light: either the timer keeps running (speed 0) or it pauses (gap).
    stopped = np.zeros(n, dtype=bool)
    drop = np.zeros(n, dtype=bool)
    if n > 1500 and rng.random() < p("p_pause"):
        a = int(rng.integers(900, n - 300))
        length = int(rng.integers(int(p("pause_min_s")), int(p("pause_max_s"))))
        if rng.random() < p("p_timer_pause"):
            drop[a : a + length] = True
        else:
            stopped[a : a + length] = True
    v = np.where(stopped, 0.0, true_v)

    settle = np.exp(-t / p("warmup_tau_s"))
    fatigue = np.clip((t - p("fatigue_onset_s")) / 3600.0, 0.0, None)
    hours = t / 3600.0  # per-runner drifts unrelated to a limiter run from the start
    d_post = max(runner.deficits["posture_hip"], 0.0)
    d_bal = max(runner.deficits["strength_balance"], 0.0)
    g = np.clip(grade, -10, 10)
    ns = runner.noise_scale
    eff = runner.effect

    cadence = (
        ref.cadence_ref_spm(true_v)
        + runner.cadence_offset_spm
        + runner.cadence_slope_dev * (true_v - ref.ANCHOR_SPEED_MPS)
        + p("warmup_cadence_spm") * settle
        + p("fatigue_cadence_spm") * fatigue
        + rng.normal(0.0, ns * p("noise_cadence_spm"), n)
    )
    step_ms = 60000.0 / cadence
    # Coupling: contact time follows a longer (or shorter) step than the reference's.
    step_dev_ms = step_ms - 60000.0 / ref.cadence_ref_spm(true_v)
    gct_ref = ref.gct_ref_ms(true_v, runner.sex)
    gct = (
        gct_ref
        + runner.gct_offset_ms
        + runner.gct_step_coupling * step_dev_ms
        + p("warmup_gct_ms") * settle
        + (p("fatigue_gct_ms") + p("posture_gct_drift_ms") * eff("posture_gct_drift") * d_post)
        * fatigue
        + runner.gct_drift_ms_h * hours
        + p("grade_gct_ms_per_pct") * np.clip(g, 0, None)
        + rng.normal(0.0, ns * p("noise_gct_ms"), n)
    )
    # Bounds below keep values physical and inside schema.PLAUSIBLE; they are not model inputs.
    gct = np.clip(gct, 120.0, p("gct_max_step_share") * step_ms)
    # Coupling: more flight than the reference's, more bounce (ballistic flight).
    flight_dev_ms = (step_ms - gct) - (60000.0 / ref.cadence_ref_spm(true_v) - gct_ref)
    vo = (
        ref.vo_ref_mm(true_v)
        + runner.vo_offset_mm
        + runner.vo_flight_coupling * flight_dev_ms
        + (p("fatigue_vo_mm") + p("posture_vo_drift_mm") * eff("posture_vo_drift") * d_post)
        * fatigue
        + runner.vo_drift_mm_h * hours
        + rng.normal(0.0, ns * p("noise_vo_mm"), n)
    )
    vo = np.clip(vo, 30.0, 200.0)
    widening = (
        p("balance_drift_pts") * eff("balance_fatigue") * d_bal
        + p("posture_balance_drift_pts") * eff("posture_balance_drift") * d_post
    )
    balance = ref.BALANCE_CENTRE_PCT + runner.side * (
        runner.balance_pts
        + widening * fatigue
        + runner.balance_drift_pts_h * hours
        + p("balance_speed_pts_per_mps")
        * eff("balance_speed")
        * d_bal
        * (true_v - runner.easy_speed_mps)
    )
    balance = (
        balance
        + p("grade_balance_pts_per_pct") * g
        + rng.normal(0.0, ns * p("noise_balance_pts"), n)
    )
    balance = np.clip(balance, 40.0, 60.0)
    step_len_mm = 1000.0 * true_v * 60.0 / cadence
    hr = (
        runner.hr_base
        + p("hr_per_mps") * (true_v - runner.easy_speed_mps)
        + p("hr_drift_per_h") * fatigue
        + p("hr_warmup_bpm") * settle
        + rng.normal(0.0, p("noise_hr_bpm"), n)
    )
    measured_v = np.clip(v + rng.normal(0.0, p("noise_speed_mps"), n), 0.0, None)
    measured_v[stopped] = 0.0

    cols: dict[str, FloatArray] = {
        Col.SPEED_MPS.value: measured_v,
        Col.CADENCE_SPM.value: np.where(stopped, 0.0, np.round(cadence)),
        Col.HEART_RATE_BPM.value: np.round(np.clip(hr, 60.0, 210.0)),
    }
    outdoor = kind != "treadmill"
    if outdoor:
        distance = np.cumsum(v)
        # Placed on a straight line from an arbitrary point: only distance and grade matter.
        altitude = 50.0 + np.cumsum(v * g / 100.0)
        cols[Col.DISTANCE_M.value] = distance
        cols[Col.ALTITUDE_M.value] = altitude
        cols[Col.LAT_DEG.value] = 52.0 + distance / 111_000.0
        cols[Col.LON_DEG.value] = np.full(n, 5.0)
    if runner.sensors in ("full", "no_balance"):
        dyn = {
            Col.GCT_MS.value: gct,
            Col.VERTICAL_OSCILLATION_MM.value: vo,
            Col.STEP_LENGTH_MM.value: step_len_mm,
            Col.VERTICAL_RATIO_PCT.value: 100.0 * vo / step_len_mm,
            Col.STANCE_TIME_PCT.value: 100.0 * gct / (2.0 * step_ms),
        }
        if runner.sensors == "full":
            dyn[Col.GCT_BALANCE_LEFT_PCT.value] = balance
        for name, values in dyn.items():
            cols[name] = np.where(stopped, np.nan, values)
        _dropouts(rng, cols, list(dyn), n)
    if runner.stryd:
        power = p("power_w_per_kg_per_mps") * runner.weight_kg * true_v
        power = power * (1.0 + p("power_per_pct_grade") * g)
        power = power + rng.normal(0.0, p("noise_power_w"), n)
        cols[Col.STRYD_POWER_W.value] = np.where(stopped, 0.0, np.clip(power, 0.0, None))
        cols[Col.FORM_POWER_W.value] = np.where(stopped, 0.0, power * runner.fpr)
        lss = ref.k_leg_ref_kn_m(true_v, runner.weight_kg, runner.height_m, runner.sex)
        cols[Col.LEG_SPRING_STIFFNESS_KN_M.value] = np.where(
            stopped, 0.0, lss * runner.lss_factor + rng.normal(0.0, p("noise_lss_kn_m"), n)
        )
        if runner.sensors == "none":
            # Stryd's own ground time is on the force-plate scale (imbach_2020).
            stryd_gct = gct - ref.WATCH_GCT_OFFSET_MS + rng.normal(0.0, p("noise_stryd_gct_ms"), n)
            cols[Col.STRYD_GCT_MS.value] = np.where(stopped, np.nan, stryd_gct)
            cols[Col.STRYD_VERTICAL_OSCILLATION_MM.value] = np.where(stopped, np.nan, vo)
    time_us = epoch_us(start_utc) + 1_000_000 * np.arange(n, dtype=np.int64)
    stream = StreamColumns(time_us, {k: v.astype(np.float64) for k, v in cols.items()})
    if drop.any():
        stream = stream.rows(~drop)
    if outdoor and len(stream):
        stream.values[Col.GRADE_PCT.value] = derive_grade_pct(
            stream.values[Col.DISTANCE_M.value], stream.values[Col.ALTITUDE_M.value]
        )
    stream = validate_columns(stream)
    activity = Activity(
        source=Source.FIT,
        source_ref=f"sim:{runner.id}:{start_utc.isoformat()}",
        sport="running",
        sub_sport={"treadmill": "treadmill", "trail": "trail"}.get(kind, "generic"),
        start_utc=start_utc,
        elapsed_s=float(n),
        moving_s=float(n - int(drop.sum()) - int(stopped.sum())),
        distance_m=float(np.sum(v)),
        name=f"simulated {kind} run",
        device="simulated",
        laps=tuple(laps),
        height_m=runner.height_m if runner.body_known else None,
        weight_kg=runner.weight_kg if runner.body_known else None,
        sex=runner.sex if runner.body_known else None,
        dynamics=tuple(present_dynamics(stream)),
        n_samples=len(stream),
        extra={"simulated": True, "kind": kind},
    )
    return ImportedActivity(activity, stream)


def _interval_laps(start: datetime, v: FloatArray, v_easy: float) -> list[Lap]:
    """Laps as a watch workout would record them: active and rest intensities."""
    fast = v > v_easy * 1.15
    edges = np.flatnonzero(np.diff(fast.astype(int))) + 1
    bounds = [0, *edges.tolist(), len(v)]
    return [
        Lap(
            start_utc=start + timedelta(seconds=a),
            elapsed_s=float(b - a),
            distance_m=float(v[a:b].sum()),
            intensity="active" if fast[a] else "rest",
        )
        for a, b in itertools.pairwise(bounds)
    ]


def _dropouts(
    rng: np.random.Generator, cols: dict[str, FloatArray], names: list[str], n: int
) -> None:
    """A strap or pod losing contact for 10–90 s, a few times per run."""
    longest = int(p("dropout_max_s"))
    for _ in range(int(rng.integers(0, int(p("dropouts_max")) + 1))):
        a = int(rng.integers(0, max(1, n - longest)))
        b = a + int(rng.integers(int(p("dropout_min_s")), longest))
        for name in names:
            cols[name][a:b] = np.nan


# -- a cohort ---------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class SimulatedAthlete:
    """One runner with the features of their simulated runs."""

    runner: Runner
    runs: tuple[RunFeatures, ...]


def simulate_history(
    runner: Runner,
    *,
    n_runs: int,
    kinds: tuple[str, ...] | None = None,
    start: datetime | None = None,
) -> Iterator[ImportedActivity]:
    """A runner's runs, one every other day (seeded by the runner)."""
    rng = np.random.default_rng(runner.seed)
    start = start or datetime(2025, 3, 3, 7, 0, tzinfo=UTC)
    for i in range(n_runs):
        kind = kinds[i % len(kinds)] if kinds else str(rng.choice(RUN_KINDS, p=RUN_KIND_WEIGHTS))
        yield simulate_run(runner, kind, rng, start + timedelta(days=2 * i))


def simulate_athlete(
    seed: int, index: int, *, max_runs: int = 4, prefix: str = "sim", generator: str = "training"
) -> SimulatedAthlete:
    """Athlete ``index`` of cohort ``seed``, with 1–``max_runs`` runs turned into features.

    Each athlete has its own seed ``(seed, index)``, so a cohort does not depend on how it is
    split across processes. ``generator`` names one of :data:`GENERATORS`.
    """
    rng = np.random.default_rng([seed, index])
    runner = make_runner(rng, f"{prefix}{seed}-{index}", generator=GENERATORS[generator])
    n_runs = int(rng.integers(1, max_runs + 1))
    runs = tuple(
        run_features(item.stream, item.activity) for item in simulate_history(runner, n_runs=n_runs)
    )
    return SimulatedAthlete(runner, runs)


def _athlete_job(args: tuple[int, int, int, str, str]) -> SimulatedAthlete:
    seed, index, max_runs, prefix, generator = args
    return simulate_athlete(seed, index, max_runs=max_runs, prefix=prefix, generator=generator)


def simulate_cohort(
    n_athletes: int,
    seed: int,
    *,
    max_runs: int = 4,
    prefix: str = "sim",
    workers: int = 1,
    generator: str = "training",
) -> list[SimulatedAthlete]:
    """A seeded cohort of ``n_athletes`` (same result for any number of ``workers``)."""
    if generator not in GENERATORS:
        raise ValueError(f"unknown generator {generator!r}; choose from {', '.join(GENERATORS)}")
    jobs = [(seed, i, max_runs, prefix, generator) for i in range(n_athletes)]
    if workers > 1 and n_athletes >= 4 * workers:
        # forkserver, not fork: the parent may already run threads (BLAS, OpenMP), and
        # forking a threaded process can deadlock.
        context = multiprocessing.get_context("forkserver")
        context.set_forkserver_preload(["planner.simulate"])
        with ProcessPoolExecutor(max_workers=workers, mp_context=context) as pool:
            chunk = max(1, n_athletes // (4 * workers))
            return list(pool.map(_athlete_job, jobs, chunksize=chunk))
    return [_athlete_job(job) for job in jobs]
