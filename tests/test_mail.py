"""MIME building, SMTP delivery and the exactly-once outbox, against a real aiosmtpd server."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from datetime import UTC, datetime
from email.headerregistry import Address
from email.message import EmailMessage
from pathlib import Path
from typing import TYPE_CHECKING, Any

import icalendar
import keyring
import pytest
from keyring.backend import KeyringBackend

from planner.delivery.exactly_once import send_exactly_once
from planner.delivery.mail import (
    PermanentDeliveryError,
    TransientDeliveryError,
    UncertainDeliveryError,
    build_message,
    content_hash,
    deliver,
    new_message_id,
)
from planner.delivery.mailconfig import SmtpSettings, load_smtp_settings
from planner.errors import AuthError, ConfigError
from planner.store.database import Store
from planner.store.outbox import Outbox, OutboxEntry, State, next_action

if TYPE_CHECKING:
    from tests.smtp_helpers import SamplePlan, SmtpServer

pytest_plugins = ["tests.smtp_helpers"]

NOW = datetime(2026, 11, 30, 6, 0, tzinfo=UTC)
TO = Address(display_name="Zoë Ångström", addr_spec="zoe@example.org")


def _message(rendered: SamplePlan, settings: SmtpSettings, to: Address = TO) -> EmailMessage:
    return build_message(
        rendered,
        recipient=to,
        settings=settings,
        subject="Zoë, your stridewise plan for week 49",
        message_id=new_message_id(settings.sender),
        date=NOW,
        ics_filename="plan-2026-W49.ics",
    )


def _structure(part: EmailMessage, depth: int = 0) -> list[str]:
    out = ["  " * depth + part.get_content_type()]
    if part.is_multipart():
        for sub in part.iter_parts():
            assert isinstance(sub, EmailMessage)
            out += _structure(sub, depth + 1)
    return out


def _check_plan_message(msg: EmailMessage, rendered: SamplePlan) -> None:
    """Structure, inline chart by Content-ID, calendar and FIT attachments, readable text."""
    assert _structure(msg) == [
        "multipart/mixed",
        "  multipart/alternative",
        "    text/plain",
        "    multipart/related",
        "      text/html",
        "      image/png",
        "  text/calendar",
        "  application/vnd.ant.fit",
    ]
    alternative, ics_part, fit_part = msg.iter_parts()
    text_part, related = alternative.iter_parts()
    html_part, png_part = related.iter_parts()
    # Text travels with CRLF line ends (RFC 5322); the ".leading dot" line survived stuffing.
    assert text_part.get_content().replace("\r\n", "\n") == rendered.text
    html = html_part.get_content()
    assert f'src="cid:{rendered.chart_cid}"' in html
    assert png_part["Content-ID"] == f"<{rendered.chart_cid}>"
    assert png_part.get_content_disposition() == "inline"
    assert png_part.get_content() == rendered.chart_png
    assert ics_part.get_content_disposition() == "attachment"
    assert ics_part.get_filename() == "plan-2026-W49.ics"
    calendar = icalendar.Calendar.from_ical(ics_part.get_content())
    events = list(calendar.walk("VEVENT"))
    assert [str(e["SUMMARY"]) for e in events] == ["Push: pogo hops, calf raises – 25 min"]
    assert fit_part.get_filename() == "2026-W49-mon-push.fit"
    fit = fit_part.get_content()
    assert fit == rendered.fit_workouts["2026-W49-mon-push.fit"]
    assert fit[8:12] == b".FIT"  # still a FIT file after base64 and back


# -- building -------------------------------------------------------------------------------


def test_message_structure_and_headers(rendered: SamplePlan) -> None:
    settings = load_smtp_settings(
        sending=False,
        config={"smtp": {"from": "Coach Ännä <coach@example.org>", "reply_to": "r@example.org"}},
        env={},
    )
    msg = _message(rendered, settings)
    _check_plan_message(msg, rendered)
    raw = msg.as_bytes()
    assert raw.isascii()  # names RFC 2047-encoded, bodies quoted-printable or base64
    assert b"\r\n" in raw
    assert b"\n" not in raw.replace(b"\r\n", b"")
    assert msg["From"].addresses[0].display_name == "Coach Ännä"
    assert msg["To"].addresses[0] == TO
    assert msg["Reply-To"].addresses[0].addr_spec == "r@example.org"
    assert msg["List-Unsubscribe"] == "<mailto:r@example.org?subject=unsubscribe>"
    assert msg["Date"].datetime == NOW
    assert msg["Message-ID"].endswith("@example.org>")
    assert msg["Subject"] == "Zoë, your stridewise plan for week 49"


def test_no_chart_means_no_related_part(rendered: SamplePlan) -> None:
    from dataclasses import replace

    settings = load_smtp_settings(sending=False, config={"smtp": {"from": "c@example.org"}}, env={})
    msg = _message(replace(rendered, chart_png=None), settings)
    assert _structure(msg)[:4] == [
        "multipart/mixed",
        "  multipart/alternative",
        "    text/plain",
        "    text/html",
    ]


def test_content_hash_tracks_what_the_athlete_reads(rendered: SamplePlan) -> None:
    from dataclasses import replace

    assert content_hash(rendered) == content_hash(replace(rendered))
    assert content_hash(rendered) != content_hash(replace(rendered, text=rendered.text + "!"))
    moved = replace(rendered, text=rendered.text + "x", html=rendered.html[:-1])
    assert content_hash(moved) != content_hash(rendered)


# -- settings -------------------------------------------------------------------------------


class MemoryKeyring(KeyringBackend):
    """A keyring that lives in a dict (the real API, without a desktop session)."""

    priority = 1  # type: ignore[assignment]

    def __init__(self) -> None:
        super().__init__()
        self.items: dict[tuple[str, str], str] = {}

    def get_password(self, service: str, username: str) -> str | None:
        return self.items.get((service, username))

    def set_password(self, service: str, username: str, password: str) -> None:
        self.items[(service, username)] = password

    def delete_password(self, service: str, username: str) -> None:
        self.items.pop((service, username), None)


@pytest.fixture
def memory_keyring() -> Any:
    previous = keyring.get_keyring()
    ring = MemoryKeyring()
    keyring.set_keyring(ring)
    yield ring
    keyring.set_keyring(previous)


BASE = {"host": "smtp.example.org", "from": "Coach <coach@example.org>", "username": "coach"}


def test_environment_overrides_every_setting() -> None:
    env = {
        "STRIDEWISE_SMTP_HOST": "relay.example.net",
        "STRIDEWISE_SMTP_PORT": "2525",
        "STRIDEWISE_SMTP_SECURITY": "tls",
        "STRIDEWISE_SMTP_USER": "cron",
        "STRIDEWISE_SMTP_PASSWORD": "from-env",
        "STRIDEWISE_SMTP_FROM": "Robot <robot@example.net>",
    }
    s = load_smtp_settings(config={"smtp": dict(BASE, port=587, security="starttls")}, env=env)
    assert (s.host, s.port, s.security, s.username, s.password) == (
        "relay.example.net",
        2525,
        "tls",
        "cron",
        "from-env",
    )
    assert str(s.sender) == "Robot <robot@example.net>"
    assert s.reply_to == s.sender  # defaults to the sender


@pytest.mark.parametrize(("security", "port"), [("starttls", 587), ("tls", 465)])
def test_default_ports(security: str, port: int) -> None:
    config = {"smtp": dict(BASE, security=security)}
    s = load_smtp_settings(config=config, env={"STRIDEWISE_SMTP_PASSWORD": "x"})
    assert s.port == port


@pytest.mark.parametrize("host", ["localhost", "127.0.0.1", "::1", "[::1]", "127.3.4.5"])
def test_plain_smtp_allowed_to_loopback(host: str) -> None:
    config = {"smtp": {"host": host, "security": "none", "from": "c@example.org"}}
    assert load_smtp_settings(config=config, env={}).port == 25


@pytest.mark.parametrize("host", ["smtp.example.org", "10.0.0.1", "localhost.example.org"])
def test_plain_smtp_refused_elsewhere(host: str) -> None:
    config = {"smtp": {"host": host, "security": "none", "from": "c@example.org"}}
    with pytest.raises(ConfigError, match="only allowed for a loopback"):
        load_smtp_settings(config=config, env={})


def test_password_from_keyring(memory_keyring: MemoryKeyring) -> None:
    memory_keyring.set_password("stridewise-smtp", "coach", "from-keyring")
    assert load_smtp_settings(config={"smtp": BASE}, env={}).password == "from-keyring"
    env = {"STRIDEWISE_SMTP_PASSWORD": "from-env"}
    assert load_smtp_settings(config={"smtp": BASE}, env=env).password == "from-env"


def test_missing_password_is_one_clear_error(memory_keyring: MemoryKeyring) -> None:
    with pytest.raises(ConfigError, match="keyring set stridewise-smtp coach"):
        load_smtp_settings(config={"smtp": BASE}, env={})
    # A dry run needs no password and no host.
    s = load_smtp_settings(sending=False, config={"smtp": {"from": "c@example.org"}}, env={})
    assert s.host is None
    assert s.password is None


def test_plaintext_password_needs_opt_in() -> None:
    config = {"smtp": dict(BASE, password="in-file")}
    env = {"STRIDEWISE_SMTP_PASSWORD": "from-env"}
    with pytest.raises(ConfigError, match="plaintext_password = true"):
        load_smtp_settings(config=config, env=env)
    opted = {"smtp": dict(BASE, password="in-file", plaintext_password=True)}
    assert load_smtp_settings(config=opted, env={}).password == "in-file"


def test_password_never_shown() -> None:
    s = load_smtp_settings(config={"smtp": BASE}, env={"STRIDEWISE_SMTP_PASSWORD": "hunter2"})
    assert "hunter2" not in repr(s)
    assert "hunter2" not in str(s)
    assert "hunter2" not in f"{s}"
    assert "password='***'" in repr(s)


@pytest.mark.parametrize(
    ("smtp", "message"),
    [
        ({"from": "c@example.org"}, "no SMTP host"),
        ({"host": "h.example.org"}, "no sender"),
        ({"host": "h.example.org", "from": "not an address"}, "SMTP from"),
        ({"host": "h.example.org", "from": "c@example.org", "security": "ssl"}, "security"),
        ({"host": "h.example.org", "from": "c@example.org", "port": "smtp"}, "port"),
        ({"host": "h.example.org", "from": "c@example.org", "hots": "x"}, "unknown key"),
    ],
)
def test_bad_settings(smtp: dict[str, Any], message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        load_smtp_settings(config={"smtp": smtp}, env={})


# -- delivery over a real SMTP server -------------------------------------------------------


def test_starttls_with_auth_delivers(
    smtp_server: SmtpServer, smtp_password: str, rendered: SamplePlan
) -> None:
    settings = load_smtp_settings()
    reply = deliver(_message(rendered, settings), settings)
    assert reply.startswith("250")
    [got] = smtp_server.received
    assert got.login == "coach@example.org"  # the server only takes mail after AUTH
    assert got.mail_from == "coach@example.org"
    assert got.rcpt_tos == ["zoe@example.org"]
    _check_plan_message(got.message(), rendered)


def test_implicit_tls_with_auth_delivers(
    smtps_server: SmtpServer, smtp_password: str, rendered: SamplePlan
) -> None:
    settings = load_smtp_settings()
    assert settings.security == "tls"
    deliver(_message(rendered, settings), settings)
    [got] = smtps_server.received
    assert got.login == "coach@example.org"
    _check_plan_message(got.message(), rendered)


def test_wrong_password_is_an_auth_error(
    smtp_server: SmtpServer, monkeypatch: pytest.MonkeyPatch, rendered: SamplePlan
) -> None:
    monkeypatch.setenv("STRIDEWISE_SMTP_PASSWORD", "wrong")
    settings = load_smtp_settings()
    with pytest.raises(AuthError, match="refused the login"):
        deliver(_message(rendered, settings), settings)
    assert smtp_server.received == []


def test_untrusted_certificate_is_refused(
    smtp_server: SmtpServer, smtp_password: str, rendered: SamplePlan
) -> None:
    settings = load_smtp_settings()
    from dataclasses import replace

    system_cas = replace(settings, ca_file=None)  # the test CA is not a system CA
    with pytest.raises(ConfigError, match="not trusted"):
        deliver(_message(rendered, system_cas), system_cas)
    assert smtp_server.received == []


def test_server_down_is_transient(closed_port: int, rendered: SamplePlan) -> None:
    config = {"smtp": {"host": "127.0.0.1", "port": closed_port, "security": "none",
                       "from": "c@example.org"}}  # fmt: skip
    settings = load_smtp_settings(config=config, env={})
    with pytest.raises(TransientDeliveryError, match="connect"):
        deliver(_message(rendered, settings), settings)


@pytest.mark.parametrize(
    ("script", "error"),
    [
        ({"data": ["451 4.3.0 try again later"]}, TransientDeliveryError),
        ({"data": ["550 5.7.1 message refused"]}, PermanentDeliveryError),
        ({"refuse_rcpt": {"zoe@example.org": "550 5.1.1 no such user"}}, PermanentDeliveryError),
        ({"refuse_rcpt": {"zoe@example.org": "450 4.2.1 mailbox busy"}}, TransientDeliveryError),
        ({"drop_at_data_command": 1}, TransientDeliveryError),
        ({"data": ["drop"]}, UncertainDeliveryError),
    ],
)
def test_failures_are_classified(
    smtp_server: SmtpServer,
    smtp_password: str,
    rendered: SamplePlan,
    script: dict[str, Any],
    error: type[Exception],
) -> None:
    for key, value in script.items():
        setattr(smtp_server.script, key, value)
    settings = load_smtp_settings()
    started: list[bool] = []
    with pytest.raises(error):
        deliver(_message(rendered, settings), settings, before_content=lambda: started.append(1))
    # The content only starts to leave after the 354; a refusal before it never gets there.
    content_left = "data" in script
    assert started == ([True] if content_left else [])


# -- the outbox protocol --------------------------------------------------------------------


@pytest.fixture
def store(home: Path) -> Any:
    with Store(home / "stridewise.db") as s:
        s.ensure_athlete("zoe")
        yield s


def _queued(store: Store, settings: SmtpSettings, rendered: SamplePlan) -> tuple[Any, ...]:
    outbox = Outbox(store)
    msg = _message(rendered, settings)
    entry = outbox.enqueue(
        "zoe", "2026-W49", content_hash(rendered), msg["Message-ID"], TO.addr_spec
    )
    return outbox, entry, msg


def _send(
    outbox: Outbox, entry: OutboxEntry, msg: EmailMessage, settings: SmtpSettings
) -> tuple[OutboxEntry, list[float], list[str]]:
    sleeps: list[float] = []
    events: list[str] = []
    final = send_exactly_once(
        outbox,
        entry,
        msg,
        settings,
        backoff_s=(5.0, 30.0),
        sleep=sleeps.append,
        progress=lambda event, _entry: events.append(event),
    )
    return final, sleeps, events


def test_outbox_table_columns(store: Store) -> None:
    columns = [r[1] for r in store.db.execute("PRAGMA table_info(outbox)")]
    assert columns == [
        "id",
        "athlete_id",
        "week",
        "content_hash",
        "message_id",
        "recipient",
        "state",
        "attempts",
        "last_error",
        "server_reply",
        "created_at",
        "updated_at",
        "sent_at",
    ]


def test_sent_once_and_recorded(
    smtp_server: SmtpServer, smtp_password: str, rendered: SamplePlan, store: Store
) -> None:
    settings = load_smtp_settings()
    outbox, entry, msg = _queued(store, settings, rendered)
    final, sleeps, events = _send(outbox, entry, msg, settings)
    assert (final.state, final.attempts, sleeps, events) == (
        State.SENT,
        1,
        [],
        ["sending", "accepted"],
    )
    assert final.sent_at is not None
    assert final.server_reply == "250 OK queued"
    assert len(smtp_server.received) == 1
    assert smtp_server.received[0].message()["Message-ID"] == final.message_id
    assert next_action(final, recipient=TO.addr_spec, resend=False) == "skip_sent"
    # Outbox writes are durable (FULL) and leave the store's own setting (NORMAL) as it was.
    assert store.db.execute("PRAGMA synchronous").fetchone()[0] == 1


def test_451_is_retried_with_backoff_then_sent(
    smtp_server: SmtpServer, smtp_password: str, rendered: SamplePlan, store: Store
) -> None:
    smtp_server.script.data = ["451 4.7.1 greylisted, try again"]
    settings = load_smtp_settings()
    outbox, entry, msg = _queued(store, settings, rendered)
    final, sleeps, events = _send(outbox, entry, msg, settings)
    assert (final.state, final.attempts, sleeps) == (State.SENT, 2, [5.0])
    assert events == ["sending", "retry", "sending", "accepted"]
    assert len(smtp_server.received) == 1


def test_persistent_451_stays_queued_for_the_next_run(
    smtp_server: SmtpServer, smtp_password: str, rendered: SamplePlan, store: Store
) -> None:
    smtp_server.script.data = ["451 4.3.0 disk full"] * 3
    settings = load_smtp_settings()
    outbox, entry, msg = _queued(store, settings, rendered)
    final, sleeps, _ = _send(outbox, entry, msg, settings)
    assert (final.state, final.attempts, sleeps) == (State.QUEUED, 3, [5.0, 30.0])
    assert "451 4.3.0 disk full" in str(final.last_error)
    assert smtp_server.received == []
    assert next_action(final, recipient=TO.addr_spec, resend=False) == "send"
    # The next run: the server has recovered; same row, same Message-ID.
    final, _, _ = _send(outbox, final, msg, settings)
    assert (final.state, final.attempts) == (State.SENT, 4)
    assert [r.message()["Message-ID"] for r in smtp_server.received] == [entry.message_id]


def test_server_down_stays_queued(closed_port: int, rendered: SamplePlan, store: Store) -> None:
    config = {"smtp": {"host": "127.0.0.1", "port": closed_port, "security": "none",
                       "from": "c@example.org"}}  # fmt: skip
    settings = load_smtp_settings(config=config, env={})
    outbox, entry, msg = _queued(store, settings, rendered)
    final, sleeps, events = _send(outbox, entry, msg, settings)
    # Nothing left the machine, so no attempt ever reached 'sending'.
    assert (final.state, final.attempts, sleeps) == (State.QUEUED, 0, [5.0, 30.0])
    assert "sending" not in events


@pytest.mark.parametrize(
    ("script", "reply"),
    [
        ({"refuse_rcpt": {"zoe@example.org": "550 5.1.1 no such user"}}, "550 5.1.1 no such user"),
        ({"data": ["554 5.7.1 spam"]}, "554 5.7.1 spam"),
    ],
)
def test_permanent_failure_recorded_not_retried(
    smtp_server: SmtpServer,
    smtp_password: str,
    rendered: SamplePlan,
    store: Store,
    script: dict[str, Any],
    reply: str,
) -> None:
    for key, value in script.items():
        setattr(smtp_server.script, key, value)
    settings = load_smtp_settings()
    outbox, entry, msg = _queued(store, settings, rendered)
    final, sleeps, _ = _send(outbox, entry, msg, settings)
    assert (final.state, sleeps) == (State.FAILED, [])
    assert reply in str(final.last_error)
    assert smtp_server.received == []
    assert next_action(final, recipient=TO.addr_spec, resend=False) == "skip_failed"
    assert next_action(final, recipient="zoe@new.example.org", resend=False) == "send"


def test_drop_at_data_command_is_retried_without_duplicate(
    smtp_server: SmtpServer, smtp_password: str, rendered: SamplePlan, store: Store
) -> None:
    smtp_server.script.drop_at_data_command = 1
    settings = load_smtp_settings()
    outbox, entry, msg = _queued(store, settings, rendered)
    final, sleeps, _ = _send(outbox, entry, msg, settings)
    assert (final.state, final.attempts, sleeps) == (State.SENT, 1, [5.0])
    assert len(smtp_server.received) == 1


def test_drop_after_content_is_not_resent(
    smtp_server: SmtpServer, smtp_password: str, rendered: SamplePlan, store: Store
) -> None:
    smtp_server.script.data = ["drop"]
    settings = load_smtp_settings()
    outbox, entry, msg = _queued(store, settings, rendered)
    final, sleeps, events = _send(outbox, entry, msg, settings)
    # The server holds the message but we never heard so: possibly delivered, not retried.
    assert (final.state, final.attempts, sleeps, events) == (State.SENDING, 1, [], ["sending"])
    assert "lost after the message was sent" in str(final.last_error)
    assert len(smtp_server.received) == 1
    assert next_action(final, recipient=TO.addr_spec, resend=False) == "skip_uncertain"
    assert next_action(final, recipient=TO.addr_spec, resend=True) == "send"


def test_bad_login_keeps_the_row_queued(
    smtp_server: SmtpServer, monkeypatch: pytest.MonkeyPatch, rendered: SamplePlan, store: Store
) -> None:
    monkeypatch.setenv("STRIDEWISE_SMTP_PASSWORD", "wrong")
    settings = load_smtp_settings()
    outbox, entry, msg = _queued(store, settings, rendered)
    with pytest.raises(AuthError):
        _send(outbox, entry, msg, settings)
    after = outbox.get(entry.id)
    assert (after.state, after.attempts) == (State.QUEUED, 0)
    assert "refused the login" in str(after.last_error)


CRASH_SCRIPT = textwrap.dedent(
    """
    import os, sys
    from datetime import UTC, datetime
    from email.headerregistry import Address

    from planner.delivery.mail import build_message, content_hash
    from planner.delivery.mailconfig import load_smtp_settings
    from planner.delivery.exactly_once import send_exactly_once
    from planner.store.outbox import Outbox
    from planner.store.database import Store
    from tests.smtp_helpers import sample_plan

    def crash(event, entry):
        if event == "accepted":  # the server said 250; the row is not 'sent' yet
            os._exit(17)

    settings = load_smtp_settings()
    rendered = sample_plan()
    with Store(sys.argv[1]) as store:
        outbox = Outbox(store)
        msg = build_message(rendered, recipient=Address("Zoë", addr_spec="zoe@example.org"),
                            settings=settings, subject="plan", message_id="<crash@example.org>",
                            date=datetime.now(UTC), ics_filename="plan.ics")
        entry = outbox.enqueue("zoe", "2026-W49", content_hash(rendered), msg["Message-ID"],
                               "zoe@example.org")
        send_exactly_once(outbox, entry, msg, settings, progress=crash)
    """
)


def test_crash_between_acceptance_and_commit_never_duplicates(
    smtp_server: SmtpServer, smtp_password: str, store: Store, home: Path
) -> None:
    env = dict(os.environ)
    root = Path(__file__).resolve().parent.parent
    proc = subprocess.run(
        [sys.executable, "-c", CRASH_SCRIPT, str(store.path)],
        env=env,
        cwd=root,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert proc.returncode == 17, proc.stderr  # died hard: no cleanup, no commit
    assert len(smtp_server.received) == 1
    entry = Outbox(store).latest("zoe", "2026-W49")
    assert entry is not None
    assert (entry.state, entry.attempts, entry.message_id) == (
        State.SENDING,
        1,
        "<crash@example.org>",
    )
    # The next run reads 'sending' as possibly delivered and leaves it alone.
    assert next_action(entry, recipient="zoe@example.org", resend=False) == "skip_uncertain"
