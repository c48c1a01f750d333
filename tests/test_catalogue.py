"""The drill catalogue: the shipped data, its schema, the loader's errors and plugins."""

from __future__ import annotations

import re
import textwrap
from collections import Counter
from pathlib import Path

import pytest
from pydantic import ValidationError

from drills import builtin_catalogue_path
from drills.catalogue import (
    AREAS,
    PRACTITIONER,
    Area,
    Catalogue,
    Kind,
    Level,
    Load,
    garmin_exercise_names,
    load_catalogue,
    load_catalogue_file,
)
from planner.errors import CatalogueError, NotFoundError
from tests.conftest import InstallPlugin

# First authors of the references in docs (domain.md section 5); nothing else may be cited.
KNOWN_AUTHORS = {
    "Alfredson",
    "Blagrove",
    "Ferber",
    "Heiderscheit",
    "Madsen",
    "Ramskov",
    "Saunders",
    "Spurrs",
    "Støren",
    "Turner",
}
TECHNIQUE_KINDS = {Kind.TECHNIQUE, Kind.RUN_WORKOUT}
LOADED_KINDS = {Kind.STRENGTH, Kind.PLYOMETRIC}

# A valid third-party drill; its regression points into the built-in catalogue.
VALID = textwrap.dedent(
    """\
    [[drill]]
    id = "test-drill"
    name = "Test drill"
    primary_areas = ["push"]
    secondary_areas = []
    kind = "plyometric"
    load = "high"
    equipment = ["none"]
    unilateral = false
    dose.beginner = { sets = 2, reps = 10, rest_s = 60, minutes = 2 }
    dose.intermediate = { sets = 3, reps = 15, rest_s = 60, minutes = 3 }
    dose.advanced = { sets = 4, reps = 20, rest_s = 60, minutes = 5 }
    progression = ""
    regression = "pogo-hops"
    cues = ["Stiff ankles", "Quick contacts"]
    faults = ["Sinking into the heels"]
    contraindications = ["achilles"]
    source = "Saunders et al. 2006, JSCR 20:947"
    why = "Trains ankle stiffness."
    """
)


@pytest.fixture(scope="module")
def catalogue() -> Catalogue:
    return load_catalogue()


def write(folder: Path, name: str, text: str) -> Path:
    path = folder / name
    path.write_text(text, encoding="utf-8")
    return path


# --- the shipped data -----------------------------------------------------------------------


def test_builtin_catalogue_has_at_least_48_entries(catalogue: Catalogue) -> None:
    assert len(catalogue) >= 48
    assert len(list(catalogue)) == len(catalogue)


def test_builtin_files_are_split_by_theme() -> None:
    names = {path.name for path in builtin_catalogue_path().glob("*.toml")}
    assert {"push.toml", "swing.toml", "posture_hip.toml", "strength_balance.toml"} <= names


@pytest.mark.parametrize("area", AREAS)
def test_each_area_has_ten_primary_entries(catalogue: Catalogue, area: Area) -> None:
    assert len(catalogue.for_area(area)) >= 10


@pytest.mark.parametrize("area", AREAS)
def test_each_area_can_fill_eight_weeks_without_repeats(catalogue: Catalogue, area: Area) -> None:
    kinds = Counter(drill.kind for drill in catalogue.for_area(area))
    assert sum(kinds[kind] for kind in TECHNIQUE_KINDS) >= 3
    assert sum(kinds[kind] for kind in LOADED_KINDS) >= 3


@pytest.mark.parametrize("kind", [Kind.WARMUP, Kind.MOBILITY])
def test_general_area_has_warmup_and_mobility(catalogue: Catalogue, kind: Kind) -> None:
    assert sum(drill.kind == kind for drill in catalogue.for_area(Area.GENERAL)) >= 3


def test_strength_balance_is_mostly_unilateral(catalogue: Catalogue) -> None:
    drills = catalogue.for_area(Area.STRENGTH_BALANCE)
    assert sum(drill.unilateral for drill in drills) > len(drills) * 2 / 3


def test_plyometric_and_technique_loads_match_the_block_order(catalogue: Catalogue) -> None:
    # Plyometrics are high load (late in a block); technique never is (early in a block).
    for drill in catalogue:
        if drill.kind == Kind.PLYOMETRIC:
            assert drill.load == Load.HIGH, drill.id
        if drill.kind in {Kind.TECHNIQUE, Kind.MOBILITY, Kind.WARMUP}:
            assert drill.load != Load.HIGH, drill.id


