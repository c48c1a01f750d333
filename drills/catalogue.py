"""Schema and loader for the drill catalogue.

The catalogue is data (``drills/catalogue/*.toml`` plus any third-party files registered under the
``stridewise.catalogues`` entry point), validated once here by strict models
(``extra="forbid"``). Selection and plan building are pure functions of the resulting
:class:`Catalogue`. Every problem with a file ends as one :class:`~planner.errors.CatalogueError`
line naming the file, the drill and the field.
"""

from __future__ import annotations

import difflib
import importlib.util
import os
import re
import tomllib
from collections.abc import Iterable, Iterator
from enum import StrEnum
from functools import cache
from importlib.metadata import EntryPoint, entry_points
from pathlib import Path
from typing import Annotated, Any, Final, Literal, Self

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    PrivateAttr,
    StrictBool,
    StringConstraints,
    ValidationError,
    field_validator,
    model_validator,
)
from pydantic_core import ErrorDetails

from planner.errors import CatalogueError, NotFoundError
from planner.records import AREAS, Area

__all__ = [
    "AREAS",
    "ENTRY_POINT_GROUP",
    "PRACTITIONER",
    "Area",
    "Catalogue",
    "Contraindication",
    "Dose",
    "DoseByLevel",
    "Drill",
    "Equipment",
    "GarminExercise",
    "Kind",
    "Level",
    "Load",
    "load_catalogue",
    "load_catalogue_file",
]

ENTRY_POINT_GROUP: Final = "stridewise.catalogues"
PRACTITIONER: Final = "practitioner"


class Kind(StrEnum):
    """What sort of work a drill is; the planner spaces kinds differently through the week."""

    TECHNIQUE = "technique"
    STRENGTH = "strength"
    PLYOMETRIC = "plyometric"
    MOBILITY = "mobility"
    RUN_WORKOUT = "run_workout"
    WARMUP = "warmup"


class Load(StrEnum):
    """How hard a drill is on tissue; technique and low load come first in a training block."""

    LOW = "low"
    MODERATE = "moderate"
    HIGH = "high"

    @property
    def rank(self) -> int:
        """0, 1 or 2, so loads can be compared and capped (``drill.load.rank <= cap.rank``)."""
        return _LOAD_ORDER.index(self)


_LOAD_ORDER: Final = (Load.LOW, Load.MODERATE, Load.HIGH)


class Level(StrEnum):
    """An athlete's training level, which picks the dose."""

    BEGINNER = "beginner"
    INTERMEDIATE = "intermediate"
    ADVANCED = "advanced"


class Equipment(StrEnum):
    """Equipment a drill needs; ``none`` means body weight only and stands alone."""

    NONE = "none"
    DUMBBELLS = "dumbbells"
    BARBELL = "barbell"
    KETTLEBELL = "kettlebell"
    BAND = "band"
    STEP = "step"
    BOX = "box"
    WALL = "wall"
    HILL = "hill"
    TRACK = "track"
    BENCH = "bench"
    CABLE = "cable"
    MAT = "mat"
    METRONOME = "metronome"


class Contraindication(StrEnum):
    """A complaint that rules a drill out until it has settled."""

    ACHILLES = "achilles"
    CALF = "calf"
    PLANTAR_FASCIA = "plantar_fascia"
    KNEE = "knee"
    PATELLOFEMORAL = "patellofemoral"
    IT_BAND = "it_band"
    HAMSTRING = "hamstring"
    HIP = "hip"
    LOWER_BACK = "lower_back"
    ANKLE = "ankle"
    SHIN = "shin"


# Strict ints: TOML has real integers, and a lax int would quietly accept `true` as 1.
PositiveInt = Annotated[int, Field(strict=True, ge=1)]
NonNegativeInt = Annotated[int, Field(strict=True, ge=0)]
_KEBAB: Final = r"[a-z0-9]+(?:-[a-z0-9]+)*"
DrillId = Annotated[str, StringConstraints(strict=True, pattern=rf"^{_KEBAB}$")]
# "" means "no progression / regression"; anything else must be an id (checked across files).
DrillRef = Annotated[str, StringConstraints(strict=True, pattern=rf"^(?:{_KEBAB})?$")]


