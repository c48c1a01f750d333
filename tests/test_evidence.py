"""Coherence of what ``analyze`` says (issue 17): the shipped model plus the evidence checks.

Hypothesis draws feature vectors — typical, extreme and contradictory ones, with signals
missing — and checks that the reported probabilities, ranks and reasons never contradict the
evidence printed beside them.
"""

from __future__ import annotations

import dataclasses
import math
import re
from functools import cache
from typing import Any

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from planner import evidence as ev
from planner.features import AREA_REQUIRES, MODEL_FEATURES, run_features
from planner.limiters import rank_limiters
from planner.records import AREAS
from planner.services.analysis import analyse_runs
from planner.simulate import simulate_run
from planner.store.model_io import SHIPPED_DIR, CompiledBundle, load_compiled
from tests.test_analyze import START, make

#: Ranges wider than any runner: the checks must hold at the extremes too.
RANGES: dict[str, tuple[float, float]] = {
    "cadence_resid_spm": (-45.0, 40.0),
    "cadence_slope_resid": (-30.0, 30.0),
    "gct_resid_ms": (-120.0, 160.0),
    "vr_resid_pct": (-5.0, 7.0),
    "lss_resid_pct": (-45.0, 45.0),
    "vo_resid_mm": (-45.0, 70.0),
    "vo_drift_mm": (-15.0, 15.0),
    "gct_drift_ms": (-25.0, 35.0),
    "form_power_ratio": (0.1, 0.6),
    "balance_dev_pts": (0.0, 9.0),
    "balance_drift_pts": (-3.0, 5.0),
    "balance_speed_slope": (-6.0, 6.0),
}
assert set(RANGES) == set(MODEL_FEATURES)

SETTINGS = settings(max_examples=150, deadline=None, derandomize=True)


@cache
def bundle() -> CompiledBundle:
    return load_compiled(SHIPPED_DIR)


@st.composite
def feature_values(draw: st.DrawFn) -> dict[str, float]:
    out = {}
    for name, (lo, hi) in RANGES.items():
        kind = draw(st.sampled_from(["typical", "any", "edge", "missing"]))
        if kind == "missing":
            out[name] = math.nan
        elif kind == "edge":
            out[name] = draw(st.sampled_from([lo, hi]))
        elif kind == "typical":
            mid = 0.3 if name == "form_power_ratio" else 1.0 if name == "balance_dev_pts" else 0.0
            out[name] = mid + draw(st.floats(-0.15, 0.15)) * (hi - lo)
        else:
            out[name] = draw(st.floats(lo, hi))
    return out


def judged(values: dict[str, float]) -> list[str]:
    return [a for a in AREAS if any(not math.isnan(values[k]) for k in AREA_REQUIRES[a])]


def decisions(values: dict[str, float], runs: int, minutes: float) -> list[ev.AreaDecision]:
    row = np.array([[values[k] for k in MODEL_FEATURES]])
    probs = dict(zip(AREAS, bundle().model.limiter_proba(row)[0].tolist(), strict=True))
    return ev.decide(
        values,
        probs,
        judged(values),
        runs=runs,
        steady_min=minutes,
        support=bundle().meta.get("support"),
    )


@SETTINGS
@given(feature_values(), st.integers(1, 30), st.floats(10.0, 2000.0))
def test_extreme_evidence_is_never_unlikely_and_ranks_above_in_line_areas(
    values: dict[str, float], runs: int, minutes: float
) -> None:
    ds = decisions(values, runs, minutes)
    for rank, d in enumerate(ds):
        if d.key_z is not None and d.key_z > ev.EXTREME_Z:
            assert d.probability >= ev.EVIDENCE_FLOOR
            assert d.stands_out
            # No area whose evidence is all in line ranks above it.
            assert all(not other.in_line for other in ds[:rank])
        if d.in_line:
            assert d.probability <= ev.BASE_RATE
            assert not d.stands_out
            # Nothing with extreme key evidence ranks below an in-line area.
            assert all(other.verdict != "extreme" for other in ds[rank:])


@SETTINGS
@given(feature_values(), st.integers(1, 30), st.floats(10.0, 2000.0))
def test_probabilities_stay_inside_what_the_data_can_support(
    values: dict[str, float], runs: int, minutes: float
) -> None:
    for d in decisions(values, runs, minutes):
        assert d.stands_out == (
            d.verdict == "extreme" or (d.probability >= ev.STAND_OUT_P and d.interval[0] >= 0.2)
        )
        low, high = ev.run_bounds(runs)
        assert low <= d.probability <= high
        lo, hi = d.interval
        assert lo <= d.probability <= hi
        # Fewer minutes: a wider interval (never a narrower one).
        lo2, hi2 = ev.decide_area(
            d.area,
            values,
            d.model_probability,
            runs=runs,
            steady_min=minutes / 4.0,
            support=bundle().meta.get("support"),
        ).interval
        assert hi2 - lo2 >= hi - lo - 1e-12
        # Only evidence worse than the population's band is cited as a reason.
        assert all(d.z[f] > ev.IN_LINE_Z for f in d.supporting)