def test_every_source_is_practitioner_or_author_and_year(catalogue: Catalogue) -> None:
    for drill in catalogue:
        if drill.source == PRACTITIONER:
            continue
        match = re.match(r"^(\w+)( et al\.)? ((?:19|20)\d\d)\b", drill.source)
        assert match, f"{drill.id}: {drill.source!r}"
        assert match.group(1) in KNOWN_AUTHORS, f"{drill.id}: {drill.source!r}"


def test_published_doses_are_cited_where_domain_gives_them(catalogue: Catalogue) -> None:
    assert catalogue.by_id("heavy-half-squat").source.startswith("Støren et al. 2008")
    assert catalogue.by_id("cadence-run-metronome").source.startswith("Heiderscheit et al. 2011")
    assert catalogue.by_id("soleus-raise-bent-knee").source.startswith("Alfredson")
    advanced = catalogue.by_id("heavy-half-squat").dose.for_level(Level.ADVANCED)
    assert (advanced.sets, advanced.measure) == (4, ("reps", 4))


def test_progressions_and_regressions_resolve_and_do_not_loop(catalogue: Catalogue) -> None:
    for drill in catalogue:
        if drill.progression:
            assert catalogue.by_id(drill.progression).progression != drill.id, drill.id
        if drill.regression:
            assert catalogue.by_id(drill.regression).regression != drill.id, drill.id


def test_every_dose_fits_its_minutes(catalogue: Catalogue) -> None:
    for drill in catalogue:
        for level in Level:
            dose = drill.dose.for_level(level)
            assert (dose.sets - 1) * dose.rest_s <= dose.minutes * 60, (drill.id, level)


def test_garmin_exercises_are_read_from_garminconnect_itself() -> None:
    from garminconnect.exercises import EXERCISES

    assert garmin_exercise_names() == {(e["category"], e["exercise"]) for e in EXERCISES}
    assert len(garmin_exercise_names()) == 1527  # the size the issue quotes for 0.3.20


# Drills with a real Garmin exercise (the watch shows its name and animation). Reviewed by
# hand against garminconnect.exercises; a drill not listed is a lunge, a plyo or the like
# without Garmin's exact movement (category only), or has no Garmin equivalent at all.
GARMIN_EQUIVALENTS = {
    "calf-raise-straight-knee": ("CALF_RAISE", "STANDING_CALF_RAISE"),
    "single-leg-calf-raise": ("CALF_RAISE", "SINGLE_LEG_STANDING_CALF_RAISE"),
    "weighted-seated-soleus-raise": ("CALF_RAISE", "WEIGHTED_SEATED_CALF_RAISE"),
    "goblet-squat": ("SQUAT", "GOBLET_SQUAT"),
    "heavy-half-squat": ("SQUAT", "BARBELL_BACK_SQUAT"),
    "trap-bar-deadlift": ("DEADLIFT", "TRAP_BAR_DEADLIFT"),
    "step-ups": ("SQUAT", "STEP_UP"),
    "glute-bridge": ("HIP_RAISE", "HIP_RAISE"),
    "single-leg-bridge": ("HIP_RAISE", "SINGLE_LEG_HIP_RAISE"),
    "hip-thrust": ("HIP_RAISE", "BARBELL_HIP_THRUST_WITH_BENCH"),
    "side-plank": ("PLANK", "SIDE_PLANK"),
    "dead-bug": ("HIP_STABILITY", "DEAD_BUG"),
    "clamshell": ("BANDED_EXERCISES", "CLAM_SHELLS"),
    "banded-lateral-walk": ("BANDED_EXERCISES", "LATERAL_BAND_WALKS"),
    "walking-lunge": ("LUNGE", "WALKING_LUNGE"),
    "single-leg-rdl": ("DEADLIFT", "SINGLE_LEG_ROMANIAN_DEADLIFT_WITH_DUMBBELL"),
    "slider-hamstring-curl": ("LEG_CURL", "SLIDING_LEG_CURL"),
    "leg-swings-front-back": ("WARM_UP", "FORWARD_AND_BACKWARD_LEG_SWINGS"),
}


