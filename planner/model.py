"""The limiter model: a scikit-learn Pipeline with one calibrated, monotone classifier per area.

Each area is judged from its own watch signals (domain.md §4, :data:`AREA_FEATURES`) by a
gradient-boosted tree model whose output is constrained to move in the published direction
(e.g. longer contact at the same speed never lowers the push probability), then calibrated with
isotonic regression so "0.7" means "about 7 in 10 such runners". Isotonic calibration is
non-decreasing, so the monotonicity survives it.

:class:`ZScoreRuleClassifier` is the transparent baseline on the same features: an area is
flagged when one of its signals sits beyond a z-score threshold.

:func:`compile_pipeline` exports a fitted pipeline to plain arrays (:mod:`planner.compiled`):
``analyze`` evaluates those, so it never imports scikit-learn.

Training data is the simulated cohort (:mod:`planner.simulate`) plus, when a coach has labelled
real athletes, their features with a higher weight. Strava-sourced runs never reach training
(Strava API terms, domain.md §1): :func:`coach_training_set` filters them and
:func:`check_no_strava` raises if one slips through.
"""

from __future__ import annotations

import hashlib
import math
import warnings
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, NamedTuple

import numpy as np
import numpy.typing as npt
from sklearn.base import BaseEstimator, ClassifierMixin
from sklearn.calibration import CalibratedClassifierCV, _SigmoidCalibration
from sklearn.ensemble import HistGradientBoostingClassifier
from sklearn.isotonic import IsotonicRegression
from sklearn.metrics import brier_score_loss, roc_auc_score
from sklearn.model_selection import GroupKFold
from sklearn.pipeline import Pipeline
from sklearn.utils.multiclass import check_classification_targets, type_of_target
from sklearn.utils.validation import _check_sample_weight, check_is_fitted, validate_data
from threadpoolctl import threadpool_limits

from planner.compiled import METHOD_ISOTONIC, METHOD_NONE, METHOD_SIGMOID, CompiledLimiter
from planner.errors import StridewiseError
from planner.features import AREA_FEATURES, MODEL_FEATURES, RunFeatures, athlete_features
from planner.records import AREAS, UNTRAINABLE_SOURCES

if TYPE_CHECKING:
    from planner.simulate import SimulatedAthlete

FloatArray = npt.NDArray[np.float64]

#: The shipped model's training cohort (seeded, so `stridewise model train` is reproducible).
TRAIN_SEED = 20250301
TRAIN_ATHLETES = 700
#: Held-out athletes for `stridewise model evaluate`: a different seed, never seen in training.
EVAL_SEED = 99991
EVAL_ATHLETES = 400
#: One coach-labelled real athlete counts as this many simulated ones. Assumption: real labels
#: are scarce but worth more than the prior; 20 lets ~10 labelled athletes shift the model
#: without drowning the 700 simulated ones.
COACH_WEIGHT = 20.0


class TrainingDataError(StridewiseError):
    """Training data broke a rule (e.g. a Strava-sourced run reached the training set)."""


# -- estimators -------------------------------------------------------------------------------


def _groups(
    feature_groups: Sequence[Sequence[int]] | None, n_outputs: int, n_features: int
) -> list[list[int]]:
    if feature_groups is None:
        return [list(range(n_features)) for _ in range(n_outputs)]
    if len(feature_groups) != n_outputs:
        raise ValueError(f"feature_groups has {len(feature_groups)} groups for {n_outputs} outputs")
    groups = [list(g) for g in feature_groups]
    for g in groups:
        if not g or min(g) < 0 or max(g) >= n_features:
            raise ValueError(f"feature group {g} does not fit {n_features} features")
    return groups


def _targets(y: Any, n_samples: int) -> tuple[FloatArray | Any, bool]:
    """y as an array and whether it has several outputs (2-D)."""
    if y is None:
        raise ValueError("this classifier requires y to be passed, but the target y is None")
    arr = np.asarray(y)
    if arr.ndim == 0 or arr.shape[0] != n_samples:
        raise ValueError(f"y has {arr.shape[:1]} rows for {n_samples} samples")
    if arr.ndim > 2:
        raise ValueError("y must be 1-D or 2-D")
    return arr, arr.ndim == 2


def _column_targets(arr: Any, k: int, multi: bool) -> tuple[npt.NDArray[np.bool_], Any]:
    """Rows with a known target for output ``k`` and those targets (NaN = unknown in 2-D y)."""
    col = arr[:, k] if multi else arr
    if multi and col.dtype.kind == "f":
        known = ~np.isnan(col)
        return known, col[known]
    return np.ones(len(col), dtype=bool), col


