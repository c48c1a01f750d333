"""Shared test set-up: every test gets its own STRIDEWISE_HOME, and a way to run the CLI."""

from __future__ import annotations

import json
import shutil
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from cli import main

FIXTURES = Path(__file__).parent / "fixtures"
FIT_DIR = FIXTURES / "fit"
BAD_DIR = FIXTURES / "bad"


@pytest.fixture(autouse=True)
def home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Point everything the program stores at a fresh folder for each test."""
    path = tmp_path / "home"
    monkeypatch.setenv("STRIDEWISE_HOME", str(path))
    for name in ("STRIDEWISE_DB", "STRIDEWISE_SMTP_HOST", "STRIDEWISE_SMTP_PASSWORD"):
        monkeypatch.delenv(name, raising=False)
    return path


@dataclass
class CliResult:
    code: int
    out: str
    err: str

    def json(self) -> Any:
        return json.loads(self.out)


@pytest.fixture
def run_cli(capsys: pytest.CaptureFixture[str]) -> Callable[..., CliResult]:
    """Run ``stridewise ARGS`` in-process through the real entry point (exit-code contract)."""

    def run(*args: str | Path) -> CliResult:
        capsys.readouterr()
        try:
            main([str(a) for a in args])
            code = 0
        except SystemExit as exc:
            code = exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 1)
        captured = capsys.readouterr()
        return CliResult(code, captured.out, captured.err)

    return run


#: A name that would run as a script if any page failed to escape it.
ANA_NAME = 'Ana <script>alert("x")</script> Lúcia'


@pytest.fixture(scope="session")
def roster_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Two athletes: Ana with the real runs of ``fixtures/fit``, and Bo with none."""
    from planner.services.ingest import plan_import, run_import
    from planner.services.roster import AthleteChanges, add_athlete
    from planner.store.database import Store

    path = tmp_path_factory.mktemp("roster") / "stridewise.db"
    with Store(path) as store:
        add_athlete(
            store,
            "ana",
            AthleteChanges(name=ANA_NAME, email="ana@example.org", timezone="Europe/Lisbon"),
        )
        add_athlete(store, "bo", AthleteChanges(name="Bo", email="bo@example.org"))
        run_import(store, plan_import([FIT_DIR]), "ana", workers=1)
    return path


@pytest.fixture
def roster_db(roster_template: Path, home: Path) -> Path:
    """This test's database (under its STRIDEWISE_HOME): the session's roster, copied."""
    home.mkdir(parents=True, exist_ok=True)
    path = home / "stridewise.db"
    shutil.copy(roster_template, path)
    return path


@pytest.fixture
def token_file(tmp_path: Path) -> Path:
    """Where the Strava tests keep tokens (the file store: no keyring is ever touched)."""
    return tmp_path / "secret" / "strava.json"


@pytest.fixture
def strava(tmp_path: Path, token_file: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Any]:
    """The loopback Strava (tests/strava_server.py), with stridewise pointed at it."""
    from tests.strava_server import StravaServer, point_stridewise_at

    with StravaServer(tmp_path) as server:
        point_stridewise_at(server, token_file, monkeypatch.setenv)
        yield server


#: Installs a plugin distribution for one test: ``install_plugin({group: {name: target}})``.
InstallPlugin = Callable[[dict[str, dict[str, str]]], Path]


@pytest.fixture
def install_plugin(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[InstallPlugin]:
    """Install a plugin the way pip would, for this test only: a distribution's metadata
    (``entry_points.txt``) on ``sys.path``, found by :func:`importlib.metadata.entry_points`.
    Modules in the returned folder import; the tiny example plugin is copied there."""
    from planner.services.registry import forget_registrations

    root = tmp_path / "site"
    root.mkdir()
    shutil.copy(Path(__file__).parent / "example_plugin" / "stridewise_example.py", root)

    def install(entry_points: dict[str, dict[str, str]]) -> Path:
        info = root / "sw_test_plugin-1.0.dist-info"
        info.mkdir(exist_ok=True)
        (info / "METADATA").write_text(
            "Metadata-Version: 2.1\nName: sw-test-plugin\nVersion: 1.0\n", encoding="utf-8"
        )
        sections = [
            "\n".join([f"[{group}]", *(f"{k} = {v}" for k, v in targets.items())])
            for group, targets in entry_points.items()
        ]
        (info / "entry_points.txt").write_text("\n\n".join(sections) + "\n", encoding="utf-8")
        monkeypatch.syspath_prepend(str(root))
        forget_registrations()
        return root

    yield install
    forget_registrations()  # before monkeypatch takes the folder off sys.path again


def pytest_collection_finish(session: pytest.Session) -> None:
    """Import every module of ours before the first test runs.

    Hypothesis draws some examples from literals in the *local modules loaded so far*
    (``hypothesis.internal.conjecture.providers._get_local_constants``), so even with
    ``derandomize=True`` a property test would see other examples depending on which tests
    ran before it in its worker. With every module loaded up front, each ``@given`` sees the
    same examples in any order and under any ``-n``.
    """
    import importlib
    import pkgutil

    for package in ("planner", "connectors", "drills"):
        root = importlib.import_module(package)
        for module in pkgutil.walk_packages(root.__path__, f"{package}."):
            importlib.import_module(module.name)
    importlib.import_module("tests.example_plugin.stridewise_example")
