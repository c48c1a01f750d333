"""send-weekly: schedule, exactly-once delivery end to end, dry runs, failures, the CLI contract."""

from __future__ import annotations

import fcntl
import os
import subprocess
import sys
import textwrap
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from email.message import EmailMessage
from pathlib import Path
from typing import TYPE_CHECKING, Any

import icalendar
import pytest

from planner.errors import DeliveryError
from planner.plan import IsoWeek
from planner.records import Athlete
from planner.services.roster import AthleteChanges, add_athlete
from planner.services.sendweekly import SendSummary, due_week, send_weekly, subject_for
from planner.store.database import Store
from planner.store.outbox import Outbox, State
from tests.conftest import FIT_DIR, CliResult

if TYPE_CHECKING:
    from tests.smtp_helpers import SmtpServer

pytest_plugins = ["tests.smtp_helpers"]

Run = Callable[..., CliResult]
RUN_FILE = FIT_DIR / "activity-small-fenix2-run.fit"


# -- when is an athlete due (pure) ----------------------------------------------------------


def _athlete(day: str, at: str, tz: str) -> Athlete:
    return Athlete(id="a", email="a@example.org", timezone=tz, send_day=day, send_time=at)


@pytest.mark.parametrize(
    ("day", "at", "tz", "now", "due", "next_send"),
    [
        # Monday 07:00 in Paris (UTC+1 in winter): 06:00 UTC.
        ("mon", "07:00", "Europe/Paris", "2026-11-30T05:59", None, "2026-11-30T07:00+01:00"),
        ("mon", "07:00", "Europe/Paris", "2026-11-30T06:00", "2026-W49", "2026-12-07T07:00+01:00"),
        # ...and all week long after that (catch-up), until the week ends.
        ("mon", "07:00", "Europe/Paris", "2026-12-06T22:59", "2026-W49", "2026-12-07T07:00+01:00"),
        # Summer time: the same local 07:00 is 05:00 UTC.
        ("mon", "07:00", "Europe/Paris", "2026-06-01T05:00", "2026-W23", "2026-06-08T07:00+02:00"),
        # Sunday 18:00 in São Paulo (UTC-3) sends the *next* week's plan.
        ("sun", "18:00", "America/Sao_Paulo", "2026-11-29T20:59", "2026-W48",
         "2026-11-29T18:00-03:00"),
        ("sun", "18:00", "America/Sao_Paulo", "2026-11-29T21:00", "2026-W49",
         "2026-12-06T18:00-03:00"),
        # Auckland's Monday 07:00 is Sunday 18:00 UTC: its week starts before UTC's.
        ("mon", "07:00", "Pacific/Auckland", "2026-11-29T18:00", "2026-W49",
         "2026-12-07T07:00+13:00"),
        ("mon", "07:00", "Pacific/Auckland", "2026-11-29T17:59", None, "2026-11-30T07:00+13:00"),
        # Year boundary: 2026-W53 exists, and a Friday send prepares 2027-W01.
        ("fri", "09:00", "UTC", "2027-01-01T09:00", "2027-W01", "2027-01-08T09:00+00:00"),
    ],
)  # fmt: skip
def test_due_week(day: str, at: str, tz: str, now: str, due: str | None, next_send: str) -> None:
    week, upcoming = due_week(
        _athlete(day, at, tz), datetime.fromisoformat(now).replace(tzinfo=UTC)
    )
    assert (None if week is None else str(week)) == due
    assert upcoming == datetime.fromisoformat(next_send)


def test_subject_and_week_option() -> None:
    ana = Athlete(id="ana", name="Ana Lúcia")
    assert subject_for(ana, IsoWeek(2026, 49)) == (
        "Ana, your stridewise plan for week 49 (30 Nov – 6 Dec 2026)"
    )
    assert subject_for(Athlete(id="x"), IsoWeek(2026, 53)) == (
        "Your stridewise plan for week 53 (28 Dec 2026 – 3 Jan 2027)"
    )
    assert IsoWeek.parse("2026w9") == IsoWeek(2026, 9)
    with pytest.raises(ValueError, match="2025"):
        IsoWeek.parse("2025-W53")  # 2025 has 52 ISO weeks