class LimiterClassifier(ClassifierMixin, BaseEstimator):
    """One calibrated, optionally monotone gradient-boosted classifier per output.

    Fitting and prediction run single-threaded: with a few hundred rows and a handful of
    features, OpenMP threads cost more than they save (and spin when cores are busy).

    Fitted with a 1-D ``y`` it is an ordinary classifier; with a 2-D ``y`` (one column per area,
    NaN where a label is unknown) it fits one model per column on that column's feature group.

    ``sample_weight`` reaches each booster and calibrator, but a weight is not a repetition:
    ``min_samples_leaf`` counts rows, not weight, as in HistGradientBoosting itself.

    Parameters
    ----------
    feature_groups : per output, the column indices it may use (None: all columns).
    monotonic : per output, a direction per column of its group (+1, -1, 0); used for binary
        outputs only.
    max_iter, learning_rate, max_leaf_nodes, min_samples_leaf, l2_regularization :
        passed to :class:`~sklearn.ensemble.HistGradientBoostingClassifier`.
    calibration : "isotonic", "sigmoid", or "none".
    cv : folds for calibration (fewer when a class is rarer).
    random_state : seed for the boosted trees.
    """

    def __init__(
        self,
        *,
        feature_groups: tuple[tuple[int, ...], ...] | None = None,
        monotonic: tuple[tuple[int, ...], ...] | None = None,
        max_iter: int = 60,
        learning_rate: float = 0.12,
        max_leaf_nodes: int = 8,
        min_samples_leaf: int = 20,
        l2_regularization: float = 1.0,
        calibration: str = "isotonic",
        cv: Any = 3,
        random_state: int | None = None,
    ) -> None:
        self.feature_groups = feature_groups
        self.monotonic = monotonic
        self.max_iter = max_iter
        self.learning_rate = learning_rate
        self.max_leaf_nodes = max_leaf_nodes
        self.min_samples_leaf = min_samples_leaf
        self.l2_regularization = l2_regularization
        self.calibration = calibration
        self.cv = cv
        self.random_state = random_state

    def __sklearn_tags__(self) -> Any:
        tags = super().__sklearn_tags__()
        tags.input_tags.allow_nan = True
        tags.target_tags.multi_output = True
        tags.target_tags.single_output = True
        return tags

    def fit(self, X: Any, y: Any, sample_weight: Any = None) -> LimiterClassifier:
        """Fit one model per output; returns self."""
        X = validate_data(self, X, ensure_all_finite="allow-nan", dtype=np.float64)
        arr, multi = _targets(y, X.shape[0])
        n_outputs = arr.shape[1] if multi else 1
        if self.calibration not in ("isotonic", "sigmoid", "none"):
            raise ValueError(
                f"calibration must be isotonic, sigmoid or none, not {self.calibration!r}"
            )
        groups = _groups(self.feature_groups, n_outputs, X.shape[1])
        weights = None if sample_weight is None else _check_sample_weight(sample_weight, X)
        self.n_outputs_ = n_outputs
        self.groups_ = groups
        self.estimators_: list[Any] = []
        classes: list[Any] = []
        for k in range(n_outputs):
            known, target = _column_targets(arr, k, multi)
            check_classification_targets(target)
            labels, counts = np.unique(target, return_counts=True)
            if len(labels) < 2:
                raise ValueError(f"output {k} has only one class ({labels[0]!r}); need two")
            cst = None
            if self.monotonic is not None and len(labels) == 2:
                cst = list(self.monotonic[k])
                if len(cst) != len(groups[k]):
                    raise ValueError(f"monotonic[{k}] has {len(cst)} entries for {len(groups[k])}")
            booster = HistGradientBoostingClassifier(
                max_iter=self.max_iter,
                learning_rate=self.learning_rate,
                max_leaf_nodes=self.max_leaf_nodes,
                min_samples_leaf=self.min_samples_leaf,
                l2_regularization=self.l2_regularization,
                monotonic_cst=cst,
                early_stopping=False,
                random_state=self.random_state,
            )
            # An int cv shrinks to the rarer class's count; a splitter is used as given.
            folds: Any = min(self.cv, int(counts.min())) if isinstance(self.cv, int) else self.cv
            model: Any = booster
            if self.calibration != "none" and (not isinstance(folds, int) or folds >= 2):
                # One booster on all rows, calibrated on its cross-validated predictions
                # (ensemble=False): a quarter of the trees, so the artefact loads fast.
                model = CalibratedClassifierCV(
                    booster, method=self.calibration, cv=folds, ensemble=False
                )
            w = None if weights is None else weights[known]
            with threadpool_limits(1, user_api="openmp"):
                model.fit(X[known][:, groups[k]], target, sample_weight=w)
            self.estimators_.append(model)
            classes.append(model.classes_)
        # Early stopping is off, so every booster runs exactly max_iter iterations.
        self.n_iter_ = np.full(n_outputs, self.max_iter)
        self.classes_ = classes if multi else classes[0]
        return self

    def predict_proba(self, X: Any) -> Any:
        """Class probabilities: an array (1-D fit) or a list of arrays, one per output."""
        check_is_fitted(self)
        X = validate_data(self, X, reset=False, ensure_all_finite="allow-nan", dtype=np.float64)
        with threadpool_limits(1, user_api="openmp"):
            probs = [
                est.predict_proba(X[:, g])
                for est, g in zip(self.estimators_, self.groups_, strict=True)
            ]
        return probs if self.n_outputs_ > 1 or isinstance(self.classes_, list) else probs[0]

    def predict(self, X: Any) -> Any:
        """Most probable class per output."""
        probs = self.predict_proba(X)
        if isinstance(self.classes_, list):
            return np.column_stack(
                [c[np.argmax(pr, axis=1)] for c, pr in zip(self.classes_, probs, strict=True)]
            )
        return self.classes_[np.argmax(probs, axis=1)]

    def limiter_proba(self, X: Any) -> FloatArray:
        """P(limiter) per output, shape (n_samples, n_outputs): the positive class's column."""
        probs = self.predict_proba(X)
        if not isinstance(probs, list):
            probs = [probs]
        return np.column_stack([pr[:, -1] for pr in probs])