def _text(max_length: int, min_length: int = 3) -> StringConstraints:
    return StringConstraints(
        strict=True, strip_whitespace=True, min_length=min_length, max_length=max_length
    )


Name = Annotated[str, _text(60)]
# Cues and faults are read mid-drill from a phone or a printout: keep them short.
Cue = Annotated[str, _text(90)]
Sentence = Annotated[str, _text(220, min_length=10)]

Measure = Literal["reps", "duration_s", "distance_m"]
_MEASURES: Final[tuple[Measure, ...]] = ("reps", "duration_s", "distance_m")

# A citation names an author (capitalised, any script) and a four-digit year, as in
# "Støren et al. 2008, MSSE 40:1087"; anything weaker must say "practitioner" instead.
_CITATION = re.compile(r"^[^\W\d_][\w'’-]+\b.*\b(?:19|20)\d{2}\b")


class _FieldError(ValueError):
    """A cross-field check that knows which field is at fault, so the message can name it."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(message)
        self.field = field


def _no_repeats[T](values: tuple[T, ...]) -> tuple[T, ...]:
    repeated = sorted({str(v) for v in values if values.count(v) > 1})
    if repeated:
        raise ValueError(f"listed more than once: {', '.join(repeated)}")
    return values


class Dose(BaseModel):
    """One level's prescription for a drill.

    ``sets`` of exactly one of ``reps``, ``duration_s`` (s) or ``distance_m`` (m), with ``rest_s``
    (s) between sets. For unilateral drills the amount is per side. ``minutes`` is the whole
    session time the dose takes, work and rest on both sides, which the planner adds up.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    sets: PositiveInt
    reps: PositiveInt | None = None
    duration_s: PositiveInt | None = None
    distance_m: PositiveInt | None = None
    rest_s: NonNegativeInt
    minutes: PositiveInt

    @model_validator(mode="after")
    def _one_measure_and_enough_time(self) -> Self:
        given = [name for name in _MEASURES if getattr(self, name) is not None]
        if len(given) != 1:
            raise _FieldError(
                "|".join(_MEASURES),
                f"give exactly one of reps, duration_s, distance_m (got {len(given)})",
            )
        # Catches a typo in either number: the rest alone must fit in the time budgeted.
        if (self.sets - 1) * self.rest_s > self.minutes * 60:
            raise _FieldError(
                "minutes", f"{self.minutes} min is shorter than the rest between sets alone"
            )
        return self

    @property
    def measure(self) -> tuple[Measure, int]:
        """The one amount given per set, e.g. ``("reps", 8)`` or ``("distance_m", 30)``."""
        for name in _MEASURES:
            value = getattr(self, name)
            if value is not None:
                return name, value
        raise AssertionError("unreachable: the validator guarantees one measure")


class DoseByLevel(BaseModel):
    """The dose for each training level."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    beginner: Dose
    intermediate: Dose
    advanced: Dose

    def for_level(self, level: Level | str) -> Dose:
        """Return the dose for ``level`` (``beginner``, ``intermediate`` or ``advanced``)."""
        dose: Dose = getattr(self, Level(level).value)
        return dose


@cache
def garmin_exercise_names() -> frozenset[tuple[str, str]]:
    """Every (category, exercise) pair in garminconnect's strength-exercise catalogue.

    The table is read from ``garminconnect/exercises.py`` without importing the package:
    ``import garminconnect.exercises`` would load garminconnect's HTTP client first (about
    0.3 s), and every plan loads the catalogue. The module is plain data with no imports.
    """
    spec = importlib.util.find_spec("garminconnect")
    if spec is None or spec.origin is None:
        raise CatalogueError("garminconnect is not installed: cannot check Garmin exercises")
    path = Path(spec.origin).with_name("exercises.py")
    loaded = importlib.util.spec_from_file_location("_stridewise_garmin_exercises", path)
    if loaded is None or loaded.loader is None:
        raise CatalogueError(f"{path}: cannot read garminconnect's exercise catalogue")
    module = importlib.util.module_from_spec(loaded)
    loaded.loader.exec_module(module)
    return frozenset((e["category"], e["exercise"]) for e in module.EXERCISES)


class GarminExercise(BaseModel):
    """The Garmin Connect strength exercise a drill is, so the watch names and animates it.

    ``category`` and ``exercise`` are garminconnect's enum values (``garminconnect.exercises``),
    e.g. ``CALF_RAISE`` / ``SINGLE_LEG_STANDING_CALF_RAISE``; the pair must be in that catalogue.
    Without ``exercise`` the watch shows the category's name (garminconnect's empty exercise
    name): for a drill that is plainly, say, a lunge but not one of Garmin's lunges.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    category: Annotated[str, StringConstraints(strict=True, pattern=r"^[A-Z0-9_]+$")]
    exercise: Annotated[str, StringConstraints(strict=True, pattern=r"^[A-Z0-9_]+$")] | None = None

    @model_validator(mode="after")
    def _known_to_garmin(self) -> Self:
        known = garmin_exercise_names()
        categories = {category for category, _ in known}
        if self.category not in categories:
            close = difflib.get_close_matches(self.category, sorted(categories), n=1)
            hint = f" (did you mean {close[0]}?)" if close else ""
            raise _FieldError("category", f"{self.category} is not a Garmin category{hint}")
        if self.exercise is None or (self.category, self.exercise) in known:
            return self
        names = sorted(name for category, name in known if category == self.category)
        close = difflib.get_close_matches(self.exercise, names, n=1)
        hint = f" (did you mean {close[0]}?)" if close else ""
        raise _FieldError(
            "exercise", f"{self.exercise} is not a Garmin {self.category} exercise{hint}"
        )


