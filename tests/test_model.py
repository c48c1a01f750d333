"""The limiter model: estimator contract, monotonicity, artefacts, training data rules."""

from __future__ import annotations

import hashlib
import io
import json
import math
import shutil
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
import pytest
import sklearn
from hypothesis import given, settings
from hypothesis import strategies as st
from sklearn.calibration import CalibratedClassifierCV
from sklearn.ensemble import HistGradientBoostingClassifier
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import FunctionTransformer
from sklearn.utils.estimator_checks import parametrize_with_checks

from planner.compiled import COMPILED_FORMAT_VERSION, CompiledLimiter
from planner.errors import ModelMismatchError
from planner.features import AREA_FEATURES, MODEL_FEATURES, RunFeatures
from planner.model import (
    CoachLabelled,
    LimiterClassifier,
    TrainingDataError,
    TrainingSet,
    ZScoreRuleClassifier,
    area_groups,
    build_baseline,
    build_pipeline,
    calibration_error,
    check_no_strava,
    coach_training_set,
    compile_pipeline,
    evaluate,
    fit_models,
    grouped_cv,
    limiter_proba,
    simulated_training_set,
)
from planner.records import AREAS, Source
from planner.store.model_io import (
    FORMAT_VERSION,
    SHIPPED_DIR,
    TRUSTED_TYPES,
    load_artefact,
    load_compiled,
    save_artefact,
)

