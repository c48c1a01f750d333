"""Per-run and per-athlete features: references, segmentation, speed normalisation, real files."""

from __future__ import annotations

import inspect
import math
import re
import tomllib
from datetime import UTC, datetime
from functools import cache

import numpy as np
import pandas as pd
import pytest

from connectors.fit import decode_fit
from planner import reference as ref
from planner import simulate
from planner.features import (
    MODEL_FEATURES,
    WINDOW_FIELDS,
    RunFeatures,
    athlete_features,
    run_features,
)
from planner.records import AREAS, ImportedActivity
from planner.schema import Col, validate_columns
from planner.simulate import PARAMS, Runner, make_runner, simulate_cohort, simulate_run
from tests.conftest import FIT_DIR

START = datetime(2025, 5, 5, 7, 0, tzinfo=UTC)


def runner(seed: int = 1, **kw: object) -> Runner:
    options: dict = {"sensors": "full", "stryd": False, "body_known": True, **kw}
    return make_runner(np.random.default_rng(seed), f"r{seed}", **options)


@cache
def run_of(
    kind: str,
    seed: int = 1,
    minutes: float | None = 50.0,
    stryd: bool = False,
    sensors: str = "full",
) -> ImportedActivity:
    r = runner(seed, stryd=stryd, sensors=sensors)
    return simulate_run(r, kind, np.random.default_rng([seed, 7]), START, minutes=minutes)


# -- references ------------------------------------------------------------------------------


def test_reference_anchor_meets_garmin_medians() -> None:
    v = ref.ANCHOR_SPEED_MPS
    assert float(ref.cadence_ref_spm(v)) == pytest.approx(ref.GARMIN_CADENCE_MEDIAN_SPM)
    assert float(ref.gct_ref_ms(v)) == pytest.approx(ref.GARMIN_GCT_MEDIAN_MS)
    # van Oeveren 2019 in steps/min: 150.02 + 6.012 v.
    assert float(ref.cadence_ref_spm(3.0)) == pytest.approx(168.056)


def test_reference_balance_spread_matches_both_garmin_bands() -> None:
    # 40 % of runners within ±0.7 points, 90 % within ±2.2 (Garmin Enduro 3 manual).
    inside_green = 2 * ref.percentile_of(0.7 / ref.BALANCE_SD_PTS) - 100
    inside_90 = 2 * ref.percentile_of(2.2 / ref.BALANCE_SD_PTS) - 100
    assert inside_green == pytest.approx(40.0, abs=0.5)
    assert inside_90 == pytest.approx(90.0, abs=0.1)


def test_gct_reference_falls_with_speed_and_stryd_scale_is_shorter() -> None:
    speeds = np.array([2.0, 3.0, 4.0, 5.0])
    gct = ref.gct_ref_ms(speeds)
    assert np.all(np.diff(gct) < 0)
    assert np.all(ref.gct_ref_ms(speeds, stryd=True) < gct)


def test_spring_mass_matches_the_morin_formulas_by_hand() -> None:
    tc, cad, v, m, h = 0.241, 185.5, 3.73, 70.0, 1.8
    tf = 60.0 / cad - tc
    f_max = m * 9.81 * math.pi / 2 * (tf / tc + 1)
    dy = f_max * tc**2 / (m * math.pi**2) - 9.81 * tc**2 / 8
    leg = 0.53 * h
    dl = leg - math.sqrt(leg**2 - (v * tc / 2) ** 2) + dy
    est = ref.spring_mass(tc * 1000, cad, v, mass_kg=m, height_m=h)
    assert float(est.f_max_n) == pytest.approx(f_max)
    assert float(est.k_vert_n_m) == pytest.approx(f_max / dy)
    assert est.k_leg_n_m is not None
    assert float(est.k_leg_n_m) == pytest.approx(f_max / dl)
    # Per kg when no mass is given.
    assert float(ref.spring_mass(tc * 1000, cad, v).k_vert_n_m) == pytest.approx(f_max / dy / m)


def test_spring_mass_without_flight_or_height() -> None:
    est = ref.spring_mass(400.0, 150.0, 3.0)  # contact = step time: no flight
    assert est.k_leg_n_m is None
    assert np.isfinite(est.k_vert_n_m)


def test_every_generator_parameter_names_a_source_or_says_assumption() -> None:
    source = inspect.getsource(simulate)
    for name, param in PARAMS.items():
        assert param.source.strip(), name
        assert math.isfinite(param.value), name
        assert re.search(rf'p\(\s*"{name}"\s*\)', source), f"{name} is never used"


# -- one run ---------------------------------------------------------------------------------


