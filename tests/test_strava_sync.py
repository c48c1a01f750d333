"""Strava sync and its commands: incremental, resumable, rate-limit aware, tokens kept secret.

Real stravalib, real HTTPS to the loopback Strava in ``tests/strava_server.py``, the real
store and the real command line; only ``sleep`` is injected where retries would wait.
"""

from __future__ import annotations

import io
import json
import stat
from collections import Counter
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from connectors.strava import StravaConnector
from planner.records import Activity, Source
from planner.services.sync import read_cursor, sync_account
from planner.store.database import Store
from tests.conftest import FIT_DIR, CliResult
from tests.strava_server import (
    CLIENT_SECRET,
    LIST_PATH,
    STREAMS_PREFIX,
    TOKEN_PATH,
    Sleeps,
    StravaServer,
    fixture_json,
    manual_hike,
    ride_summary,
    run_streams,
    run_summary,
)
from tests.strava_server import write_tokens as connect

Run = Callable[..., CliResult]
DAY0 = datetime.now(UTC).replace(microsecond=0) - timedelta(days=30)


def add_runs(server: StravaServer, n: int, first_id: int = 100, samples: int = 120) -> list[int]:
    return [
        server.add(run_summary(first_id + i, DAY0 + timedelta(days=i)), run_streams(samples))
        for i in range(n)
    ]


def strava_refs(home: Path) -> Counter[str]:
    """How many stored activities carry each Strava id (must never exceed 1)."""
    with Store(home / "stridewise.db") as store:
        return Counter(
            a.activity.source_ref
            for a in store.list_activities()
            if a.activity.source is Source.STRAVA
        )


def secrets_in(server: StravaServer, *results: CliResult) -> list[str]:
    text = "".join(r.out + r.err for r in results)
    return [s for s in (server.access_token, server.refresh_token, CLIENT_SECRET) if s in text]


# -- commands ------------------------------------------------------------------------------------


