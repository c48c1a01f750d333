"""Evidence checks between the model's probabilities and what the analysis tells the runner (pure).

The model (:mod:`planner.model`) learns from a simulated cohort; the runner reads evidence
sentences that compare their own numbers with published references (:mod:`planner.limiters`).
This module makes the two agree, and says how sure we can be:

* **Signal z-scores.** Every area signal gets z = direction · value / spread against the same
  reference the evidence sentence uses (:data:`SIGNALS`); positive means "worse".
* **Out of support.** When an athlete's area features lie outside the training cohort (a
  Mahalanobis distance beyond the cohort's 99th percentile, :func:`fit_support`), the trees
  would extrapolate; the area falls back to the transparent rule on the z-scores instead
  (:func:`rule_probability`) and the analysis says so.
* **In-line cap.** When every signal of an area is in line with the population (z ≤
  :data:`IN_LINE_Z`), its probability is at most the base rate: evidence that calls an area
  normal cannot make it likely.
* **Evidence floor.** When an area's key metric is extreme (beyond the population's 97.5th
  percentile in the worse direction, the same percentile its evidence sentence prints), its
  probability is at least :data:`EVIDENCE_FLOOR`.
* **Data bounds and interval.** One run never yields certainty: the probability stays within
  bounds set by the number of runs (a rule of succession with the base rate as prior,
  :func:`run_bounds`), and an interval on the log-odds scale widens with fewer steady minutes
  and fewer of the area's signals measured.
* **Ranking.** Areas with an extreme key metric first, then the rest by the interval's lower
  end (evidence strength against the base rate, so a weakly measured area cannot win on a raw
  probability; an area whose evidence is all in line is capped at the base rate). An area
  *stands out* when its key metric is extreme, or when its probability reaches
  :data:`STAND_OUT_P` and its interval's lower end clears the base rate; when none does,
  ``analyze`` says no area stands out and the plan is a balanced maintenance week.

Every threshold below cites its source or says "assumption" (docs/model.md repeats them).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from statistics import NormalDist
from typing import Any

import numpy as np
import numpy.typing as npt

from planner import reference as ref
from planner.records import AREAS

FloatArray = npt.NDArray[np.float64]

_NORMAL = NormalDist()

#: Share of the cohort labelled limiter in each area: a deficit above the 80th percentile
#: (simulate.PARAMS["limiter_threshold_sd"] = 0.84). The prior every estimate starts from.
BASE_RATE = 0.2
#: The 97.5th percentile of a normal population: beyond it a key metric is "extreme" (issue 17).
EXTREME_Z = _NORMAL.inv_cdf(0.975)
#: A key metric beyond the 97.5th percentile never gets a probability below this. Assumption:
#: "more likely than not", 2.5 × the base rate.
EVIDENCE_FLOOR = 0.5
#: A signal at most one SD worse than the population's centre (the 84th percentile) is "in line
#: with the population". Assumption: the band in which about 5 in 6 runners sit.
IN_LINE_Z = 1.0
#: An area *stands out* (is worth a focus in the plan) when its probability reaches this (the
#: base rate plus a margin of 0.3) and its interval's lower end clears the base rate, or when
#: its key metric is extreme. Assumption; equal to the floor.
STAND_OUT_P = 0.5
#: Interval: log-odds standard error of an area judged from REF_STEADY_MIN minutes of steady
#: running with all its signals; it grows as 1/sqrt(minutes) and with missing signals.
#: Assumptions (no source gives the between-run reliability of these metrics for us).
SE_REF_LOGIT = 0.5
REF_STEADY_MIN = 120.0
MIN_STEADY_MIN = 5.0
#: z for a central 90 % interval.
Z90 = ref.Z90
#: The out-of-support cut: the cohort's 99th percentile of the Mahalanobis distance (issue 17).
SUPPORT_QUANTILE = 0.99
#: Rows needed to estimate a per-dimension cut from the cohort itself; fewer use the
#: chi-square quantile (Wilson–Hilferty approximation). Assumption.
MIN_ROWS_FOR_CUT = 50
#: The transparent rule: P = logistic(RULE_STEEPNESS · (z − RULE_THRESHOLD_Z)), as the rule
#: baseline in planner.model (z = 1, the 84th percentile, gives P = 0.5).
RULE_THRESHOLD_Z = 1.0
RULE_STEEPNESS = 2.0


@dataclass(frozen=True, slots=True)
class Signal:
    """One watch signal of an area: direction of "worse", spread, and where the spread comes from.

    ``sd`` None: no norm we could verify; the signal still counts for the model, but its value
    is never called "in line" (we cannot say that it is).
    """

    feature: str
    direction: int
    sd: float | None
    source: str
    label: str  # plain words for runner-facing text


#: Balance widening late in a run speaks for both posture/hip and strength balance (domain.md §4).
_BALANCE_DRIFT = Signal(
    "balance_drift_pts",
    1,
    0.3,
    "assumption: the 0.3 points the evidence calls a widening",
    "late-run widening of left/right balance",
)

#: Signals per area (domain.md §4), in the order of :data:`planner.features.AREA_FEATURES`;
#: the first one is the area's key metric (:data:`planner.limiters.KEY_METRICS`).
SIGNALS: dict[str, tuple[Signal, ...]] = {
    "push": (
        Signal(
            "gct_resid_ms",
            1,
            ref.GCT_SD_MS,
            "Garmin zones via reference.GCT_SD_MS",
            "ground contact time for your speed",
        ),
        Signal(
            "vr_resid_pct",
            1,
            ref.VR_SD_PCT,
            "Garmin zones via reference.VR_SD_PCT",
            "vertical ratio for your speed",
        ),
        Signal(
            "lss_resid_pct",
            -1,
            8.0,
            "assumption: 8 % between-runner spread of Stryd LSS around the spring-mass estimate",
            "Stryd leg-spring stiffness for your size and speed",
        ),
    ),
    "swing": (
        Signal(
            "cadence_resid_spm",
            -1,
            ref.CADENCE_SD_SPM,
            "van Oeveren et al. 2020 via reference.CADENCE_SD_SPM",
            "cadence for your speed",
        ),
        Signal(
            "cadence_slope_resid",
            -1,
            3.0,
            "assumption: the 3 spm per m/s the evidence calls a notable slope difference",
            "rise of your cadence with speed",
        ),
    ),
    "posture_hip": (
        Signal(
            "vo_resid_mm",
            1,
            ref.VO_SD_MM,
            "Garmin zones via reference.VO_SD_MM (unverified)",
            "vertical oscillation",
        ),
        Signal(
            "vo_drift_mm",
            1,
            2.0,
            "assumption: the 2 mm the evidence calls a late-run rise",
            "late-run rise of vertical oscillation",
        ),
        Signal(
            "gct_drift_ms",
            1,
            3.0,
            "assumption: the 3 ms the evidence calls a late-run rise",
            "late-run rise of ground contact time",
        ),
        _BALANCE_DRIFT,
        Signal(
            "form_power_ratio",
            1,
            None,
            "Stryd publishes no norm we could verify",
            "Stryd form-power ratio",
        ),
    ),
    "strength_balance": (
        Signal(
            "balance_dev_pts",
            1,
            ref.BALANCE_SD_PTS,
            "Garmin Enduro 3 manual via reference.BALANCE_SD_PTS (two-sided)",
            "left/right ground contact balance",
        ),
        _BALANCE_DRIFT,
        Signal(
            "balance_speed_slope",
            1,
            0.3,
            "assumption: the 0.3 points per m/s the evidence calls a change with speed",
            "growth of your imbalance with speed",
        ),
    ),
}

KEY_FEATURE: dict[str, str] = {area: sigs[0].feature for area, sigs in SIGNALS.items()}

#: z is clipped here: beyond it the normal tails say nothing more, and ±inf would poison sums.
Z_CLIP = 8.0


def signal_z(signal: Signal, value: float) -> float:
    """How much worse than the population's centre ``value`` is, in population SDs (NaN: none).

    For balance the key metric is |balance − 50|, folded: its z is the normal quantile of the
    share of runners closer to 50 %, so "beyond 97.5 %" means the same as for the others.
    """
    if signal.sd is None or value is None or math.isnan(value):
        return math.nan
    if signal.feature == "balance_dev_pts":
        share = 2.0 * _NORMAL.cdf(abs(value) / signal.sd) - 1.0
        share = min(max(share, 1e-12), 1.0 - 1e-12)
        return max(-Z_CLIP, min(Z_CLIP, _NORMAL.inv_cdf(share)))
    return max(-Z_CLIP, min(Z_CLIP, signal.direction * value / signal.sd))


def area_z(area: str, values: Mapping[str, float]) -> dict[str, float]:
    """z of every signal of ``area`` that has a value and a norm."""
    out = {}
    for sig in SIGNALS[area]:
        z = signal_z(sig, values.get(sig.feature, math.nan))
        if not math.isnan(z):
            out[sig.feature] = z
    return out


def present(area: str, values: Mapping[str, float]) -> list[Signal]:
    """The area's signals that have a value."""
    return [s for s in SIGNALS[area] if not math.isnan(values.get(s.feature, math.nan))]


