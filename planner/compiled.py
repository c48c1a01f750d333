"""The fitted limiter model as plain arrays, evaluated with NumPy alone.

``stridewise analyze`` needs one row of probabilities, but importing scikit-learn costs ~1.5 s
(it pulls in ``scipy.stats``) and skops another ~0.5 s, against ~0.2 s for the analysis itself.
So when a model is saved, :func:`planner.model.compile_pipeline` copies what the fitted pipeline
uses at predict time into a :class:`CompiledLimiter`, written next to the skops artefact as
``limiter.npz``; this module evaluates it without importing either library. The skops artefact
stays the source of truth for training and evaluation; the tests check that both give the same
probabilities (within 1e-9) on held-out rows, with missing values and unjudgeable areas.

What is copied, and how each piece mirrors scikit-learn 1.9:

* **Input checks and preprocessing.** The pipeline has no step before ``LimiterClassifier``,
  which converts rows to float64, allows NaN, refuses ±inf, and hands each area its own columns.
  The column choice is folded into the trees (their feature indices are columns of the full
  row), the rest is :meth:`CompiledLimiter.limiter_proba`'s input check.
* **Boosted trees** (``HistGradientBoostingClassifier._predictors``): per node the column, the
  numeric threshold (``x <= threshold`` goes left), the children, whether it is a leaf, the
  leaf value, and where a missing value goes; per booster its baseline (log-odds of the prior).
  The raw score is the baseline plus the leaf values added tree by tree in boosting order, as
  ``_raw_predict`` does.
* **Calibrators** (``CalibratedClassifierCV.calibrated_classifiers_``): isotonic regression
  (clip to the fitted range, then linear interpolation between thresholds) or Platt's sigmoid
  (a, b). Each calibrated booster gives P(limiter); an area's probability is their mean, summed
  in fold order and then divided, as ``CalibratedClassifierCV.predict_proba`` does. An area
  fitted without calibration uses the booster's own logistic link.

Binary outputs only: every area is "limiter or not".
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, fields
from typing import Any, Final

import numpy as np
import numpy.typing as npt

from planner.errors import ModelMismatchError

FloatArray = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.int64]
BoolArray = npt.NDArray[np.bool_]

#: Bump when the arrays' names, shapes or meaning change; older files then refuse to load.
COMPILED_FORMAT_VERSION: Final = 1

#: Calibration methods, as stored in ``member_method``.
METHOD_NONE: Final = 0
METHOD_ISOTONIC: Final = 1
METHOD_SIGMOID: Final = 2
_METHODS = (METHOD_NONE, METHOD_ISOTONIC, METHOD_SIGMOID)

#: scikit-learn snaps calibrated probabilities in (1, 1 + 1e-5] to exactly 1
#: (``_CalibratedClassifier.predict_proba``); mirrored so the two stay identical.
_SNAP_ABOVE_ONE: Final = 1e-5


def _expit(x: FloatArray) -> FloatArray:
    """Logistic function 1 / (1 + e^-x): bit-identical to ``scipy.special.expit`` here."""
    # exp overflows to inf for very negative scores; 1 / (1 + inf) = 0 is the right limit.
    with np.errstate(over="ignore"):
        return np.asarray(1.0 / (1.0 + np.exp(-x)))


@dataclass(frozen=True, slots=True, eq=False)
class CompiledLimiter:
    """A fitted limiter pipeline as flat arrays: trees, boosters ("members") and calibrators.

    All nodes of all trees sit in one table (``node_*``); ``tree_root`` holds each tree's root
    row and ``tree_member`` the booster it belongs to (a booster's trees are contiguous and in
    boosting order). A *member* is one booster with its calibrator; ``member_output`` says which
    output (area) it votes for. Isotonic thresholds of member ``m`` are
    ``iso_x[member_iso_start[m]:member_iso_stop[m]]`` (and ``iso_y`` alike).
    """

    feature_names: tuple[str, ...]
    outputs: tuple[str, ...]
    node_feature: IntArray
    node_threshold: FloatArray
    node_left: IntArray
    node_right: IntArray
    node_is_leaf: BoolArray
    node_value: FloatArray
    node_missing_left: BoolArray
    tree_root: IntArray
    tree_member: IntArray
    member_output: IntArray
    member_baseline: FloatArray
    member_method: IntArray
    member_a: FloatArray
    member_b: FloatArray
    member_iso_min: FloatArray
    member_iso_max: FloatArray
    member_iso_start: IntArray
    member_iso_stop: IntArray
    iso_x: FloatArray
    iso_y: FloatArray

    def __post_init__(self) -> None:
        _validate(self)
        # A loaded model is shared by every analysis in the process (planner.store.model_io caches
        # it): read-only arrays make an accidental in-place change fail loudly.
        for f in fields(self):
            value = getattr(self, f.name)
            if isinstance(value, np.ndarray):
                value.setflags(write=False)

    @property
    def n_features(self) -> int:
        return len(self.feature_names)

    def limiter_proba(self, X: npt.ArrayLike) -> FloatArray:
        """P(limiter) per output for each row.

        Parameters
        ----------
        X : array of shape (n_rows, n_features)
            Model input rows in :attr:`feature_names` order (units as in
            :data:`planner.features.MODEL_FEATURES`); NaN where a feature is missing.

        Returns
        -------
        array of shape (n_rows, n_outputs)
            Probabilities in [0, 1], the same numbers the fitted pipeline gives.

        Raises
        ------
        ValueError
            For no rows, a wrong shape or an infinite value (the pipeline refuses those too).
        """
        rows = np.asarray(X, dtype=np.float64)
        if rows.ndim != 2 or rows.shape[1] != self.n_features or rows.shape[0] == 0:
            raise ValueError(f"expected rows of {self.n_features} features, got shape {rows.shape}")
        if np.isinf(rows).any():
            raise ValueError("input contains infinity; only NaN marks a missing feature")
        raw = self._raw_scores(rows)
        n_outputs = len(self.outputs)
        total = np.zeros((rows.shape[0], n_outputs))
        count = np.zeros(n_outputs)
        for m in range(len(self.member_output)):
            k = int(self.member_output[m])
            total[:, k] += self._calibrate(m, raw[:, m])
            count[k] += 1
        return total / count

    def _raw_scores(self, rows: FloatArray) -> FloatArray:
        """Each booster's raw score (log-odds) per row, shape (n_rows, n_members)."""
        n = rows.shape[0]
        row_index = np.arange(n)[:, None]
        node = np.broadcast_to(self.tree_root, (n, len(self.tree_root))).copy()
        # All trees descend together, one level per pass; children always follow their parent
        # in the node table (checked on load), so this ends after at most max-depth passes.
        while True:
            inner = ~self.node_is_leaf[node]
            if not inner.any():
                break
            x = rows[row_index, self.node_feature[node]]
            go_left = np.where(
                np.isnan(x), self.node_missing_left[node], x <= self.node_threshold[node]
            )
            child = np.where(go_left, self.node_left[node], self.node_right[node])
            node = np.where(inner, child, node)
        leaf_values = self.node_value[node]
        raw = np.empty((n, len(self.member_output)))
        bounds = np.searchsorted(self.tree_member, np.arange(len(self.member_output) + 1))
        for m in range(len(self.member_output)):
            # baseline, then one tree at a time: a cumulative sum adds in exactly the order
            # scikit-learn's `raw += tree(x)` loop does, so the float result is the same.
            parts = np.column_stack(
                [np.full(n, self.member_baseline[m]), leaf_values[:, bounds[m] : bounds[m + 1]]]
            )
            raw[:, m] = np.cumsum(parts, axis=1)[:, -1]
        return raw

    def _calibrate(self, m: int, raw: FloatArray) -> FloatArray:
        """Member ``m``'s P(limiter) from its raw scores."""
        method = int(self.member_method[m])
        if method == METHOD_NONE:
            return _expit(raw)
        if method == METHOD_ISOTONIC:
            lo, hi = int(self.member_iso_start[m]), int(self.member_iso_stop[m])
            t = np.clip(raw, self.member_iso_min[m], self.member_iso_max[m])
            p = np.interp(t, self.iso_x[lo:hi], self.iso_y[lo:hi])
        else:
            p = _expit(-(self.member_a[m] * raw + self.member_b[m]))
        return np.where((p > 1.0) & (p <= 1.0 + _SNAP_ABOVE_ONE), 1.0, p)

    def to_arrays(self) -> dict[str, npt.NDArray[Any]]:
        """The arrays to write with ``np.savez`` (no object arrays, so no pickle on load)."""
        out: dict[str, npt.NDArray[Any]] = {
            "format_version": np.array(COMPILED_FORMAT_VERSION, dtype=np.int64),
            "feature_names": np.array(self.feature_names, dtype=np.str_),
            "outputs": np.array(self.outputs, dtype=np.str_),
        }
        for f in fields(self):
            if f.name not in out:
                out[f.name] = getattr(self, f.name)
        return out

    @classmethod
    def from_arrays(cls, arrays: Mapping[str, npt.NDArray[Any]]) -> CompiledLimiter:
        """Rebuild from :meth:`to_arrays` output; raise ModelMismatchError if it does not fit."""
        names = {f.name for f in fields(cls)} | {"format_version"}
        missing = sorted(names - set(arrays))
        if missing:
            raise ModelMismatchError(f"compiled model lacks {', '.join(missing)}")
        version = arrays["format_version"]
        if version.shape != () or int(version) != COMPILED_FORMAT_VERSION:
            raise ModelMismatchError(
                f"compiled model format {version.tolist()!r}, this stridewise reads"
                f" {COMPILED_FORMAT_VERSION}"
            )
        values: dict[str, Any] = {}
        for f in fields(cls):
            arr = arrays[f.name]
            if f.name in ("feature_names", "outputs"):
                if arr.dtype.kind != "U" or arr.ndim != 1:
                    raise ModelMismatchError(f"compiled model: {f.name} is not a list of names")
                values[f.name] = tuple(str(s) for s in arr)
                continue
            # Field annotations are strings here (postponed evaluation): "IntArray" etc.
            # Exact dtypes only: float32 thresholds, say, would no longer give the same numbers.
            dtype = np.dtype(_DTYPES[str(f.type)])
            if arr.dtype != dtype or arr.ndim != 1:
                raise ModelMismatchError(
                    f"compiled model: {f.name} is {arr.ndim}-D {arr.dtype}, expected 1-D {dtype}"
                )
            values[f.name] = arr
        return cls(**values)


