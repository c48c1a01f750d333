"""Strava's 2027 changes: API host by date with fallback, OAuth host apart, tokens in headers.

The host choice is pure (``api_bases(hosts, now)``); the connector is exercised with real
stravalib over real HTTPS against the loopback Strava, which serves the API both under
``/api/v3`` and at the root (the layout of ``api-v3.strava.com``).
"""

from __future__ import annotations

import io
import json
import socket
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from connectors.strava import StravaConnector, StravaUnavailableError
from connectors.strava_hosts import (
    NEW_API_BASE,
    NEW_API_FROM,
    OAUTH_HOST,
    OLD_API_BASE,
    OLD_API_UNTIL,
    StravaHosts,
    api_bases,
    hosts_from_env,
)
from planner.errors import ConfigError
from planner.services.sync import sync_account
from planner.store.database import Store
from tests.conftest import CliResult
from tests.strava_server import (
    CLIENT_SECRET,
    Sleeps,
    StravaServer,
    point_stridewise_at,
    run_streams,
    run_summary,
)
from tests.strava_server import write_tokens as connect

Run = Callable[..., CliResult]
NEW = "https://api.new.example"
OLD = "https://old.example/api/v3"
HOSTS = StravaHosts(oauth="auth.example", api_new=NEW, api_old=OLD)


# -- the date rule (pure) -----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("now", "expected"),
    [
        (datetime(2026, 12, 2, tzinfo=UTC), (OLD,)),
        (NEW_API_FROM - timedelta(seconds=1), (OLD,)),
        (NEW_API_FROM, (NEW, OLD)),
        (datetime(2027, 3, 1, tzinfo=UTC), (NEW, OLD)),
        (OLD_API_UNTIL - timedelta(seconds=1), (NEW, OLD)),
        (OLD_API_UNTIL, (NEW,)),
        (datetime(2030, 1, 1, tzinfo=UTC), (NEW,)),
    ],
)
def test_api_base_by_date(now: datetime, expected: tuple[str, ...]) -> None:
    assert api_bases(HOSTS, now) == expected


def test_the_dates_are_strava_s() -> None:
    dates = (NEW_API_FROM, OLD_API_UNTIL)
    assert dates == (
        datetime(2027, 1, 4, tzinfo=UTC),
        datetime(2027, 6, 1, tzinfo=UTC),
    )
    defaults = StravaHosts()
    assert (defaults.oauth, defaults.api_new, defaults.api_old) == (
        "www.strava.com",
        "https://api-v3.strava.com",
        "https://www.strava.com/api/v3",
    )


def test_a_configured_host_is_used_whatever_the_date() -> None:
    pinned = hosts_from_env({"STRIDEWISE_STRAVA_API": "127.0.0.1:8443"})
    for now in (datetime(2026, 1, 1, tzinfo=UTC), datetime(2027, 2, 1, tzinfo=UTC)):
        assert api_bases(pinned, now) == ("https://127.0.0.1:8443/api/v3",)


@pytest.mark.parametrize(
    ("environ", "oauth", "base"),
    [
        ({}, OAUTH_HOST, None),
        (
            {"STRIDEWISE_STRAVA_API": "127.0.0.1:8443"},
            "127.0.0.1:8443",
            "https://127.0.0.1:8443/api/v3",
        ),
        (
            {"STRIDEWISE_STRAVA_API": "https://proxy.lan:9000/"},
            "proxy.lan:9000",
            "https://proxy.lan:9000",
        ),
        (
            {
                "STRIDEWISE_STRAVA_API": "https://proxy.lan/x",
                "STRIDEWISE_STRAVA_OAUTH": "sso.lan:444",
            },
            "sso.lan:444",
            "https://proxy.lan/x",
        ),
        ({"STRIDEWISE_STRAVA_OAUTH": "sso.lan"}, "sso.lan", None),
    ],
)
def test_hosts_from_the_environment(environ: dict[str, str], oauth: str, base: str | None) -> None:
    hosts = hosts_from_env(environ)
    assert hosts.oauth == oauth
    if base is None:
        assert (hosts.api_new, hosts.api_old, hosts.pinned) == (NEW_API_BASE, OLD_API_BASE, False)
    else:
        assert (hosts.api_new, hosts.api_old, hosts.pinned) == (base, base, True)


@pytest.mark.parametrize(
    "environ",
    [
        {"STRIDEWISE_STRAVA_API": "http://127.0.0.1:8443"},
        {"STRIDEWISE_STRAVA_API": "127.0.0.1:port"},
        {"STRIDEWISE_STRAVA_API": "127.0.0.1:8443/api/v3"},
        {"STRIDEWISE_STRAVA_OAUTH": "https://www.strava.com"},
    ],
)
def test_bad_host_settings_are_one_clear_error(environ: dict[str, str]) -> None:
    with pytest.raises(ConfigError, match=r"STRIDEWISE_STRAVA_(API|OAUTH) must be"):
        hosts_from_env(environ)


