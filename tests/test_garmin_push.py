"""Plans on the Garmin Connect calendar: the real garminconnect client against the loopback fake.

First push, re-push (nothing changes), a revised plan (update in place, move, remove), an
interrupted push (the fake drops the connection before or after doing the request), 429 and
401, dry runs (the database is compared dump for dump), ``send-weekly --garmin`` and the
roster option. Every workout body is checked by the fake against garminconnect's own models.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from connectors.garmin import token_file
from connectors.garmin_workouts import plan_workouts, session_workout
from planner.plan import IsoWeek
from planner.services.roster import AthleteChanges, add_athlete, edit_athlete
from planner.store.database import Store
from planner.store.garmin_workouts import pushed_week
from tests.conftest import CliResult
from tests.garmin_server import (
    SCHEDULE_PATH,
    SSO_PREFIXES,
    TOKEN_PATH,
    WORKOUT_PATH,
    GarminServer,
    check_workout,
    point_at,
    store_tokens,
)
from tests.test_render import _plan

Run = Callable[..., CliResult]
WEEK = "2026-W49"
WRITES = ("POST", "PUT", "DELETE")


@pytest.fixture
def server(monkeypatch: pytest.MonkeyPatch) -> Iterator[GarminServer]:
    """A loopback Garmin Connect, logged in from stored tokens."""
    with GarminServer() as srv:
        point_at(srv, monkeypatch)
        store_tokens(srv)
        yield srv


@pytest.fixture
def db(home: Path) -> Path:
    """A database with athlete 'ana' (three sessions a week on Mon, Wed, Fri)."""
    path = home / "stridewise.db"
    with Store(path) as store:
        add_athlete(
            store,
            "ana",
            AthleteChanges(name="Ana", email="ana@example.org", days="mon,wed,fri", sessions=3),
        )
    return path


def _push(run_cli: Run, *extra: str) -> CliResult:
    return run_cli("garmin", "push-plan", "--athlete", "ana", "--week", WEEK, "--json", *extra)


def _writes(server: GarminServer) -> list[tuple[str, str]]:
    with server._lock:
        return [(r.method, r.path) for r in server.requests if r.method in WRITES]


def _dump(path: Path) -> list[str]:
    import sqlite3

    connection = sqlite3.connect(path)
    try:
        return list(connection.iterdump())
    finally:
        connection.close()


def _rows(path: Path) -> dict[str, Any]:
    with Store(path) as store:
        return pushed_week(store, "ana", WEEK)


def _library_by_name(server: GarminServer) -> dict[str, int]:
    names = [w["workoutName"] for w in server.workouts.values()]
    return {name: names.count(name) for name in names}


# -- the workout bodies (pure) ---------------------------------------------------------------


def test_every_session_is_a_workout_garminconnect_accepts() -> None:
    plan, _ = _plan()
    workouts = plan_workouts(plan)
    assert [w.session_id for w in workouts] == [s.id for s in plan.sessions]
    for workout in workouts:
        assert check_workout(workout.body) is None, workout.session_id
        assert workout.body["description"].endswith(
            f"stridewise ann {plan.week} {workout.session_id}"
        )
    kinds = {w.kind: w for w in workouts}
    assert set(kinds) == {"strength", "running"}
    assert kinds["strength"].body["sportType"]["sportTypeKey"] == "strength_training"
    assert kinds["running"].body["sportType"]["sportTypeKey"] == "running"


def _steps(body: dict[str, Any]) -> list[dict[str, Any]]:
    out = []
    for step in body["workoutSegments"][0]["workoutSteps"]:
        out.append(step)
        out.extend(step.get("workoutSteps", []))
    return out


def test_strength_steps_carry_sets_rest_exercise_and_the_weaker_side() -> None:
    plan, _ = _plan()
    session = next(s for s in plan.sessions if s.kind == "drills")
    drill = next(d for d in session.drills if d.id == "single-leg-calf-raise")
    steps = _steps(session_workout(plan, session).body)
    calf = [s for s in steps if s.get("exerciseName") == "SINGLE_LEG_STANDING_CALF_RAISE"]
    # The sets (inside a repeat with the rest) and the extra set on the weaker side.
    assert len(calf) == 2
    assert all(s["category"] == "CALF_RAISE" for s in calf)
    assert all(s["endCondition"]["conditionTypeKey"] == "reps" for s in calf)
    assert calf[0]["endConditionValue"] == drill.dose.reps
    assert calf[1]["description"].startswith("Extra set, left side only")
    group = next(s for s in steps if calf[0] in s.get("workoutSteps", []))
    assert group["numberOfIterations"] == drill.dose.sets
    rest = group["workoutSteps"][1]
    assert (rest["stepType"]["stepTypeKey"], rest["endConditionValue"]) == (
        "rest",
        drill.dose.rest_s,
    )
    # A drill Garmin has no exercise for is a named custom step.
    custom = [s for s in steps if s.get("description", "").startswith("High knees: ")]
    assert custom
    assert all("category" not in s for s in custom)
    assert custom[0]["endCondition"]["conditionTypeKey"] == "lap.button"


def test_run_session_is_warm_up_repeats_cool_down() -> None:
    plan, _ = _plan()
    session = next(s for s in plan.sessions if s.kind == "run")
    steps = session_workout(plan, session).body["workoutSegments"][0]["workoutSteps"]
    keys = [s["stepType"]["stepTypeKey"] for s in steps]
    assert keys == ["warmup", "repeat", "cooldown"]
    drill = session.drills[0]
    inner = steps[1]["workoutSteps"]
    assert steps[1]["numberOfIterations"] == drill.dose.sets
    assert inner[0]["endCondition"]["conditionTypeKey"] == "time"
    assert inner[0]["endConditionValue"] == drill.dose.duration_s
    assert inner[1]["stepType"]["stepTypeKey"] == "recovery"


def test_the_fake_rejects_what_garminconnect_would_not_send() -> None:
    plan, _ = _plan()
    body = plan_workouts(plan)[0].body
    assert check_workout({**body, "sportType": {"sportTypeId": 99}}) is not None
    broken = json.loads(
        json.dumps(body).replace('"FORWARD_AND_BACKWARD_LEG_SWINGS"', '"LEG_SWINGZ"')
    )
    assert "no such Garmin exercise" in (check_workout(broken) or "")
    del broken["workoutName"]
    assert "rejects" in (check_workout(broken) or "")


# -- first push, re-push, revised plan --------------------------------------------------------


def test_first_push_then_the_same_again_changes_nothing(
    server: GarminServer, db: Path, run_cli: Run
) -> None:
    first = _push(run_cli)
    assert first.code == 0, first.err
    doc = first.json()
    assert doc["complete"]
    assert doc["revision"] == 1
    assert [s["action"] for s in doc["sessions"]] == ["created"] * 3
    assert server.calendar() == [(s["date"], s["name"]) for s in doc["sessions"]]
    assert [d for d, _ in server.calendar()] == ["2026-11-30", "2026-12-02", "2026-12-04"]
    assert server.invalid == []
    rows = _rows(db)
    assert {r.state for r in rows.values()} == {"scheduled"}
    assert {r.workout_id for r in rows.values()} == set(server.workouts)

    before, writes = _dump(db), len(_writes(server))
    again = _push(run_cli)
    assert again.code == 0, again.err
    assert [s["action"] for s in again.json()["sessions"]] == ["unchanged"] * 3
    assert len(_writes(server)) == writes  # not one request that changes anything
    assert _dump(db) == before


def test_revised_plan_updates_moves_and_removes_only_our_workouts(
    server: GarminServer, db: Path, run_cli: Run
) -> None:
    # The athlete's own workout on the calendar, made in Garmin Connect: never to be touched.
    theirs = server.add_workout({"workoutName": "My long run", "description": "mine"})
    their_entry = server.add_schedule(theirs, "2026-12-02")
    assert _push(run_cli).code == 0
    first = _rows(db)

    with Store(db) as store:  # fewer sessions, on other days, at a higher level: a revision
        edit_athlete(store, "ana", AthleteChanges(days="tue,fri", sessions=2, level="advanced"))
    revised = _push(run_cli)
    assert revised.code == 0, revised.err
    doc = revised.json()
    assert doc["revision"] == 2
    actions = {s["session"]: s["action"] for s in doc["sessions"]}
    assert actions["s3"] == "removed"
    assert set(actions.values()) <= {"updated", "moved", "removed"}
    rows = _rows(db)
    assert set(rows) == {"s1", "s2"}
    for session_id, row in rows.items():
        # Updated in place: the same Garmin workout, now on the new day.
        assert row.workout_id == first[session_id].workout_id
        assert row.plan_revision == 2
        assert row.state == "scheduled"
    assert first["s3"].workout_id not in server.workouts
    ours = [(d, n) for d, n in server.calendar() if n != "My long run"]
    assert [d for d, _ in ours] == ["2026-12-01", "2026-12-04"]
    assert server.requests
    assert server.invalid == []
    # The athlete's own workout and calendar entry: untouched, never even addressed.
    assert server.workouts[theirs]["workoutName"] == "My long run"
    assert server.schedules[their_entry] == {"workoutId": theirs, "date": "2026-12-02"}
    touched = {path for _, path in _writes(server)}
    assert f"{WORKOUT_PATH}/{theirs}" not in touched
    assert f"{SCHEDULE_PATH}{their_entry}" not in touched

    before = _dump(db)
    assert [s["action"] for s in _push(run_cli).json()["sessions"]] == ["unchanged"] * 2
    assert _dump(db) == before


def test_a_workout_deleted_in_garmin_connect_comes_back_when_the_plan_changes(
    server: GarminServer, db: Path, run_cli: Run
) -> None:
    assert _push(run_cli).code == 0
    gone = _rows(db)["s1"].workout_id
    del server.workouts[gone]
    with Store(db) as store:
        edit_athlete(store, "ana", AthleteChanges(level="advanced"))
    result = _push(run_cli)
    assert result.code == 0, result.err
    assert _rows(db)["s1"].workout_id != gone
    assert len(server.calendar()) == 3
    assert server.invalid == []


# -- interrupted pushes, 429, 401 -------------------------------------------------------------


@pytest.mark.parametrize(
    ("prefix", "action"),
    [
        (WORKOUT_PATH, "drop"),  # the upload never reached Garmin
        (WORKOUT_PATH, "drop_after"),  # Garmin made the workout, the answer was lost
        (SCHEDULE_PATH, "drop_after"),  # Garmin made the calendar entry, the answer was lost
        (SCHEDULE_PATH, 503),
    ],
)
def test_an_interrupted_push_resumes_without_duplicates(
    server: GarminServer, db: Path, run_cli: Run, prefix: str, action: str | int
) -> None:
    # The first session goes through; the second one's request breaks.
    server.fail(prefix, action, method="POST", after=1)
    stopped = _push(run_cli)
    assert stopped.code == 3, (stopped.out, stopped.err)
    assert "run the same command to continue" in stopped.err
    assert not stopped.json()["complete"]
    states = sorted(r.state for r in _rows(db).values())
    assert states[-1] in ("uploading", "scheduling", "uploaded")

    resumed = _push(run_cli)
    assert resumed.code == 0, resumed.err
    assert resumed.json()["complete"]
    # Exactly one workout per session in the library and on the calendar.
    assert sorted(_library_by_name(server).values()) == [1, 1, 1]
    assert len(server.calendar()) == 3
    assert {r.state for r in _rows(db).values()} == {"scheduled"}
    assert server.invalid == []
    assert _push(run_cli).json()["requests"] == dict.fromkeys(
        ("uploaded", "updated", "scheduled", "unscheduled", "deleted"), 0
    )


def test_429_stops_with_one_message_and_no_login(
    server: GarminServer, db: Path, run_cli: Run
) -> None:
    server.fail(WORKOUT_PATH, 429, times=5, method="POST")
    blocked = _push(run_cli)
    assert blocked.code == 1
    errors = blocked.err.strip().splitlines()
    assert len(errors) == 1
    assert "HTTP 429" in errors[0]
    assert "Wait about an hour" in errors[0]
    assert server.count(WORKOUT_PATH, "POST") == 1  # not retried
    assert server.count(TOKEN_PATH, "POST") == 0
    assert sum(server.count(p) for p in SSO_PREFIXES) == 0  # no login, let alone a loop
    server.faults.clear()
    later = _push(run_cli)
    assert later.code == 0, later.err
    assert len(server.calendar()) == 3
    assert len(server.workouts) == 3


def test_refused_login_asks_to_log_in_again(server: GarminServer, db: Path, run_cli: Run) -> None:
    server.token = "a-token-garmin-no-longer-takes"
    refused = _push(run_cli)
    assert refused.code == 1
    assert "stridewise garmin login" in refused.err
    assert sum(server.count(p) for p in SSO_PREFIXES) == 0
    assert server.workouts == {}


def test_not_logged_in_is_one_line(db: Path, run_cli: Run, server: GarminServer) -> None:
    token_file().unlink()
    result = _push(run_cli)
    assert result.code == 1
    assert "run 'stridewise garmin login' first" in result.err
    assert server.requests == []


# -- dry runs ---------------------------------------------------------------------------------


def test_dry_run_prints_the_json_and_leaves_the_database_alone(
    server: GarminServer, db: Path, run_cli: Run
) -> None:
    before = _dump(db)
    dry = run_cli("garmin", "push-plan", "--athlete", "ana", "--week", WEEK, "--dry-run")
    assert dry.code == 0, dry.err
    assert _dump(db) == before
    assert server.requests == []  # not even a login check
    doc = dry.json()
    assert doc["dry_run"]
    assert [s["action"] for s in doc["sessions"]] == ["created"] * 3
    uploads = [r for r in doc["would_send"] if r["call"] == "upload_workout"]
    assert len(uploads) == 3
    assert all(check_workout(r["json"]) is None for r in uploads)
    schedules = [r["date"] for r in doc["would_send"] if r["call"] == "schedule_workout"]
    assert schedules == ["2026-11-30", "2026-12-02", "2026-12-04"]

    assert _push(run_cli).code == 0  # now for real; then a revision, dry
    with Store(db) as store:
        edit_athlete(store, "ana", AthleteChanges(level="advanced"))
    before = _dump(db)
    writes = len(_writes(server))
    dry = run_cli("garmin", "push-plan", "--athlete", "ana", "--week", WEEK, "--dry-run")
    assert dry.code == 0, dry.err
    assert _dump(db) == before
    assert len(_writes(server)) == writes
    calls = {r["call"] for r in dry.json()["would_send"]}
    assert calls == {"update_workout"}
    ids = {r["workout_id"] for r in dry.json()["would_send"]}
    assert ids <= set(server.workouts)


# -- send-weekly --garmin and the roster option -----------------------------------------------


def test_roster_option_opts_in_and_out(db: Path, run_cli: Run) -> None:
    shown = run_cli("athlete", "edit", "ana", "--garmin-calendar", "--json")
    assert shown.code == 0, shown.err
    assert shown.json()["garmin_calendar"] is True
    added = run_cli("athlete", "add", "bo", "--name", "Bo", "--email", "bo@example.org", "--json")
    assert added.json()["garmin_calendar"] is False
    # One Garmin login, one calendar: a second athlete would share it, so it is refused.
    second = run_cli("athlete", "edit", "bo", "--garmin-calendar")
    assert second.code == 1
    assert "ana already uses the Garmin calendar" in second.err
    off = run_cli("athlete", "edit", "ana", "--no-garmin-calendar", "--json")
    assert off.json()["garmin_calendar"] is False
    assert run_cli("athlete", "edit", "bo", "--garmin-calendar").code == 0


def test_send_weekly_garmin_pushes_opted_in_athletes(
    server: GarminServer, db: Path, run_cli: Run, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("STRIDEWISE_SMTP_FROM", "coach@example.org")
    assert run_cli("athlete", "edit", "ana", "--garmin-calendar").code == 0
    added = run_cli("athlete", "add", "bo", "--name", "Bo", "--email", "bo@example.org")
    assert added.code == 0
    dry = run_cli(
        "send-weekly", "--week", WEEK, "--garmin", "--dry-run", "--out", tmp_path, "--json"
    )
    assert dry.code == 0, dry.err
    pushed = dry.json()["garmin"]["pushed"]
    assert [p["athlete"] for p in pushed] == ["ana"]
    assert pushed[0]["dry_run"]
    assert server.workouts == {}
    assert len(dry.json()["results"]) == 2  # the e-mails, as without --garmin

    with Store(db) as store:
        from planner.services.garmin_push import push_weekly

        done = push_weekly(store, week=IsoWeek.parse(WEEK))
        assert [p.athlete_id for p in done.pushed] == ["ana"]
        assert not done.has_problems
        again = push_weekly(store, week=IsoWeek.parse(WEEK))
    assert [s.action for s in again.pushed[0].sessions] == ["unchanged"] * 3
    assert len(server.calendar()) == 3


def test_send_weekly_garmin_stops_at_a_refused_login(server: GarminServer, db: Path) -> None:
    server.token = "refused"
    with Store(db) as store:
        edit_athlete(store, "ana", AthleteChanges(garmin_calendar=True))
        from planner.services.garmin_push import push_weekly

        done = push_weekly(store, week=IsoWeek.parse(WEEK))
    assert [a for a, _ in done.failed] == ["ana"]
    assert "garmin login" in done.failed[0][1]
    assert done.has_problems
    assert sum(server.count(p) for p in SSO_PREFIXES) == 0
    assert server.workouts == {}