# -- a roster with data, and a real server ---------------------------------------------------


@pytest.fixture
def store(home: Path) -> Iterator[Store]:
    with Store(home / "stridewise.db") as s:
        yield s


def _roster(store: Store, run_cli: Run, *ids: str, with_runs: bool = False) -> None:
    """Athletes on the roster; ``with_runs`` imports a real run for each (slower analysis).

    Without runs the analysis judges nothing and the plan holds general work, which is all
    the delivery tests need.
    """
    for athlete_id in ids:
        add_athlete(
            store,
            athlete_id,
            AthleteChanges(name=f"{athlete_id.title()} Tëst", email=f"{athlete_id}@example.org"),
        )
        if with_runs:
            imported = run_cli("import", RUN_FILE, "--athlete", athlete_id, "--json")
            assert imported.code == 0, imported.err


def _send(store: Store, **kwargs: Any) -> tuple[SendSummary, list[float]]:
    sleeps: list[float] = []
    kwargs.setdefault("week", IsoWeek(2026, 49))
    summary = send_weekly(store, sleep=sleeps.append, **kwargs)
    return summary, sleeps


def _statuses(summary: SendSummary) -> dict[str, str]:
    return {r.athlete_id: r.status for r in summary.results}


def _by_recipient(server: SmtpServer) -> dict[str, int]:
    counts: dict[str, int] = {}
    for received in server.received:
        for rcpt in received.rcpt_tos:
            counts[rcpt] = counts.get(rcpt, 0) + 1
    return counts


def _check_real_plan(msg: EmailMessage) -> None:
    """The real renderer's message: structure, chart by Content-ID, parseable calendar."""
    types = [part.get_content_type() for part in msg.walk()]
    assert types[:6] == [
        "multipart/mixed",
        "multipart/alternative",
        "text/plain",
        "multipart/related",
        "text/html",
        "image/png",
    ]
    html_part = next(p for p in msg.walk() if p.get_content_type() == "text/html")
    png_part = next(p for p in msg.walk() if p.get_content_type() == "image/png")
    cid = png_part["Content-ID"].strip("<>")
    assert f"cid:{cid}" in html_part.get_content()
    assert png_part.get_content().startswith(b"\x89PNG")
    [ics_part] = [p for p in msg.walk() if p.get_content_type() == "text/calendar"]
    calendar = icalendar.Calendar.from_ical(ics_part.get_content())
    assert list(calendar.walk("VEVENT"))
    fits = [p for p in msg.walk() if p.get_content_type() == "application/vnd.ant.fit"]
    assert all(p.get_content()[8:12] == b".FIT" for p in fits)


def test_sends_once_per_week_however_often_it_runs(
    smtp_server: SmtpServer, smtp_password: str, store: Store, run_cli: Run
) -> None:
    _roster(store, run_cli, "ana", with_runs=True)  # one with a real run to analyse
    _roster(store, run_cli, "bo")
    first, _ = _send(store)
    assert _statuses(first) == {"ana": "sent", "bo": "sent"}
    second, _ = _send(store)
    assert _statuses(second) == {"ana": "skipped_already_sent", "bo": "skipped_already_sent"}
    assert _by_recipient(smtp_server) == {"ana@example.org": 1, "bo@example.org": 1}
    msg = smtp_server.received[0].message()
    _check_real_plan(msg)
    assert msg["To"].addresses[0].display_name in ("Ana Tëst", "Bo Tëst")
    rows = Outbox(store).entries()
    assert [(r.week, r.state, r.attempts) for r in rows] == [("2026-W49", State.SENT, 1)] * 2
    assert {r.message_id for r in rows} == {m.message()["Message-ID"] for m in smtp_server.received}
    # --resend is the one way to send a week again; it is a new message.
    again, _ = _send(store, athlete_ids=["ana"], resend=True)
    assert _statuses(again) == {"ana": "sent"}
    assert _by_recipient(smtp_server) == {"ana@example.org": 2, "bo@example.org": 1}


