"""Save and load the limiter model: a versioned skops artefact and its compiled twin.

An artefact is three files side by side:

* ``limiter.skops`` — the fitted pipeline and rule baseline in skops' safe format (no bare
  pickle). The source of truth: training and evaluation load this.
* ``limiter.npz`` — the same pipeline compiled to plain arrays (:mod:`planner.compiled`), read
  with ``allow_pickle=False``. ``analyze`` evaluates this one, with NumPy alone.
* ``limiter.json`` — metadata: format version, feature names and version, areas, library
  versions, training-data hash, the SHA-256 of both files, the compiled format version.

Loading checks the metadata first and raises :class:`ModelMismatchError` when the artefact does
not fit this version of stridewise, or when a file's hash differs from the metadata; skops then
loads only the types listed in :data:`TRUSTED_TYPES`.

scikit-learn and skops cost ~2 s to import (scikit-learn pulls in ``scipy.stats``), ten times
the analysis itself, so this module imports them only inside the functions that save or load
the skops file: ``analyze`` never imports them. A loaded compiled model is kept per process
(keyed by the files' resolved paths, sizes and modification times), so building the weekly
plans of a whole roster reads it from disk once.

The model shipped inside the package lives in ``planner/models/``; ``stridewise model train``
writes to ``$STRIDEWISE_HOME/models/`` and that copy wins when present.
"""

from __future__ import annotations

import hashlib
import io
import json
import platform
import zipfile
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy

from planner.compiled import COMPILED_FORMAT_VERSION, CompiledLimiter
from planner.errors import ModelMismatchError
from planner.features import FEATURE_VERSION, MODEL_FEATURES
from planner.records import AREAS
from planner.store.config import data_dir

if TYPE_CHECKING:
    from sklearn.pipeline import Pipeline

    from planner.model import ZScoreRuleClassifier

#: Bump when the artefact's layout or meaning changes; older artefacts then refuse to load.
#: 2: the compiled ``limiter.npz`` joined the artefact.
#: 3: trained on the randomised-signature prior; ``limiter.json`` carries the cohort's
#: per-area ``support`` (planner.evidence), which ``analyze`` checks athletes against.
FORMAT_VERSION = 3
MODEL_NAME = "limiter"
SHIPPED_DIR = Path(__file__).parent.parent / "models"  # planner/models: the core ships the artefact

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

_RETRAIN = "run 'stridewise model train' to build a matching model"


def model_version(meta: dict[str, Any]) -> str:
    """Short label for reports: format, training date and data hash."""
    trained = str(meta.get("trained_utc", ""))[:10]
    digest = str(meta.get("training_data_sha256", ""))[:8]
    return f"{MODEL_NAME}-v{meta.get('format_version')}-{trained}-{digest}"


@dataclass(frozen=True, slots=True)
class ModelBundle:
    """A fitted limiter pipeline, its rule baseline, and the metadata they were saved with."""

    pipeline: Pipeline
    baseline: ZScoreRuleClassifier
    meta: dict[str, Any]
    path: Path | None = None

    @property
    def version(self) -> str:
        return model_version(self.meta)


@dataclass(frozen=True, slots=True, eq=False)
class CompiledBundle:
    """The compiled limiter model ``analyze`` evaluates, and the metadata it was saved with."""

    model: CompiledLimiter
    meta: dict[str, Any]
    path: Path | None = None

    @property
    def version(self) -> str:
        return model_version(self.meta)


def library_versions() -> dict[str, str]:
    import sklearn
    import skops

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


def _paths(directory: Path) -> tuple[Path, Path, Path]:
    """The artefact's metadata, skops and compiled files in ``directory``."""
    return (
        directory / f"{MODEL_NAME}.json",
        directory / f"{MODEL_NAME}.skops",
        directory / f"{MODEL_NAME}.npz",
    )


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _replace_atomically(path: Path, data: bytes) -> None:
    """Write ``path`` so that a reader sees the old file or the new one, never half of it."""
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_bytes(data)
    tmp.replace(path)