# -- against the loopback Strava ------------------------------------------------------------------

DAY0 = datetime.now(UTC).replace(microsecond=0) - timedelta(days=10)


@pytest.fixture
def token_file(tmp_path: Path) -> Path:
    return tmp_path / "secret" / "strava.json"


@pytest.fixture
def strava(
    tmp_path: Path, token_file: Path, monkeypatch: pytest.MonkeyPatch
) -> Iterator[StravaServer]:
    with StravaServer(tmp_path) as server:
        point_stridewise_at(server, token_file, monkeypatch.setenv)
        server.add(run_summary(501, DAY0), run_streams(60))
        yield server


@pytest.fixture
def silent_port() -> Iterator[int]:
    """A loopback port that refuses connections: bound, never listening (a host that does
    not answer)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        yield int(sock.getsockname()[1])


def loopback_hosts(server: StravaServer, new: str | None = None) -> StravaHosts:
    """Strava's layout on the loopback: the new base at the root, the old under /api/v3."""
    return StravaHosts(
        oauth=server.address,
        api_new=new or f"https://{server.address}",
        api_old=f"https://{server.address}/api/v3",
    )


def test_before_4_january_2027_the_api_is_on_the_old_base(
    strava: StravaServer, token_file: Path
) -> None:
    connect(strava, token_file)
    connector = StravaConnector(
        "me", hosts=loopback_hosts(strava), now=datetime(2026, 12, 31, tzinfo=UTC)
    )
    assert [a.source_ref for a in connector.list_activities(DAY0 - timedelta(1), 1, 5)] == ["501"]
    assert [s.path for s in strava.log] == ["/api/v3/athlete/activities"]


def test_from_4_january_2027_the_api_is_on_the_new_base_and_oauth_stays(
    strava: StravaServer, token_file: Path
) -> None:
    connect(strava, token_file, expires_in_s=60)  # forces a refresh through OAuth first
    connector = StravaConnector(
        "me", hosts=loopback_hosts(strava), now=datetime(2027, 1, 4, tzinfo=UTC)
    )
    [activity] = connector.list_activities(DAY0 - timedelta(1), 1, 5)
    connector.fetch_run(activity)
    assert [s.path for s in strava.log] == [
        "/oauth/token",
        "/athlete/activities",
        "/activities/501/streams",
    ]
    assert connector.fell_back_from is None
    url = connector.authorization_url("http://127.0.0.1:1/authorized", "st")
    assert url.startswith(f"https://{strava.address}/oauth/authorize?")


def test_until_1_june_2027_a_silent_new_host_falls_back_to_the_old_one(
    strava: StravaServer, token_file: Path, silent_port: int
) -> None:
    connect(strava, token_file)
    silent = f"https://127.0.0.1:{silent_port}"
    sleeps = Sleeps()
    connector = StravaConnector(
        "me",
        hosts=loopback_hosts(strava, new=silent),
        now=datetime(2027, 5, 31, 23, 0, tzinfo=UTC),
        sleep=sleeps,
    )
    [activity] = connector.list_activities(DAY0 - timedelta(1), 1, 5)
    connector.fetch_run(activity)
    assert connector.fell_back_from == silent
    assert sleeps == []  # no waiting: the fallback is tried at once
    # Once fallen back, the run stays on the old base: the silent host is not asked again.
    assert [s.path for s in strava.log] == [
        "/api/v3/athlete/activities",
        "/api/v3/activities/501/streams",
    ]


def test_a_sync_reports_the_fallback(
    strava: StravaServer, token_file: Path, silent_port: int, tmp_path: Path
) -> None:
    connect(strava, token_file)
    silent = f"https://127.0.0.1:{silent_port}"
    connector = StravaConnector(
        "me", hosts=loopback_hosts(strava, new=silent), now=datetime(2027, 3, 1, tzinfo=UTC)
    )
    with Store(tmp_path / "db.sqlite") as store:
        summary = sync_account(store, "strava", since=DAY0 - timedelta(days=1), session=connector)
    assert summary.as_json()["api_fallback"] == silent
    assert len(summary.imported) == 1
    assert summary.error is None