class ZScoreRuleClassifier(ClassifierMixin, BaseEstimator):
    """Transparent baseline: an area is flagged when one of its signals passes a z threshold.

    z = sign · (x − median) / robust SD, learned from the training rows; the area's score is the
    largest z among its features; P = 1 / (1 + exp(−steepness · (score − threshold))).

    Parameters
    ----------
    feature_groups : per output, the column indices it uses (None: all columns).
    signs : per output, +1/−1 per column of its group (None: learned from the data).
    threshold : z at which P = 0.5 (1.0 ≈ the worst 16 % of the training cohort).
    steepness : how sharply P rises around the threshold.
    """

    def __init__(
        self,
        *,
        feature_groups: tuple[tuple[int, ...], ...] | None = None,
        signs: tuple[tuple[int, ...], ...] | None = None,
        threshold: float = 1.0,
        steepness: float = 2.0,
    ) -> None:
        self.feature_groups = feature_groups
        self.signs = signs
        self.threshold = threshold
        self.steepness = steepness

    def __sklearn_tags__(self) -> Any:
        tags = super().__sklearn_tags__()
        tags.input_tags.allow_nan = True
        tags.target_tags.multi_output = True
        tags.target_tags.single_output = True
        tags.classifier_tags.multi_class = False
        tags.classifier_tags.poor_score = True  # a fixed rule, not a learner
        return tags

    def fit(self, X: Any, y: Any) -> ZScoreRuleClassifier:
        """Learn the medians, spreads and (if not given) signs; returns self."""
        X = validate_data(self, X, ensure_all_finite="allow-nan", dtype=np.float64)
        arr, multi = _targets(y, X.shape[0])
        n_outputs = arr.shape[1] if multi else 1
        groups = _groups(self.feature_groups, n_outputs, X.shape[1])
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)  # all-NaN columns are expected
            center = np.nanmedian(X, axis=0)
            mad = np.nanmedian(np.abs(X - center), axis=0) * 1.4826
            std = np.nanstd(X, axis=0)
        center = np.where(np.isnan(center), 0.0, center)
        scale = np.where(np.isfinite(mad) & (mad > 0), mad, std)
        scale = np.where(np.isfinite(scale) & (scale > 0), scale, 1.0)
        self.center_ = center
        self.scale_ = scale
        self.n_outputs_ = n_outputs
        self.groups_ = groups
        signs: list[FloatArray] = []
        classes: list[Any] = []
        for k in range(n_outputs):
            known, target = _column_targets(arr, k, multi)
            y_type = type_of_target(target, input_name="y", raise_unknown=True)
            if y_type != "binary":
                raise ValueError(
                    "Only binary classification is supported. The type of the target "
                    f"is {y_type} (output {k}); a one class target cannot be ranked."
                )
            labels = np.unique(target)
            if len(labels) < 2:
                raise ValueError(f"output {k} has only one class ({labels[0]!r}); need two")
            if self.signs is not None:
                s = np.asarray(self.signs[k], dtype=np.float64)
            else:
                z = (X[known][:, groups[k]] - center[groups[k]]) / scale[groups[k]]
                pos = target == labels[1]
                with warnings.catch_warnings():
                    warnings.simplefilter("ignore", RuntimeWarning)
                    diff = np.nanmean(z[pos], axis=0) - np.nanmean(z[~pos], axis=0)
                s = np.where(np.nan_to_num(diff) < 0, -1.0, 1.0)
            signs.append(s)
            classes.append(labels)
        self.signs_ = signs
        self.classes_ = classes if multi else classes[0]
        return self

    def _scores(self, X: FloatArray) -> FloatArray:
        out = np.zeros((X.shape[0], self.n_outputs_))
        for k, (g, s) in enumerate(zip(self.groups_, self.signs_, strict=True)):
            z = s * (X[:, g] - self.center_[g]) / self.scale_[g]
            z = np.where(np.isnan(z), -np.inf, z)
            best = z.max(axis=1)
            out[:, k] = np.where(np.isfinite(best), best, 0.0)
        return out

    def limiter_proba(self, X: Any) -> FloatArray:
        """P(limiter) per output, shape (n_samples, n_outputs)."""
        check_is_fitted(self)
        X = validate_data(self, X, reset=False, ensure_all_finite="allow-nan", dtype=np.float64)
        return np.asarray(
            1.0 / (1.0 + np.exp(-self.steepness * (self._scores(X) - self.threshold)))
        )

    def predict_proba(self, X: Any) -> Any:
        """Class probabilities: an array (1-D fit) or a list of arrays, one per output."""
        p = self.limiter_proba(X)
        probs = [np.column_stack([1.0 - p[:, k], p[:, k]]) for k in range(p.shape[1])]
        return probs if isinstance(self.classes_, list) else probs[0]

    def predict(self, X: Any) -> Any:
        """Flagged class per output (score above the threshold)."""
        p = self.limiter_proba(X)
        if isinstance(self.classes_, list):
            return np.column_stack(
                [c[(p[:, k] >= 0.5).astype(int)] for k, c in enumerate(self.classes_)]
            )
        return self.classes_[(p[:, 0] >= 0.5).astype(int)]