def test_simulated_runs_pass_the_schema_and_are_seeded() -> None:
    a = run_of("easy")
    b = simulate_run(runner(1), "easy", np.random.default_rng([1, 7]), START, minutes=50.0)
    assert validate_columns(a.stream) is a.stream  # valid, columns in canonical order
    pd.testing.assert_frame_equal(a.stream.to_frame(), b.stream.to_frame())


def test_warm_up_is_skipped_and_windows_are_steady() -> None:
    rf = run_features(run_of("easy").stream, run_of("easy").activity)
    assert rf.warmup_skipped_s == ref.WARMUP_S
    assert rf.windows["t_s"].min() >= ref.WARMUP_S
    assert rf.steady_s >= 30 * 60
    assert set(rf.windows) == set(WINDOW_FIELDS)
    assert not rf.intervals
    assert not rf.treadmill
    assert not rf.trail


def test_a_pause_never_lands_in_a_steady_window() -> None:
    item = run_of("easy")
    frame = item.stream.to_frame()
    frame.loc[frame.index[1500:1560], Col.SPEED_MPS.value] = 0.0  # standing at a light
    frame = frame.drop(frame.index[2000:2100])  # and a timer pause: a gap
    rf = run_features(frame, item.activity)
    base = run_features(item.stream, item.activity)
    assert rf.steady_s <= base.steady_s - 2 * 60


@pytest.mark.parametrize(
    ("kind", "flag"), [("treadmill", "treadmill"), ("trail", "trail"), ("intervals", "intervals")]
)
def test_run_kinds_are_recognised(kind: str, flag: str) -> None:
    item = run_of(kind, minutes=None)
    rf = run_features(item.stream, item.activity)
    assert getattr(rf, flag)
    if kind == "trail":
        assert rf.flat_s < rf.steady_s  # slopes kept out of balance and stiffness
    if kind == "intervals":
        assert math.isnan(rf.scalar("gct_drift_ms"))  # no drift across work and rest
        assert rf.n_windows > 0  # the steady work and rest minutes still count


def test_residuals_do_not_depend_on_pace() -> None:
    easy = run_features(run_of("easy").stream, run_of("easy").activity)
    tempo = run_features(
        run_of("tempo", minutes=45.0).stream, run_of("tempo", minutes=45.0).activity
    )
    assert tempo.scalar("speed_mps") > easy.scalar("speed_mps") + 0.3
    assert tempo.scalar("gct_ms") < easy.scalar("gct_ms")  # raw GCT says "faster"...
    # ...the speed-normalised residual says "same runner".
    assert tempo.scalar("gct_resid_ms") == pytest.approx(easy.scalar("gct_resid_ms"), abs=4.0)
    assert tempo.scalar("vo_resid_mm") == pytest.approx(easy.scalar("vo_resid_mm"), abs=3.0)


def test_drift_and_decoupling_on_a_long_run() -> None:
    item = run_of("long", minutes=90.0)
    rf = run_features(item.stream, item.activity)
    for name in (
        "cadence_drift_spm",
        "gct_drift_ms",
        "vo_drift_mm",
        "balance_drift_pts",
        "hr_decoupling_pct",
    ):
        assert math.isfinite(rf.scalar(name)), name
    short = run_of("easy", minutes=25.0)
    assert math.isnan(run_features(short.stream, short.activity).scalar("gct_drift_ms"))


def test_run_without_running_dynamics_yields_what_it_can() -> None:
    item = run_of("easy", sensors="none")
    rf = run_features(item.stream, item.activity)
    assert math.isfinite(rf.scalar("cadence_resid_spm"))
    assert math.isfinite(rf.scalar("step_length_m"))  # from speed and cadence
    assert math.isfinite(rf.scalar("hr_decoupling_pct"))
    assert math.isnan(rf.scalar("gct_resid_ms"))
    assert math.isnan(rf.scalar("balance_left_pct"))


def test_run_without_speed_keeps_its_cadence_but_no_steady_window() -> None:
    item = run_of("easy")
    frame = item.stream.to_frame().drop(columns=[Col.SPEED_MPS.value])
    rf = run_features(frame, item.activity)
    assert rf.notes[0].startswith("no speed")
    assert rf.n_windows == 0
    assert rf.steady_s == 0.0
    assert "speed" not in rf.signals
    # Without speed every sample counts as moving, so the whole recording is moving time.
    assert rf.moving_s == pytest.approx(len(frame.index) - 1, abs=1.0)
    cadence = frame[Col.CADENCE_SPM.value].to_numpy(dtype=np.float64)
    assert rf.scalar("cadence_spm") == pytest.approx(float(np.nanmedian(cadence[cadence > 0])))
    assert math.isnan(rf.scalar("cadence_resid_spm"))  # nothing to compare at a speed


