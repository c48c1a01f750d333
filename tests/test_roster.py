"""The roster commands: athlete add / list / show / edit / remove, with input validation."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from planner.errors import InvalidValueError
from planner.records import Athlete, Preferences
from planner.services.roster import AthleteChanges, apply_changes
from planner.store.database import Store
from tests.conftest import CliResult

Run = Callable[..., CliResult]


def _add(run_cli: Run, athlete_id: str = "ana", *extra: str) -> CliResult:
    return run_cli(
        "athlete", "add", athlete_id, "--name", "Ana Lúcia", "--email", "ana@example.org", *extra
    )


def test_add_show_list_json(run_cli: Run) -> None:
    added = _add(
        run_cli,
        "ana",
        "--timezone",
        "America/Sao_Paulo",
        "--send-day",
        "Sunday",
        "--send-time",
        "6:30",
        "--days",
        "fri,mon,wed",
        "--sessions",
        "3",
        "--minutes",
        "30",
        "--equipment",
        "band,step",
        "--level",
        "Advanced",
        "--avoid",
        "achilles",
        "--long-run-day",
        "sat",
        "--quality-days",
        "tue,thu",
        "--json",
    )
    assert added.code == 0, added.err
    expected = {
        "id": "ana",
        "athlete_id": "ana",
        "name": "Ana Lúcia",
        "email": "ana@example.org",
        "timezone": "America/Sao_Paulo",
        "send_day": "sun",
        "send_time": "06:30",
        "preferences": {
            "available_days": ["mon", "wed", "fri"],
            "sessions_per_week": 3,
            "minutes_per_session": 30,
            "equipment": ["band", "step"],
            "level": "advanced",
            "avoid": ["achilles"],
            "long_run_day": "sat",
            "quality_days": ["tue", "thu"],
        },
        "sources": [],
        "garmin_calendar": False,
    }
    assert added.json() == expected
    assert run_cli("athlete", "show", "ana", "--json").json() == expected
    assert run_cli("athlete", "list", "--json").json() == [expected]
    shown = run_cli("athlete", "show", "ana")
    assert "sun 06:30 America/Sao_Paulo" in shown.out
    assert "3 x 30 min" in shown.out
    listed = run_cli("athlete", "list")
    assert "ana@example.org" in listed.out


def test_data_sources_are_kept_shown_and_cleared(run_cli: Run) -> None:
    added = _add(run_cli, "ana", "--sources", "garmin,fit", "--json")
    assert added.code == 0, added.err
    assert added.json()["sources"] == ["garmin", "fit"]
    shown = run_cli("athlete", "show", "ana")
    assert "sources:   garmin,fit" in shown.out
    cleared = run_cli("athlete", "edit", "ana", "--sources", "none", "--json").json()
    assert cleared["sources"] == []
    assert cleared["preferences"] == added.json()["preferences"]  # nothing else changed


def test_defaults_fill_unset_preferences(run_cli: Run) -> None:
    record = _add(run_cli, "bo", "--json").json()
    assert (record["timezone"], record["send_day"], record["send_time"]) == ("UTC", "mon", "07:00")
    assert record["preferences"] == Preferences().to_dict()
    with Store() as store:
        # Only what the coach set is stored, so later default changes reach this athlete.
        assert store.get_athlete("bo").preferences == {}


def test_edit_changes_only_what_is_given(run_cli: Run) -> None:
    _add(run_cli, "ana", "--minutes", "40", "--avoid", "knee,calf")
    edited = run_cli("athlete", "edit", "ana", "--email", "Ana.New@Example.ORG", "--avoid", "none",
                     "--long-run-day", "none", "--json")  # fmt: skip
    assert edited.code == 0, edited.err
    record = edited.json()
    assert record["email"] == "Ana.New@example.org"  # domain case-folded, local part kept
    assert record["name"] == "Ana Lúcia"
    assert record["preferences"]["minutes_per_session"] == 40
    assert record["preferences"]["avoid"] == []
    assert record["preferences"]["long_run_day"] is None


def test_edit_needs_a_change_and_an_existing_athlete(run_cli: Run) -> None:
    _add(run_cli)
    nothing = run_cli("athlete", "edit", "ana")
    assert (nothing.code, nothing.err.strip()) == (
        1,
        "stridewise: error: nothing to change: give at least one option (see --help)",
    )
    missing = run_cli("athlete", "edit", "zed", "--name", "Zed")
    assert missing.code == 1
    assert "no athlete 'zed'" in missing.err


def test_add_twice_is_refused_but_an_imported_athlete_is_completed(run_cli: Run) -> None:
    assert _add(run_cli).code == 0
    again = _add(run_cli)
    assert again.code == 1
    assert "already exists (use 'stridewise athlete edit')" in again.err
    with Store() as store:
        store.ensure_athlete("imported")  # what 'import --athlete imported' does
    completed = _add(run_cli, "imported", "--json")
    assert completed.code == 0, completed.err
    assert completed.json()["email"] == "ana@example.org"


def test_add_requires_name_and_email(run_cli: Run) -> None:
    result = run_cli("athlete", "add", "ana", "--name", "Ana")
    assert result.code == 2  # a usage error
    assert "--email" in result.err


def test_remove(run_cli: Run) -> None:
    _add(run_cli)
    assert run_cli("athlete", "remove", "ana").code == 0
    assert run_cli("athlete", "list", "--json").json() == []
    gone = run_cli("athlete", "remove", "ana")
    assert gone.code == 1
    assert "no athlete 'ana'" in gone.err


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--email", "ana@"], "--email 'ana@'"),
        (["--email", "ana at example.org"], "--email"),
        (["--timezone", "Europe/Pari"], "unknown time zone (did you mean Europe/Paris?)"),
        (["--timezone", "Mars/Olympus"], "--timezone 'Mars/Olympus': unknown time zone"),
        (["--send-day", "someday"], "--send-day 'someday': use one of mon, tue"),
        (["--send-time", "25:00"], "--send-time '25:00': use a 24-hour time"),
        (["--send-time", "7am"], "--send-time '7am'"),
        (["--days", "mon,funday"], "--days 'funday'"),
        (["--sessions", "0"], "--sessions 0: use 1 to 7"),
        (["--minutes", "500"], "--minutes 500"),
        (["--equipment", "band,rocket"], "--equipment 'band,rocket': unknown rocket"),
        (["--level", "elite"], "--level 'elite': use one of beginner, intermediate, advanced"),
        (["--avoid", "heartbreak"], "--avoid 'heartbreak': unknown heartbreak"),
        (["--long-run-day", "never"], "--long-run-day 'never'"),
        (
            ["--sources", "fit,polar"],
            "--sources 'fit,polar': unknown polar (known: fit, garmin, strava, gpx, tcx)",
        ),
    ],
)
def test_bad_option_values_are_usage_errors(run_cli: Run, args: list[str], message: str) -> None:
    """A value no option accepts exits 2, like any usage error, in one line naming the option."""
    result = _add(run_cli, "ana", *args)
    assert result.code == 2
    lines = result.err.strip().splitlines()
    assert len(lines) == 1, result.err
    assert lines[0].startswith("stridewise: error: ")
    assert message in lines[0]
    assert run_cli("athlete", "list", "--json").json() == []  # nothing half-saved


def test_conflicting_settings_are_one_clear_line(run_cli: Run) -> None:
    """Values that are each fine but do not fit together (or with what is stored) exit 1."""
    result = _add(run_cli, "ana", "--days", "mon,tue", "--sessions", "3")
    assert result.code == 1
    [line] = result.err.strip().splitlines()
    assert "3 sessions a week need at least as many available days" in line
    assert "--" not in line  # the library names settings, not command-line flags
    assert run_cli("athlete", "list", "--json").json() == []


def test_library_errors_name_fields_not_flags() -> None:
    with pytest.raises(InvalidValueError) as caught:
        apply_changes(Athlete(id="ana"), AthleteChanges(level="expert"))
    assert caught.value.field == "level"
    assert "--" not in str(caught.value)
    assert str(caught.value) == "level 'expert': use one of beginner, intermediate, advanced"


@pytest.mark.parametrize("athlete_id", ["", "-x", "a b", "ana/../x", "é" * 3, "x" * 65])
def test_bad_ids_are_refused(run_cli: Run, athlete_id: str) -> None:
    result = run_cli("athlete", "add", "--name", "A", "--email", "a@example.org", "--", athlete_id)
    assert result.code == 1
    assert "athlete id" in result.err


def test_unknown_preference_keys_survive_an_edit() -> None:
    athlete = Athlete(id="ana", preferences={"future_key": 1, "level": "beginner"})
    edited = apply_changes(athlete, AthleteChanges(level="advanced"))
    assert edited.preferences == {"future_key": 1, "level": "advanced"}


def test_athlete_list_empty_message(run_cli: Run, home: Path) -> None:
    result = run_cli("athlete", "list")
    assert result.code == 0
    assert "no athletes yet" in result.out