def area_groups() -> tuple[tuple[tuple[int, ...], ...], tuple[tuple[int, ...], ...]]:
    """Feature indices and monotone directions per area, from :data:`AREA_FEATURES`."""
    index = {name: i for i, name in enumerate(MODEL_FEATURES)}
    groups = tuple(tuple(index[f] for f in AREA_FEATURES[a]) for a in AREAS)
    signs = tuple(tuple(AREA_FEATURES[a].values()) for a in AREAS)
    return groups, signs


def build_pipeline(random_state: int = 0) -> Pipeline:
    """The limiter model, unfitted."""
    groups, signs = area_groups()
    return Pipeline(
        [
            (
                "limiters",
                LimiterClassifier(
                    feature_groups=groups, monotonic=signs, random_state=random_state
                ),
            )
        ]
    )


def _tree_arrays(booster: HistGradientBoostingClassifier, group: Sequence[int]) -> list[Any]:
    """One fitted binary booster's trees: node tables (feature indices into the full row)."""
    if booster.n_trees_per_iteration_ != 1:
        raise ValueError("only binary boosters can be compiled")
    columns = np.asarray(group, dtype=np.int64)
    trees = []
    for iteration in booster._predictors:
        (predictor,) = iteration
        nodes = predictor.nodes
        if nodes["is_categorical"].any():
            raise ValueError("categorical splits cannot be compiled")
        trees.append(nodes.copy())
        # The booster saw only its area's columns; point its splits at the full row instead.
        trees[-1]["feature_idx"] = columns[nodes["feature_idx"]]
    return trees


class _Member(NamedTuple):
    """One booster's calibration, as :class:`~planner.compiled.CompiledLimiter` stores it."""

    method: int
    a: float = math.nan
    b: float = math.nan
    iso_min: float = math.nan
    iso_max: float = math.nan
    iso_x: FloatArray = np.empty(0)
    iso_y: FloatArray = np.empty(0)


def _calibrator_arrays(calibrator: Any) -> _Member:
    """The numbers one fitted calibrator predicts with."""
    if isinstance(calibrator, IsotonicRegression):
        if calibrator.out_of_bounds != "clip" or not calibrator.increasing_:
            raise ValueError("only clipped, increasing isotonic calibrators can be compiled")
        return _Member(
            METHOD_ISOTONIC,
            iso_min=float(calibrator.X_min_),
            iso_max=float(calibrator.X_max_),
            iso_x=np.asarray(calibrator.X_thresholds_, dtype=np.float64),
            iso_y=np.asarray(calibrator.y_thresholds_, dtype=np.float64),
        )
    if isinstance(calibrator, _SigmoidCalibration):
        return _Member(METHOD_SIGMOID, a=float(calibrator.a_), b=float(calibrator.b_))
    raise ValueError(f"cannot compile a {type(calibrator).__name__} calibrator")