def save_artefact(
    pipeline: Pipeline,
    baseline: ZScoreRuleClassifier,
    directory: Path,
    *,
    training_data_sha256: str,
    extra: dict[str, Any] | None = None,
) -> ModelBundle:
    """Write ``limiter.skops``, ``limiter.npz`` and ``limiter.json`` into ``directory``.

    Raises
    ------
    ValueError
        When the pipeline holds something :func:`planner.model.compile_pipeline` cannot
        reproduce exactly; nothing is written then.
    """
    import skops.io as sio

    from planner.model import compile_pipeline

    # Compile first: a pipeline analyze could not evaluate must not reach the disk at all.
    compiled = compile_pipeline(pipeline, MODEL_FEATURES, AREAS)
    buffer = io.BytesIO()
    numpy.savez(buffer, allow_pickle=False, **compiled.to_arrays())
    directory.mkdir(parents=True, exist_ok=True)
    meta_path, model_path, compiled_path = _paths(directory)
    _replace_atomically(
        model_path, sio.dumps({"pipeline": pipeline, "baseline": baseline}, compression=8)
    )
    _replace_atomically(compiled_path, buffer.getvalue())
    meta: dict[str, Any] = {
        "format_version": FORMAT_VERSION,
        "feature_version": FEATURE_VERSION,
        "feature_names": list(MODEL_FEATURES),
        "areas": list(AREAS),
        "libraries": library_versions(),
        "training_data_sha256": training_data_sha256,
        "artefact_sha256": _sha256(model_path),
        "compiled_format_version": COMPILED_FORMAT_VERSION,
        "compiled_sha256": _sha256(compiled_path),
        "trained_utc": datetime.now(UTC).isoformat(timespec="seconds"),
        **(extra or {}),
    }
    # The metadata goes last: it names the hashes of the files just written.
    _replace_atomically(
        meta_path, (json.dumps(meta, indent=2, sort_keys=True) + "\n").encode("utf-8")
    )
    return ModelBundle(pipeline, baseline, meta, model_path)


def _minor(version: str) -> tuple[str, ...]:
    return tuple(version.split(".")[:2])


def check_meta(meta: dict[str, Any], *, sklearn_version: str | None = None) -> None:
    """Raise ModelMismatchError when metadata does not fit this version of stridewise.

    ``sklearn_version`` (the installed one) is given when the skops file will be loaded: its
    objects only rebuild under the scikit-learn minor version that wrote them. The compiled
    model is plain arrays and does not depend on it.
    """
    if meta.get("format_version") != FORMAT_VERSION:
        raise ModelMismatchError(
            f"model format {meta.get('format_version')!r}, this stridewise reads {FORMAT_VERSION};"
            f" {_RETRAIN}"
        )
    if meta.get("feature_version") != FEATURE_VERSION:
        raise ModelMismatchError(
            f"model built on feature version {meta.get('feature_version')!r}, this stridewise"
            f" computes {FEATURE_VERSION!r}; {_RETRAIN}"
        )
    if meta.get("feature_names") != list(MODEL_FEATURES) or meta.get("areas") != list(AREAS):
        raise ModelMismatchError(f"model expects other features or areas; {_RETRAIN}")
    if sklearn_version is not None:
        trained = str(meta.get("libraries", {}).get("scikit-learn", "?"))
        if _minor(trained) != _minor(sklearn_version):
            raise ModelMismatchError(
                f"model trained with scikit-learn {trained}, this is {sklearn_version}; {_RETRAIN}"
            )


