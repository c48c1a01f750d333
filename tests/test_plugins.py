"""Plugins come through the same door as the built-ins: the entry-point groups.

A contract runs over every registered connector and renderer (stridewise's own, and the tiny
example plugin of ``tests/example_plugin`` installed the way pip would); the example is then
used end to end through the real command line.
"""

from __future__ import annotations

import csv
import io
import json
import shutil
import sqlite3
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest

from planner.connector import Connector
from planner.errors import AuthError, ConfigError
from planner.plan import IsoWeek
from planner.records import Source
from planner.renderer import PlanDocument, Renderer
from planner.services import registry
from planner.store.database import Store
from planner.store.migrations import MIGRATIONS
from tests.conftest import FIT_DIR, CliResult, InstallPlugin

EXAMPLE = {
    "stridewise.connectors": {"example": "stridewise_example:FolderConnector"},
    "stridewise.renderers": {"csv": "stridewise_example:CsvRenderer"},
}
Run = Callable[..., CliResult]
RUNS = ("garmin-fenix-5-run.fit", "68MK1405.FIT", "Fenix3-Run-1321421020.fit")


@pytest.fixture(params=["built-in only", "with the example plugin"])
def registered(request: pytest.FixtureRequest, install_plugin: InstallPlugin) -> str:
    if request.param != "built-in only":
        install_plugin(EXAMPLE)
    return str(request.param)


# -- the contract every registered plugin keeps --------------------------------------------------


def test_builtins_are_registered_like_plugins(registered: str) -> None:
    assert set(registry.connector_names()) >= {"strava", "garmin"}
    assert set(registry.renderer_names()) >= {"html", "text", "md", "ics", "fit", "json"}
    assert ("example" in registry.connector_names()) == (registered != "built-in only")
    # stridewise's own come first, so a plugin never changes their order.
    assert registry.connector_names()[:2] == ("garmin", "strava")


def test_every_connector_keeps_the_contract(registered: str) -> None:
    for connector in registry.all_connectors():
        assert isinstance(connector, Connector), connector
        assert connector.name in registry.connector_names()
        assert isinstance(connector.label, str)
        assert connector.label
        assert isinstance(connector.source, Source)
        assert isinstance(connector.trainable, bool)
        assert isinstance(connector.per_athlete, bool)
        assert isinstance(connector.ref_key, str)
        assert connector.ref_key
        # Strava's terms forbid training on its data; its connector must say so.
        if connector.source is Source.STRAVA:
            assert connector.trainable is False
        # Nothing connected in a fresh home: opening says how to connect, one line.
        with pytest.raises(AuthError) as raised:
            connector.open("me")
        assert "\n" not in str(raised.value)
        assert "connect" in str(raised.value) or "login" in str(raised.value)
        # Disconnecting what is not connected is harmless and says so.
        assert connector.disconnect("me").was_connected is False


def test_every_renderer_keeps_the_contract(registered: str, roster_template: Path) -> None:
    from planner.services.weekly import build_week

    with Store(roster_template) as store:
        athlete = store.get_athlete("ana")
        plan, analysis = build_week(store, "ana", IsoWeek(2026, 49), persist=False)
    for renderer in registry.all_renderers():
        assert isinstance(renderer, Renderer), renderer
        for standalone in (True, False):
            files = renderer.render(PlanDocument(plan, analysis, athlete, standalone=standalone))
            assert files, renderer.name
            names = [f.name for f in files]
            assert len(set(names)) == len(names)
            assert all(f.data and "/" not in f.name for f in files)
            if standalone and not renderer.needs_folder:
                main = files[0].data
                text = main.decode("utf-8") if isinstance(main, bytes) else main
                # The document is the plan: it names the drills (escaping aside).
                drills = [d.name for day in plan.days for s in day.sessions for d in s.drills]
                assert drills
                assert any(name in text for name in drills), renderer.name


def test_a_registered_name_must_match_its_object(install_plugin: InstallPlugin) -> None:
    install_plugin({"stridewise.renderers": {"spreadsheet": "stridewise_example:CsvRenderer"}})
    with pytest.raises(ConfigError, match="calls itself 'csv'; the names must match"):
        registry.load_renderer("spreadsheet")


def test_a_broken_plugin_is_one_clear_line(install_plugin: InstallPlugin, run_cli: Run) -> None:
    install_plugin({"stridewise.connectors": {"broken": "sw_not_installed:Connector"}})
    result = run_cli("sync", "broken")
    assert result.code == 1
    assert result.err.strip().count("\n") == 0, result.err
    assert "plugin 'broken'" in result.err
    assert "cannot be loaded" in result.err
    assert "Traceback" not in result.err


def test_an_object_missing_part_of_the_protocol_is_refused(install_plugin: InstallPlugin) -> None:
    install_plugin({"stridewise.connectors": {"csv": "stridewise_example:CsvRenderer"}})
    with pytest.raises(ConfigError, match="lacks label, source, trainable"):
        registry.load_connector("csv")