_DTYPES: dict[str, type[np.generic]] = {
    "IntArray": np.int64,
    "FloatArray": np.float64,
    "BoolArray": np.bool_,
}


def _validate(model: CompiledLimiter) -> None:
    """Refuse arrays that do not describe a well-formed model (a damaged or foreign file)."""

    def bad(what: str) -> ModelMismatchError:
        return ModelMismatchError(f"compiled model is malformed: {what}")

    n_nodes = len(model.node_feature)
    for name in ("node_threshold", "node_left", "node_right", "node_is_leaf", "node_value"):
        if len(getattr(model, name)) != n_nodes:
            raise bad(f"{name} has {len(getattr(model, name))} entries for {n_nodes} nodes")
    if len(model.node_missing_left) != n_nodes:
        raise bad("node_missing_left does not match the node table")
    n_members = len(model.member_output)
    for name in (
        "member_baseline",
        "member_method",
        "member_a",
        "member_b",
        "member_iso_min",
        "member_iso_max",
        "member_iso_start",
        "member_iso_stop",
    ):
        if len(getattr(model, name)) != n_members:
            raise bad(f"{name} has {len(getattr(model, name))} entries for {n_members} members")
    if len(model.tree_root) != len(model.tree_member) or n_members == 0:
        raise bad("tree and member tables do not match")
    if len(model.iso_x) != len(model.iso_y):
        raise bad("isotonic thresholds and values differ in length")
    inner = np.flatnonzero(~model.node_is_leaf)
    # Children after their parent: guarantees every descent ends at a leaf.
    for child in (model.node_left[inner], model.node_right[inner]):
        if ((child <= inner) | (child >= n_nodes)).any():
            raise bad("a child node does not follow its parent")
    if ((model.node_feature[inner] < 0) | (model.node_feature[inner] >= model.n_features)).any():
        raise bad("a split uses a feature the model does not have")
    if ((model.tree_root < 0) | (model.tree_root >= n_nodes)).any():
        raise bad("a tree root is outside the node table")
    if (np.diff(model.tree_member) < 0).any() or (
        len(model.tree_member) and (model.tree_member[0] < 0 or model.tree_member[-1] >= n_members)
    ):
        raise bad("trees are not grouped by member")
    outputs = model.member_output
    if ((outputs < 0) | (outputs >= len(model.outputs))).any():
        raise bad("a member votes for an output the model does not have")
    if set(outputs.tolist()) != set(range(len(model.outputs))):
        raise bad("an output has no member")
    if not np.isin(model.member_method, _METHODS).all():
        raise bad("unknown calibration method")
    iso = model.member_method == METHOD_ISOTONIC
    start, stop = model.member_iso_start[iso], model.member_iso_stop[iso]
    if ((start < 0) | (stop <= start) | (stop > len(model.iso_x))).any():
        raise bad("isotonic thresholds out of range")
