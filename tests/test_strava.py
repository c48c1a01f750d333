"""The Strava adapter and token storage: real stravalib over real HTTPS to a loopback Strava."""

from __future__ import annotations

import json
import stat
import threading
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import requests
from keyring.backend import KeyringBackend
from keyring.errors import KeyringError, PasswordDeleteError
from stravalib import model as strava_model

from connectors.strava import (
    RATE_RESERVE,
    REFRESH_MARGIN_S,
    StravaConnector,
    StravaUnavailableError,
    connect_account,
    next_quarter_hour,
    next_utc_midnight,
    streams_to_columns,
    summary_to_activity,
)
from connectors.tokens import (
    FileTokenStore,
    KeyringTokenStore,
    Tokens,
    default_token_file,
    open_token_store,
)
from planner.errors import AuthError, ConfigError, RateLimitedError, ServiceError
from planner.records import Source
from planner.schema import Col
from tests.strava_server import (
    LIST_PATH,
    STREAMS_PREFIX,
    TOKEN_PATH,
    Sleeps,
    StravaServer,
    fixture_json,
    point_stridewise_at,
    run_streams,
    run_summary,
)
from tests.strava_server import write_tokens as connected

START = datetime(2026, 3, 1, 9, 0, tzinfo=UTC)


@pytest.fixture
def strava(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[StravaServer]:
    with StravaServer(tmp_path) as server:
        point_stridewise_at(server, tmp_path / "secret" / "strava.json", monkeypatch.setenv)
        yield server


@pytest.fixture
def token_file(tmp_path: Path) -> Path:
    return tmp_path / "secret" / "strava.json"


# -- streams → canonical columns ----------------------------------------------------------------


def test_cadence_per_foot_becomes_steps_per_minute() -> None:
    streams = {k: v["data"] for k, v in run_streams(120, cadence_per_foot=86).items()}
    stream, notes = streams_to_columns(START, streams)
    frame = stream.to_frame()
    assert notes == ()
    assert (frame[Col.CADENCE_SPM.value] == 172.0).all()  # 2 × 86 per-foot
    assert frame[Col.SPEED_MPS.value].iloc[0] == pytest.approx(3.2)
    assert frame[Col.HEART_RATE_BPM.value].iloc[5] == 125.0
    assert frame[Col.POWER_W.value].iloc[3] == 253.0
    assert frame[Col.GRADE_PCT.value].iloc[0] == 0.5
    assert frame[Col.LAT_DEG.value].iloc[0] == pytest.approx(37.77)
    assert frame[Col.LON_DEG.value].iloc[0] == pytest.approx(-122.42)
    assert frame[Col.TEMPERATURE_C.value].iloc[0] == 18.0
    assert frame.index[0] == START
    assert str(frame.index.tz) == "UTC"
    assert all(frame[c].dtype == np.float64 for c in frame.columns)


def test_time_offsets_place_samples_and_keep_a_pause() -> None:
    streams = {k: v["data"] for k, v in run_streams(60, pause_after=29, pause_s=45).items()}
    stream, _ = streams_to_columns(START, streams)
    frame = stream.to_frame()
    gaps = frame.index.to_series().diff().dt.total_seconds().dropna()
    assert gaps.max() == 46.0
    assert frame.index[-1] == START + timedelta(seconds=59 + 45)


def test_repeated_times_and_implausible_values_are_dropped_with_warnings() -> None:
    streams: dict[str, list[Any]] = {
        "time": [0, 1, 1, 2, None, 3],
        "heartrate": [120, 121, 122, 400, 124, None],
        "cadence": [80, 81, 82, 83, 84, 85],
        "latlng": [[1.0, 2.0], None, [1.0, 2.0], [1.0, 2.0], [1.0, 2.0], [1.0, 2.0]],
        "velocity_smooth": [3.0, 3.0],  # wrong length
    }
    stream, notes = streams_to_columns(START, streams)
    frame = stream.to_frame()
    assert len(frame) == 4  # the repeated second and the missing time are gone
    assert frame[Col.CADENCE_SPM.value].tolist() == [160.0, 162.0, 166.0, 170.0]
    assert np.isnan(frame[Col.HEART_RATE_BPM.value].iloc[2])  # 400 bpm is not plausible
    assert np.isnan(frame[Col.LAT_DEG.value].iloc[1])
    assert Col.SPEED_MPS.value not in frame.columns
    assert any("velocity_smooth" in n for n in notes)
    assert any("repeated time" in n for n in notes)
    assert any("heart_rate_bpm" in n for n in notes)


def test_no_time_stream_means_no_samples() -> None:
    published = fixture_json("swagger_example_activity_streams_list.json")
    streams = {item["type"]: item["data"] for item in published}
    stream, notes = streams_to_columns(START, streams)
    frame = stream.to_frame()
    assert frame.empty
    assert "no time stream" in notes[0]


@pytest.mark.parametrize(
    ("activity_type", "sport_type", "trainer", "sport", "sub_sport"),
    [
        ("Run", "Run", False, "running", None),
        ("Run", "TrailRun", False, "running", "trail"),
        ("Run", "VirtualRun", False, "running", "virtual_activity"),
        ("Run", "Run", True, "running", "treadmill"),
        ("Run", None, False, "running", None),  # the recorded old format has no sport_type
        ("Ride", "MountainBikeRide", False, "ride", "mountainbikeride"),
        ("Walk", "Walk", False, "walk", None),
    ],
)
def test_sport_mapping(
    activity_type: str, sport_type: str | None, trainer: bool, sport: str, sub_sport: str | None
) -> None:
    raw = run_summary(7, START, sport_type=sport_type, activity_type=activity_type)
    raw["trainer"] = trainer
    activity = summary_to_activity(strava_model.SummaryActivity.model_validate(raw))
    assert (activity.sport, activity.sub_sport) == (sport, sub_sport)
    assert activity.source is Source.STRAVA
    assert activity.source_ref == "7"
    assert activity.dynamics == ()
    assert activity.start_utc == START
    assert activity.elapsed_s == 1800.0


def test_recorded_run_payload_maps_to_an_activity() -> None:
    raw = fixture_json("detailed_activity_run.json")
    activity = summary_to_activity(strava_model.SummaryActivity.model_validate(raw))
    assert activity.sport == "running"
    assert activity.source_ref == "99895560"
    assert activity.start_utc == datetime(2013, 12, 12, 19, 36, 41, tzinfo=UTC)
    assert activity.elapsed_s == 3140.0
    assert activity.moving_s == 2892.0
    assert activity.distance_m == pytest.approx(5781.1)


# -- token storage -------------------------------------------------------------------------------


def test_token_file_is_private_and_replaced_atomically(token_file: Path) -> None:
    store = FileTokenStore(token_file)
    store.save("me", Tokens("a1", "r1", 100))
    assert stat.S_IMODE(token_file.stat().st_mode) == 0o600
    inode = token_file.stat().st_ino
    store.save("me", Tokens("a2", "r2", 200))
    assert token_file.stat().st_ino != inode  # a new file moved into place, not rewritten
    assert stat.S_IMODE(token_file.stat().st_mode) == 0o600
    assert [p.name for p in token_file.parent.iterdir() if p.suffix == ".tmp"] == []
    loaded = store.load("me")
    assert loaded is not None
    assert (loaded.access_token, loaded.refresh_token, loaded.expires_at) == ("a2", "r2", 200)
    store.save("bob", Tokens("a3", "r3", 300))
    assert store.delete("me")
    assert store.load("me") is None
    assert store.load("bob") is not None
    assert store.delete("bob")
    assert not token_file.exists()


def test_token_file_mode_is_tightened_and_corruption_is_a_clear_error(token_file: Path) -> None:
    store = FileTokenStore(token_file)
    store.save("me", Tokens("a1", "r1", 100))
    token_file.chmod(0o644)
    assert store.load("me") is not None
    assert stat.S_IMODE(token_file.stat().st_mode) == 0o600
    token_file.write_text("{not json")
    with pytest.raises(ConfigError, match="strava connect"):
        store.load("me")


def test_tokens_hide_secrets_in_repr() -> None:
    text = repr(Tokens("access-xyz", "refresh-xyz", 1))
    assert "access-xyz" not in text
    assert "refresh-xyz" not in text


def test_without_a_keyring_the_file_under_data_dir_is_used(
    home: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("STRIDEWISE_STRAVA_TOKENS", raising=False)
    monkeypatch.setenv("PYTHON_KEYRING_BACKEND", "keyring.backends.fail.Keyring")
    store = open_token_store()
    assert isinstance(store, FileTokenStore)
    assert store.path == home / "strava_tokens.json"
    assert default_token_file() == home / "strava_tokens.json"


class MemoryKeyring(KeyringBackend):
    """A keyring backend that keeps passwords in memory (a real backend, not a mock)."""

    priority = 1  # type: ignore[assignment]

    def __init__(self) -> None:
        super().__init__()
        self.items: dict[tuple[str, str], str] = {}
        self.broken = False

    def get_password(self, service: str, username: str) -> str | None:
        if self.broken:
            raise KeyringError("locked")
        return self.items.get((service, username))

    def set_password(self, service: str, username: str, password: str) -> None:
        if self.broken:
            raise KeyringError("locked")
        self.items[(service, username)] = password

    def delete_password(self, service: str, username: str) -> None:
        if (service, username) not in self.items:
            raise PasswordDeleteError("not found")
        del self.items[(service, username)]


def test_a_recommended_keyring_is_preferred(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("STRIDEWISE_STRAVA_TOKENS", raising=False)
    monkeypatch.setenv("PYTHON_KEYRING_BACKEND", "tests.test_strava.MemoryKeyring")
    assert isinstance(open_token_store(), KeyringTokenStore)


def test_keyring_store_falls_back_to_the_file_when_the_keyring_fails(token_file: Path) -> None:
    backend = MemoryKeyring()
    store = KeyringTokenStore(backend, FileTokenStore(token_file))
    store.save("me", Tokens("a1", "r1", 100))
    assert not token_file.exists()
    assert json.loads(backend.items[("stridewise-strava", "me")])["refresh_token"] == "r1"
    backend.broken = True
    store.save("me", Tokens("a2", "r2", 200))  # the rotated token must not be lost
    assert stat.S_IMODE(token_file.stat().st_mode) == 0o600
    loaded = store.load("me")
    assert loaded is not None
    assert loaded.refresh_token == "r2"
    backend.broken = False
    store.save("me", Tokens("a3", "r3", 300))
    assert not token_file.exists()  # the stale file copy is removed once the keyring works
    assert store.delete("me")
    assert store.load("me") is None


# -- OAuth -----------------------------------------------------------------------------------------


def _browser(ca_file: Path, visits: list[int]) -> Any:
    """A stand-in for the user's browser: follows the authorize page's redirect."""
    threads: list[threading.Thread] = []

    def open_url(url: str) -> bool:
        def visit() -> None:
            session = requests.Session()
            session.trust_env = False
            response = session.get(url, verify=str(ca_file), timeout=10)
            visits.append(response.status_code)

        thread = threading.Thread(target=visit, daemon=True)
        thread.start()
        threads.append(thread)
        return True

    open_url.threads = threads  # type: ignore[attr-defined]
    return open_url


def test_connect_catches_the_redirect_and_exchanges_the_code(
    strava: StravaServer, token_file: Path
) -> None:
    shown: list[str] = []
    visits: list[int] = []
    opener = _browser(strava.ca_file, visits)
    result = connect_account(
        StravaConnector("me"),
        no_browser=False,
        show=shown.append,
        read_pasted=lambda: pytest.fail("no paste expected"),
        open_url=opener,
        timeout_s=30,
    )
    for thread in opener.threads:
        thread.join(timeout=10)
    assert visits == [200]
    assert result.strava_athlete_id == 1513
    assert result.strava_athlete_name == "Jeff Remer"
    assert result.scope == "read,activity:read_all"
    authorize = strava.requests_to("/oauth/authorize")[0]
    assert authorize.query["scope"] == "activity:read_all"
    assert authorize.query["redirect_uri"].startswith("http://127.0.0.1:")
    exchange = strava.requests_to(TOKEN_PATH)[0]
    assert exchange.form["grant_type"] == "authorization_code"
    stored = FileTokenStore(token_file).load("me")
    assert stored is not None
    assert (stored.access_token, stored.refresh_token) == (
        strava.access_token,
        strava.refresh_token,
    )
    assert stat.S_IMODE(token_file.stat().st_mode) == 0o600
    assert strava.address in shown[0]
    assert strava.access_token not in "".join(shown)


def test_a_redirect_from_another_attempt_is_refused(strava: StravaServer) -> None:
    pasted = "http://localhost/exchange_token?state=someone-else&code=auth-code-1&scope=read"
    with pytest.raises(AuthError, match="state mismatch"):
        connect_account(
            StravaConnector("me"), no_browser=True, show=lambda _: None, read_pasted=lambda: pasted
        )
    assert strava.count(TOKEN_PATH) == 0


def test_refused_activity_permission_is_a_clear_error(strava: StravaServer) -> None:
    strava.granted_scope = "read"
    visits: list[int] = []
    with pytest.raises(AuthError, match="not allowed to share your activities"):
        connect_account(
            StravaConnector("me"),
            no_browser=False,
            show=lambda _: None,
            read_pasted=lambda: "",
            open_url=_browser(strava.ca_file, visits),
            timeout_s=30,
        )


def test_an_invalid_code_is_an_auth_error(strava: StravaServer) -> None:
    with pytest.raises(AuthError, match="strava connect"):
        StravaConnector("me").exchange_code("not-a-valid-code")


def test_missing_application_credentials(
    strava: StravaServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("STRIDEWISE_STRAVA_CLIENT_SECRET")
    with pytest.raises(ConfigError, match="STRIDEWISE_STRAVA_CLIENT_SECRET"):
        StravaConnector("me").authorization_url("http://localhost/x", "state")


def test_token_is_refreshed_before_it_expires_and_persisted(
    strava: StravaServer, token_file: Path
) -> None:
    connected(strava, token_file, expires_in_s=REFRESH_MARGIN_S - 60)
    old_refresh = strava.refresh_token
    StravaConnector("me").list_activities(START, 1, 10)
    refresh = strava.requests_to(TOKEN_PATH)
    assert len(refresh) == 1
    assert refresh[0].form["grant_type"] == "refresh_token"
    assert refresh[0].form["refresh_token"] == old_refresh
    stored = FileTokenStore(token_file).load("me")
    assert stored is not None
    assert stored.refresh_token == strava.refresh_token != old_refresh
    assert stored.expires_at > time.time() + 3600
    assert stat.S_IMODE(token_file.stat().st_mode) == 0o600
    # The list request went out with the new access token.
    assert strava.requests_to(LIST_PATH)[0].authorization == f"Bearer {strava.access_token}"


def test_token_is_not_refreshed_while_well_within_its_life(
    strava: StravaServer, token_file: Path
) -> None:
    connected(strava, token_file, expires_in_s=3 * 3600)
    connector = StravaConnector("me")
    connector.list_activities(START, 1, 10)
    assert strava.count(TOKEN_PATH) == 0
    # Hours later (injected clock), the next request refreshes first.
    connector.clock = lambda: time.time() + 3 * 3600 - 60
    connector.list_activities(START, 1, 10)
    assert strava.count(TOKEN_PATH) == 1


def test_a_revoked_refresh_token_asks_to_reconnect(strava: StravaServer, token_file: Path) -> None:
    connected(strava, token_file, expires_in_s=0)
    strava.refresh_token = "rotated-elsewhere"
    with pytest.raises(AuthError, match="run 'stridewise strava connect' again"):
        StravaConnector("me").list_activities(START, 1, 10)


# -- errors, retries and rate limits ------------------------------------------------------------


def test_401_asks_to_reconnect(strava: StravaServer, token_file: Path) -> None:
    connected(strava, token_file)
    strava.token_valid = False
    with pytest.raises(AuthError, match=r"HTTP 401.*strava connect' again"):
        StravaConnector("me").list_activities(START, 1, 10)


def test_5xx_is_retried_with_backoff(strava: StravaServer, token_file: Path) -> None:
    connected(strava, token_file)
    strava.add(run_summary(1, START))
    strava.inject(LIST_PATH, 500, times=2)
    sleeps = Sleeps()
    found = StravaConnector("me", sleep=sleeps).list_activities(START - timedelta(days=1), 1, 10)
    assert [a.source_ref for a in found] == ["1"]
    assert sleeps == [1.0, 2.0]
    assert strava.count(LIST_PATH) == 3


def test_a_lasting_outage_gives_up_after_the_retries(
    strava: StravaServer, token_file: Path
) -> None:
    connected(strava, token_file)
    strava.inject(LIST_PATH, 503, times=99)
    sleeps = Sleeps()
    with pytest.raises(StravaUnavailableError, match=r"HTTP 503.*tried 5 times"):
        StravaConnector("me", sleep=sleeps).list_activities(START, 1, 10)
    assert sleeps == [1.0, 2.0, 4.0, 8.0]


def test_a_dropped_connection_is_retried(strava: StravaServer, token_file: Path) -> None:
    connected(strava, token_file)
    strava.add(run_summary(1, START), run_streams(30))
    strava.inject(STREAMS_PREFIX, "drop")
    sleeps = Sleeps()
    connector = StravaConnector("me", sleep=sleeps)
    (activity,) = connector.list_activities(START - timedelta(days=1), 1, 10)
    item = connector.fetch_run(activity)
    assert item.activity.n_samples == 30
    assert sleeps == [1.0]


def test_429_stops_with_the_reset_time(strava: StravaServer, token_file: Path) -> None:
    connected(strava, token_file)
    strava.usage["read"] = [100, 500]  # the next read is over the 15-minute limit
    now = datetime(2026, 3, 1, 10, 7, 30, tzinfo=UTC)
    connector = StravaConnector("me", clock=now.timestamp)
    with pytest.raises(RateLimitedError) as caught:
        connector.list_activities(START, 1, 10)
    assert caught.value.reset_at == datetime(2026, 3, 1, 10, 15, tzinfo=UTC)
    assert caught.value.retry_after_s == 450.0
    assert strava.count(LIST_PATH) == 1  # and no retry of a 429


def test_429_on_the_daily_limit_resets_at_midnight(strava: StravaServer, token_file: Path) -> None:
    connected(strava, token_file)
    strava.usage["read"] = [10, 1000]
    now = datetime(2026, 3, 1, 22, 0, tzinfo=UTC)
    with pytest.raises(RateLimitedError) as caught:
        StravaConnector("me", clock=now.timestamp).list_activities(START, 1, 10)
    assert caught.value.reset_at == datetime(2026, 3, 2, tzinfo=UTC)


def test_stops_before_the_limit_without_sending(strava: StravaServer, token_file: Path) -> None:
    connected(strava, token_file)
    strava.usage["read"] = [100 - RATE_RESERVE - 2, 0]
    connector = StravaConnector("me")
    connector.list_activities(START, 1, 10)  # usage 96: 4 left
    connector.list_activities(START, 1, 10)  # usage 97: 3 left = the reserve
    with pytest.raises(RateLimitedError, match="stopped before Strava's rate limit"):
        connector.list_activities(START, 1, 10)
    assert strava.count(LIST_PATH) == 2
    assert strava.usage["read"][0] == 97  # never reached the limit


def test_window_reset_times() -> None:
    assert next_quarter_hour(datetime(2026, 1, 1, 9, 59, 59, tzinfo=UTC)) == datetime(
        2026, 1, 1, 10, 0, tzinfo=UTC
    )
    assert next_quarter_hour(datetime(2026, 1, 1, 9, 30, tzinfo=UTC)) == datetime(
        2026, 1, 1, 9, 45, tzinfo=UTC
    )
    assert next_utc_midnight(datetime(2026, 12, 31, 23, 0, tzinfo=UTC)) == datetime(
        2027, 1, 1, tzinfo=UTC
    )


def test_an_untrusted_certificate_is_not_retried(
    strava: StravaServer, token_file: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import trustme

    other = tmp_path / "other-ca.pem"
    trustme.CA().cert_pem.write_to_path(str(other))
    monkeypatch.setenv("STRIDEWISE_STRAVA_CA", str(other))
    monkeypatch.setenv("REQUESTS_CA_BUNDLE", str(strava.ca_file))  # must not override ours
    connected(strava, token_file)
    sleeps = Sleeps()
    with pytest.raises(ServiceError, match=r"TLS verification failed.*STRIDEWISE_STRAVA_CA"):
        StravaConnector("me", sleep=sleeps).list_activities(START, 1, 10)
    assert sleeps == []
    assert strava.count() == 0


def test_disconnect_revokes_and_deletes_tokens(strava: StravaServer, token_file: Path) -> None:
    connected(strava, token_file)
    refresh = strava.refresh_token
    assert StravaConnector("me").disconnect() is None
    assert strava.revoked == [(refresh, "refresh_token")]
    assert strava.requests_to("/oauth/deauthorize") == []  # retired on 1 June 2027
    assert strava.deauthorized
    assert not token_file.exists()


def test_disconnect_deletes_tokens_when_strava_refuses_the_application(
    strava: StravaServer, token_file: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    connected(strava, token_file)
    monkeypatch.setenv("STRIDEWISE_STRAVA_CLIENT_SECRET", "rotated-secret")
    problem = StravaConnector("me").disconnect()
    assert problem is not None
    assert "refused the API application's credentials" in problem
    assert not strava.deauthorized
    assert not token_file.exists()
    assert list(token_file.parent.iterdir()) == []


def test_disconnect_deletes_tokens_when_strava_cannot_be_reached(
    strava: StravaServer, token_file: Path
) -> None:
    connected(strava, token_file)
    strava.inject("/oauth/revoke", "drop", times=10)
    sleeps = Sleeps()
    problem = StravaConnector("me", sleep=sleeps, retries=1).disconnect()
    assert problem is not None
    assert "revoking stridewise's access at Strava: connection failed" in problem
    assert sleeps == [1.0]
    assert strava.count("/oauth/revoke") == 2
    assert not token_file.exists()