def verdict(z: float) -> str:
    """``extreme`` (beyond the 97.5th percentile), ``elevated``, or ``in_line``."""
    if z > EXTREME_Z:
        return "extreme"
    return "elevated" if z > IN_LINE_Z else "in_line"


def all_in_line(area: str, values: Mapping[str, float]) -> bool:
    """Every measured signal has a norm and sits within it (z ≤ IN_LINE_Z)."""
    sigs = present(area, values)
    if not sigs:
        return False
    for s in sigs:
        z = signal_z(s, values[s.feature])
        if math.isnan(z) or z > IN_LINE_Z:
            return False
    return True


def key_extreme(area: str, values: Mapping[str, float]) -> bool:
    """The area's key metric is beyond the population's 97.5th percentile, worse side."""
    sig = SIGNALS[area][0]
    z = signal_z(sig, values.get(sig.feature, math.nan))
    return not math.isnan(z) and z > EXTREME_Z


def _logistic(x: float) -> float:
    return 1.0 / (1.0 + math.exp(-max(-50.0, min(50.0, x))))


def _logit(p: float) -> float:
    p = min(max(p, 1e-4), 1.0 - 1e-4)
    return math.log(p / (1.0 - p))


def rule_probability(area: str, values: Mapping[str, float]) -> float:
    """The transparent rule: logistic in the largest signal z (0 when no signal has a norm)."""
    zs = area_z(area, values)
    if not zs:
        return BASE_RATE
    return _logistic(RULE_STEEPNESS * (max(zs.values()) - RULE_THRESHOLD_Z))