@SETTINGS
@given(
    feature_values(),
    st.sampled_from(AREAS),
    st.floats(0.0, 1.0),
    st.integers(1, 12),
)
def test_worse_key_evidence_never_lowers_the_reported_probability(
    values: dict[str, float], area: str, step: float, runs: int
) -> None:
    key = ev.SIGNALS[area][0]
    lo, hi = RANGES[key.feature]
    base = dict(values)
    if math.isnan(base[key.feature]):
        base[key.feature] = 0.0 if key.feature != "balance_dev_pts" else 1.0
    worse = dict(base)
    worse[key.feature] = base[key.feature] + key.direction * step * (hi - lo) / 2.0
    if key.feature == "balance_dev_pts":
        worse[key.feature] = abs(worse[key.feature])
    before = {d.area: d for d in decisions(base, runs, 200.0)}
    after = {d.area: d for d in decisions(worse, runs, 200.0)}
    if before[area].out_of_support != after[area].out_of_support:
        return  # the rule takes over at the cohort's edge: its own monotonicity is tested below
    assert after[area].probability >= before[area].probability - 1e-12


@given(st.sampled_from(AREAS), st.lists(st.floats(-3.0, 8.0), min_size=2, max_size=2))
def test_the_transparent_rule_is_monotone(area: str, zs: list[float]) -> None:
    key = ev.SIGNALS[area][0]
    assert key.sd is not None
    lo, hi = sorted(zs)
    if key.feature == "balance_dev_pts":
        a, b = {key.feature: abs(lo) * key.sd}, {key.feature: abs(hi) * key.sd}
        if abs(lo) > abs(hi):
            a, b = b, a
    else:
        a = {key.feature: key.direction * lo * key.sd}
        b = {key.feature: key.direction * hi * key.sd}
    assert ev.rule_probability(area, b) >= ev.rule_probability(area, a)


def test_an_exactly_average_runner_has_no_area_standing_out() -> None:
    values = dict.fromkeys(MODEL_FEATURES, 0.0) | {
        "form_power_ratio": math.nan,
        "lss_resid_pct": math.nan,
        "balance_dev_pts": 0.9,
    }
    for runs in (1, 3, 12):
        ds = decisions(values, runs, 45.0 * runs)
        assert len(ds) == 4
        assert not any(d.stands_out for d in ds), ds


@pytest.mark.parametrize(
    ("area", "feature", "value"),
    [
        ("swing", "cadence_resid_spm", -21.0),  # the audit's 148 spm at 11.5 km/h
        ("posture_hip", "vo_resid_mm", 40.0),
        ("strength_balance", "balance_dev_pts", 3.5),
        ("push", "gct_resid_ms", 120.0),
    ],
)
def test_the_audits_cases_now_lead(area: str, feature: str, value: float) -> None:
    # Each of the audit's contradictions: one extreme key metric, every other signal
    # ordinary — including a steep cadence slope for swing and a low vertical ratio for push.
    values = dict.fromkeys(MODEL_FEATURES, 0.0) | {
        "form_power_ratio": math.nan,
        "lss_resid_pct": math.nan,
        "balance_dev_pts": 0.9,
        "cadence_slope_resid": 4.0 if area == "swing" else 0.0,
        "vr_resid_pct": -1.5 if area == "push" else 0.0,
        feature: value,
    }
    ds = decisions(values, 4, 180.0)
    assert ds[0].area == area
    assert ds[0].probability >= ev.EVIDENCE_FLOOR
    assert ds[0].verdict == "extreme"


# -- through the whole analysis: the text says what the numbers say ----------------------------

_INTERNAL_KEY = re.compile(r"\b[a-z]+_[a-z_]+\b")


@cache
def base_features() -> Any:
    item = simulate_run(make(5), "easy", np.random.default_rng([5, 1]), START, minutes=50.0)
    return run_features(item.stream, item.activity)


@settings(max_examples=60, deadline=None, derandomize=True)
@given(feature_values())
def test_reasons_never_cite_evidence_that_calls_an_area_normal(values: dict[str, float]) -> None:
    af = analyse_runs("t", [base_features()], bundle()).features
    af = dataclasses.replace(af, values=af.values | values)
    row = af.vector()[None, :]
    probs = dict(zip(AREAS, bundle().model.limiter_proba(row)[0].tolist(), strict=True))
    estimates, _ = rank_limiters(af, probs, bundle().meta.get("support"))
    for est in estimates:
        if est.probability is None:
            continue
        assert set(est.support) <= set(est.evidence)
        for sentence in est.support:
            # A cited sentence never says the area is typical.
            assert "in line with the population" not in sentence
        assert est.summary is not None
        for text in (est.summary, *est.evidence):
            assert not _INTERNAL_KEY.search(text), text
        if est.verdict == "in_line" and not est.support:
            assert "in line" in est.summary or "not measured" in est.summary