def test_drills_with_a_garmin_equivalent_name_it(catalogue: Catalogue) -> None:
    for drill_id, (category, exercise) in GARMIN_EQUIVALENTS.items():
        garmin = catalogue.by_id(drill_id).garmin
        assert garmin is not None, drill_id
        assert (garmin.category, garmin.exercise) == (category, exercise), drill_id
    named = [d for d in catalogue if d.garmin is not None and d.garmin.exercise]
    assert len(named) >= 30
    # Run workouts go to the watch as running workouts, never as strength exercises.
    assert all(d.garmin is None for d in catalogue if d.kind == Kind.RUN_WORKOUT)
    # Every strength exercise at least names its Garmin category.
    loaded = [d for d in catalogue if d.kind in LOADED_KINDS and d.garmin is None]
    assert [d.id for d in loaded] == [
        "hip-airplane",
        "banded-hip-flexor-march",
        "standing-band-knee-drive",
    ]


def test_catalogue_lookups(catalogue: Catalogue) -> None:
    drill = catalogue.by_id("single-leg-calf-raise")
    assert "single-leg-calf-raise" in catalogue
    assert drill in catalogue.for_area("strength_balance")
    assert drill in catalogue.for_area(Area.PUSH)
    primary = set(catalogue.for_area(Area.SWING))
    assert primary < set(catalogue.for_area(Area.SWING, include_secondary=True))
    with pytest.raises(NotFoundError, match="no-such-drill"):
        catalogue.by_id("no-such-drill")


def test_load_rank_orders_loads() -> None:
    assert Load.LOW.rank < Load.MODERATE.rank < Load.HIGH.rank


def test_drills_are_frozen(catalogue: Catalogue) -> None:
    with pytest.raises(ValidationError):
        catalogue.by_id("a-skip").load = Load.HIGH


def test_catalogue_built_by_hand_rejects_repeated_ids(catalogue: Catalogue) -> None:
    drill = catalogue.by_id("a-skip")
    with pytest.raises(ValidationError, match="duplicate drill id 'a-skip'"):
        Catalogue(drills=(drill, drill))


# --- loading extra catalogues ---------------------------------------------------------------


def test_extra_path_adds_its_drills(tmp_path: Path, catalogue: Catalogue) -> None:
    path = write(tmp_path, "extra.toml", VALID)
    assert [drill.id for drill in load_catalogue_file(path)] == ["test-drill"]
    extended = load_catalogue([path])
    assert len(extended) == len(catalogue) + 1
    assert extended.by_id("test-drill").regression == "pogo-hops"


def test_extra_folder_adds_every_toml_file(tmp_path: Path, catalogue: Catalogue) -> None:
    write(tmp_path, "a.toml", VALID)
    write(tmp_path, "b.toml", VALID.replace('"test-drill"', '"test-drill-2"'))
    write(tmp_path, "notes.txt", "not a catalogue")
    assert len(load_catalogue([tmp_path])) == len(catalogue) + 2


def test_builtin_files_are_loaded_once_however_named(catalogue: Catalogue) -> None:
    folder = builtin_catalogue_path()
    roundabout = folder / ".." / "catalogue" / "push.toml"
    again = load_catalogue([folder, roundabout])
    assert [drill.id for drill in again] == [drill.id for drill in catalogue]


def test_plugins_can_be_left_out(catalogue: Catalogue) -> None:
    # The project registers the built-in folder as an entry point too: no difference, no clash.
    assert len(load_catalogue(include_plugins=False)) == len(catalogue)


def test_entry_point_plugin_adds_its_catalogue(
    tmp_path: Path, install_plugin: InstallPlugin, catalogue: Catalogue
) -> None:
    data = write(tmp_path, "plugin.toml", VALID)
    site = install_plugin({"stridewise.catalogues": {"test": "sw_test_plugin:path"}})
    write(site, "sw_test_plugin.py", f"def path():\n    return {str(data)!r}\n")
    assert "test-drill" in load_catalogue()
    assert "test-drill" not in load_catalogue(include_plugins=False)


def test_broken_entry_point_is_a_catalogue_error(install_plugin: InstallPlugin) -> None:
    install_plugin({"stridewise.catalogues": {"test": "sw_missing_module:path"}})
    with pytest.raises(CatalogueError, match=r"entry point 'test'.*cannot be loaded"):
        load_catalogue()