def compile_pipeline(
    pipeline: Pipeline, feature_names: Sequence[str], outputs: Sequence[str]
) -> CompiledLimiter:
    """The fitted pipeline as plain arrays for :class:`planner.compiled.CompiledLimiter`.

    ``analyze`` evaluates those with NumPy alone, so it never imports scikit-learn. Anything
    the compiled form could not reproduce exactly (another pipeline step, a categorical split,
    a multi-class output, another calibrator) raises ValueError rather than being dropped.

    This reads scikit-learn 1.9 internals (``_predictors``, ``_baseline_prediction``,
    ``calibrated_classifiers_``, ``_SigmoidCalibration``); the tests compare compiled and
    pipeline probabilities, so an upgrade that changes them fails there rather than silently.
    """
    for name, step in pipeline.steps[:-1]:
        if step is not None and step != "passthrough":
            raise ValueError(
                f"pipeline step {name!r} ({type(step).__name__}) has no compiled form;"
                " add one to planner.compiled before using it"
            )
    final = pipeline.steps[-1][1]
    if not isinstance(final, LimiterClassifier):
        raise ValueError(f"the last step is a {type(final).__name__}, not a LimiterClassifier")
    check_is_fitted(final)
    if final.n_features_in_ != len(feature_names) or final.n_outputs_ != len(outputs):
        raise ValueError("the fitted pipeline does not match the feature names or outputs given")
    classes = final.classes_ if isinstance(final.classes_, list) else [final.classes_]
    trees: list[Any] = []
    tree_member: list[int] = []
    member_output: list[int] = []
    baselines: list[float] = []
    members: list[_Member] = []
    for k, (est, group) in enumerate(zip(final.estimators_, final.groups_, strict=True)):
        if len(classes[k]) != 2:
            raise ValueError(f"output {k} has {len(classes[k])} classes; only binary compiles")
        if isinstance(est, CalibratedClassifierCV):
            pairs = [(cc.estimator, cc.calibrators) for cc in est.calibrated_classifiers_]
        else:
            pairs = [(est, None)]  # fitted without calibration: the booster's own link
        for booster, calibrators in pairs:
            if not isinstance(booster, HistGradientBoostingClassifier):
                raise ValueError(f"cannot compile a {type(booster).__name__}")
            for tree in _tree_arrays(booster, group):
                trees.append(tree)
                tree_member.append(len(members))
            member_output.append(k)
            baselines.append(float(booster._baseline_prediction.item()))
            if calibrators is None:
                members.append(_Member(METHOD_NONE))
            else:
                (only,) = calibrators  # binary: one calibrator, for the positive class
                members.append(_calibrator_arrays(only))
    sizes = [len(t) for t in trees]
    starts = np.cumsum([0, *sizes])[:-1]
    nodes = np.concatenate(trees)
    leaf = nodes["is_leaf"].astype(bool)
    # Child indices count within one tree; in the one table of all trees they move by the
    # tree's start. Leaves' children (0) mean nothing and stay 0.
    shift = np.repeat(starts, sizes)
    iso_sizes = np.array([len(m.iso_x) for m in members], dtype=np.int64)
    iso_start = np.cumsum([0, *iso_sizes])[:-1]
    return CompiledLimiter(
        feature_names=tuple(feature_names),
        outputs=tuple(outputs),
        node_feature=np.where(leaf, 0, nodes["feature_idx"]).astype(np.int64),
        node_threshold=nodes["num_threshold"].astype(np.float64),
        node_left=np.where(leaf, 0, nodes["left"].astype(np.int64) + shift),
        node_right=np.where(leaf, 0, nodes["right"].astype(np.int64) + shift),
        node_is_leaf=leaf,
        node_value=nodes["value"].astype(np.float64),
        node_missing_left=nodes["missing_go_to_left"].astype(bool),
        tree_root=starts.astype(np.int64),
        tree_member=np.array(tree_member, dtype=np.int64),
        member_output=np.array(member_output, dtype=np.int64),
        member_baseline=np.array(baselines, dtype=np.float64),
        member_method=np.array([m.method for m in members], dtype=np.int64),
        member_a=np.array([m.a for m in members], dtype=np.float64),
        member_b=np.array([m.b for m in members], dtype=np.float64),
        member_iso_min=np.array([m.iso_min for m in members], dtype=np.float64),
        member_iso_max=np.array([m.iso_max for m in members], dtype=np.float64),
        member_iso_start=iso_start.astype(np.int64),
        member_iso_stop=(iso_start + iso_sizes).astype(np.int64),
        iso_x=np.concatenate([np.empty(0), *(m.iso_x for m in members)]),
        iso_y=np.concatenate([np.empty(0), *(m.iso_y for m in members)]),
    )


def build_baseline() -> ZScoreRuleClassifier:
    """The rule baseline, unfitted: same features, signs from domain.md §4."""
    groups, signs = area_groups()
    return ZScoreRuleClassifier(feature_groups=groups, signs=signs)


def limiter_proba(model: Pipeline | ZScoreRuleClassifier, X: FloatArray) -> FloatArray:
    """P(limiter) per area for either model, shape (n_samples, len(AREAS))."""
    if isinstance(model, Pipeline):
        Xt = X
        for _, step in model.steps[:-1]:
            Xt = step.transform(Xt)
        return np.asarray(model.steps[-1][1].limiter_proba(Xt))
    return model.limiter_proba(X)


# -- training data ----------------------------------------------------------------------------


@dataclass
class TrainingSet:
    """Rows of athlete features with per-area labels (NaN = unknown or cannot be judged)."""

    X: FloatArray
    Y: FloatArray
    weights: FloatArray
    groups: list[str]
    origin: list[str]  # "simulated" | "coach"
    top: list[str | None] = field(default_factory=list)  # true top area (simulated only)
    runs: list[int] = field(default_factory=list)  # runs with steady running, per row
    steady_min: list[float] = field(default_factory=list)  # steady minutes, per row

    @classmethod
    def empty(cls) -> TrainingSet:
        return cls(
            np.empty((0, len(MODEL_FEATURES))), np.empty((0, len(AREAS))), np.empty(0), [], [], []
        )

    def __len__(self) -> int:
        return len(self.groups)

    def concat(self, other: TrainingSet) -> TrainingSet:
        return TrainingSet(
            np.vstack([self.X, other.X]),
            np.vstack([self.Y, other.Y]),
            np.concatenate([self.weights, other.weights]),
            self.groups + other.groups,
            self.origin + other.origin,
            self.top + other.top,
            self.runs + other.runs,
            self.steady_min + other.steady_min,
        )

    def digest(self) -> str:
        """SHA-256 of the exact training rows, labels and weights."""
        h = hashlib.sha256()
        for part in (self.X, np.nan_to_num(self.Y, nan=-1.0), self.weights):
            h.update(np.ascontiguousarray(part, dtype=np.float64).tobytes())
        h.update("\n".join(self.groups).encode())
        return h.hexdigest()