def key_z_probability(area: str, values: Mapping[str, float]) -> float:
    """The "largest key-metric z" score as a probability (same link as the rule)."""
    sig = SIGNALS[area][0]
    z = signal_z(sig, values.get(sig.feature, math.nan))
    if math.isnan(z):
        return BASE_RATE
    return _logistic(RULE_STEEPNESS * (z - RULE_THRESHOLD_Z))


def run_bounds(runs: int) -> tuple[float, float]:
    """Lowest and highest probability ``runs`` runs can support.

    A rule of succession with the base rate as prior worth one run: after n runs that all
    agree the probability is at most (n + BASE_RATE) / (n + 1), and at least
    BASE_RATE / (n + 1). One run: 0.1–0.6; three: 0.05–0.8; ten: 0.02–0.93. Assumption: each
    run counts as one observation.
    """
    n = max(int(runs), 0)
    return BASE_RATE / (n + 1.0), (n + BASE_RATE) / (n + 1.0)


def run_cap(runs: int) -> float:
    """Highest probability ``runs`` runs can support (:func:`run_bounds`)."""
    return run_bounds(runs)[1]


def interval(p: float, steady_min: float, measured: int, total: int) -> tuple[float, float]:
    """A 90 % interval around ``p`` on the log-odds scale, wider with less data (documented)."""
    minutes = max(steady_min if not math.isnan(steady_min) else 0.0, MIN_STEADY_MIN)
    coverage = max(measured, 1) / max(total, 1)
    se = SE_REF_LOGIT * math.sqrt(REF_STEADY_MIN / minutes) / math.sqrt(coverage)
    centre = _logit(p)
    return (_logistic(centre - Z90 * se), _logistic(centre + Z90 * se))


# -- support ------------------------------------------------------------------------------------


def _chi2_quantile(q: float, k: int) -> float:
    """Chi-square quantile by the Wilson–Hilferty approximation (k ≥ 1)."""
    z = _NORMAL.inv_cdf(q)
    a = 2.0 / (9.0 * k)
    return float(k * (1.0 - a + z * math.sqrt(a)) ** 3)


def _distance2(x: FloatArray, cov: FloatArray) -> float:
    """Squared Mahalanobis distance of a standardised vector on its observed coordinates."""
    seen = ~np.isnan(x)
    if not seen.any():
        return math.nan
    sub = cov[np.ix_(seen, seen)]
    xs = x[seen]
    return float(xs @ np.linalg.pinv(sub) @ xs)


def fit_support(
    X: FloatArray, feature_names: Sequence[str], area_features: Mapping[str, Sequence[str]]
) -> dict[str, Any]:
    """Per area: centre, scale, covariance and the 99th-percentile distance of the cohort.

    The distance uses only the features a row has (the sub-covariance of those), so a runner
    without Stryd is compared with the cohort on the rest. The cut is the cohort's own 99th
    percentile per number of features seen, or the chi-square quantile where the cohort holds
    fewer than MIN_ROWS_FOR_CUT such rows.
    """
    index = {n: i for i, n in enumerate(feature_names)}
    out: dict[str, Any] = {}
    for area, feats in area_features.items():
        cols = X[:, [index[f] for f in feats]]
        centre = np.nanmedian(cols, axis=0)
        scale = np.nanstd(cols, axis=0)
        centre = np.where(np.isnan(centre), 0.0, centre)
        scale = np.where(np.isfinite(scale) & (scale > 0), scale, 1.0)
        z = (cols - centre) / scale
        k = len(feats)
        cov = np.eye(k)
        for i in range(k):
            for j in range(k):
                both = ~np.isnan(z[:, i]) & ~np.isnan(z[:, j])
                if both.sum() >= 10:
                    cov[i, j] = float(np.mean(z[both, i] * z[both, j]))
        d2 = np.array([_distance2(row, cov) for row in z])
        dims = (~np.isnan(z)).sum(axis=1)
        cuts = {}
        for n in range(1, k + 1):
            sel = (dims == n) & ~np.isnan(d2)
            if sel.sum() >= MIN_ROWS_FOR_CUT:
                cuts[str(n)] = float(np.quantile(d2[sel], SUPPORT_QUANTILE))
            else:
                cuts[str(n)] = _chi2_quantile(SUPPORT_QUANTILE, n)
        out[area] = {
            "features": list(feats),
            "centre": centre.tolist(),
            "scale": scale.tolist(),
            "cov": cov.tolist(),
            "cut": cuts,
        }
    return out