def test_stryd_only_runs_use_stryd_ground_time_on_its_own_scale() -> None:
    item = run_of("easy", sensors="none", stryd=True)
    assert Col.STRYD_GCT_MS.value in item.stream.values
    rf = run_features(item.stream, item.activity)
    with_watch = run_features(run_of("easy").stream, run_of("easy").activity)
    # Same runner, same seed: Stryd's shorter ground time lands on the same residual.
    assert rf.scalar("gct_resid_ms") == pytest.approx(with_watch.scalar("gct_resid_ms"), abs=3.0)
    assert math.isfinite(rf.scalar("lss_resid_pct"))
    assert 0.1 < rf.scalar("form_power_ratio") < 0.5


def test_features_survive_the_cache_round_trip() -> None:
    rf = run_features(run_of("long", minutes=90.0).stream, run_of("long", minutes=90.0).activity)
    back = RunFeatures.from_json(rf.to_json())
    assert back.start_utc == rf.start_utc
    assert back.signals == rf.signals
    for name in WINDOW_FIELDS:
        np.testing.assert_allclose(back.windows[name], rf.windows[name], atol=1e-4)
    for name, value in rf.scalars.items():
        assert (math.isnan(value) and math.isnan(back.scalars[name])) or back.scalars[
            name
        ] == pytest.approx(value, abs=1e-4)


def running_fixtures() -> list[str]:
    """Bundled FIT files holding a run, from the fixture index (all permissively licensed)."""
    index = tomllib.loads((FIT_DIR / "index.toml").read_text(encoding="utf-8"))
    return [f["name"] for f in index["file"] if "running" in f.get("sports", [])]


def _fixture_runs() -> list[tuple[str, ImportedActivity]]:
    out = []
    for name in running_fixtures():
        path = FIT_DIR / name
        decoded = decode_fit(path.read_bytes(), str(path))
        out += [(name, item) for item in decoded.items if item.activity.is_running]
    return out


@pytest.mark.parametrize(
    ("name", "item"), _fixture_runs(), ids=lambda x: x if isinstance(x, str) else ""
)
def test_every_running_fixture_yields_features(name: str, item: ImportedActivity) -> None:
    rf = run_features(item.stream, item.activity)
    af = athlete_features([rf])
    assert af.vector().shape == (len(MODEL_FEATURES),)
    if Col.SPEED_MPS.value not in item.stream.values:
        assert any("no speed" in note for note in rf.notes)
        assert not any(af.judgeable(a) for a in AREAS)


def test_fenix3_fixture_values_are_plausible() -> None:
    path = FIT_DIR / "Fenix3-Run-1321421020.fit"
    item = decode_fit(path.read_bytes(), str(path)).items[0]
    rf = run_features(item.stream, item.activity)
    assert rf.steady_s > 60 * 60
    assert 3.5 < rf.scalar("speed_mps") < 4.0
    assert 180 < rf.scalar("cadence_spm") < 195
    assert 47.5 < rf.scalar("balance_left_pct") < 49.5


# -- one athlete -----------------------------------------------------------------------------


def test_athlete_features_pool_runs_and_fit_own_slopes() -> None:
    runs = [
        run_features(run_of(k, minutes=m).stream, run_of(k, minutes=m).activity)
        for k, m in (("easy", 50.0), ("tempo", 45.0), ("long", 90.0), ("intervals", None))
    ]
    af = athlete_features(runs)
    assert af.runs == 4
    assert af.runs_with["balance"] == 4
    assert math.isfinite(af.value("cadence_slope_resid"))
    assert af.side in ("left", "right")
    assert af.value("balance_dev_pts") == pytest.approx(abs(af.value("balance_left_pct") - 50))
    assert set(af.fits) >= {"cadence_spm", "gct_ms", "step_length_m"}
    assert len(af.fits["step_length_m"].coef) == 3  # Bailey et al. 2017: quadratic
    single = athlete_features(runs[:1])
    assert math.isnan(single.value("cadence_slope_resid"))  # one pace: no own slope


def test_athlete_features_of_nothing() -> None:
    af = athlete_features([])
    assert af.runs == 0
    assert np.isnan(af.vector()).all()
    assert not any(af.judgeable(a) for a in AREAS)


def test_simulated_cohort_is_the_same_with_two_processes() -> None:
    one = simulate_cohort(8, seed=5, max_runs=1)
    two = simulate_cohort(8, seed=5, max_runs=1, workers=2)
    for a, b in zip(one, two, strict=True):
        assert a.runner == b.runner
        np.testing.assert_array_equal(
            athlete_features(a.runs).vector(), athlete_features(b.runs).vector()
        )


def test_the_fixture_index_lists_runs_without_and_with_dynamics() -> None:
    names = running_fixtures()
    assert "2013-02-06-12-11-14.fit" in names  # speed and heart rate only
    assert "Fenix3-Run-1321421020.fit" in names