def _read_meta(meta_path: Path) -> dict[str, Any]:
    try:
        meta = json.loads(meta_path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise ModelMismatchError(f"{meta_path}: unreadable model metadata ({exc})") from None
    if not isinstance(meta, dict):
        raise ModelMismatchError(f"{meta_path}: model metadata is not an object")
    return meta


def load_artefact(directory: Path | None = None) -> ModelBundle:
    """Load the skops model from ``directory`` (default: :func:`active_model_dir`).

    For training and evaluation; ``analyze`` uses :func:`load_compiled`.

    Raises
    ------
    ModelMismatchError
        When a file is missing, its hash differs from the metadata, the metadata does not fit
        this version, or the file holds types outside :data:`TRUSTED_TYPES`.
    """
    import sklearn
    import skops.io as sio
    from sklearn.pipeline import Pipeline
    from skops.io.exceptions import UntrustedTypesFoundException

    from planner.model import ZScoreRuleClassifier

    directory = directory or active_model_dir()
    meta_path, model_path, _ = _paths(directory)
    if not meta_path.is_file() or not model_path.is_file():
        raise ModelMismatchError(f"no model in {directory}; run 'stridewise model train'")
    meta = _read_meta(meta_path)
    check_meta(meta, sklearn_version=sklearn.__version__)
    data = model_path.read_bytes()
    if hashlib.sha256(data).hexdigest() != meta.get("artefact_sha256"):
        raise ModelMismatchError(f"{model_path} does not match its metadata (hash differs)")
    try:
        # skops refuses (before building anything) a file holding types outside this list.
        obj = sio.loads(data, trusted=sorted(TRUSTED_TYPES))
    except UntrustedTypesFoundException:
        unexpected = set(sio.get_untrusted_types(data=data)) - TRUSTED_TYPES
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


#: Compiled models loaded in this process: resolved .npz path → (file signature, bundle).
_COMPILED_CACHE: dict[Path, tuple[tuple[int, ...], CompiledBundle]] = {}


def _signature(*paths: Path) -> tuple[int, ...]:
    """Size, modification time and inode of each file: changes whenever a file is rewritten.

    The inode is there because files are replaced by rename (a new inode), which catches a
    retrain within the file system's timestamp resolution that happens to keep the size.
    """
    out: list[int] = []
    for path in paths:
        st = path.stat()
        out += [st.st_size, st.st_mtime_ns, st.st_ino]
    return tuple(out)


def load_compiled(directory: Path | None = None) -> CompiledBundle:
    """Load the compiled model from ``directory`` (default: :func:`active_model_dir`).

    Imports neither scikit-learn nor skops. Cached per process until one of its files changes.

    Raises
    ------
    ModelMismatchError
        When a file is missing, the metadata does not fit this version, the compiled file's
        format or hash differs from the metadata, or its arrays do not describe a model with
        this version's features and areas.
    """
    directory = directory or active_model_dir()
    meta_path, _, compiled_path = _paths(directory)
    if not meta_path.is_file():
        raise ModelMismatchError(f"no model in {directory}; run 'stridewise model train'")
    if not compiled_path.is_file():
        # An artefact from before the compiled file existed: its format check says so.
        check_meta(_read_meta(meta_path))
        raise ModelMismatchError(f"no compiled model in {directory}; {_RETRAIN}")
    key = compiled_path.resolve()
    signature = _signature(key, meta_path.resolve())
    hit = _COMPILED_CACHE.get(key)
    if hit is not None and hit[0] == signature:
        return hit[1]
    meta = _read_meta(meta_path)
    check_meta(meta)
    if meta.get("compiled_format_version") != COMPILED_FORMAT_VERSION:
        raise ModelMismatchError(
            f"compiled model format {meta.get('compiled_format_version')!r}, this stridewise"
            f" reads {COMPILED_FORMAT_VERSION}; {_RETRAIN}"
        )
    # Hash and parse the same bytes, so what was checked is what is used.
    data = compiled_path.read_bytes()
    if hashlib.sha256(data).hexdigest() != meta.get("compiled_sha256"):
        raise ModelMismatchError(f"{compiled_path} does not match its metadata (hash differs)")
    try:
        with numpy.load(io.BytesIO(data), allow_pickle=False) as npz:
            arrays = {name: npz[name] for name in npz.files}
    except (OSError, ValueError, EOFError, zipfile.BadZipFile) as exc:
        raise ModelMismatchError(f"{compiled_path}: cannot load compiled model ({exc})") from None
    model = CompiledLimiter.from_arrays(arrays)
    if model.feature_names != MODEL_FEATURES or model.outputs != AREAS:
        raise ModelMismatchError(f"{compiled_path} expects other features or areas; {_RETRAIN}")
    bundle = CompiledBundle(model, meta, compiled_path)
    _COMPILED_CACHE[key] = (signature, bundle)
    return bundle