def test_schedule_sends_at_local_time_only(
    smtp_server: SmtpServer, smtp_password: str, store: Store, run_cli: Run
) -> None:
    _roster(store, run_cli, "ana")
    store.save_athlete(
        Athlete(id="ana", name="Ana", email="ana@example.org", timezone="Europe/Paris",
                send_day="mon", send_time="07:00")
    )  # fmt: skip
    early = datetime(2026, 11, 30, 5, 30, tzinfo=UTC)
    summary, _ = _send(store, week=None, now=early)
    [result] = summary.results
    assert (result.status, result.reason) == (
        "skipped_not_due",
        "next send Mon 2026-11-30 07:00 Europe/Paris",
    )
    hourly = [datetime(2026, 11, 30, h, 5, tzinfo=UTC) for h in range(6, 12)]
    results = [_send(store, week=None, now=t)[0].results[0] for t in hourly]
    assert [r.status for r in results] == ["sent"] + ["skipped_already_sent"] * 5
    assert results[0].week == "2026-W49"
    assert len(smtp_server.received) == 1


def test_dry_run_writes_eml_and_sends_nothing(
    smtp_server: SmtpServer, store: Store, run_cli: Run, tmp_path: Path
) -> None:
    _roster(store, run_cli, "ana")
    out = tmp_path / "eml"
    result = run_cli("send-weekly", "--week", "2026-W49", "--dry-run", "--out", out, "--json")
    assert result.code == 0, result.err
    [entry] = result.json()["results"]
    assert entry["status"] == "dry_run"
    path = Path(entry["eml"])
    assert path == out / "ana-2026-W49.eml"
    import email
    import email.policy

    msg = email.message_from_bytes(path.read_bytes(), policy=email.policy.default)
    assert isinstance(msg, EmailMessage)
    _check_real_plan(msg)
    assert smtp_server.received == []
    assert Outbox(store).entries() == []  # a dry run records nothing


def _dump(store: Store) -> str:
    return "\n".join(store.db.iterdump())


def test_dry_run_leaves_the_database_unchanged(
    smtp_server: SmtpServer, store: Store, run_cli: Run, tmp_path: Path
) -> None:
    """A coach's preview must not advance the athlete's progression (plan history, caches)."""
    _roster(store, run_cli, "ann", with_runs=True)
    before = _dump(store)
    out = tmp_path / "eml"
    for _ in range(2):
        result = run_cli("send-weekly", "--week", "2026-W46", "--dry-run", "--out", out, "--json")
        assert result.code == 0, result.err
        assert result.json()["results"][0]["status"] == "dry_run"
    assert _dump(store) == before
    assert store.db.execute("SELECT COUNT(*) FROM plans").fetchone()[0] == 0
    assert store.db.execute("SELECT COUNT(*) FROM feature_cache").fetchone()[0] == 0
    # The real build afterwards is the first revision: the previews counted for nothing.
    built = run_cli("plan", "--athlete", "ann", "--week", "2026-W46", "--format", "json")
    assert built.code == 0, built.err
    assert built.json()["revision"] == 1
    assert store.db.execute("SELECT COUNT(*) FROM plans").fetchone()[0] == 1
    assert store.db.execute("SELECT COUNT(*) FROM feature_cache").fetchone()[0] == 1


