"""The Garmin Connect adapter: the real garminconnect client, real HTTP to a loopback server.

Login, MFA in two calls, logout, token storage and permissions, error translation, the
original-download zip, and a guard on the private attributes used to redirect the client.
"""

from __future__ import annotations

import io
import json
import stat
import zipfile
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from garminconnect import Garmin
from garminconnect.client import Client

from connectors.fit import decode_fit
from connectors.garmin import (
    API_ENV,
    EMAIL_ENV,
    PASSWORD_ENV,
    SSO_ENV,
    TOKENS_ENV,
    GarminConnect,
    _new_api,
    extract_fit,
    parse_activity,
    pending_mfa_file,
    token_file,
)
from planner.errors import ArchiveError, AuthError, ConfigError, RateLimitedError
from tests.conftest import FIT_DIR, CliResult
from tests.garmin_server import (
    GARMIN_FIXTURES,
    PROFILE_PATH,
    TOKEN_PATH,
    GarminServer,
    fixture_json,
    make_jwt,
    point_at,
    store_tokens,
    token_store,
)

Run = Callable[..., CliResult]
PASSWORD = "correct horse battery staple"


@pytest.fixture
def server(monkeypatch: pytest.MonkeyPatch) -> Iterator[GarminServer]:
    """A loopback Garmin Connect that both the API and the SSO settings point at."""
    with GarminServer() as srv:
        point_at(srv, monkeypatch)
        yield srv


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


# -- guard: the pinned garminconnect still has what we reach into ------------------------------


def test_private_redirect_attributes_exist_on_a_fresh_client() -> None:
    api = Garmin()
    for name in ("_connectapi", "_di_token_url", "_sso"):
        value = getattr(api.client, name, None)
        assert isinstance(value, str), name
        assert value.startswith("https://"), (name, value)
    # The redirect really steers the URLs the client builds.
    api.client._connectapi = "http://127.0.0.1:9"
    assert (
        api.client._resolve_url("/activitylist-service/x")
        == "http://127.0.0.1:9/activitylist-service/x"
    )
    # ...and the public pieces the adapter relies on are there too.
    assert Garmin.ActivityDownloadFormat.ORIGINAL
    for method in ("login", "resume_login", "dumps", "loads"):
        assert callable(getattr(Client, method)), method