def test_unknown_names_are_usage_errors(run_cli: Run) -> None:
    result = run_cli("sync", "dropbox")
    assert result.code == 2
    assert "'dropbox' is not one of 'garmin', 'strava'" in result.err


# -- the example plugin, end to end ---------------------------------------------------------------


@pytest.fixture
def watch_folder(tmp_path: Path, install_plugin: InstallPlugin) -> Iterator[Path]:
    install_plugin(EXAMPLE)
    folder = tmp_path / "watch"
    folder.mkdir()
    for name in RUNS[:2]:
        shutil.copy(FIT_DIR / name, folder / name)
    return folder


def test_the_example_connector_syncs_through_the_one_sync_service(
    watch_folder: Path, run_cli: Run, home: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    assert "example" in run_cli("sync", "--help").out
    not_yet = run_cli("sync", "example")
    assert not_yet.code == 1
    assert "run 'stridewise connect example'" in not_yet.err
    monkeypatch.setattr("sys.stdin", io.StringIO(f"{watch_folder}\n"))
    connected = run_cli("connect", "example")
    assert connected.code == 0, connected.err
    assert f"reading FIT files from {watch_folder}" in connected.out

    first = run_cli("sync", "example", "--since", "2010-01-01", "--json")
    assert first.code == 0, first.err
    summary = first.json()
    assert (summary["connector"], summary["listed"], summary["imported"]) == ("example", 2, 2)
    assert summary["folder"] == str(watch_folder)  # the connector's own report, passed on
    # The cursor: a second sync lists only from the newest run on and imports nothing.
    again = run_cli("sync", "example", "--json").json()
    assert (again["listed"], again["imported"], again["duplicates"]) == (1, 0, 1)
    shutil.copy(FIT_DIR / RUNS[2], watch_folder / RUNS[2])  # older than the cursor
    assert run_cli("sync", "example", "--json").json()["imported"] == 0
    assert run_cli("sync", "example", "--since", "2010-01-01", "--json").json()["imported"] == 1

    # trainable = False: analysed for the athlete, never trained on.
    from planner.services.analysis import training_runs

    with Store(home / "stridewise.db") as store:
        stored = store.list_activities("me", running_only=True)
        assert len(stored) == 3
        assert all(s.activity.source is Source.FIT for s in stored)
        assert all(not s.activity.trainable for s in stored)
        assert training_runs(store, "me") == []
    assert run_cli("analyze", "--json").code == 0

    gone = run_cli("disconnect", "example")
    assert (gone.code, gone.out.strip()) == (0, "forgot the example folder")


def test_the_example_format_is_a_plan_format(
    install_plugin: InstallPlugin, run_cli: Run, tmp_path: Path
) -> None:
    install_plugin(EXAMPLE)
    assert run_cli("import", FIT_DIR / RUNS[1]).code == 0
    assert "csv" in run_cli("plan", "--help").out
    printed = run_cli("plan", "--format", "csv", "--week", "2026-W49")
    assert printed.code == 0, printed.err
    rows = list(csv.DictReader(io.StringIO(printed.out)))
    assert rows
    assert all("2026-11-30" <= row["date"] <= "2026-12-06" for row in rows)
    written = run_cli("plan", "--format", "csv", "--week", "2026-W49", "--out", tmp_path / "out")
    assert written.code == 0, written.err
    assert (tmp_path / "out" / "plan-2026-W49.csv").read_text(encoding="utf-8") == printed.out


# -- the cursors of the two former sync services ---------------------------------------------------


def test_old_sync_cursors_are_converted(tmp_path: Path) -> None:
    path = tmp_path / "old.db"
    db = sqlite3.connect(path)
    db.execute("CREATE TABLE _migrations (name TEXT PRIMARY KEY, applied_at TEXT)")
    for name, migrate in MIGRATIONS:
        if name.startswith("m009"):
            break
        with db:
            migrate(db)
            db.execute("INSERT INTO _migrations VALUES (?, 'then')", (name,))
    strava_after = int(datetime(2026, 11, 20, 7, 30, tzinfo=UTC).timestamp())
    with db:
        db.execute("INSERT INTO state VALUES ('strava:ann:after', ?)", (json.dumps(strava_after),))
        db.execute(
            "INSERT INTO state VALUES ('garmin.sync.me', ?)",
            (json.dumps({"date": "2026-11-21", "activity_id": 9}),),
        )
    db.close()

    from planner.services.sync import read_cursor

    with Store(path) as store:
        assert read_cursor(store, "strava", "ann") == datetime(2026, 11, 20, 7, 30, tzinfo=UTC)
        # A local date: a day earlier is safe whatever the time zone.
        assert read_cursor(store, "garmin", "me") == datetime(2026, 11, 20, tzinfo=UTC)
        assert store.get_state("strava:ann:after") is None
        assert store.get_state("garmin.sync.me") is None
