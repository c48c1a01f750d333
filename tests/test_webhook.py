"""Strava webhooks end to end: subscribe, handshake, events, deauthorisation.

The loopback Strava (tests/strava_server.py) plays Strava's part as its webhook docs
describe it: it checks the callback with ``hub.challenge`` before creating the subscription
and posts events with the documented payload; the real server (tests/web_helpers.py) takes
them, and its background worker syncs with the real stravalib over HTTPS.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import requests

from planner.records import Source
from planner.services.strava_webhook import VERIFY_TOKEN_KEY, event_record
from planner.store.database import Store
from tests.conftest import CliResult
from tests.strava_server import (
    LIST_PATH,
    SUBSCRIPTIONS_PATH,
    StravaServer,
    run_streams,
    run_summary,
    write_tokens,
)
from tests.web_helpers import csrf_of, live_server, wait_for

Run = Callable[..., CliResult]
DAY0 = datetime.now(UTC).replace(microsecond=0) - timedelta(days=3)


def connect_ana(server: StravaServer, token_file: Path) -> None:
    """Ana connected her Strava account earlier (``strava connect --athlete ana``)."""
    write_tokens(server, token_file, key="ana")


def strava_runs(db: Path) -> list[str]:
    with Store(db) as store:
        return [
            s.activity.source_ref
            for s in store.list_activities("ana")
            if s.activity.source is Source.STRAVA
        ]


def settled(db: Path, key: str) -> Callable[[], bool]:
    def check() -> bool:
        with Store(db) as store:
            record = event_record(store, key)
        return record is not None and record.state in ("done", "ignored", "failed")

    return check


def event_key(server: StravaServer, object_type: str, object_id: int, aspect: str, at: int) -> str:
    (sub_id,) = server.subscriptions
    return f"{sub_id}:{object_type}:{object_id}:{aspect}:{at}"


def test_subscribe_passes_stravas_check_and_is_managed_by_one_command(
    roster_db: Path, strava: StravaServer, run_cli: Run, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="stridewise")
    with live_server(roster_db) as base:
        callback = f"{base}/strava/webhook"
        made = run_cli("strava", "subscribe", "--callback", callback)
        assert made.code == 0, made.err
        with Store(roster_db) as store:
            verify_token = str(store.get_state(VERIFY_TOKEN_KEY))
        assert len(verify_token) >= 32
        assert made.out.strip() == f"created: subscription 120475 -> {callback}"
        assert run_cli("strava", "subscribe", "--callback", callback).out.startswith(
            "unchanged: subscription 120475"
        )
        assert run_cli("strava", "subscribe").out.strip() == (
            f"listed: subscription 120475 -> {callback}"
        )
        # Strava's check with a token that is not ours, or no check at all, gets nothing.
        wrong = requests.get(
            callback,
            params={"hub.mode": "subscribe", "hub.challenge": "abc", "hub.verify_token": "x"},
            timeout=30,
        )
        assert wrong.status_code == 403
        assert "abc" not in wrong.text
        deleted = run_cli("strava", "subscribe", "--delete")
        assert deleted.out.strip() == f"deleted: subscription 120475 -> {callback}"
        assert strava.subscriptions == {}
        assert run_cli("strava", "subscribe").out.strip() == "no Strava push subscription"
    logged = "\n".join(r.getMessage() for r in caplog.records)
    assert "GET /strava/webhook 200" in logged  # Strava's check, logged without its query
    assert verify_token not in logged
    (created,) = [s for s in strava.requests_to(SUBSCRIPTIONS_PATH) if s.method == "POST"]
    assert created.form["verify_token"] == verify_token


def test_subscribing_without_a_running_server_fails_in_one_line(
    roster_db: Path, strava: StravaServer, run_cli: Run
) -> None:
    result = run_cli("strava", "subscribe", "--callback", "http://127.0.0.1:9/strava/webhook")
    assert result.code == 1
    assert result.err.startswith("stridewise: error: creating the Strava push subscription")
    assert len(result.err.strip().splitlines()) == 1
    assert strava.subscriptions == {}


def test_a_new_run_event_syncs_once_in_the_background(
    roster_db: Path, strava: StravaServer, token_file: Path, run_cli: Run
) -> None:
    connect_ana(strava, token_file)
    with live_server(roster_db) as base:
        assert run_cli("strava", "subscribe", "--callback", f"{base}/strava/webhook").code == 0
        strava.add(run_summary(9001, DAY0), run_streams(300))
        at = int(time.time())
        first = strava.push_event("activity", 9001, "create", event_time=at)
        assert first.status_code == 200
        assert first.json() == {"received": True, "new": True}
        again = strava.push_event("activity", 9001, "create", event_time=at)  # Strava's retry
        assert again.json() == {"received": True, "new": False}
        key = event_key(strava, "activity", 9001, "create", at)
        wait_for(settled(roster_db, key))
        assert strava.count(LIST_PATH) == 1  # exactly one sync for the event sent twice
        assert strava_runs(roster_db) == ["9001"]
        with Store(roster_db) as store:
            record = event_record(store, key)
        assert record is not None
        assert record.state == "done"
        assert record.athlete_id == "ana"
        assert record.outcome is not None
        assert record.outcome.startswith("synced: 1 imported")
        assert "re-analysed" in record.outcome

        # A later change of the same run is a new event: one more (incremental) sync.
        update = strava.push_event(
            "activity", 9001, "update", updates={"title": "Easy run"}, event_time=at + 60
        )
        assert update.json()["new"] is True
        wait_for(settled(roster_db, event_key(strava, "activity", 9001, "update", at + 60)))
        assert strava.count(LIST_PATH) == 2
        assert strava_runs(roster_db) == ["9001"]


def test_events_not_from_our_subscription_or_malformed_change_nothing(
    roster_db: Path, strava: StravaServer, token_file: Path, run_cli: Run
) -> None:
    connect_ana(strava, token_file)
    with live_server(roster_db) as base:
        callback = f"{base}/strava/webhook"
        assert run_cli("strava", "subscribe", "--callback", callback).code == 0
        body = {
            "aspect_type": "create",
            "event_time": 1516126040,
            "object_id": 1360128428,
            "object_type": "activity",
            "owner_id": 134815,
            "subscription_id": 1,  # not ours
            "updates": {},
        }
        other = requests.post(callback, json=body, timeout=30)
        assert other.json() == {"received": False, "new": False}
        broken = requests.post(callback, data=b"{not json", timeout=30)
        assert broken.status_code == 400
        odd = requests.post(callback, json={**body, "object_type": "club"}, timeout=30)
        assert odd.status_code == 400
        huge = requests.post(callback, data=b"[" + b"0," * 40000 + b"0]", timeout=30)
        assert huge.status_code == 413
    with Store(roster_db) as store:
        assert store.db.execute("SELECT COUNT(*) FROM strava_events").fetchone()[0] == 0
    assert strava.count(LIST_PATH) == 0


def test_deauthorisation_deletes_the_tokens_once_strava_confirms(
    roster_db: Path, strava: StravaServer, token_file: Path, run_cli: Run
) -> None:
    connect_ana(strava, token_file)
    with live_server(roster_db) as base:
        assert run_cli("strava", "subscribe", "--callback", f"{base}/strava/webhook").code == 0
        # Anyone can post to the callback: while Strava still accepts Ana's tokens, a
        # deauthorisation event is not believed.
        owner = int(strava.athlete["id"])
        at = int(time.time())
        deauth = {"updates": {"authorized": "false"}}
        forged = strava.push_event("athlete", owner, "update", event_time=at, **deauth)
        assert forged.status_code == 200
        key = event_key(strava, "athlete", owner, "update", at)
        wait_for(settled(roster_db, key))
        assert "ana" in json.loads(token_file.read_text())["accounts"]

        strava.revoke_athlete()  # Ana withdraws access on Strava's settings page
        real = strava.push_event("athlete", owner, "update", event_time=at + 5, **deauth)
        assert real.status_code == 200
        key = event_key(strava, "athlete", owner, "update", at + 5)
        wait_for(settled(roster_db, key))
        with Store(roster_db) as store:
            record = event_record(store, key)
    assert record is not None
    assert record.state == "done"
    assert "disconnected" in (record.outcome or "")
    assert not token_file.exists() or "ana" not in json.loads(token_file.read_text())["accounts"]
    assert run_cli("sync", "strava", "--athlete", "ana").err.strip() == (
        "stridewise: error: Strava is not connected: run 'stridewise strava connect --athlete ana'"
    )


def test_events_left_queued_by_a_stopped_server_run_at_the_next_start(
    roster_db: Path, strava: StravaServer, token_file: Path
) -> None:
    from planner.services.strava_webhook import SUBSCRIPTION_KEY, record_event

    connect_ana(strava, token_file)
    strava.add(run_summary(9100, DAY0), run_streams(300))
    with Store(roster_db) as store:
        store.set_state(SUBSCRIPTION_KEY, 7)
        key, new = record_event(
            store,
            {
                "aspect_type": "create",
                "event_time": 1700000000,
                "object_id": 9100,
                "object_type": "activity",
                "owner_id": int(strava.athlete["id"]),
                "subscription_id": 7,
                "updates": {},
            },
        )
    assert new
    assert key is not None
    with live_server(roster_db):
        wait_for(settled(roster_db, key))
    assert strava_runs(roster_db) == ["9100"]
    assert strava.count(LIST_PATH) == 1


def test_strava_connect_can_finish_on_the_server(
    roster_db: Path, strava: StravaServer, token_file: Path
) -> None:
    """The athlete page's "Connect Strava": Strava's consent page sends the browser back to
    /strava/authorized on this server, which stores the tokens like 'strava connect'."""
    with live_server(roster_db) as base:
        browser = requests.Session()
        browser.verify = str(strava.ca_file)
        browser.trust_env = False  # else REQUESTS_CA_BUNDLE would replace `verify`
        csrf = csrf_of(browser.get(f"{base}/athletes/bo", timeout=60).text)
        answer = browser.post(f"{base}/athletes/bo/strava-connect", data={"csrf": csrf}, timeout=60)
        assert answer.status_code == 200
        assert answer.url == f"{base}/athletes/bo"
        assert "Strava is connected" in answer.text
        (consent,) = strava.requests_to("/oauth/authorize")
        assert consent.query["redirect_uri"] == f"{base}/strava/authorized"
        # The code Strava handed over cannot be replayed, nor used from another session.
        replay = requests.get(
            f"{base}/strava/authorized",
            params={"state": consent.query["state"], "code": "auth-code-1"},
            timeout=60,
        )
        assert replay.status_code == 403
    assert "bo" in json.loads(token_file.read_text())["accounts"]
    assert strava.access_token not in answer.text
