"""The limiter model: estimator contract, monotonicity, artefacts, training data rules."""

from __future__ import annotations

import json
import math
import shutil
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import sklearn
from hypothesis import given, settings
from hypothesis import strategies as st
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import FunctionTransformer
from sklearn.utils.estimator_checks import parametrize_with_checks

from planner.errors import ModelMismatchError
from planner.features import AREA_FEATURES, MODEL_FEATURES, RunFeatures
from planner.model import (
    CoachLabelled,
    LimiterClassifier,
    TrainingDataError,
    TrainingSet,
    ZScoreRuleClassifier,
    build_pipeline,
    calibration_error,
    check_no_strava,
    coach_training_set,
    evaluate,
    fit_models,
    grouped_cv,
    limiter_proba,
    simulated_training_set,
)
from planner.model_io import (
    FORMAT_VERSION,
    SHIPPED_DIR,
    TRUSTED_TYPES,
    load_artefact,
    save_artefact,
)
from planner.records import AREAS, Source

# HistGradientBoosting bins features, and calibration splits rows into folds, so weighting a
# row by 2 is not the same as repeating it; scikit-learn marks its own HGB the same way.
_EXPECTED = {
    "check_sample_weight_equivalence_on_dense_data": (
        "binned boosting and calibration folds: weights are not repetitions"
    )
}