def test_connect_with_a_pasted_code_stores_private_tokens(
    strava: StravaServer, token_file: Path, run_cli: Run, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr("sys.stdin", io.StringIO("auth-code-1\n"))
    result = run_cli("strava", "connect", "--no-browser")
    assert result.code == 0, result.err
    assert f"https://{strava.address}/oauth/authorize?" in result.out
    assert "scope=activity%3Aread_all" in result.out
    assert "connected to Strava as Jeff Remer" in result.out
    assert stat.S_IMODE(token_file.stat().st_mode) == 0o600
    stored = json.loads(token_file.read_text())["accounts"]["me"]
    assert stored["access_token"] == strava.access_token
    assert stored["refresh_token"] == strava.refresh_token
    assert secrets_in(strava, result) == []


def test_connect_with_a_pasted_redirect_address(
    strava: StravaServer, token_file: Path, run_cli: Run, monkeypatch: pytest.MonkeyPatch
) -> None:
    pasted = "http://localhost/exchange_token?code=auth-code-1&scope=read,activity:read_all"
    monkeypatch.setattr("sys.stdin", io.StringIO(pasted + "\n"))
    result = run_cli("strava", "connect", "--no-browser", "--athlete", "ann")
    assert result.code == 0, result.err
    assert "ann" in json.loads(token_file.read_text())["accounts"]


def test_connect_without_an_application_is_a_clear_error(
    strava: StravaServer, run_cli: Run, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("STRIDEWISE_STRAVA_CLIENT_ID")
    result = run_cli("strava", "connect", "--no-browser")
    assert result.code == 1
    assert "STRIDEWISE_STRAVA_CLIENT_ID" in result.err
    assert "Traceback" not in result.err


def test_client_credentials_from_config_toml(
    strava: StravaServer, home: Path, run_cli: Run, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("STRIDEWISE_STRAVA_CLIENT_ID")
    monkeypatch.delenv("STRIDEWISE_STRAVA_CLIENT_SECRET")
    home.mkdir(parents=True, exist_ok=True)
    (home / "config.toml").write_text(
        f'[strava]\nclient_id = 4242\nclient_secret = "{CLIENT_SECRET}"\n'
    )
    monkeypatch.setattr("sys.stdin", io.StringIO("auth-code-1\n"))
    result = run_cli("strava", "connect", "--no-browser")
    assert result.code == 0, result.err
    assert secrets_in(strava, result) == []


def test_disconnect_revokes_and_deletes_the_tokens(
    strava: StravaServer, token_file: Path, run_cli: Run
) -> None:
    connect(strava, token_file)
    result = run_cli("strava", "disconnect")
    assert result.code == 0, result.err
    assert result.out == "Strava revoked stridewise's access; stored tokens deleted\n"
    assert strava.deauthorized
    assert not token_file.exists()
    again = run_cli("strava", "disconnect")
    assert again.code == 0
    assert "not connected" in again.out
    assert secrets_in(strava, result, again) == []


def test_disconnect_says_when_strava_did_not_confirm(
    strava: StravaServer, token_file: Path, run_cli: Run, monkeypatch: pytest.MonkeyPatch
) -> None:
    connect(strava, token_file)
    monkeypatch.setenv("STRIDEWISE_STRAVA_CLIENT_SECRET", "rotated-secret")
    result = run_cli("strava", "disconnect")
    assert result.code == 0, result.err
    assert "stored tokens deleted; Strava's authorisation may still be active" in result.out
    assert result.err.count("\n") == 1
    assert "https://www.strava.com/settings/apps" in result.err
    assert not strava.deauthorized
    assert not token_file.exists()


def test_sync_without_connecting_says_how(strava: StravaServer, run_cli: Run) -> None:
    result = run_cli("sync", "strava")
    assert result.code == 1
    assert "stridewise strava connect" in result.err
    assert strava.count() == 0


def test_sync_pages_through_activities_and_stores_runs_with_streams(
    strava: StravaServer, token_file: Path, run_cli: Run, home: Path
) -> None:
    connect(strava, token_file)
    run_ids = add_runs(strava, 3)
    # 200 published-example rides fill the first page (Strava's maximum of 200 per page).
    for i in range(200):
        strava.add(ride_summary(5000 + i, DAY0 + timedelta(days=3, minutes=10 * i), i))
    strava.add(manual_hike(9000, DAY0 + timedelta(days=10)))
    result = run_cli("sync", "strava", "--json")
    assert result.code == 0, result.err
    summary = result.json()
    assert summary["fetched"] == 204
    assert summary["imported"] == 3
    assert summary["skipped_non_running"] == 201
    assert summary["duplicates"] == 0
    assert summary["failed"] == []
    assert summary["rate_limited"] is False
    assert summary["resume_at"] is None
    pages = [s.query["page"] for s in strava.requests_to(LIST_PATH)]
    assert pages == ["1", "2"]
    # Streams only for runs; rides and the manual hike are metadata only.
    assert sorted(s.path for s in strava.requests_to(STREAMS_PREFIX)) == [
        f"{STREAMS_PREFIX}{i}/streams" for i in run_ids
    ]
    listing = run_cli("activities", "--json").json()
    runs = [a for a in listing if a["sport"] == "running"]
    assert len(runs) == 3
    assert {a["source"] for a in listing} == {"strava"}
    assert all(a["samples"] == 120 and a["dynamics"] == [] for a in runs)
    assert {a["sport"] for a in listing} == {"running", "ride", "hike"}
    export = run_cli("export", str(runs[0]["id"]))
    header = export.out.splitlines()[0]
    assert "cadence_spm" in header
    assert "gct_ms" not in header
    assert secrets_in(strava, result) == []


def test_sync_is_incremental(
    strava: StravaServer, token_file: Path, run_cli: Run, home: Path
) -> None:
    connect(strava, token_file)
    add_runs(strava, 2)
    assert run_cli("sync", "strava").code == 0
    with Store(home / "stridewise.db") as store:
        cursor = read_cursor(store, "strava", "me")
    assert cursor == DAY0 + timedelta(days=1)
    streams_before = strava.count(STREAMS_PREFIX)
    strava.add(run_summary(777, DAY0 + timedelta(days=5)), run_streams(60))
    second = run_cli("sync", "strava", "--json")
    assert second.code == 0
    summary = second.json()
    # Listed from the cursor: the last known run (overlap) and the new one, nothing older.
    assert summary["fetched"] == 2
    assert summary["duplicates"] == 1
    assert summary["imported"] == 1
    assert strava.requests_to(LIST_PATH)[-1].query["after"] == str(int(cursor.timestamp()) - 1)
    assert strava.count(STREAMS_PREFIX) == streams_before + 1
    assert set(strava_refs(home).values()) == {1}


def test_since_sets_where_the_first_sync_starts(
    strava: StravaServer, token_file: Path, run_cli: Run
) -> None:
    connect(strava, token_file, key="ann")  # tokens belong to one athlete
    add_runs(strava, 4)
    assert "not connected" in run_cli("sync", "strava").err  # "me" has no tokens
    since = (DAY0 + timedelta(days=2)).strftime("%Y-%m-%d")
    result = run_cli("sync", "strava", "--since", since, "--json", "--athlete", "ann")
    assert result.code == 0, result.err
    assert result.json()["imported"] == 2
    assert [a["athlete"] for a in run_cli("activities", "--json").json()] == ["ann", "ann"]


def test_429_stops_cleanly_then_a_later_run_resumes(
    strava: StravaServer, token_file: Path, run_cli: Run, home: Path
) -> None:
    connect(strava, token_file)
    add_runs(strava, 6)
    strava.inject(STREAMS_PREFIX, 429, skip=2)  # the third run's streams hit the limit
    first = run_cli("sync", "strava", "--json")
    assert first.code == 3
    summary = first.json()
    assert summary["rate_limited"] is True
    assert summary["imported"] == 2
    resume_at = datetime.fromisoformat(summary["resume_at"])
    assert resume_at > datetime.now(UTC)
    assert resume_at.minute % 15 == 0
    # Text mode tells the user when to come back.
    strava.inject(LIST_PATH, 429)
    text = run_cli("sync", "strava")
    assert text.code == 3
    assert "resets at" in text.err
    assert "run the same command after" in text.err
    assert "Traceback" not in text.err
    # After the window resets, the next run continues where the first stopped.
    second = run_cli("sync", "strava", "--json")
    assert second.code == 0, second.err
    assert second.json()["imported"] == 4
    assert strava_refs(home) == Counter({str(i): 1 for i in range(100, 106)})
    fetched = Counter(s.path for s in strava.requests_to(STREAMS_PREFIX))
    assert fetched[f"{STREAMS_PREFIX}100/streams"] == 1  # stored runs are not fetched again


def test_stops_before_the_limit_and_says_when_it_resets(
    strava: StravaServer, token_file: Path, run_cli: Run, home: Path
) -> None:
    connect(strava, token_file)
    add_runs(strava, 8)
    strava.usage["read"] = [90, 400]  # 10 reads left in this 15-minute window
    first = run_cli("sync", "strava", "--json")
    assert first.code == 3
    summary = first.json()
    assert summary["rate_limited"] is True
    assert "stopped before Strava's rate limit" in summary["stop_reason"]
    assert strava.usage["read"][0] == 97  # 3 left in reserve: the limit itself never reached
    assert summary["imported"] == 6  # 1 list request + 6 stream requests
    strava.usage["read"] = [0, 407]  # the window reset
    second = run_cli("sync", "strava", "--json")
    assert second.code == 0
    assert second.json()["imported"] == 2
    assert sum(strava_refs(home).values()) == 8


def test_401_asks_to_reconnect(strava: StravaServer, token_file: Path, run_cli: Run) -> None:
    connect(strava, token_file)
    add_runs(strava, 2)
    strava.inject(STREAMS_PREFIX, 401)
    result = run_cli("sync", "strava")
    assert result.code == 1
    assert "run 'stridewise strava connect' again" in result.err
    assert "Traceback" not in result.err
    assert secrets_in(strava, result) == []


def test_token_refreshed_during_sync_is_saved_atomically(
    strava: StravaServer, token_file: Path, run_cli: Run
) -> None:
    connect(strava, token_file, expires_in_s=120)
    old_refresh = strava.refresh_token
    add_runs(strava, 1)
    result = run_cli("sync", "strava")
    assert result.code == 0, result.err
    assert strava.count(TOKEN_PATH) == 1
    stored = json.loads(token_file.read_text())["accounts"]["me"]
    assert stored["refresh_token"] == strava.refresh_token != old_refresh
    assert stat.S_IMODE(token_file.stat().st_mode) == 0o600
    assert [p.name for p in token_file.parent.iterdir()] == [token_file.name]
    assert secrets_in(strava, result) == []


def test_500_is_retried_then_the_sync_succeeds(
    strava: StravaServer, token_file: Path, home: Path
) -> None:
    connect(strava, token_file)
    add_runs(strava, 3)
    strava.inject(STREAMS_PREFIX, 500, skip=1, times=2)
    sleeps = Sleeps()
    with Store(home / "stridewise.db") as store:
        summary = sync_account(store, "strava", session=StravaConnector("me", sleep=sleeps))
    assert summary.error is None
    assert len(summary.imported) == 3
    assert sleeps == [1.0, 2.0]
    assert strava.count(STREAMS_PREFIX) == 5


def test_dropped_connection_mid_sync_then_resume_loses_and_duplicates_nothing(
    strava: StravaServer, token_file: Path, home: Path
) -> None:
    connect(strava, token_file)
    add_runs(strava, 7, samples=90)
    # The line drops from the fourth streams request on and stays down for this run.
    strava.inject(STREAMS_PREFIX, "drop", skip=3, times=1000)
    sleeps = Sleeps()
    with Store(home / "stridewise.db") as store:
        session = StravaConnector("me", sleep=sleeps, retries=2, per_page=3)
        first = sync_account(store, "strava", session=session)
        assert first.error is None
        # Three outages in a row (each retried twice) stop the sync; the cursor holds
        # before the first of them.
        assert first.message is not None
        assert first.message.startswith("stopped after 3 activities in a row failed")
        assert "connection failed" in first.message
        assert [ref for ref, _ in first.failed] == ["103", "104", "105"]
        assert len(first.imported) == 3
        assert sleeps == [1.0, 2.0] * 3
        cursor = read_cursor(store, "strava", "me")
    assert cursor == DAY0 + timedelta(days=2)
    strava.faults.clear()  # the network is back
    with Store(home / "stridewise.db") as store:
        second = sync_account(store, "strava", session=StravaConnector("me", per_page=3))
        assert second.error is None
        assert len(second.imported) == 4
        assert second.duplicates == 1  # the overlap at the cursor, recognised by its id
        stored = store.list_activities("me")
        assert [s.activity.n_samples for s in stored] == [90] * 7
        assert all(len(store.load_stream(s.id)) == 90 for s in stored)
    assert strava_refs(home) == Counter({str(i): 1 for i in range(100, 107)})


def test_ctrl_c_mid_sync_then_resume_loses_and_duplicates_nothing(
    strava: StravaServer, token_file: Path, home: Path
) -> None:
    connect(strava, token_file)
    add_runs(strava, 5)
    seen: list[str] = []

    def interrupt_after_two(done: int, total: int | None, activity: Activity) -> None:
        seen.append(activity.source_ref)
        if len(seen) == 2:
            raise KeyboardInterrupt  # what Ctrl-C raises, between two activities

    with Store(home / "stridewise.db") as store:
        first = sync_account(store, "strava", progress=interrupt_after_two)
        assert first.interrupted
        assert read_cursor(store, "strava", "me") == DAY0 + timedelta(days=1)
    with Store(home / "stridewise.db") as store:
        summary = sync_account(store, "strava")
    assert len(summary.imported) == 3
    assert strava_refs(home) == Counter({str(i): 1 for i in range(100, 105)})


def test_an_outage_on_one_activity_holds_the_cursor_and_the_next_run_retries_it(
    strava: StravaServer, token_file: Path, run_cli: Run, home: Path
) -> None:
    connect(strava, token_file)
    add_runs(strava, 4)
    # Every attempt at run 101's streams fails (5 = the first try and four retries).
    strava.inject(f"{STREAMS_PREFIX}101/", 503, times=5)
    with Store(home / "stridewise.db") as store:
        first = sync_account(store, "strava", session=StravaConnector("me", sleep=Sleeps()))
        assert [ref for ref, _ in first.failed] == ["101"]
        assert len(first.imported) == 3  # the later runs are stored anyway
        assert read_cursor(store, "strava", "me") == DAY0  # held before the failure
    second = run_cli("sync", "strava", "--json")
    assert second.code == 0, second.err
    assert second.json()["imported"] == 1
    assert second.json()["duplicates"] == 3
    assert strava_refs(home) == Counter({str(i): 1 for i in range(100, 104)})


def test_a_permanent_failure_is_reported_and_the_cursor_moves_on(
    strava: StravaServer, token_file: Path, run_cli: Run, home: Path
) -> None:
    connect(strava, token_file)
    add_runs(strava, 4)
    strava.inject(f"{STREAMS_PREFIX}101/", 400)
    first = run_cli("sync", "strava", "--json")
    assert first.code == 3
    summary = first.json()
    assert [f["strava_id"] for f in summary["failed"]] == ["101"]
    assert [f["ref"] for f in summary["failed"]] == ["101"]
    assert summary["imported"] == 3  # the later runs are stored anyway
    with Store(home / "stridewise.db") as store:
        # Retrying a 4xx would only fail again, every sync: the cursor moves past it.
        assert read_cursor(store, "strava", "me") == DAY0 + timedelta(days=3)
    second = run_cli("sync", "strava", "--json")
    assert second.code == 0
    assert second.json()["imported"] == 0
    # --since lists it again: the id is unknown, so it is fetched once more.
    third = run_cli("sync", "strava", "--since", f"{DAY0:%Y-%m-%d}", "--json")
    assert third.code == 0, third.err
    assert (third.json()["imported"], third.json()["duplicates"]) == (1, 3)
    assert strava_refs(home) == Counter({str(i): 1 for i in range(100, 104)})


def test_published_streams_example_is_stored_without_samples(
    strava: StravaServer, token_file: Path, run_cli: Run
) -> None:
    connect(strava, token_file)
    published = fixture_json("swagger_example_activity_streams_list.json")
    strava.add(run_summary(31, DAY0), {item["type"]: item for item in published})
    result = run_cli("sync", "strava", "--json")
    assert result.code == 0, result.err
    (activity,) = run_cli("activities", "--json").json()
    assert activity["samples"] == 0


def test_a_run_already_imported_from_fit_keeps_the_fit_copy(
    strava: StravaServer, token_file: Path, run_cli: Run, home: Path
) -> None:
    fit = FIT_DIR / "garmin-fenix-5-run.fit"
    assert run_cli("import", str(fit)).code == 0
    (original,) = run_cli("activities", "--json").json()
    assert original["dynamics"]  # the FIT file has running dynamics: the richer copy
    start = datetime.fromisoformat(original["start_utc"])
    connect(strava, token_file)
    strava.add(
        run_summary(4321, start + timedelta(seconds=3), elapsed_s=round(original["elapsed_s"])),
        run_streams(300),
    )
    since = f"{start - timedelta(days=1):%Y-%m-%d}"  # the file is years old
    result = run_cli("sync", "strava", "--since", since, "--json")
    assert result.code == 0, result.err
    assert result.json()["duplicates"] == 1
    assert result.json()["imported"] == 0
    (kept,) = run_cli("activities", "--json").json()
    assert kept == original
    with Store(home / "stridewise.db") as store:
        assert store.find_source_ref("me", Source.STRAVA, "4321") == original["id"]
    again = run_cli("sync", "strava", "--since", since, "--json")
    assert again.json()["imported"] == 0
    # Recognised from the listing (start, duration) before any streams request, and by its
    # Strava id the second time.
    assert strava.count(STREAMS_PREFIX) == 0


def test_a_fit_import_after_the_strava_sync_replaces_the_strava_copy(
    strava: StravaServer, token_file: Path, run_cli: Run
) -> None:
    fit = FIT_DIR / "garmin-fenix-5-run.fit"
    from connectors.fit import decode_fit

    decoded = decode_fit(fit.read_bytes(), str(fit))
    run = next(i.activity for i in decoded.items if i.activity.is_running)
    connect(strava, token_file)
    strava.add(run_summary(4322, run.start_utc, elapsed_s=round(run.elapsed_s)), run_streams(300))
    assert run_cli("sync", "strava", "--since", f"{run.start_utc:%Y-%m-%d}").code == 0
    (synced,) = run_cli("activities", "--json").json()
    assert synced["source"] == "strava"
    imported = run_cli("import", str(fit), "--json")
    assert imported.json()["replaced"] == 1
    (kept,) = run_cli("activities", "--json").json()
    assert kept["id"] == synced["id"]
    assert kept["source"] == "fit"
    assert kept["dynamics"]