class Drill(BaseModel):
    """One drill, exercise or run workout, as written in a catalogue file."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    id: DrillId
    name: Name
    primary_areas: Annotated[tuple[Area, ...], Field(min_length=1)]
    secondary_areas: tuple[Area, ...]
    kind: Kind
    load: Load
    equipment: Annotated[tuple[Equipment, ...], Field(min_length=1)]
    unilateral: StrictBool
    dose: DoseByLevel
    progression: DrillRef
    regression: DrillRef
    cues: Annotated[tuple[Cue, ...], Field(min_length=2)]
    faults: Annotated[tuple[Cue, ...], Field(min_length=1)]
    contraindications: tuple[Contraindication, ...]
    source: Annotated[str, _text(200, min_length=1)]
    why: Sentence
    # Optional: drills with no real Garmin equivalent go to the watch as named custom steps.
    garmin: GarminExercise | None = None

    _unique_lists = field_validator(
        "primary_areas", "secondary_areas", "equipment", "cues", "faults", "contraindications"
    )(staticmethod(_no_repeats))

    @field_validator("equipment")
    @classmethod
    def _none_stands_alone(cls, value: tuple[Equipment, ...]) -> tuple[Equipment, ...]:
        if Equipment.NONE in value and len(value) > 1:
            raise ValueError("'none' cannot be combined with other equipment")
        return value

    @field_validator("source")
    @classmethod
    def _citation_or_practitioner(cls, value: str) -> str:
        if value != PRACTITIONER and not _CITATION.match(value):
            raise ValueError(
                f"give {PRACTITIONER!r} or a citation naming an author and year, not {value!r}"
            )
        return value

    @field_validator("why")
    @classmethod
    def _one_sentence(cls, value: str) -> str:
        if not value.endswith(".") or "\n" in value:
            raise ValueError("write one sentence ending with a full stop")
        return value

    @model_validator(mode="after")
    def _consistent(self) -> Self:
        overlap = set(self.primary_areas) & set(self.secondary_areas)
        if overlap:
            names = ", ".join(sorted(overlap))
            raise _FieldError("secondary_areas", f"{names} is already a primary area")
        for field in ("progression", "regression"):
            if getattr(self, field) == self.id:
                raise _FieldError(field, "a drill cannot progress or regress to itself")
        if self.progression and self.progression == self.regression:
            raise _FieldError("regression", "progression and regression name the same drill")
        return self

    @property
    def areas(self) -> tuple[Area, ...]:
        """Primary then secondary areas."""
        return self.primary_areas + self.secondary_areas


class Catalogue(BaseModel):
    """All loaded drills, in file order, with lookups by id and by area.

    Built by :func:`load_catalogue`, which also checks that progression and regression ids
    resolve. A catalogue built by hand (a filtered subset, a test fixture) need not be closed
    under those links, so only unique ids are enforced here.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    drills: tuple[Drill, ...]
    _index: dict[str, Drill] = PrivateAttr(default_factory=dict)

    def model_post_init(self, context: Any, /) -> None:
        """Index the drills by id; a repeated id is an error."""
        for drill in self.drills:
            if drill.id in self._index:
                raise ValueError(f"duplicate drill id {drill.id!r}")
            self._index[drill.id] = drill

    def by_id(self, drill_id: str) -> Drill:
        """Return the drill with this id.

        Raises
        ------
        NotFoundError
            If no loaded drill has this id.
        """
        try:
            return self._index[drill_id]
        except KeyError:
            raise NotFoundError(f"no drill with id {drill_id!r} in the catalogue") from None

    def for_area(self, area: Area | str, *, include_secondary: bool = False) -> tuple[Drill, ...]:
        """Return the drills whose primary areas (or, if asked, any areas) include ``area``."""
        wanted = Area(area)
        return tuple(
            drill
            for drill in self.drills
            if wanted in (drill.areas if include_secondary else drill.primary_areas)
        )

    def __contains__(self, drill_id: object) -> bool:
        return drill_id in self._index

    def __len__(self) -> int:
        return len(self.drills)

    # BaseModel.__iter__ yields (field, value) pairs; a catalogue iterates as its drills.
    def __iter__(self) -> Iterator[Drill]:  # type: ignore[override]
        return iter(self.drills)


