"""`stridewise sync garmin` end to end: real garminconnect, real HTTP to a loopback server
replaying recorded payloads, real SQLite; runs come as zipped original FIT files.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

import pytest

from connectors.garmin import API_ENV, SSO_ENV, TOKENS_ENV, GarminConnect, token_file
from planner.records import Source
from planner.schema import RUNNING_DYNAMICS
from planner.services.sync import SyncSummary, read_cursor, sync_account
from planner.store.database import Store
from tests.conftest import FIT_DIR, CliResult
from tests.garmin_server import (
    DOWNLOAD_PATH,
    LIST_PATH,
    TOKEN_PATH,
    GarminServer,
    fixture_json,
    list_entry,
    make_jwt,
    original_zip,
    store_tokens,
    token_store,
)

Run = Callable[..., CliResult]
RECORDED = fixture_json("activitylist_search_activities_limit3.json")
TRAIL_RUN, HIKE, PADDLE = RECORDED

# Garmin activity id -> (running FIT file, its start in GMT, its elapsed seconds), oldest first.
RUNS: dict[int, tuple[str, str, float]] = {
    9001: ("68MK1405.FIT", "2016-08-22 17:14:05", 2177.544),
    9002: ("Fenix3-Run-1321421020.fit", "2016-08-25 17:05:16", 5711.949),
    9003: ("garmin-fenix-5-run.fit", "2017-06-11 14:34:09", 56.887),
}
SINCE = "2016-01-01"


def _run_entries() -> list[dict[str, Any]]:
    return [
        list_entry(TRAIL_RUN, activity_id, start, elapsed_s=elapsed, local_offset_h=2)
        for activity_id, (_, start, elapsed) in RUNS.items()
    ]


def _others(n: int) -> list[dict[str, Any]]:
    """Recorded hikes and paddles, re-dated into September 2016 (between the runs)."""
    return [
        list_entry(HIKE if i % 2 else PADDLE, 8000 + i, f"2016-09-{1 + i % 28:02d} 07:00:00")
        for i in range(n)
    ]


@pytest.fixture
def server(monkeypatch: pytest.MonkeyPatch) -> Iterator[GarminServer]:
    """A loopback Garmin Connect with three runs, and stored tokens it accepts."""
    with GarminServer() as srv:
        monkeypatch.setenv(API_ENV, srv.url)
        monkeypatch.setenv(SSO_ENV, srv.url)
        monkeypatch.delenv(TOKENS_ENV, raising=False)
        monkeypatch.delenv("GARMINTOKENS", raising=False)
        srv.activities = _run_entries()
        srv.downloads = {
            activity_id: original_zip(activity_id, (FIT_DIR / name).read_bytes())
            for activity_id, (name, _, _) in RUNS.items()
        }
        store_tokens(srv)
        yield srv


def _sync(**kwargs: Any) -> tuple[SyncSummary, list[float]]:
    """Run the library sync with a recording sleep (no real waiting)."""
    sleeps: list[float] = []
    with Store() as store:
        summary = sync_account(
            store,
            "garmin",
            "me",
            session=GarminConnect(sleep=sleeps.append),
            since=date(2016, 1, 1),
            **kwargs,
        )
    return summary, sleeps


def _start_of(activity_id: int) -> datetime:
    return datetime.fromisoformat(RUNS[activity_id][1]).replace(tzinfo=UTC)


def _garmin_refs() -> list[str]:
    with Store() as store:
        return [a.activity.source_ref for a in store.list_activities("me", running_only=True)]


def test_sync_pages_the_list_and_imports_runs_with_running_dynamics(
    server: GarminServer, run_cli: Run
) -> None:
    server.activities += _others(25)
    result = run_cli("sync", "garmin", "--since", SINCE, "--json")
    assert result.code == 0, result.err
    summary = result.json()
    assert summary["listed"] == 28
    assert summary["imported"] == 3
    assert summary["skipped_non_running"] == 25
    assert (summary["duplicates"], summary["replaced"], summary["failed"]) == (0, 0, [])
    assert summary["rate_limited"] is False
    assert server.list_pages() == [0, 20, 40]  # 20 a page, until an empty one
    assert server.count(DOWNLOAD_PATH) == 3  # non-running activities are never downloaded

    with Store() as store:
        runs = store.list_activities("me", running_only=True)
        assert [r.activity.source_ref for r in runs] == ["9001", "9002", "9003"]
        assert {r.activity.source for r in runs} == {Source.GARMIN}
        assert set(runs[0].activity.dynamics) == {str(c) for c in RUNNING_DYNAMICS}
        assert runs[0].activity.extra["garmin_type"] == "trail_running"
        assert runs[0].activity.name == TRAIL_RUN["activityName"]
        stream = store.load_stream(runs[0].id)
        assert len(stream) == 2162
        for column in RUNNING_DYNAMICS:
            assert stream[column].notna().sum() > 1000, column
        others = [a for a in store.list_activities("me") if not a.activity.is_running]
        assert {a.activity.sport for a in others} == {"hiking", "stand_up_paddleboarding"}
        assert all(a.stream_format is None and a.activity.n_samples == 0 for a in others)
        assert read_cursor(store, "garmin", "me") == _start_of(9003)

    # The next sync lists from the cursor, recognises what it has, and downloads nothing.
    again = run_cli("sync", "garmin", "--json")
    assert again.code == 0, again.err
    assert again.json()["since"] == "2017-06-11"
    assert (again.json()["listed"], again.json()["duplicates"], again.json()["imported"]) == (
        1,
        1,
        0,
    )
    assert server.count(DOWNLOAD_PATH) == 3


def test_text_summary(server: GarminServer, run_cli: Run) -> None:
    result = run_cli("sync", "garmin", "--since", SINCE)
    assert result.code == 0, result.err
    assert result.out.startswith(f"listed 3 since {SINCE}: imported 3, replaced 0")
    assert result.err == ""


def test_429_stops_with_one_clear_message_naming_the_export(
    server: GarminServer, run_cli: Run
) -> None:
    server.fail(LIST_PATH, 429)
    result = run_cli("sync", "garmin", "--since", SINCE, "--json")
    assert result.code == 3  # stopped early, nothing lost: run it again later
    assert result.json()["rate_limited"] is True
    assert result.json()["imported"] == 0
    lines = result.err.strip().splitlines()
    assert len(lines) == 1, result.err
    assert "HTTP 429" in lines[0]
    assert "Garmin account export" in lines[0]
    assert "'stridewise import PATH'" in lines[0]
    assert server.count(LIST_PATH) == 1  # never retried
    assert server.count("/mobile/") == server.count("/portal/") == server.count("/sso/") == 0


def test_429_on_a_download_keeps_what_was_done_and_resumes(server: GarminServer) -> None:
    server.fail(DOWNLOAD_PATH + "9002", 429)
    first, sleeps = _sync()
    assert first.rate_limited
    assert first.message is not None
    assert "stridewise import" in first.message
    assert sleeps == []
    assert len(first.imported) == 1
    assert server.count(DOWNLOAD_PATH + "9003") == 0  # stopped at once
    second, _ = _resume()
    assert (len(second.imported), second.duplicates) == (2, 1)
    assert _garmin_refs() == ["9001", "9002", "9003"]
    assert server.count(DOWNLOAD_PATH + "9001") == 1  # known: not fetched again


def _resume() -> tuple[SyncSummary, list[float]]:
    """A sync that continues from the stored cursor (no ``since``)."""
    sleeps: list[float] = []
    with Store() as store:
        summary = sync_account(store, "garmin", "me", session=GarminConnect(sleep=sleeps.append))
    return summary, sleeps


def test_401_asks_to_log_in_again_and_does_not_log_in(server: GarminServer, run_cli: Run) -> None:
    server.token = make_jwt()  # Garmin no longer accepts the stored token, nor its refresh
    result = run_cli("sync", "garmin", "--since", SINCE)
    assert result.code == 1
    lines = result.err.strip().splitlines()
    assert len(lines) == 1, result.err
    assert "HTTP 401" in lines[0]
    assert "Run 'stridewise garmin login' to log in again" in lines[0]
    assert "stridewise import" in lines[0]
    assert server.count(TOKEN_PATH, "POST") == 1  # garminconnect tried its refresh token once
    assert server.count("/mobile/") == server.count("/portal/") == server.count("/sso/") == 0


def test_500_is_retried_with_backoff_then_succeeds(server: GarminServer) -> None:
    server.fail(DOWNLOAD_PATH + "9001", 500, times=2)
    server.fail(LIST_PATH, 503, times=1)
    summary, sleeps = _sync()
    assert summary.failed == []
    assert len(summary.imported) == 3
    assert sleeps == [1.0, 1.0, 2.0]  # list: one retry; download: two, doubling
    assert server.count(DOWNLOAD_PATH + "9001") == 3
    assert server.count(LIST_PATH) == 1 + 2  # the failed page, then two pages


def test_dropped_connection_mid_sync_then_resume_without_duplicates(
    server: GarminServer, run_cli: Run
) -> None:
    # The 2nd download loses its connection on every attempt: that activity fails, the
    # others are imported, and the cursor stays before the failed one.
    server.fail(DOWNLOAD_PATH + "9002", "drop", times=4)
    first, sleeps = _sync()
    assert [a for a, _ in first.failed] == ["9002"]
    assert "connection failed" in first.failed[0][1]
    assert len(first.imported) == 2
    assert sleeps == [1.0, 2.0, 4.0]
    with Store() as store:
        assert read_cursor(store, "garmin", "me") == _start_of(9001)

    second = run_cli("sync", "garmin", "--json")
    assert second.code == 0, second.err
    assert second.json()["since"] == "2016-08-22"
    assert (second.json()["imported"], second.json()["duplicates"]) == (1, 2)
    assert _garmin_refs() == ["9001", "9002", "9003"]
    assert server.count(DOWNLOAD_PATH + "9001") == 1
    assert server.count(DOWNLOAD_PATH + "9003") == 1
    with Store() as store:
        assert read_cursor(store, "garmin", "me") == _start_of(9003)


def test_ctrl_c_mid_sync_keeps_what_was_done(server: GarminServer) -> None:
    def interrupt_after_first(done: int, total: int | None, activity: object) -> None:
        if done == 1:
            raise KeyboardInterrupt

    first, _ = _sync(progress=interrupt_after_first)
    assert first.interrupted
    assert len(first.imported) == 1
    second, _ = _resume()
    assert (len(second.imported), second.duplicates) == (2, 1)
    assert _garmin_refs() == ["9001", "9002", "9003"]
    assert server.count(DOWNLOAD_PATH + "9001") == 1  # known: not fetched again


def test_one_bad_activity_is_reported_and_the_sync_goes_on(
    server: GarminServer, run_cli: Run
) -> None:
    del server.downloads[9002]  # Garmin answers its recorded 403 "Only owner ..."
    server.downloads[9003] = original_zip(9003, b"not a FIT file at all")
    result = run_cli("sync", "garmin", "--since", SINCE, "--json")
    assert result.code == 3
    failed = {f["activity_id"]: f["reason"] for f in result.json()["failed"]}
    assert set(failed) == {"9002", "9003"}
    assert "HTTP 403" in failed["9002"]
    assert "garmin activity 9003" in failed["9003"]
    assert result.json()["imported"] == 1
    assert server.count(DOWNLOAD_PATH + "9002") == 1  # a 4xx is not retried
    with Store() as store:  # permanent failures do not hold the cursor
        assert read_cursor(store, "garmin", "me") == _start_of(9003)


def test_run_already_imported_from_a_fit_file_is_not_duplicated(
    server: GarminServer, run_cli: Run
) -> None:
    assert run_cli("import", FIT_DIR / "68MK1405.FIT").code == 0
    server.activities = _run_entries()[:1]
    summary = run_cli("sync", "garmin", "--since", SINCE, "--json").json()
    assert (summary["imported"], summary["duplicates"]) == (0, 1)
    listed = run_cli("activities", "--json").json()
    assert len(listed) == 1
    assert listed[0]["source"] == "fit"  # the original file ranks above Garmin's copy
    with Store() as store:
        assert store.find_source_ref("me", Source.GARMIN, "9001") == listed[0]["id"]
    # Recognised from the list entry (start, duration): the original was not downloaded.
    assert server.count(DOWNLOAD_PATH) == 0


def test_fit_file_imported_after_the_sync_replaces_garmins_copy(
    server: GarminServer, run_cli: Run
) -> None:
    server.activities = _run_entries()[:1]
    assert run_cli("sync", "garmin", "--since", SINCE, "--json").json()["imported"] == 1
    imported = run_cli("import", FIT_DIR / "68MK1405.FIT", "--json").json()
    assert imported["replaced"] == 1
    listed = run_cli("activities", "--json").json()
    assert [(a["source"], a["sport"]) for a in listed] == [("fit", "running")]


def test_athlete_and_default_start(server: GarminServer, run_cli: Run) -> None:
    result = run_cli("sync", "garmin", "--athlete", "ana", "--json")
    assert result.code == 0, result.err
    summary = result.json()
    assert summary["listed"] == 0  # the runs are years older than the default window
    assert date.fromisoformat(summary["since"]) > date(2020, 1, 1)
    listed = run_cli("sync", "garmin", "--athlete", "ana", "--since", SINCE, "--json").json()
    assert listed["imported"] == 3
    assert len(run_cli("activities", "--athlete", "ana", "--json").json()) == 3


def test_token_file_setting_is_used(
    server: GarminServer, run_cli: Run, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    custom = tmp_path / "my-garmin.json"
    custom.write_text(token_store(server.token), encoding="utf-8")
    token_file().unlink()
    monkeypatch.setenv(TOKENS_ENV, str(custom))
    result = run_cli("sync", "garmin", "--since", SINCE, "--json")
    assert result.code == 0, result.err
    assert result.json()["imported"] == 3