def _row(runs: Sequence[RunFeatures]) -> tuple[FloatArray, list[bool], int, float]:
    af = athlete_features(runs)
    steady = af.value("steady_min")
    return (
        af.vector(),
        [af.judgeable(a) for a in AREAS],
        af.runs_with.get("steady", 0),
        0.0 if math.isnan(steady) else steady,
    )


def simulated_training_set(
    n_athletes: int,
    seed: int,
    *,
    max_runs: int = 4,
    workers: int = 1,
    generator: str = "training",
) -> tuple[TrainingSet, list[SimulatedAthlete]]:
    """A seeded simulated cohort as training rows; labels of unjudgeable areas are NaN."""
    from planner.simulate import simulate_cohort  # heavy; not needed to analyse

    athletes = simulate_cohort(
        n_athletes, seed, max_runs=max_runs, workers=workers, generator=generator
    )
    X = np.empty((len(athletes), len(MODEL_FEATURES)))
    Y = np.full((len(athletes), len(AREAS)), np.nan)
    runs: list[int] = []
    minutes: list[float] = []
    for i, athlete in enumerate(athletes):
        X[i], judged, n_runs, steady = _row(athlete.runs)
        runs.append(n_runs)
        minutes.append(steady)
        labels = athlete.runner.labels()
        for k, area in enumerate(AREAS):
            if judged[k]:
                Y[i, k] = labels[area]
    return (
        TrainingSet(
            X,
            Y,
            np.ones(len(athletes)),
            [a.runner.id for a in athletes],
            ["simulated"] * len(athletes),
            [a.runner.top_area for a in athletes],
            runs,
            minutes,
        ),
        athletes,
    )


#: ``RunFeatures.source`` values never trained on (the one definition is in records).
_UNTRAINABLE = frozenset(source.value for source in UNTRAINABLE_SOURCES)


def check_no_strava(runs: Sequence[RunFeatures]) -> None:
    """Raise if any run came from Strava: its API terms forbid training models on its data."""
    bad = [r for r in runs if r.source in _UNTRAINABLE]
    if bad:
        raise TrainingDataError(
            f"{len(bad)} Strava-sourced run(s) reached the training data; Strava's API terms"
            " forbid using them to train models"
        )


@dataclass(frozen=True, slots=True)
class CoachLabelled:
    """One real athlete's runs and the coach's judgement per area (1 limiter, 0 not)."""

    athlete_id: str
    runs: tuple[RunFeatures, ...]
    labels: dict[str, int]


def coach_training_set(
    labelled: Sequence[CoachLabelled], weight: float = COACH_WEIGHT
) -> TrainingSet:
    """Training rows from coach-labelled athletes; Strava-sourced runs are dropped first."""
    out = TrainingSet.empty()
    for item in labelled:
        runs = [r for r in item.runs if r.source not in _UNTRAINABLE]
        check_no_strava(runs)
        if not runs:
            continue
        x, judged, n_runs, steady = _row(runs)
        y = np.full(len(AREAS), np.nan)
        for k, area in enumerate(AREAS):
            if area in item.labels and judged[k]:
                y[k] = item.labels[area]
        if np.isnan(y).all():
            continue
        out = out.concat(
            TrainingSet(
                x[None, :],
                y[None, :],
                np.array([weight]),
                [item.athlete_id],
                ["coach"],
                [None],
                [n_runs],
                [steady],
            )
        )
    return out


# -- fitting and evaluation -------------------------------------------------------------------


def fit_models(train: TrainingSet, random_state: int = 0) -> tuple[Pipeline, ZScoreRuleClassifier]:
    """Fit the limiter pipeline and the rule baseline on the same rows."""
    if not len(train):
        raise TrainingDataError("no training rows")
    pipeline = build_pipeline(random_state).fit(
        train.X, train.Y, limiters__sample_weight=train.weights
    )
    baseline = build_baseline().fit(train.X, train.Y)
    return pipeline, baseline


def calibration_error(y: FloatArray, p: FloatArray, bins: int = 10) -> float:
    """Expected calibration error: |mean prediction − observed rate| over equal-width bins."""
    edges = np.linspace(0.0, 1.0, bins + 1)
    which = np.clip(np.digitize(p, edges[1:-1]), 0, bins - 1)
    total = 0.0
    for b in range(bins):
        m = which == b
        if m.any():
            total += m.mean() * abs(float(p[m].mean()) - float(y[m].mean()))
    return total


