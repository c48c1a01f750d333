"""``stridewise serve`` over real HTTP: roster, buttons, access control, the calendar feed.

The real uvicorn server on loopback (tests/web_helpers.py), the real store with real FIT runs,
a real SMTP server for the send button; requests is the client. Webhooks are in
tests/test_webhook.py, the browser in tests/test_browser.py.
"""

from __future__ import annotations

import logging
import os
import re
import signal
import subprocess
import sys
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING

import icalendar
import pytest
import requests

from planner.plan import IsoWeek
from planner.store.database import Store
from tests.conftest import CliResult
from tests.garmin_server import GarminServer, point_at, store_tokens
from tests.web_helpers import csrf_of, live_server, page

if TYPE_CHECKING:
    from tests.smtp_helpers import SmtpServer

pytest_plugins = ["tests.smtp_helpers"]

Run = Callable[..., CliResult]
ROOT = Path(__file__).resolve().parent.parent
TOKEN = "coach-token-0123456789abcdef"


def this_week() -> str:
    # Both athletes' time zones (Lisbon, UTC) agree on the ISO week but for minutes a year.
    return str(IsoWeek.containing(datetime.now(UTC).date()))


def press(session: requests.Session, base: str, athlete: str, action: str) -> str:
    """Press a button of the athlete page as a browser would; return the page it leads to."""
    csrf = csrf_of(page(session, f"{base}/athletes/{athlete}"))
    answer = session.post(f"{base}/athletes/{athlete}/{action}", data={"csrf": csrf}, timeout=60)
    assert answer.status_code == 200, answer.text[:300]
    return answer.text


def revision(db: Path, athlete: str, week: str) -> int | None:
    with Store(db) as store:
        row = store.db.execute(
            "SELECT revision FROM plans WHERE athlete_id = ? AND week = ?", (athlete, week)
        ).fetchone()
    return None if row is None else int(row[0])


# -- the roster and the buttons ----------------------------------------------------------------


def test_roster_lists_every_athlete_escaped_with_safe_headers(roster_db: Path) -> None:
    with live_server(roster_db) as base:
        answer = requests.get(base + "/", timeout=60)
    assert answer.status_code == 200
    html = answer.text
    assert 'href="/athletes/ana"' in html
    assert 'href="/athletes/bo"' in html
    assert "<script" not in html  # the name is shown as text
    assert "Ana &lt;script&gt;alert(&#34;x&#34;)&lt;/script&gt; Lúcia" in html
    assert html.count("not built") == 2
    assert "no runs yet" in html  # Bo
    csp = answer.headers["Content-Security-Policy"]
    assert "default-src 'none'" in csp
    assert "script-src" not in csp
    assert answer.headers["X-Content-Type-Options"] == "nosniff"
    assert "httponly" in answer.headers["Set-Cookie"].lower()


def test_rebuild_needs_the_csrf_token_and_changes_nothing_twice(roster_db: Path) -> None:
    week = this_week()
    with live_server(roster_db) as base:
        session = requests.Session()
        page(session, f"{base}/athletes/ana")
        forged = session.post(f"{base}/athletes/ana/rebuild", data={"csrf": "guess"}, timeout=60)
        assert forged.status_code == 403
        stranger = requests.post(f"{base}/athletes/ana/rebuild", data={}, timeout=60)
        assert stranger.status_code == 403
        assert revision(roster_db, "ana", week) is None

        html = press(session, base, "ana", "rebuild")
        assert f"Plan for {week} built (revision 1)." in html
        assert f"The plan for {week}" in html
        assert "session" in html
        assert revision(roster_db, "ana", week) == 1
        again = press(session, base, "ana", "rebuild")
        assert f"Plan for {week} is up to date (revision 1)." in again
        assert revision(roster_db, "ana", week) == 1  # same data, same plan, same revision

        roster = page(session, base + "/")
    row = re.search(r'href="/athletes/ana".*?</tr>', roster, re.S)
    assert row is not None
    assert "built" in row.group(0)
    assert "not built" not in row.group(0)
    assert re.search(r"Push|Swing|Posture|Strength balance|no area stands out", row.group(0))


def test_sort_and_filter_by_limiter(roster_db: Path) -> None:
    with live_server(roster_db) as base:
        session = requests.Session()
        press(session, base, "ana", "rebuild")
        with Store(roster_db) as store:
            from planner.services.dashboard import roster

            ana = next(r for r in roster(store) if r.athlete_id == "ana")
        shown = ana.limiter.area or "none"
        only_ana = page(session, f"{base}/?limiter={shown}")
        everyone = page(session, f"{base}/?sort=last_run")
        unknown = session.get(f"{base}/?sort=shoe_size", timeout=60)
    if shown == "none":
        assert "/athletes/ana" in only_ana
        assert "/athletes/bo" in only_ana
    else:
        assert "/athletes/ana" in only_ana
        assert "/athletes/bo" not in only_ana
    assert everyone.index("/athletes/ana") < everyone.index("/athletes/bo")  # Bo: no runs
    assert unknown.status_code == 400
    assert "unknown sort" in unknown.text