def test_an_http_error_from_the_new_host_is_an_answer_not_a_reason_to_fall_back(
    strava: StravaServer, token_file: Path
) -> None:
    connect(strava, token_file)
    strava.inject("/athlete/activities", 503, times=10)
    sleeps = Sleeps()
    connector = StravaConnector(
        "me",
        hosts=loopback_hosts(strava),
        now=datetime(2027, 2, 1, tzinfo=UTC),
        sleep=sleeps,
        retries=1,
    )
    with pytest.raises(StravaUnavailableError, match="HTTP 503"):
        connector.list_activities(DAY0 - timedelta(1), 1, 5)
    assert connector.fell_back_from is None
    assert [s.path for s in strava.log] == ["/athlete/activities"] * 2


def test_from_1_june_2027_there_is_no_fallback(
    strava: StravaServer, token_file: Path, silent_port: int
) -> None:
    connect(strava, token_file)
    sleeps = Sleeps()
    connector = StravaConnector(
        "me",
        hosts=loopback_hosts(strava, new=f"https://127.0.0.1:{silent_port}"),
        now=OLD_API_UNTIL,
        sleep=sleeps,
        retries=2,
    )
    with pytest.raises(StravaUnavailableError, match=r"connection failed.*tried 3 times"):
        connector.list_activities(DAY0 - timedelta(1), 1, 5)
    assert sleeps == [1.0, 2.0]
    assert strava.log == []


def test_the_environment_can_point_the_api_and_oauth_at_two_places(
    strava: StravaServer, token_file: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    connect(strava, token_file, expires_in_s=60)  # a refresh through OAuth first
    monkeypatch.setenv("STRIDEWISE_STRAVA_API", f"https://{strava.address}")  # new layout
    monkeypatch.setenv("STRIDEWISE_STRAVA_OAUTH", strava.address)
    connector = StravaConnector("me", now=datetime(2026, 12, 2, tzinfo=UTC))
    connector.list_activities(DAY0 - timedelta(1), 1, 5)
    assert [s.path for s in strava.log] == ["/oauth/token", "/athlete/activities"]


def test_the_clock_chooses_the_base_when_now_is_not_given(
    strava: StravaServer, token_file: Path
) -> None:
    connect(strava, token_file)
    later = datetime(2027, 7, 1, tzinfo=UTC)
    connector = StravaConnector("me", hosts=loopback_hosts(strava), clock=later.timestamp)
    assert connector.api_bases == [f"https://{strava.address}"]


# -- where the tokens travel ---------------------------------------------------------------------


def test_no_request_carries_a_token_outside_the_authorization_header(
    strava: StravaServer, token_file: Path, run_cli: Run, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Every request of connect, a sync with a token refresh, and disconnect, as the fake saw
    it: the access token only ever in ``Authorization: Bearer``; the refresh token only in
    the form body of ``oauth/token`` (refresh grant) and ``oauth/revoke`` — where OAuth puts
    it (RFC 6749 §6, RFC 7009 §2.1) — and never in a URL; the client secret only in the form
    body of ``oauth/token`` or as HTTP Basic for ``oauth/revoke``."""
    monkeypatch.setattr("sys.stdin", io.StringIO("auth-code-1\n"))
    assert run_cli("strava", "connect", "--no-browser").code == 0
    # Make the stored access token expire soon, so the sync refreshes it first.
    stored = json.loads(token_file.read_text())
    stored["accounts"]["me"]["expires_at"] = int(time.time()) + 30
    token_file.write_text(json.dumps(stored))
    assert run_cli("sync", "strava", "--since", f"{DAY0 - timedelta(days=1):%Y-%m-%d}").code == 0
    assert run_cli("strava", "disconnect").code == 0

    paths = [s.path for s in strava.log]
    assert paths == [
        "/oauth/token",  # code exchange
        "/oauth/token",  # refresh
        "/api/v3/athlete/activities",
        "/api/v3/activities/501/streams",
        "/oauth/revoke",
    ]
    access = strava.issued[::2]
    refresh = strava.issued[1::2]
    assert len(access) == 3  # the fake's first pair, then from the exchange and the refresh
    for seen in strava.log:
        others = " ".join(f"{k}: {v}" for k, v in seen.headers if k.lower() != "authorization")
        for token in access + refresh:
            assert token not in seen.target, seen
            assert token not in others, seen
        for token in access:
            assert token not in seen.body, seen
        if seen.path.startswith("/api/v3/"):
            assert seen.authorization in {f"Bearer {t}" for t in access}
            assert seen.body == ""
        elif seen.path == "/oauth/revoke":
            assert (seen.authorization or "").startswith("Basic ")
            assert seen.form == {"token": refresh[-1], "token_type_hint": "refresh_token"}
        else:
            assert seen.authorization is None
            assert seen.form["client_secret"] == CLIENT_SECRET
        assert CLIENT_SECRET not in seen.target
    assert strava.requests_to("/oauth/deauthorize") == []
    assert strava.deauthorized