def test_settings_redirect_api_token_refresh_and_sso(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(API_ENV, "http://127.0.0.1:5/")
    monkeypatch.setenv(SSO_ENV, "http://127.0.0.1:6")
    api = _new_api()
    assert api.client._connectapi == "http://127.0.0.1:5"
    assert api.client._di_token_url == "http://127.0.0.1:5/di-oauth2-service/oauth/token"
    assert api.client._sso == "http://127.0.0.1:6"
    assert api.retry_attempts == 0  # we retry, with an injectable sleep
    monkeypatch.setenv(API_ENV, "ftp://example.com")
    with pytest.raises(ConfigError, match="http"):
        _new_api()


# -- token store ---------------------------------------------------------------------------------


def test_token_store_is_a_file_or_a_directory(
    tmp_path: Path, home: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv(TOKENS_ENV, raising=False)
    assert token_file() == home / "garmin" / "garmin_tokens.json"
    monkeypatch.setenv(TOKENS_ENV, str(tmp_path / "tokens"))
    assert token_file() == tmp_path / "tokens" / "garmin_tokens.json"
    monkeypatch.setenv(TOKENS_ENV, str(tmp_path / "mine.json"))
    assert token_file() == tmp_path / "mine.json"
    assert pending_mfa_file() == tmp_path / "garmin_mfa_pending.json"


def test_no_tokens_means_not_logged_in(server: GarminServer, run_cli: Run) -> None:
    with pytest.raises(AuthError, match="stridewise garmin login"):
        GarminConnect()
    result = run_cli("sync", "garmin")
    assert result.code == 1
    assert "run 'stridewise garmin login' first" in result.err
    assert server.requests == []


def test_refreshed_tokens_are_written_back_user_only(
    server: GarminServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    store_dir = tmp_path / "garmin-tokens"
    monkeypatch.setenv(TOKENS_ENV, str(store_dir))
    stored = store_tokens(server)
    store_dir.chmod(0o755)
    # Garmin no longer takes the stored access token; the refresh token gets a new one.
    server.token = make_jwt()
    server.refresh_answer = (200, {"access_token": server.token, "refresh_token": "r-3"})
    assert GarminConnect().display_name() == "SANITIZED"
    assert server.count(TOKEN_PATH, "POST") == 1
    saved = json.loads(stored.read_text(encoding="utf-8"))
    assert saved["di_token"] == server.token
    assert saved["di_refresh_token"] == "r-3"
    assert _mode(stored) == 0o600
    assert _mode(store_dir) == 0o700


# -- login, MFA in two calls, logout -------------------------------------------------------------


def test_login_with_mfa_in_two_calls_then_logout(
    server: GarminServer, run_cli: Run, home: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(EMAIL_ENV, "runner@example.com")
    monkeypatch.setenv(PASSWORD_ENV, PASSWORD)

    first = run_cli("garmin", "login")
    assert first.code == 0, first.err
    assert "stridewise garmin login --mfa-code CODE" in first.out
    pending = pending_mfa_file()
    assert _mode(pending) == 0o600
    assert not token_file().exists()

    wrong = run_cli("garmin", "login", "--mfa-code", "000000")
    assert wrong.code == 1
    assert "did not accept the MFA code" in wrong.err
    assert pending.exists()  # the user may still enter the right code

    done = run_cli("garmin", "login", "--mfa-code", "123456")
    assert done.code == 0, done.err
    assert "logged in to Garmin Connect as SANITIZED" in done.out
    assert "password is not stored" in done.out
    tokens = token_file()
    assert _mode(tokens) == 0o600
    assert _mode(tokens.parent) == 0o700
    assert not pending.exists()
    text = tokens.read_text(encoding="utf-8")
    assert json.loads(text)["di_token"] == server.token
    Client().loads(text)  # garminconnect's own format: its client reads it back
    for path in home.rglob("*"):
        if path.is_file():
            assert PASSWORD.encode() not in path.read_bytes(), path
    assert server.count("/mobile/api/login", "POST") == 1

    # Valid tokens: no second login.
    again = run_cli("garmin", "login")
    assert again.code == 0
    assert "already logged in to Garmin Connect as SANITIZED" in again.out
    assert server.count("/mobile/api/login", "POST") == 1

    out = run_cli("garmin", "logout")
    assert out.code == 0
    assert "deleted" in out.out
    assert not tokens.exists()
    assert "not logged in" in run_cli("garmin", "logout").out


def test_mfa_code_without_a_waiting_login(server: GarminServer, run_cli: Run) -> None:
    result = run_cli("garmin", "login", "--mfa-code", "123456")
    assert result.code == 1
    assert "no Garmin login is waiting" in result.err
    assert server.requests == []


def test_login_blocked_with_429_gives_one_clear_message(
    server: GarminServer, run_cli: Run, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(EMAIL_ENV, "runner@example.com")
    monkeypatch.setenv(PASSWORD_ENV, PASSWORD)
    server.sso_status = 429
    result = run_cli("garmin", "login")
    assert result.code == 1
    assert len(result.err.strip().splitlines()) == 1, result.err
    assert "HTTP 429" in result.err
    assert "do not retry in a loop" in result.err
    assert "account export" in result.err
    assert "stridewise import" in result.err
    assert server.count("/mobile/api/login", "POST") == 0
    assert not token_file().exists()


def test_stale_tokens_lead_to_a_fresh_login_not_a_loop(
    server: GarminServer, run_cli: Run, monkeypatch: pytest.MonkeyPatch
) -> None:
    store_tokens(server)
    server.token = make_jwt()  # the stored token is refused, and so is its refresh
    monkeypatch.setenv(EMAIL_ENV, "runner@example.com")
    monkeypatch.setenv(PASSWORD_ENV, PASSWORD)
    server.sso_status = 429
    result = run_cli("garmin", "login")
    assert result.code == 1
    assert "HTTP 429" in result.err
    assert server.count(PROFILE_PATH) == 2  # the check, and once more after the refresh try
    assert server.count(TOKEN_PATH, "POST") == 1


# -- the activity list and the original download -------------------------------------------------


def test_recorded_list_entries_parse_into_our_terms() -> None:
    trail, hike, paddle = (
        parse_activity(e) for e in fixture_json("activitylist_search_activities_limit3.json")
    )
    assert not isinstance(trail, str)
    assert trail.is_running
    assert trail.sport == "running"
    assert trail.type_key == "trail_running"
    assert trail.start_utc.isoformat() == "2026-01-08T14:10:21+00:00"
    assert trail.local_date == "2026-01-08"
    assert trail.elapsed_s == pytest.approx(2225.44, abs=0.01)
    assert trail.distance_m == pytest.approx(4261.19, abs=0.01)
    assert not isinstance(hike, str)
    assert not isinstance(paddle, str)
    assert (hike.sport, hike.is_running) == ("hiking", False)
    assert (paddle.sport, paddle.is_running) == ("stand_up_paddleboarding", False)
    assert "activityId" in str(parse_activity({"activityId": "x"}))
    assert "no start time" in str(parse_activity({"activityId": 5}))


def test_extract_fit_from_the_recorded_original_download() -> None:
    data = (GARMIN_FIXTURES / "11998957007_original.zip").read_bytes()
    fit = extract_fit(data, 11998957007)
    assert len(fit) == 88_212
    (item,) = decode_fit(fit, "yoga").items
    assert (item.activity.sport, item.activity.sub_sport) == ("training", "yoga")


def test_extract_fit_refuses_what_is_not_a_fit_download() -> None:
    run = (FIT_DIR / "garmin-fenix-5-run.fit").read_bytes()
    assert extract_fit(run, 1) == run  # an unzipped FIT is taken as is
    with pytest.raises(ArchiveError, match="not a readable zip"):
        extract_fit(b"PK\x03\x04 broken", 7)
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        archive.writestr("7_ACTIVITY.gpx", "<gpx/>")
    with pytest.raises(ArchiveError, match="holds no FIT file"):
        extract_fit(buffer.getvalue(), 7)


def test_rate_limit_is_translated_with_the_fallback(server: GarminServer) -> None:
    store_tokens(server)
    server.fail(PROFILE_PATH, 429)
    with pytest.raises(RateLimitedError) as caught:
        GarminConnect(sleep=lambda s: None).display_name()
    assert caught.value.retry_after_s == 3600
    assert "stridewise import" in str(caught.value)
    assert server.count(PROFILE_PATH) == 1  # a 429 is never retried


def test_symlinked_token_file_is_refused(
    server: GarminServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    target = tmp_path / "elsewhere.json"
    target.write_text(token_store(server.token), encoding="utf-8")
    store_dir = tmp_path / "tokens"
    store_dir.mkdir()
    (store_dir / "garmin_tokens.json").symlink_to(target)
    monkeypatch.setenv(TOKENS_ENV, str(store_dir))
    # garminconnect refuses it (unless root owns the link); our O_NOFOLLOW read always does.
    with pytest.raises(ConfigError, match=r"symlink|cannot read"):
        GarminConnect()