def test_send_button_mails_the_week_once(
    roster_db: Path, smtp_server: SmtpServer, smtp_password: str
) -> None:
    with live_server(roster_db) as base:
        session = requests.Session()
        sent = press(session, base, "ana", "send")
        assert f"Plan for {this_week()} e-mailed to ana@example.org." in sent
        again = press(session, base, "ana", "send")
        assert "was already e-mailed: not sent again" in again
        roster = page(session, base + "/")
    assert len(smtp_server.received) == 1
    assert "ana@example.org" in smtp_server.received[0].message()["To"]
    assert "built, e-mailed" in roster


def test_a_failed_action_is_the_athletes_last_error(roster_db: Path) -> None:
    with live_server(roster_db) as base:
        session = requests.Session()
        html = press(session, base, "bo", "send")  # no SMTP server configured
        assert 'class="notice notice-bad"' in html
        assert "[smtp]" in html or "SMTP" in html  # the reason, in plain words
        roster = page(session, base + "/")
    row = re.search(r'href="/athletes/bo".*?</tr>', roster, re.S)
    assert row is not None
    assert 'class="error"' in row.group(0)


def test_unknown_athlete_and_action_are_one_plain_sentence(roster_db: Path) -> None:
    with live_server(roster_db) as base:
        session = requests.Session()
        missing = session.get(f"{base}/athletes/nobody", timeout=60)
        csrf = csrf_of(page(session, f"{base}/athletes/bo"))
        odd = session.post(f"{base}/athletes/bo/delete-all", data={"csrf": csrf}, timeout=60)
    assert missing.status_code == 404
    assert "no athlete &#39;nobody&#39;" in missing.text
    assert odd.status_code == 400
    assert "unknown action" in odd.text
    assert "Traceback" not in missing.text + odd.text


# -- safe by default ---------------------------------------------------------------------------