def _area_metrics(y: FloatArray, p: FloatArray) -> dict[str, float | int | None]:
    known = ~np.isnan(y)
    yk, pk = y[known], p[known]
    both = len(np.unique(yk)) == 2
    return {
        "n": int(known.sum()),
        "positives": int(yk.sum()),
        "roc_auc": float(roc_auc_score(yk, pk)) if both else None,
        "brier": float(brier_score_loss(yk, pk)) if len(yk) else None,
        "calibration_error": calibration_error(yk, pk) if len(yk) else None,
    }


def analysed(
    pipeline: Pipeline, test: TrainingSet, support: Mapping[str, Any] | None = None
) -> tuple[FloatArray, npt.NDArray[np.bool_], npt.NDArray[np.int64]]:
    """What ``analyze`` reports per row: probabilities after the evidence checks (NaN where an
    area cannot be judged: its label is NaN in ``test``), which areas stand out, and the
    first-ranked area (-1 when none is judged)."""
    from planner import evidence as ev

    raw = limiter_proba(pipeline, test.X)
    probs = np.full(raw.shape, np.nan)
    stands = np.zeros(raw.shape, dtype=bool)
    tops = np.full(len(test), -1, dtype=np.int64)
    for i in range(len(test)):
        values = dict(zip(MODEL_FEATURES, test.X[i].tolist(), strict=True))
        judged = [a for k, a in enumerate(AREAS) if not np.isnan(test.Y[i, k])]
        ranked = ev.decide(
            values,
            dict(zip(AREAS, raw[i].tolist(), strict=True)),
            judged,
            runs=test.runs[i] if test.runs else 1,
            steady_min=test.steady_min[i] if test.steady_min else 0.0,
            support=support,
        )
        for d in ranked:
            probs[i, AREAS.index(d.area)] = d.probability
            stands[i, AREAS.index(d.area)] = d.stands_out
        if ranked:
            tops[i] = AREAS.index(ranked[0].area)
    return probs, stands, tops


def key_z_proba(test: TrainingSet) -> FloatArray:
    """The "largest key-metric z" scorer: each area's key metric against the population."""
    from planner import evidence as ev

    out = np.empty((len(test), len(AREAS)))
    for i in range(len(test)):
        values = dict(zip(MODEL_FEATURES, test.X[i].tolist(), strict=True))
        for k, area in enumerate(AREAS):
            out[i, k] = ev.key_z_probability(area, values)
    return out