# Expected failure, and why it cannot honestly pass. The check fits once with integer weights
# and once with rows repeated that many times (for an estimator with a `cv` parameter, such as
# ours, it passes explicit group folds, so fold assignment is not the cause; and scikit-learn
# 1.9 already leaves weight-0 rows out of the bin edges, so binning is not either). The cause is
# HistGradientBoosting's `min_samples_leaf`: it counts rows, not weight, so a row of weight 3 is
# one row towards a leaf where three repeated rows are three, and different splits are allowed
# (at min_samples_leaf=20, the value we ship, the two fits pick different splits and differ by
# up to 0.1 in probability). At min_samples_leaf=1 the check passes, but only vacuously: on its
# 15-row data set the trees and isotonic calibration memorise the labels and predict exact 0/1,
# so it also passes with the weights thrown away — a test that cannot fail. scikit-learn exempts
# its own HistGradientBoostingClassifier from this check for the same reason
# (sklearn/utils/_test_common/instance_generator.py, PER_ESTIMATOR_XFAIL_CHECKS: "sample_weight
# is not equivalent to removing/repeating samples", meta-issue #16298). That weights do reach
# training is tested below (coach-labelled rows with their weight).
_EXPECTED = {
    "check_sample_weight_equivalence_on_dense_data": (
        "HistGradientBoosting's min_samples_leaf counts rows, not weight; scikit-learn xfails"
        " its own HistGradientBoostingClassifier here (meta-issue #16298)"
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
    for name in ("model", "baseline", "key_z"):
        assert set(report[name]["areas"]) == set(AREAS)
        for m in report[name]["areas"].values():
            assert 0.0 <= m["brier"] <= 1.0
            assert 0.0 <= m["calibration_error"] <= 1.0
        assert 0.0 <= report[name]["top1_accuracy"] <= 1.0
        assert 0.0 <= report[name]["false_flag_rate"] <= 1.0
        assert report[name]["limiter_free_n"] > 0
    # What analyze reports never leaves extreme key evidence below 0.2 (the evidence floor).
    assert report["model"]["extreme_below_0_2"] == 0


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
    swing = report["areas"]["swing"]
    assert swing["n"] == 6
    # Issue 17: figures come with bootstrap intervals, and six labels say they are too few.
    lo, hi = swing["brier_90"]
    assert lo <= swing["brier"] <= hi
    if swing["roc_auc"] is not None and swing["roc_auc_90"] is not None:
        assert swing["roc_auc_90"][0] <= swing["roc_auc_90"][1]
    assert swing["too_few"]
    assert "Too few coach labels" in report["note"]


# -- artefacts ---------------------------------------------------------------------------------


def test_shipped_model_matches_this_version(shipped: Any) -> None:
    meta = shipped.meta
    assert meta["format_version"] == FORMAT_VERSION
    assert meta["feature_names"] == list(MODEL_FEATURES)
    assert meta["libraries"]["scikit-learn"].split(".")[:2] == sklearn.__version__.split(".")[:2]
    assert len(meta["training_data_sha256"]) == 64
    assert isinstance(shipped.pipeline, Pipeline)
    assert meta["compiled_format_version"] == COMPILED_FORMAT_VERSION
    compiled = load_compiled(SHIPPED_DIR)
    assert compiled.meta == meta
    assert compiled.version == shipped.version


@pytest.fixture(scope="module")
def saved(tmp_path_factory: pytest.TempPathFactory, tiny: tuple[TrainingSet, TrainingSet]) -> Path:
    """A tiny model saved once; tests copy it before changing anything."""
    directory = tmp_path_factory.mktemp("model")
    pipeline, baseline = fit_models(tiny[0])
    save_artefact(pipeline, baseline, directory, training_data_sha256=tiny[0].digest())
    return directory


def _copy(saved: Path, tmp_path: Path) -> Path:
    for name in ("limiter.skops", "limiter.json", "limiter.npz"):
        shutil.copy(saved / name, tmp_path / name)
    return tmp_path


def _edit_meta(directory: Path, **changes: Any) -> None:
    meta_path = directory / "limiter.json"
    meta = json.loads(meta_path.read_text())
    meta.update(changes)
    meta_path.write_text(json.dumps(meta))


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


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
    assert load_compiled(saved).meta == loaded.meta


_META_MISMATCHES = [
    ("format_version", FORMAT_VERSION + 1, "model format"),
    ("feature_version", "0", "feature version"),
    ("feature_names", ["cadence"], "other features"),
    ("areas", ["push"], "other features or areas"),
]


@pytest.mark.parametrize(("field", "value", "message"), _META_MISMATCHES)
@pytest.mark.parametrize("load", [load_artefact, load_compiled])
def test_mismatched_metadata_is_refused_by_both_loaders(
    tmp_path: Path, saved: Path, load: Any, field: str, value: Any, message: str
) -> None:
    directory = _copy(saved, tmp_path)
    _edit_meta(directory, **{field: value})
    with pytest.raises(ModelMismatchError, match=message):
        load(directory)


@pytest.mark.parametrize(
    ("load", "field", "value", "message"),
    [
        (load_artefact, "libraries", {"scikit-learn": "0.1.0"}, "scikit-learn 0.1.0"),
        (load_artefact, "artefact_sha256", "0" * 64, r"limiter\.skops does not match"),
        (load_compiled, "compiled_sha256", "0" * 64, r"limiter\.npz does not match"),
        (load_compiled, "compiled_format_version", 99, "compiled model format 99"),
    ],
)
def test_mismatched_file_is_refused(
    tmp_path: Path, saved: Path, load: Any, field: str, value: Any, message: str
) -> None:
    directory = _copy(saved, tmp_path)
    _edit_meta(directory, **{field: value})
    with pytest.raises(ModelMismatchError, match=message):
        load(directory)


def test_compiled_model_does_not_depend_on_the_scikit_learn_version(
    tmp_path: Path, saved: Path
) -> None:
    # Plain arrays: only the skops file needs the scikit-learn that wrote it.
    directory = _copy(saved, tmp_path)
    _edit_meta(directory, libraries={"scikit-learn": "0.1.0"})
    assert load_compiled(directory).meta["libraries"] == {"scikit-learn": "0.1.0"}


def test_missing_artefact_is_refused(tmp_path: Path, saved: Path) -> None:
    for load in (load_artefact, load_compiled):
        with pytest.raises(ModelMismatchError, match="no model"):
            load(tmp_path / "nothing")
    directory = _copy(saved, tmp_path)
    (directory / "limiter.npz").unlink()
    with pytest.raises(ModelMismatchError, match=r"no compiled model.*stridewise model train"):
        load_compiled(directory)
    # An artefact from before the compiled file existed names its format first.
    _edit_meta(directory, format_version=1)
    with pytest.raises(
        ModelMismatchError, match=f"model format 1, this stridewise reads {FORMAT_VERSION}"
    ):
        load_compiled(directory)


def test_skops_file_with_untrusted_types_is_refused(
    tmp_path: Path, saved: Path, tiny: tuple[TrainingSet, TrainingSet]
) -> None:
    import skops.io as sio

    # A pipeline holding a function skops does not trust by default: refused, never run.
    train = tiny[0]
    pipeline = Pipeline([("shift", FunctionTransformer(_shift)), *build_pipeline().steps])
    pipeline.fit(train.X, train.Y)
    baseline = ZScoreRuleClassifier().fit(train.X, np.nan_to_num(train.Y, nan=0.0))
    directory = _copy(saved, tmp_path)
    sio.dump({"pipeline": pipeline, "baseline": baseline}, directory / "limiter.skops")
    _edit_meta(directory, artefact_sha256=_sha256(directory / "limiter.skops"))
    with pytest.raises(ModelMismatchError, match="types we do not load"):
        load_artefact(directory)


def test_a_pipeline_without_a_compiled_form_is_not_saved(
    tmp_path: Path, tiny: tuple[TrainingSet, TrainingSet]
) -> None:
    # analyze evaluates only the compiled file, so a step it could not reproduce must stop the
    # save rather than be silently left out.
    train = tiny[0]
    pipeline = Pipeline([("shift", FunctionTransformer(_shift)), *build_pipeline().steps])
    pipeline.fit(train.X, train.Y)
    baseline = build_baseline().fit(train.X, train.Y)
    with pytest.raises(ValueError, match=r"'shift' .*no compiled form"):
        save_artefact(pipeline, baseline, tmp_path / "m", training_data_sha256="x")
    assert not (tmp_path / "m").exists()


def test_trusted_types_are_exactly_what_a_model_holds(saved: Path) -> None:
    import skops.io as sio

    assert set(sio.get_untrusted_types(file=saved / "limiter.skops")) == TRUSTED_TYPES


def test_sample_weights_reach_the_fit(tiny: tuple[TrainingSet, TrainingSet]) -> None:
    # What the expected failure above leaves untested: that weights are used at all. Rows of
    # limiters weighted 5× must raise the predicted rate of limiters.
    train, test = tiny
    k = AREAS.index("swing")
    heavy = np.where(train.Y[:, k] == 1, 5.0, 1.0)
    plain = build_pipeline().fit(train.X, train.Y)
    weighted = build_pipeline().fit(train.X, train.Y, limiters__sample_weight=heavy)
    assert (
        limiter_proba(weighted, test.X)[:, k].mean()
        > limiter_proba(plain, test.X)[:, k].mean() + 0.05
    )


# -- the compiled model: the pipeline's numbers without scikit-learn ---------------------------


def _held_out_rows(test: TrainingSet) -> npt.NDArray[np.float64]:
    """Held-out rows; the same with 30 % of values missing; each area blanked in turn; all NaN."""
    rng = np.random.default_rng(5)
    holes = test.X.copy()
    holes[rng.random(holes.shape) < 0.3] = np.nan
    groups, _ = area_groups()
    blanked = np.repeat(test.X[:10], len(groups), axis=0)
    for i, row in enumerate(blanked):
        row[list(groups[i % len(groups)])] = np.nan
    rows = np.vstack([test.X, holes, blanked, np.full((2, test.X.shape[1]), np.nan)])
    # The held-out athletes already include some whose areas cannot be judged (no running
    # dynamics, no balance): their labels are NaN.
    assert np.isnan(test.Y).any(axis=0).sum() >= 2
    return rows


def test_compiled_shipped_model_gives_the_pipelines_probabilities(
    shipped: Any, tiny: tuple[TrainingSet, TrainingSet]
) -> None:
    rows = _held_out_rows(tiny[1])
    compiled = load_compiled(SHIPPED_DIR).model
    expected = limiter_proba(shipped.pipeline, rows)
    np.testing.assert_allclose(compiled.limiter_proba(rows), expected, rtol=0, atol=1e-9)
    assert len(np.unique(expected.round(6))) > 20  # a real spread of probabilities


def _averaged(pipeline: Pipeline, train: TrainingSet) -> Pipeline:
    """The pipeline with each area's model replaced by an ensemble of calibrated boosters.

    LimiterClassifier calibrates one booster (``ensemble=False``); the compiled form also
    averages several, as ``CalibratedClassifierCV(ensemble=True)`` does. This builds such a
    model from real scikit-learn parts so that path is checked too.
    """
    final = pipeline.steps[-1][1]
    for k, group in enumerate(final.groups_):
        known = ~np.isnan(train.Y[:, k])
        final.estimators_[k] = CalibratedClassifierCV(
            HistGradientBoostingClassifier(max_iter=20, random_state=k),
            method="sigmoid" if k % 2 else "isotonic",
            cv=3,
            ensemble=True,
        ).fit(train.X[known][:, group], train.Y[known, k])
    return pipeline


@pytest.mark.parametrize("calibration", ["isotonic", "sigmoid", "none", "averaged"])
def test_compiled_model_gives_the_pipelines_probabilities(
    tmp_path: Path, tiny: tuple[TrainingSet, TrainingSet], calibration: str
) -> None:
    train, test = tiny
    groups, signs = area_groups()
    method = "isotonic" if calibration == "averaged" else calibration
    pipeline = Pipeline(
        [
            (
                "limiters",
                LimiterClassifier(
                    feature_groups=groups, monotonic=signs, calibration=method, random_state=0
                ),
            )
        ]
    ).fit(train.X, train.Y)
    if calibration == "averaged":
        pipeline = _averaged(pipeline, train)
    save_artefact(
        pipeline, build_baseline().fit(train.X, train.Y), tmp_path, training_data_sha256="x"
    )
    compiled = load_compiled(tmp_path).model
    rows = _held_out_rows(test)
    np.testing.assert_allclose(
        compiled.limiter_proba(rows), limiter_proba(pipeline, rows), rtol=0, atol=1e-9
    )
    expected_members = 3 * len(AREAS) if calibration == "averaged" else len(AREAS)
    assert len(compiled.member_output) == expected_members


def test_compiled_model_refuses_what_the_pipeline_refuses(saved: Path, shipped: Any) -> None:
    model = load_compiled(saved).model
    with pytest.raises(ValueError, match="12 features"):
        model.limiter_proba(np.zeros((1, 3)))
    with pytest.raises(ValueError, match="12 features"):
        model.limiter_proba(np.zeros((0, len(MODEL_FEATURES))))
    with pytest.raises(ValueError, match="0 sample"):
        limiter_proba(shipped.pipeline, np.zeros((0, len(MODEL_FEATURES))))
    row = np.zeros((1, len(MODEL_FEATURES)))
    row[0, 2] = np.inf
    with pytest.raises(ValueError, match="infinity"):
        model.limiter_proba(row)
    with pytest.raises(ValueError, match="infinity"):
        limiter_proba(shipped.pipeline, row)


def test_a_tampered_compiled_file_is_refused(tmp_path: Path, saved: Path) -> None:
    directory = _copy(saved, tmp_path)
    path = directory / "limiter.npz"
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0xFF
    path.write_bytes(bytes(data))
    with pytest.raises(ModelMismatchError, match="hash differs"):
        load_compiled(directory)


def _rewrite(arrays: dict[str, Any], **changes: Any) -> None:
    arrays.update(changes)


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (lambda a: _rewrite(a, feature_names=a["feature_names"][::-1]), "other features"),
        (lambda a: _rewrite(a, outputs=a["outputs"][:2]), "output the model does not have"),
        (lambda a: _rewrite(a, format_version=np.array(7)), "compiled model format 7"),
        (lambda a: a.pop("node_value"), "lacks node_value"),
        (lambda a: _rewrite(a, node_threshold=a["node_threshold"][:-1]), "entries for"),
        (lambda a: _rewrite(a, node_left=np.zeros_like(a["node_left"])), "follow its parent"),
        (lambda a: _rewrite(a, node_feature=a["node_feature"] + 40), "feature the model"),
        (lambda a: _rewrite(a, member_method=a["member_method"] + 7), "calibration method"),
        (lambda a: _rewrite(a, iso_x=a["iso_x"][:3], iso_y=a["iso_y"][:3]), "out of range"),
        (lambda a: _rewrite(a, node_value=a["node_value"].astype(np.float32)), "float32"),
        # An object array is stored pickled; loading without pickle refuses it.
        (lambda a: _rewrite(a, node_value=np.array([{}], dtype=object)), "cannot load"),
    ],
)
def test_a_compiled_file_that_does_not_describe_this_model_is_refused(
    tmp_path: Path, saved: Path, change: Any, message: str
) -> None:
    # Even with a matching hash (someone rewrote the metadata too), the arrays are checked.
    directory = _copy(saved, tmp_path)
    path = directory / "limiter.npz"
    with np.load(path, allow_pickle=False) as npz:
        arrays = {name: npz[name] for name in npz.files}
    change(arrays)
    buffer = io.BytesIO()
    np.savez(buffer, **arrays)
    path.write_bytes(buffer.getvalue())
    _edit_meta(directory, compiled_sha256=_sha256(path))
    with pytest.raises(ModelMismatchError, match=message):
        load_compiled(directory)