def out_of_support(area: str, values: Mapping[str, float], support: Mapping[str, Any]) -> bool:
    """Whether the area's features lie beyond the cohort's 99th-percentile distance."""
    spec = support.get(area)
    if not spec:
        return False
    x = np.array([values.get(f, math.nan) for f in spec["features"]], dtype=np.float64)
    z = (x - np.asarray(spec["centre"])) / np.asarray(spec["scale"])
    n = int((~np.isnan(z)).sum())
    if n == 0:
        return False
    d2 = _distance2(z, np.asarray(spec["cov"], dtype=np.float64))
    return bool(d2 > float(spec["cut"][str(n)]))


# -- the decision -------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class AreaDecision:
    """What the analysis says about one judged area, and why."""

    area: str
    probability: float
    model_probability: float
    interval: tuple[float, float]
    z: dict[str, float]
    key_z: float | None
    verdict: str | None  # of the key metric: extreme | elevated | in_line
    in_line: bool
    floor_applied: bool
    capped: str | None  # "in_line" | "runs" | None
    out_of_support: bool
    stands_out: bool
    tier: int
    supporting: tuple[str, ...] = field(default=())  # features pointing towards a limiter


def decide_area(
    area: str,
    values: Mapping[str, float],
    model_p: float,
    *,
    runs: int,
    steady_min: float,
    support: Mapping[str, Any] | None = None,
) -> AreaDecision:
    """Turn the model's P(limiter) into what the analysis reports for one area."""
    zs = area_z(area, values)
    oos = bool(support) and out_of_support(area, values, support or {})
    p = rule_probability(area, values) if oos else float(model_p)
    capped = None
    in_line = all_in_line(area, values)
    if in_line and p > BASE_RATE:
        p, capped = BASE_RATE, "in_line"
    floor = key_extreme(area, values)
    floored = floor and p < EVIDENCE_FLOOR
    if floored:
        p = EVIDENCE_FLOOR
    low, cap = run_bounds(runs)
    if p > cap:
        p, capped = cap, "runs"
    elif p < low:
        p, capped = low, "runs"
    key = SIGNALS[area][0]
    kz = zs.get(key.feature)
    sigs = present(area, values)
    lo, hi = interval(p, steady_min, len(sigs), len(SIGNALS[area]))
    # Only a signal measured against a norm can be cited as pointing at a limiter.
    supporting = tuple(s.feature for s in sigs if zs.get(s.feature, -math.inf) > IN_LINE_Z)
    # Extreme key evidence ranks first; the rest by the interval's lower end (in-line areas
    # are capped at the base rate, so they rank low).
    tier = 0 if floor else 1
    return AreaDecision(
        area=area,
        probability=p,
        model_probability=float(model_p),
        interval=(lo, hi),
        z=zs,
        key_z=kz,
        verdict=None if kz is None else verdict(kz),
        in_line=in_line,
        floor_applied=floored,
        capped=capped,
        out_of_support=oos,
        stands_out=floor or (p >= STAND_OUT_P and lo >= BASE_RATE),
        tier=tier,
        supporting=supporting,
    )


def rank_key(decision: AreaDecision) -> tuple[int, float, int]:
    """Sort key: tier, then the interval's lower end (higher first), then area order."""
    return (decision.tier, -decision.interval[0], AREAS.index(decision.area))


def decide(
    values: Mapping[str, float],
    model_probs: Mapping[str, float],
    judged: Sequence[str],
    *,
    runs: int,
    steady_min: float,
    support: Mapping[str, Any] | None = None,
) -> list[AreaDecision]:
    """Decisions for the judged areas, in rank order."""
    out = [
        decide_area(a, values, model_probs[a], runs=runs, steady_min=steady_min, support=support)
        for a in judged
    ]
    return sorted(out, key=rank_key)
