"""Save and load the limiter model as a versioned skops artefact (no bare pickle).

An artefact is two files side by side: ``limiter.skops`` (the fitted pipeline and rule
baseline, in skops' safe format) and ``limiter.json`` (metadata: format version, feature names
and version, library versions, training-data hash, the artefact's own SHA-256, evaluation
numbers). Loading checks the metadata first and raises :class:`ModelMismatchError` when the
artefact does not fit this version of stridewise; skops then loads only the types listed in
:data:`TRUSTED_TYPES`.

The model shipped inside the package lives in ``planner/models/``; ``stridewise model train``
writes to ``$STRIDEWISE_HOME/models/`` and that copy wins when present.
"""

from __future__ import annotations

import hashlib
import json
import platform
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy
import sklearn
import skops
import skops.io as sio
from sklearn.pipeline import Pipeline
from skops.io.exceptions import UntrustedTypesFoundException

from planner.config import data_dir
from planner.errors import ModelMismatchError
from planner.features import FEATURE_VERSION, MODEL_FEATURES
from planner.model import ZScoreRuleClassifier
from planner.records import AREAS

#: Bump when the artefact's layout or meaning changes; older artefacts then refuse to load.
FORMAT_VERSION = 1
MODEL_NAME = "limiter"
SHIPPED_DIR = Path(__file__).parent / "models"

#: Types skops may rebuild beyond its own safe defaults: our estimators and the scikit-learn
#: internals they hold. Anything else in a file is refused.
TRUSTED_TYPES: frozenset[str] = frozenset(
    {
        "planner.model.LimiterClassifier",
        "planner.model.ZScoreRuleClassifier",
        "sklearn.calibration._CalibratedClassifier",
        "sklearn.ensemble._hist_gradient_boosting.predictor.TreePredictor",
    }
)


@dataclass(frozen=True, slots=True)
class ModelBundle:
    """A fitted limiter pipeline, its rule baseline, and the metadata they were saved with."""

    pipeline: Pipeline
    baseline: ZScoreRuleClassifier
    meta: dict[str, Any]
    path: Path | None = None

    @property
    def version(self) -> str:
        """Short label for reports: format, training date and data hash."""
        trained = str(self.meta.get("trained_utc", ""))[:10]
        digest = str(self.meta.get("training_data_sha256", ""))[:8]
        return f"{MODEL_NAME}-v{self.meta.get('format_version')}-{trained}-{digest}"


def library_versions() -> dict[str, str]:
    return {
        "python": platform.python_version(),
        "numpy": numpy.__version__,
        "scikit-learn": sklearn.__version__,
        "skops": skops.__version__,
    }


def user_model_dir() -> Path:
    return data_dir() / "models"


def active_model_dir() -> Path:
    """Where ``analyze`` loads the model from: the user's trained copy, else the shipped one."""
    user = user_model_dir()
    if (user / f"{MODEL_NAME}.json").is_file():
        return user
    return SHIPPED_DIR


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def save_artefact(
    pipeline: Pipeline,
    baseline: ZScoreRuleClassifier,
    directory: Path,
    *,
    training_data_sha256: str,
    extra: dict[str, Any] | None = None,
) -> ModelBundle:
    """Write ``limiter.skops`` and ``limiter.json`` into ``directory``; return the bundle."""
    directory.mkdir(parents=True, exist_ok=True)
    model_path = directory / f"{MODEL_NAME}.skops"
    tmp = model_path.with_suffix(".skops.tmp")
    sio.dump({"pipeline": pipeline, "baseline": baseline}, tmp, compression=8)
    tmp.replace(model_path)
    meta: dict[str, Any] = {
        "format_version": FORMAT_VERSION,
        "feature_version": FEATURE_VERSION,
        "feature_names": list(MODEL_FEATURES),
        "areas": list(AREAS),
        "libraries": library_versions(),
        "training_data_sha256": training_data_sha256,
        "artefact_sha256": _sha256(model_path),
        "trained_utc": datetime.now(UTC).isoformat(timespec="seconds"),
        **(extra or {}),
    }
    meta_path = directory / f"{MODEL_NAME}.json"
    meta_path.write_text(json.dumps(meta, indent=2, sort_keys=True) + "\n", encoding="utf-8")
    return ModelBundle(pipeline, baseline, meta, model_path)


def _minor(version: str) -> tuple[str, ...]:
    return tuple(version.split(".")[:2])


def check_meta(meta: dict[str, Any]) -> None:
    """Raise ModelMismatchError when metadata does not fit this version of stridewise."""
    retrain = "run 'stridewise model train' to build a matching model"
    if meta.get("format_version") != FORMAT_VERSION:
        raise ModelMismatchError(
            f"model format {meta.get('format_version')!r}, this stridewise reads {FORMAT_VERSION};"
            f" {retrain}"
        )
    if meta.get("feature_version") != FEATURE_VERSION:
        raise ModelMismatchError(
            f"model built on feature version {meta.get('feature_version')!r}, this stridewise"
            f" computes {FEATURE_VERSION!r}; {retrain}"
        )
    if meta.get("feature_names") != list(MODEL_FEATURES) or meta.get("areas") != list(AREAS):
        raise ModelMismatchError(f"model expects other features or areas; {retrain}")
    trained = str(meta.get("libraries", {}).get("scikit-learn", "?"))
    if _minor(trained) != _minor(sklearn.__version__):
        raise ModelMismatchError(
            f"model trained with scikit-learn {trained}, this is {sklearn.__version__}; {retrain}"
        )


def load_artefact(directory: Path | None = None) -> ModelBundle:
    """Load the model from ``directory`` (default: :func:`active_model_dir`).

    Raises
    ------
    ModelMismatchError
        When a file is missing, its hash differs from the metadata, the metadata does not fit
        this version, or the file holds types outside :data:`TRUSTED_TYPES`.
    """
    directory = directory or active_model_dir()
    meta_path = directory / f"{MODEL_NAME}.json"
    model_path = directory / f"{MODEL_NAME}.skops"
    if not meta_path.is_file() or not model_path.is_file():
        raise ModelMismatchError(f"no model in {directory}; run 'stridewise model train'")
    try:
        meta = json.loads(meta_path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise ModelMismatchError(f"{meta_path}: unreadable model metadata ({exc})") from None
    check_meta(meta)
    if _sha256(model_path) != meta.get("artefact_sha256"):
        raise ModelMismatchError(f"{model_path} does not match its metadata (hash differs)")
    try:
        # skops refuses (before building anything) a file holding types outside this list.
        obj = sio.load(model_path, trusted=sorted(TRUSTED_TYPES))
    except UntrustedTypesFoundException:
        unexpected = set(sio.get_untrusted_types(file=model_path)) - TRUSTED_TYPES
        raise ModelMismatchError(
            f"{model_path} holds types we do not load: {', '.join(sorted(unexpected))}"
        ) from None
    except Exception as exc:  # skops raises many types for a damaged or foreign file
        raise ModelMismatchError(f"{model_path}: cannot load model ({exc})") from None
    if not isinstance(obj, dict) or not isinstance(obj.get("pipeline"), Pipeline):
        raise ModelMismatchError(f"{model_path} does not hold a limiter pipeline")
    if not isinstance(obj.get("baseline"), ZScoreRuleClassifier):
        raise ModelMismatchError(f"{model_path} does not hold the rule baseline")
    return ModelBundle(obj["pipeline"], obj["baseline"], meta, model_path)