def test_compiled_model_is_loaded_once_until_its_files_change(
    tmp_path: Path, saved: Path, tiny: tuple[TrainingSet, TrainingSet]
) -> None:
    directory = _copy(saved, tmp_path)
    first = load_compiled(directory)
    assert load_compiled(directory) is first
    assert load_compiled(directory / ".." / directory.name) is first  # same file, other spelling
    # Shared by every analysis in the process, so nobody may change it in place.
    with pytest.raises(ValueError, match="read-only"):
        first.model.node_value[0] = 1.0
    # Retraining in place replaces the files: the next load reads the new model.
    pipeline, baseline = fit_models(tiny[0], random_state=1)
    save_artefact(pipeline, baseline, directory, training_data_sha256="retrained")
    second = load_compiled(directory)
    assert second is not first
    assert second.meta["training_data_sha256"] == "retrained"
    # A file damaged after it was cached is noticed, not served from the cache.
    path = directory / "limiter.npz"
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0xFF
    path.write_bytes(bytes(data))
    with pytest.raises(ModelMismatchError, match="hash differs"):
        load_compiled(directory)


def test_compiled_arrays_round_trip_without_pickle(saved: Path) -> None:
    model = load_compiled(saved).model
    buffer = io.BytesIO()
    np.savez(buffer, allow_pickle=False, **model.to_arrays())
    buffer.seek(0)
    with np.load(buffer, allow_pickle=False) as npz:
        again = CompiledLimiter.from_arrays({name: npz[name] for name in npz.files})
    rows = np.random.default_rng(3).normal(0.0, 20.0, (50, len(MODEL_FEATURES)))
    np.testing.assert_array_equal(again.limiter_proba(rows), model.limiter_proba(rows))


def test_compile_refuses_what_it_cannot_reproduce(tiny: tuple[TrainingSet, TrainingSet]) -> None:
    train = tiny[0]
    fitted = build_pipeline().fit(train.X, train.Y)
    with pytest.raises(ValueError, match="does not match the feature names"):
        compile_pipeline(fitted, MODEL_FEATURES[:3], AREAS)
    three_classes = np.where(np.isnan(train.Y[:, 0]), 2.0, train.Y[:, 0])
    multi = Pipeline([("limiters", LimiterClassifier(max_iter=5, random_state=0))])
    multi.fit(train.X, three_classes)
    with pytest.raises(ValueError, match="only binary"):
        compile_pipeline(multi, MODEL_FEATURES, AREAS[:1])