class _CatalogueFile(BaseModel):
    """The top level of one TOML file: an array of ``[[drill]]`` tables and nothing else."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    drill: Annotated[list[Drill], Field(min_length=1)]


def _shown(path: Path) -> str:
    """The path as a user would type it: relative to the working folder when inside it."""
    try:
        return str(path.relative_to(Path.cwd()))
    except ValueError:
        return str(path)


def _dotted(loc: Iterable[int | str]) -> str:
    text = ""
    for part in loc:
        text += f"[{part}]" if isinstance(part, int) else (f".{part}" if text else part)
    return text


def _describe(error: ErrorDetails, raw: dict[str, Any], path: Path) -> str:
    """One line for the first validation error: file, drill, dotted field and pydantic's text."""
    loc = tuple(error["loc"])
    message = error["msg"]
    cause = error.get("ctx", {}).get("error")
    if isinstance(cause, Exception):
        # Our own validators' words, without pydantic's "Value error, " prefix.
        message = str(cause)
    if isinstance(cause, _FieldError):
        loc += (cause.field,)
    where = _shown(path)
    if len(loc) >= 2 and loc[0] == "drill" and isinstance(loc[1], int):
        index, field = loc[1], _dotted(loc[2:])
        entries = raw.get("drill")
        entry = entries[index] if isinstance(entries, list) and index < len(entries) else None
        drill_id = entry.get("id") if isinstance(entry, dict) else None
        where += f": drill {drill_id!r}" if isinstance(drill_id, str) else f": drill[{index}]"
        return f"{where}: {field}: {message}" if field else f"{where}: {message}"
    return f"{where}: {_dotted(loc)}: {message}"


def load_catalogue_file(path: str | os.PathLike[str]) -> list[Drill]:
    """Read and validate one catalogue file.

    Parameters
    ----------
    path
        A TOML file of ``[[drill]]`` tables.

    Returns
    -------
    list of Drill
        The drills in file order. Links to other drills are not checked here, because they may
        point into another file; :func:`load_catalogue` checks them.

    Raises
    ------
    CatalogueError
        If the file cannot be read, is not valid TOML, or breaks the schema. The one-line message
        names the file, the drill and the field, e.g. ``push.toml: drill 'pogo-hops':
        dose.beginner.sets: Input should be greater than or equal to 1``.
    """
    path = Path(path)
    try:
        with path.open("rb") as handle:
            raw = tomllib.load(handle)
    except OSError as exc:
        raise CatalogueError(f"{_shown(path)}: cannot read: {exc.strerror or exc}") from exc
    except tomllib.TOMLDecodeError as exc:
        raise CatalogueError(f"{_shown(path)}: TOML syntax: {exc}") from exc
    try:
        return _CatalogueFile.model_validate(raw).drill
    except ValidationError as exc:
        errors = exc.errors()
        more = f" (and {len(errors) - 1} more)" if len(errors) > 1 else ""
        raise CatalogueError(_describe(errors[0], raw, path) + more) from exc