def evaluate(
    pipeline: Pipeline,
    baseline: ZScoreRuleClassifier,
    test: TrainingSet,
    *,
    support: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """Per-area ROC-AUC, Brier score and calibration error, top-1 accuracy and false flags.

    Three scorers side by side: ``model`` (what ``analyze`` reports: the model after the
    evidence checks), ``baseline`` (the z-score rules on the cohort's spreads) and ``key_z``
    (the largest key-metric z against the published references). Top-1 counts athletes whose
    four areas can all be judged: the first-ranked area against the area with the largest
    latent deficit (``top1_accuracy``, ``top1_accuracy_with_limiter``) and, on athletes with
    exactly one limiter, against that limiter (``top1_one_clear``). ``false_flag_rate``: the
    share of limiter-free athletes with any area standing out (analyze's rule for the model;
    P ≥ STAND_OUT_P for the baselines).
    ``extreme_below_0_2``: (athlete, area) pairs whose key metric is beyond the 97.5th
    percentile yet got P < 0.2.
    """
    from planner import evidence as ev

    out: dict[str, Any] = {"n_athletes": len(test)}
    full = ~np.isnan(test.Y).any(axis=1)
    labels = np.nan_to_num(test.Y, nan=0.0)
    # Athletes with at least one area over the limiter threshold: "is our top pick theirs?"
    limited = full & (labels.max(axis=1) == 1)
    one_clear = full & (labels.sum(axis=1) == 1)
    judged_any = ~np.isnan(test.Y).all(axis=1)
    free = judged_any & (labels.max(axis=1) == 0)
    truth = np.array([AREAS.index(t) if t else -1 for t in test.top])
    clear_truth = np.argmax(labels, axis=1)
    extreme = np.zeros(test.Y.shape, dtype=bool)
    for i in range(len(test)):
        values = dict(zip(MODEL_FEATURES, test.X[i].tolist(), strict=True))
        for k, area in enumerate(AREAS):
            extreme[i, k] = not np.isnan(test.Y[i, k]) and ev.key_extreme(area, values)
    model_probs, model_stands, model_tops = analysed(pipeline, test, support)
    scorers: dict[str, tuple[FloatArray, Any, Any]] = {
        "model": (model_probs, model_tops, model_stands),
        "baseline": (limiter_proba(baseline, test.X), None, None),
        "key_z": (key_z_proba(test), None, None),
    }
    for name, (probs, tops, stands) in scorers.items():
        per_area = {area: _area_metrics(test.Y[:, k], probs[:, k]) for k, area in enumerate(AREAS)}
        masked = np.where(np.isnan(test.Y), -np.inf, probs)
        pick = tops if tops is not None else np.argmax(masked, axis=1)
        hit = pick == truth if len(truth) else np.zeros(0, dtype=bool)
        clear_hit = pick == clear_truth
        # A flag: what analyze calls "stands out"; for the baselines, P >= STAND_OUT_P.
        if stands is None:
            stands = np.where(np.isnan(test.Y), 0.0, probs) >= ev.STAND_OUT_P
        flagged = stands.any(axis=1)
        out[name] = {
            "areas": per_area,
            "top1_accuracy": float(hit[full].mean()) if full.any() else None,
            "top1_n": int(full.sum()),
            "top1_accuracy_with_limiter": float(hit[limited].mean()) if limited.any() else None,
            "top1_with_limiter_n": int(limited.sum()),
            "top1_one_clear": float(clear_hit[one_clear].mean()) if one_clear.any() else None,
            "top1_one_clear_n": int(one_clear.sum()),
            "false_flag_rate": float(flagged[free].mean()) if free.any() else None,
            "limiter_free_n": int(free.sum()),
            "extreme_below_0_2": int((extreme & (np.nan_to_num(probs, nan=1.0) < 0.2)).sum()),
            "extreme_n": int(extreme.sum()),
        }
    return out


def grouped_cv(
    simulated: TrainingSet, coach: TrainingSet, *, random_state: int = 0, max_splits: int = 5
) -> dict[str, Any]:
    """Athlete-grouped cross-validation of the combined model on the coach-labelled athletes.

    Each fold trains on all simulated rows plus the other folds' labelled athletes and scores
    the held-out athletes; an athlete never sits on both sides.
    """
    unique = sorted(set(coach.groups))
    if len(unique) < 2:
        return {"athletes": len(unique), "note": "needs at least 2 labelled athletes"}
    splitter = GroupKFold(n_splits=min(max_splits, len(unique)))
    probs = np.full(coach.Y.shape, np.nan)
    for train_idx, test_idx in splitter.split(coach.X, groups=coach.groups):
        part = TrainingSet(
            coach.X[train_idx],
            coach.Y[train_idx],
            coach.weights[train_idx],
            [coach.groups[i] for i in train_idx],
            ["coach"] * len(train_idx),
            [None] * len(train_idx),
        )
        pipeline, _ = fit_models(simulated.concat(part), random_state)
        probs[test_idx] = limiter_proba(pipeline, coach.X[test_idx])
    areas = {}
    rng = np.random.default_rng(random_state)
    for k, area in enumerate(AREAS):
        y = coach.Y[:, k]
        known = ~np.isnan(y)
        both = len(np.unique(y[known])) == 2
        auc_ci, brier_ci = _bootstrap(y[known], probs[known, k], rng)
        positives = int(np.nansum(y[known]))
        negatives = int(known.sum()) - positives
        areas[area] = {
            "n": int(known.sum()),
            "positives": positives,
            "roc_auc": float(roc_auc_score(y[known], probs[known, k])) if both else None,
            "roc_auc_90": auc_ci,
            "brier": float(brier_score_loss(y[known], probs[known, k])) if known.any() else None,
            "brier_90": brier_ci,
            "too_few": min(positives, negatives) < MIN_LABELS_PER_CLASS,
        }
    few = [a for a, m in areas.items() if m["too_few"]]
    note = (
        f"Too few coach labels to change anything in {', '.join(few)}: fewer than"
        f" {MIN_LABELS_PER_CLASS} limiters or non-limiters labelled; the simulated prior"
        " decides there, and the intervals show how little these figures say."
        if few
        else None
    )
    return {
        "athletes": len(unique),
        "folds": splitter.get_n_splits(),
        "areas": areas,
        "bootstrap": BOOTSTRAP_ROUNDS,
        "note": note,
    }


#: Athlete bootstrap for the grouped-CV figures: rounds, and the labels per class below which
#: they cannot say anything. Assumption: with fewer than 5 positives an AUROC's 90 % interval
#: spans most of 0.3–1 (issue 17 measured 0.43–0.92 from 2–8 positives).
BOOTSTRAP_ROUNDS = 1000
MIN_LABELS_PER_CLASS = 5


def _bootstrap(
    y: FloatArray, p: FloatArray, rng: np.random.Generator
) -> tuple[list[float] | None, list[float] | None]:
    """90 % percentile intervals of ROC-AUC and Brier over athletes resampled with replacement."""
    if len(y) < 2:
        return None, None
    aucs: list[float] = []
    briers: list[float] = []
    for _ in range(BOOTSTRAP_ROUNDS):
        idx = rng.integers(0, len(y), len(y))
        yy, pp = y[idx], p[idx]
        briers.append(float(np.mean((pp - yy) ** 2)))
        if 0 < yy.sum() < len(yy):
            aucs.append(float(roc_auc_score(yy, pp)))
    auc = [float(np.quantile(aucs, 0.05)), float(np.quantile(aucs, 0.95))] if aucs else None
    return auc, [float(np.quantile(briers, 0.05)), float(np.quantile(briers, 0.95))]