def test_failures_stay_with_their_athlete(
    smtp_server: SmtpServer, smtp_password: str, store: Store, run_cli: Run
) -> None:
    _roster(store, run_cli, "ana", "bo")
    smtp_server.script.refuse_rcpt = {"ana@example.org": "550 5.1.1 no such user"}
    summary, sleeps = _send(store)
    assert _statuses(summary) == {"ana": "failed", "bo": "sent"}  # the run went on past ana
    assert "550 5.1.1 no such user" in summary.results[0].reason
    assert sleeps == []  # a permanent refusal is not retried
    assert summary.has_problems
    # Reported again, not retried, until the address changes.
    again, _ = _send(store)
    assert _statuses(again) == {"ana": "failed", "bo": "skipped_already_sent"}
    assert "refused earlier" in again.results[0].reason
    store.save_athlete(Athlete(id="ana", name="Ana", email="ana.new@example.org"))
    fixed, _ = _send(store)
    assert _statuses(fixed) == {"ana": "sent", "bo": "skipped_already_sent"}
    assert _by_recipient(smtp_server) == {"ana.new@example.org": 1, "bo@example.org": 1}
    assert smtp_server.handler.refused == ["ana@example.org"]


def test_transient_failure_is_queued_then_sent_next_run(
    smtp_server: SmtpServer, smtp_password: str, store: Store, run_cli: Run
) -> None:
    _roster(store, run_cli, "ana", "bo")
    # ana's three attempts meet 451; bo, next in line, goes through.
    smtp_server.script.data = ["451 4.3.0 queue full"] * 3
    summary, sleeps = _send(store)
    assert _statuses(summary) == {"ana": "queued_retry", "bo": "sent"}
    assert sleeps == [5.0, 30.0]
    ana = summary.results[0]
    assert (ana.attempts, ana.outbox_state) == (3, "queued")
    next_run, _ = _send(store)
    assert _statuses(next_run) == {"ana": "sent", "bo": "skipped_already_sent"}
    assert next_run.results[0].message_id == ana.message_id  # the same message, retried
    assert _by_recipient(smtp_server) == {"ana@example.org": 1, "bo@example.org": 1}


def test_server_down_queues_everyone(
    closed_port: int, home: Path, store: Store, run_cli: Run
) -> None:
    _roster(store, run_cli, "ana", "bo")
    (home / "config.toml").write_text(
        f'[smtp]\nhost = "127.0.0.1"\nport = {closed_port}\nsecurity = "none"\n'
        'from = "coach@example.org"\n'
    )
    summary, sleeps = _send(store, backoff_s=(1.0,))
    assert _statuses(summary) == {"ana": "queued_retry", "bo": "queued_retry"}
    assert sleeps == [1.0, 1.0]
    assert all("refused" in r.reason.lower() for r in summary.results)


def test_bad_login_stops_the_run_and_keeps_everything_queued(
    smtp_server: SmtpServer, monkeypatch: pytest.MonkeyPatch, store: Store, run_cli: Run
) -> None:
    _roster(store, run_cli, "ana", "bo")
    monkeypatch.setenv("STRIDEWISE_SMTP_PASSWORD", "wrong")
    summary, _ = _send(store)
    assert _statuses(summary) == {"ana": "failed", "bo": "failed"}
    assert "refused the login" in summary.results[0].reason
    assert summary.results[1].reason.startswith("not attempted: ")
    assert [r.state for r in Outbox(store).entries()] == [State.QUEUED]  # bo never got a row
    monkeypatch.setenv("STRIDEWISE_SMTP_PASSWORD", "s3cret-pässword")
    fixed, _ = _send(store)
    assert _statuses(fixed) == {"ana": "sent", "bo": "sent"}


def test_connection_dropped_after_data_is_never_sent_twice(
    smtp_server: SmtpServer, smtp_password: str, store: Store, run_cli: Run
) -> None:
    _roster(store, run_cli, "ana", "bo")
    smtp_server.script.data = ["drop"]  # ana's message arrives; the answer never does
    summary, sleeps = _send(store)
    assert _statuses(summary) == {"ana": "failed", "bo": "sent"}
    assert "possibly delivered" in summary.results[0].reason
    assert sleeps == []
    again, _ = _send(store)
    ana = again.results[0]
    assert (ana.status, ana.outbox_state) == ("skipped_already_sent", "sending")
    assert "possibly delivered" in ana.reason
    assert _by_recipient(smtp_server) == {"ana@example.org": 1, "bo@example.org": 1}