#: The entry point under which stridewise registers its own catalogue (``pyproject.toml``).
BUILTIN_ENTRY_POINT: Final = "builtin"


def _registered_paths(*, include_plugins: bool) -> list[Path]:
    """Call the ``stridewise.catalogues`` entry points, the built-in one first.

    The built-in catalogue is found through its entry point like any plugin (one door for
    both); each entry point returns a file or folder path.
    """
    found = sorted(
        entry_points(group=ENTRY_POINT_GROUP), key=lambda ep: ep.name != BUILTIN_ENTRY_POINT
    )
    if not found or found[0].name != BUILTIN_ENTRY_POINT:
        raise CatalogueError(
            f"no {BUILTIN_ENTRY_POINT!r} entry point in {ENTRY_POINT_GROUP!r}: stridewise is not"
            " installed (pip install -e . in a checkout)"
        )
    chosen = found if include_plugins else found[:1]
    return [_plugin_path(entry_point) for entry_point in chosen]


def _plugin_path(entry_point: EntryPoint) -> Path:
    label = f"entry point {entry_point.name!r} ({entry_point.value})"
    try:
        hook = entry_point.load()
    except (ImportError, AttributeError) as exc:
        # A broken plugin install is the user's to fix, not a stridewise bug: one line.
        raise CatalogueError(f"{label}: cannot be loaded: {exc}") from exc
    result = hook()
    if not isinstance(result, str | os.PathLike):
        raise CatalogueError(f"{label}: returned {type(result).__name__}, not a path")
    return Path(result)


def _catalogue_files(source: Path) -> list[Path]:
    """The TOML files a source stands for: itself, or a folder's ``*.toml`` in name order."""
    if source.is_dir():
        found = sorted(source.glob("*.toml"))
        if not found:
            raise CatalogueError(f"{_shown(source)}: folder holds no .toml catalogue files")
        return found
    if not source.exists():
        raise CatalogueError(f"{_shown(source)}: no such catalogue file or folder")
    return [source]


def _check_links(entries: list[tuple[Path, Drill]]) -> None:
    """Ids are unique across all files, and every progression/regression names a loaded drill."""
    origin: dict[str, Path] = {}
    for path, drill in entries:
        if drill.id in origin:
            raise CatalogueError(
                f"{_shown(path)}: drill {drill.id!r}: id: already defined in "
                f"{_shown(origin[drill.id])}"
            )
        origin[drill.id] = path
    for path, drill in entries:
        for field in ("progression", "regression"):
            target = getattr(drill, field)
            if target and target not in origin:
                raise CatalogueError(
                    f"{_shown(path)}: drill {drill.id!r}: {field}: no drill with id {target!r} "
                    "in the loaded catalogues"
                )


def load_catalogue(
    paths: Iterable[str | os.PathLike[str]] | None = None, *, include_plugins: bool = True
) -> Catalogue:
    """Load the built-in catalogue, the registered plugins and any extra files into one.

    Parameters
    ----------
    paths
        Extra catalogue files or folders (every ``*.toml`` inside), loaded last.
    include_plugins
        Also load every catalogue registered under the ``stridewise.catalogues`` entry-point
        group. Each entry point names a callable returning a path to a TOML file or a folder.

    Returns
    -------
    Catalogue
        Every drill, built-in first, then plugins in entry-point order, then ``paths``.

    Raises
    ------
    CatalogueError
        If any file is unreadable or malformed, an id appears twice, or a progression or
        regression names a drill that none of the loaded files defines.

    Notes
    -----
    Every catalogue, the built-in one included, is discovered through the entry-point group
    (the built-in hook finds its files with :mod:`importlib.resources`, so they load from an
    installed wheel); files are deduplicated by resolved path so they are read once.
    """
    sources = _registered_paths(include_plugins=include_plugins)
    sources += [Path(path) for path in paths or ()]

    files: dict[Path, Path] = {}  # resolved -> as given, first occurrence wins, order kept
    for source in sources:
        for path in _catalogue_files(source):
            files.setdefault(path.resolve(), path)

    entries = [(path, drill) for path in files.values() for drill in load_catalogue_file(path)]
    _check_links(entries)
    return Catalogue(drills=tuple(drill for _, drill in entries))