def test_serve_refuses_a_public_address_without_an_access_token(
    run_cli: Run, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("STRIDEWISE_SERVE_TOKEN", raising=False)
    result = run_cli("serve", "--host", "0.0.0.0", "--port", "0")
    assert result.code == 1
    assert "refusing to listen on 0.0.0.0 without an access token" in result.err
    monkeypatch.setenv("STRIDEWISE_SERVE_TOKEN", "short")
    result = run_cli("serve", "--host", "0.0.0.0", "--port", "0")
    assert result.code == 1
    assert "too short" in result.err
    assert "short" not in result.err.replace("too short", "")  # the value itself is not shown


def test_with_an_access_token_pages_need_a_login(roster_db: Path) -> None:
    with live_server(roster_db, token=TOKEN, loopback_only=False) as base:
        first = requests.get(base + "/", timeout=60, allow_redirects=False)
        assert first.status_code == 303
        assert first.headers["Location"] == "/login"
        session = requests.Session()  # a browser opening the log-in page first
        login = page(session, base + "/login")
        wrong = session.post(
            base + "/login", data={"csrf": csrf_of(login), "token": "nope"}, timeout=60
        )
        assert wrong.status_code == 403
        assert "not the access token" in wrong.text
        right = session.post(
            base + "/login", data={"csrf": csrf_of(login), "token": TOKEN}, timeout=60
        )
        assert right.status_code == 200
        assert "/athletes/ana" in right.text
        scripted = requests.get(
            base + "/", headers={"Authorization": f"Bearer {TOKEN}"}, timeout=60
        )
        assert scripted.status_code == 200
        blocked_post = requests.post(base + "/athletes/ana/rebuild", timeout=60)
        assert blocked_post.status_code == 401
        pages = right.text + page(session, base + "/athletes/ana") + login
    assert TOKEN not in pages
    assert TOKEN not in str(session.cookies.get_dict())


def test_a_loopback_server_answers_loopback_host_names_only(roster_db: Path) -> None:
    """A page on another site whose DNS name points at 127.0.0.1 gets nothing."""
    with live_server(roster_db) as base:
        rebound = requests.get(base + "/", headers={"Host": "evil.example:80"}, timeout=60)
        local = requests.get(base + "/", headers={"Host": "localhost"}, timeout=60)
    assert rebound.status_code == 400
    assert "Ana" not in rebound.text
    assert local.status_code == 200


def test_stridewise_serve_runs_prints_its_address_and_stops_on_ctrl_c(tmp_path: Path) -> None:
    env = {**os.environ, "STRIDEWISE_HOME": str(tmp_path / "home"), "PYTHONUNBUFFERED": "1"}
    env.pop("STRIDEWISE_SERVE_TOKEN", None)
    proc = subprocess.Popen(
        [sys.executable, "-c", "from cli import main; main()", "serve", "--port", "0"],
        stderr=subprocess.PIPE,
        text=True,
        env=env,
        cwd=ROOT,
    )
    try:
        assert proc.stderr is not None
        line = proc.stderr.readline()
        found = re.match(r"serving on (http://127\.0\.0\.1:\d+) ", line)
        assert found is not None, line
        answer = requests.get(found.group(1) + "/", timeout=60)
        assert answer.status_code == 200
        assert "No athletes" in answer.text
    finally:
        proc.send_signal(signal.SIGINT)
        _, err = proc.communicate(timeout=60)
    assert proc.returncode == 0, err
    assert "GET / 200" in err
    assert "stopped" in err


# -- calendar feed -----------------------------------------------------------------------------


def _feed(url: str) -> tuple[int, icalendar.Calendar | None]:
    answer = requests.get(url, timeout=60)
    if answer.status_code != 200:
        return answer.status_code, None
    assert answer.headers["Content-Type"].startswith("text/calendar")
    assert "Set-Cookie" not in answer.headers  # a calendar app gets no session
    return 200, icalendar.Calendar.from_ical(answer.content)


def _events(cal: icalendar.Calendar) -> dict[str, tuple[int, str]]:
    return {
        str(ev["UID"]): (int(ev["SEQUENCE"]), ev.decoded("DTSTART").isoformat())
        for ev in cal.walk("VEVENT")
    }


def test_calendar_feed_holds_this_and_next_week_and_updates_in_place(
    roster_db: Path, run_cli: Run, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="stridewise")
    with live_server(roster_db) as base:
        made = run_cli("athlete", "calendar-url", "ana", "--base-url", base)
        assert made.code == 0, made.err
        url = made.out.strip()
        assert re.fullmatch(re.escape(base) + r"/calendar/[A-Za-z0-9_-]{43}\.ics", url)
        assert run_cli("athlete", "calendar-url", "ana", "--base-url", base).out.strip() == url

        status, cal = _feed(url)
        assert status == 200
        assert cal is not None
        first = _events(cal)
        week = IsoWeek.containing(datetime.now(UTC).date())
        days = {d for _, d in first.values()}
        assert any(d < str(week.shift(1).monday()) for d in days)  # this week
        assert any(d >= str(week.shift(1).monday()) for d in days)  # and next week
        assert {seq for seq, _ in first.values()} == {0}
        assert _events(_feed(url)[1]) == first  # stable UIDs, nothing changed

        # The coach changes the athlete's sessions; the rebuilt weeks update, not duplicate.
        assert run_cli("athlete", "edit", "ana", "--minutes", "40").code == 0
        session = requests.Session()
        press(session, base, "ana", "rebuild")
        csrf = csrf_of(page(session, f"{base}/athletes/ana"))
        session.post(
            f"{base}/athletes/ana/rebuild",
            data={"csrf": csrf, "week": str(week.shift(1))},
            timeout=60,
        )
        changed = _events(_feed(url)[1])
        assert set(changed) == set(first)
        assert {seq for seq, _ in changed.values()} == {1}

        rotated = run_cli("athlete", "calendar-url", "ana", "--rotate", "--base-url", base)
        new_url = rotated.out.strip()
        assert new_url != url
        assert "no longer works" in rotated.err
        assert _feed(url)[0] == 404
        assert _feed(new_url)[0] == 200
        assert run_cli("athlete", "calendar-url", "ana", "--revoke").code == 0
        assert _feed(new_url)[0] == 404
    token = url.rsplit("/", 1)[1].removesuffix(".ics")
    logged = "\n".join(r.getMessage() for r in caplog.records)
    assert "GET /calendar/….ics 200" in logged
    assert token not in logged
    assert new_url.rsplit("/", 1)[1] not in logged


def test_calendar_url_for_an_unknown_athlete_is_one_line(run_cli: Run) -> None:
    result = run_cli("athlete", "calendar-url", "nobody")
    assert result.code == 1
    assert result.err.strip() == (
        "stridewise: error: no athlete 'nobody' (see 'stridewise athlete list')"
    )


def garmin_writes(server: GarminServer) -> list[tuple[str, str]]:
    return [
        (r.method, r.path) for r in list(server.requests) if r.method in ("POST", "PUT", "DELETE")
    ]


@pytest.fixture
def garmin(monkeypatch: pytest.MonkeyPatch) -> Iterator[GarminServer]:
    """The loopback Garmin Connect (tests/garmin_server.py), logged in from stored tokens."""
    with GarminServer() as srv:
        point_at(srv, monkeypatch)
        store_tokens(srv)
        yield srv


def test_push_button_puts_the_week_on_garmin_once(roster_db: Path, garmin: GarminServer) -> None:
    with live_server(roster_db) as base:
        session = requests.Session()
        first = press(session, base, "ana", "push")
        assert f"Plan for {this_week()} is on Garmin (" in first
        assert "sessions sent)" in first
        calendar = garmin.calendar()
        assert calendar  # every session of the week is on the calendar
        writes = garmin_writes(garmin)
        assert writes
        again = press(session, base, "ana", "push")
        assert f"Plan for {this_week()} is on Garmin (nothing changed)." in again
        assert garmin_writes(garmin) == writes  # nothing sent twice
        roster = page(session, base + "/")
    assert garmin.calendar() == calendar
    assert "built, on Garmin" in roster