def test_missing_path_is_a_catalogue_error(tmp_path: Path) -> None:
    with pytest.raises(CatalogueError, match=r"nowhere\.toml: no such catalogue"):
        load_catalogue([tmp_path / "nowhere.toml"])


# --- broken catalogues ----------------------------------------------------------------------


BROKEN = {
    "syntax": (VALID.replace('name = "Test drill"', 'name = "Test drill'), "TOML syntax"),
    "unknown-key": (VALID + 'colour = "red"\n', "colour: Extra inputs are not permitted"),
    "missing-field": (
        VALID.replace('why = "Trains ankle stiffness."\n', ""),
        "why: Field required",
    ),
    "zero-sets": (
        VALID.replace("sets = 2,", "sets = 0,"),
        "dose.beginner.sets: Input should be greater than or equal to 1",
    ),
    "unknown-area": (VALID.replace('["push"]', '["speed"]'), "primary_areas[0]: Input should be"),
    "two-measures": (
        VALID.replace("reps = 15,", "reps = 15, duration_s = 30,"),
        "dose.intermediate.reps|duration_s|distance_m: give exactly one",
    ),
    "bool-for-int": (VALID.replace("unilateral = false", "unilateral = 1"), "unilateral"),
    "uncited-source": (VALID.replace("Saunders et al. 2006", "some blog"), "source: give"),
    "duplicate-id": (VALID.replace('"test-drill"', '"a-skip"'), "id: already defined in"),
    "garmin-exercise-typo": (
        VALID + 'garmin = { category = "CALF_RAISE", exercise = "STANDING_CALF_RAISES" }\n',
        "garmin.exercise: STANDING_CALF_RAISES is not a Garmin CALF_RAISE exercise"
        " (did you mean STANDING_CALF_RAISE?)",
    ),
    "garmin-category-typo": (
        VALID + 'garmin = { category = "CALF_RAISES", exercise = "STANDING_CALF_RAISE" }\n',
        "garmin.category: CALF_RAISES is not a Garmin category (did you mean CALF_RAISE?)",
    ),
    "garmin-unknown-key": (
        VALID + 'garmin = { category = "PLYO", name = "Pogo" }\n',
        "garmin.name: Extra inputs are not permitted",
    ),
    "dangling-progression": (
        VALID.replace('progression = ""', 'progression = "no-such-drill"'),
        "progression: no drill with id 'no-such-drill'",
    ),
}


@pytest.mark.parametrize(("case", "text", "expected"), [(k, *v) for k, v in BROKEN.items()])
def test_broken_catalogue_names_file_and_field(
    tmp_path: Path, case: str, text: str, expected: str
) -> None:
    path = write(tmp_path, f"broken-{case}.toml", text)
    with pytest.raises(CatalogueError) as caught:
        load_catalogue([path])
    message = str(caught.value)
    assert f"broken-{case}.toml" in message
    assert expected in message
    assert "\n" not in message


def test_error_message_has_the_documented_shape(tmp_path: Path) -> None:
    path = write(tmp_path, "push.toml", VALID.replace("sets = 2,", "sets = 0,"))
    with pytest.raises(CatalogueError) as caught:
        load_catalogue_file(path)
    assert str(caught.value) == (
        f"{path}: drill 'test-drill': dose.beginner.sets: "
        "Input should be greater than or equal to 1"
    )


def test_syntax_error_gives_the_line(tmp_path: Path) -> None:
    path = write(tmp_path, "bad.toml", BROKEN["syntax"][0])
    with pytest.raises(CatalogueError, match=r"bad\.toml: TOML syntax: .*line 3"):
        load_catalogue_file(path)


def test_duplicate_id_inside_one_file_is_an_error(tmp_path: Path) -> None:
    path = write(tmp_path, "twice.toml", VALID + "\n" + VALID)
    with pytest.raises(CatalogueError, match=r"twice\.toml: drill 'test-drill': id: already"):
        load_catalogue([path])


def test_empty_file_is_an_error(tmp_path: Path) -> None:
    path = write(tmp_path, "empty.toml", "# nothing yet\n")
    with pytest.raises(CatalogueError, match=r"empty\.toml: drill: Field required"):
        load_catalogue_file(path)