CRASH_SCRIPT = textwrap.dedent(
    """
    import os, sys
    from planner.plan import IsoWeek
    from planner.services.sendweekly import send_weekly
    from planner.store.database import Store

    def crash(event, entry):
        if event == "accepted" and entry.athlete_id == "bo":
            os._exit(17)  # the server said 250 for bo; nothing after this runs

    with Store(sys.argv[1]) as store:
        send_weekly(store, week=IsoWeek(2026, 49), progress=crash)
    """
)


def test_crash_after_acceptance_before_commit_sends_no_duplicate(
    smtp_server: SmtpServer, smtp_password: str, store: Store, run_cli: Run
) -> None:
    _roster(store, run_cli, "ana", "bo", "cy")
    root = Path(__file__).resolve().parent.parent
    proc = subprocess.run(
        [sys.executable, "-c", CRASH_SCRIPT, str(store.path)],
        env=dict(os.environ),
        cwd=root,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert proc.returncode == 17, proc.stderr
    assert _by_recipient(smtp_server) == {"ana@example.org": 1, "bo@example.org": 1}
    # The next run: ana was recorded, bo is possibly delivered, cy never started.
    summary, _ = _send(store)
    assert _statuses(summary) == {
        "ana": "skipped_already_sent",
        "bo": "skipped_already_sent",
        "cy": "sent",
    }
    assert summary.results[1].outbox_state == "sending"
    assert _by_recipient(smtp_server) == {
        "ana@example.org": 1,
        "bo@example.org": 1,
        "cy@example.org": 1,
    }


def test_one_run_at_a_time(smtp_server: SmtpServer, smtp_password: str, store: Store) -> None:
    lock = store.path.with_name(store.path.name + ".send-weekly.lock")
    with lock.open("a") as fh:
        fcntl.flock(fh, fcntl.LOCK_EX | fcntl.LOCK_NB)
        with pytest.raises(DeliveryError, match="another send-weekly is still running"):
            send_weekly(store, week=IsoWeek(2026, 49))


# -- the command line -----------------------------------------------------------------------


def test_cli_json_summary_and_exit_codes(
    smtp_server: SmtpServer, smtp_password: str, store: Store, run_cli: Run
) -> None:
    _roster(store, run_cli, "ana")
    store.ensure_athlete("noemail")
    sent = run_cli("send-weekly", "--week", "2026-W49", "--json")
    assert sent.code == 0, sent.err
    body = sent.json()
    assert body["counts"] == {"sent": 1}  # athletes without an address are not on the roster
    [ana] = body["results"]
    assert (ana["athlete"], ana["status"], ana["week"], ana["recipient"]) == (
        "ana",
        "sent",
        "2026-W49",
        "ana@example.org",
    )
    assert ana["message_id"].startswith("<")
    named = run_cli("send-weekly", "--week", "2026-W49", "--athlete", "ana",
                    "--athlete", "noemail")  # fmt: skip
    assert named.code == 3  # noemail failed
    assert "ana: skipped_already_sent 2026-W49" in named.out
    assert "noemail: failed" in named.err
    assert "no e-mail address" in named.err


def test_cli_errors_are_one_line(smtp_server: SmtpServer, smtp_password: str, run_cli: Run) -> None:
    result = run_cli("send-weekly", "--athlete", "ghost")
    assert result.code == 1
    assert result.err.count("\n") == 1
    assert "no athlete 'ghost'" in result.err
    # A week that does not exist is a bad option value: exit 2, as for 'plan' (cli contract).
    bad_week = run_cli("send-weekly", "--week", "2026-W60")
    assert bad_week.code == 2
    assert "2026-W60 is not an ISO week" in bad_week.err


def test_cli_without_smtp_settings(run_cli: Run) -> None:
    result = run_cli("send-weekly")
    assert (result.code, result.err.strip()) == (
        1,
        "stridewise: error: no SMTP host: set host in the [smtp] table of config.toml or"
        " STRIDEWISE_SMTP_HOST",
    )