@parametrize_with_checks(
    [LimiterClassifier(max_iter=10, cv=2, random_state=0), ZScoreRuleClassifier()],
    expected_failed_checks=lambda est: _EXPECTED if isinstance(est, LimiterClassifier) else {},
)
def test_sklearn_estimator_contract(
    estimator: Any, check: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The array-API check runs (instead of skipping) only with this variable set; it checks
    # that NumPy inputs under array-API dispatch give the same results.
    monkeypatch.setenv("SCIPY_ARRAY_API", "1")
    check(estimator)


@pytest.fixture(scope="module")
def tiny() -> tuple[TrainingSet, TrainingSet]:
    """A tiny seeded cohort to train on and another to test on."""
    train, _ = simulated_training_set(80, seed=11, max_runs=2)
    test, _ = simulated_training_set(40, seed=12, max_runs=2)
    return train, test


@pytest.fixture(scope="module")
def shipped() -> Any:
    return load_artefact(SHIPPED_DIR)


# -- monotone in the published directions ------------------------------------------------------

_ROW = st.lists(
    st.one_of(st.none(), st.floats(-60, 60, allow_nan=False)),
    min_size=len(MODEL_FEATURES),
    max_size=len(MODEL_FEATURES),
)


@settings(max_examples=40, deadline=None, derandomize=True)
@given(row=_ROW, area=st.sampled_from(AREAS), step=st.floats(0.0, 40.0))
def test_shipped_model_is_monotone_in_every_area_signal(
    shipped: Any, row: list[float | None], area: str, step: float
) -> None:
    x = np.array([np.nan if v is None else v for v in row])
    probs = limiter_proba(shipped.pipeline, x[None, :])[0]
    for name, sign in AREA_FEATURES[area].items():
        k = MODEL_FEATURES.index(name)
        if math.isnan(x[k]):
            continue
        worse = x.copy()
        worse[k] += sign * step
        after = limiter_proba(shipped.pipeline, worse[None, :])[0]
        assert after[AREAS.index(area)] >= probs[AREAS.index(area)] - 1e-12, name


# -- training data and evaluation --------------------------------------------------------------


def test_training_is_reproducible(tiny: tuple[TrainingSet, TrainingSet]) -> None:
    train, test = tiny
    again, _ = simulated_training_set(80, seed=11, max_runs=2)
    assert again.digest() == train.digest()
    a, _ = fit_models(train, random_state=3)
    b, _ = fit_models(again, random_state=3)
    np.testing.assert_array_equal(limiter_proba(a, test.X), limiter_proba(b, test.X))


def test_labels_of_unjudgeable_areas_are_left_out(tiny: tuple[TrainingSet, TrainingSet]) -> None:
    train, _ = tiny
    balance = train.X[:, MODEL_FEATURES.index("balance_dev_pts")]
    label = train.Y[:, AREAS.index("strength_balance")]
    assert np.array_equal(np.isnan(balance), np.isnan(label))
    assert not np.isnan(train.Y[:, AREAS.index("swing")]).all()


def test_evaluate_reports_both_models(tiny: tuple[TrainingSet, TrainingSet]) -> None:
    train, test = tiny
    pipeline, baseline = fit_models(train)
    report = evaluate(pipeline, baseline, test)
    for name in ("model", "baseline"):
        assert set(report[name]["areas"]) == set(AREAS)
        for m in report[name]["areas"].values():
            assert 0.0 <= m["brier"] <= 1.0
            assert 0.0 <= m["calibration_error"] <= 1.0
        assert 0.0 <= report[name]["top1_accuracy"] <= 1.0


def test_calibration_error_of_perfect_and_wrong_predictions() -> None:
    y = np.array([0.0, 0.0, 1.0, 1.0])
    assert calibration_error(y, y) == 0.0
    assert calibration_error(y, 1.0 - y) == pytest.approx(1.0)


def _run(source: Source) -> RunFeatures:
    from datetime import UTC, datetime

    return RunFeatures(
        source=source.value, start_utc=datetime(2025, 1, 1, tzinfo=UTC), sport="running"
    )


def test_strava_runs_never_reach_training() -> None:
    with pytest.raises(TrainingDataError, match="Strava"):
        check_no_strava([_run(Source.FIT), _run(Source.STRAVA)])
    check_no_strava([_run(Source.FIT), _run(Source.GARMIN)])
    # The loader drops them before anything is computed from them.
    only_strava = CoachLabelled("a", (_run(Source.STRAVA),), {"push": 1})
    assert len(coach_training_set([only_strava])) == 0


def test_coach_labels_join_training_with_weight_and_grouped_cv(
    tiny: tuple[TrainingSet, TrainingSet],
) -> None:
    from planner.simulate import simulate_cohort

    train, _ = tiny
    real = simulate_cohort(6, seed=77, max_runs=2, prefix="coach")
    labelled = [
        CoachLabelled(a.runner.id, a.runs, {"swing": i % 2, "push": (i + 1) % 2})
        for i, a in enumerate(real)
    ]
    coach = coach_training_set(labelled, weight=5.0)
    assert len(coach) == 6
    assert set(coach.weights) == {5.0}
    assert np.isnan(coach.Y[:, AREAS.index("posture_hip")]).all()  # not labelled
    report = grouped_cv(train, coach)
    assert report["athletes"] == 6
    assert report["areas"]["swing"]["n"] == 6


# -- artefacts ---------------------------------------------------------------------------------


def test_shipped_model_matches_this_version(shipped: Any) -> None:
    meta = shipped.meta
    assert meta["format_version"] == FORMAT_VERSION
    assert meta["feature_names"] == list(MODEL_FEATURES)
    assert meta["libraries"]["scikit-learn"].split(".")[:2] == sklearn.__version__.split(".")[:2]
    assert len(meta["training_data_sha256"]) == 64
    assert isinstance(shipped.pipeline, Pipeline)


@pytest.fixture(scope="module")
def saved(tmp_path_factory: pytest.TempPathFactory, tiny: tuple[TrainingSet, TrainingSet]) -> Path:
    """A tiny model saved once; tests copy it before changing anything."""
    directory = tmp_path_factory.mktemp("model")
    pipeline, baseline = fit_models(tiny[0])
    save_artefact(pipeline, baseline, directory, training_data_sha256=tiny[0].digest())
    return directory


def _copy(saved: Path, tmp_path: Path) -> Path:
    for name in ("limiter.skops", "limiter.json"):
        shutil.copy(saved / name, tmp_path / name)
    return tmp_path


def _shift(x: Any) -> Any:
    return x + 1.0


def test_artefact_round_trip(saved: Path, tiny: tuple[TrainingSet, TrainingSet]) -> None:
    train, test = tiny
    pipeline, baseline = fit_models(train)
    loaded = load_artefact(saved)
    np.testing.assert_array_equal(
        limiter_proba(loaded.pipeline, test.X), limiter_proba(pipeline, test.X)
    )
    np.testing.assert_array_equal(
        limiter_proba(loaded.baseline, test.X), limiter_proba(baseline, test.X)
    )
    assert loaded.meta["training_data_sha256"] == train.digest()


@pytest.mark.parametrize(
    ("field", "value", "message"),
    [
        ("format_version", FORMAT_VERSION + 1, "model format"),
        ("feature_version", "0", "feature version"),
        ("feature_names", ["cadence"], "other features"),
        ("libraries", {"scikit-learn": "0.1.0"}, "scikit-learn 0.1.0"),
        ("artefact_sha256", "0" * 64, "hash differs"),
    ],
)
def test_mismatched_artefact_is_refused(
    tmp_path: Path, saved: Path, field: str, value: Any, message: str
) -> None:
    directory = _copy(saved, tmp_path)
    meta_path = directory / "limiter.json"
    meta = json.loads(meta_path.read_text())
    meta[field] = value
    meta_path.write_text(json.dumps(meta))
    with pytest.raises(ModelMismatchError, match=message):
        load_artefact(directory)


def test_missing_or_foreign_artefact_is_refused(
    tmp_path: Path, tiny: tuple[TrainingSet, TrainingSet]
) -> None:
    with pytest.raises(ModelMismatchError, match="no model"):
        load_artefact(tmp_path / "nothing")
    # A pipeline holding a function skops does not trust by default: refused, never run.
    train = tiny[0]
    pipeline = Pipeline([("shift", FunctionTransformer(_shift)), *build_pipeline().steps])
    pipeline.fit(train.X, train.Y)
    baseline = ZScoreRuleClassifier().fit(train.X, np.nan_to_num(train.Y, nan=0.0))
    save_artefact(pipeline, baseline, tmp_path, training_data_sha256="x")
    with pytest.raises(ModelMismatchError, match="types we do not load"):
        load_artefact(tmp_path)


def test_trusted_types_are_exactly_what_a_model_holds(saved: Path) -> None:
    import skops.io as sio

    assert set(sio.get_untrusted_types(file=saved / "limiter.skops")) == TRUSTED_TYPES
