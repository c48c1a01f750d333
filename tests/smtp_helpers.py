"""A real SMTP server (aiosmtpd) on 127.0.0.1 for the mail tests, with scripted failures.

Each test gets its own server on a free port (port 0), a TLS certificate from a throw-away CA
(trustme), and a config.toml pointing stridewise at it. Failures are injected at the wire:
refusing a recipient, answering DATA content with a 4xx/5xx, or dropping the connection at
the DATA command or after the content arrived.
"""

from __future__ import annotations

import email
import email.policy
import socket
import ssl
import struct
import zlib
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from email.message import EmailMessage
from pathlib import Path
from typing import Any

import icalendar
import pytest
import trustme
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import SMTP, AuthResult, Envelope, LoginPassword, Session

from planner.delivery.mailconfig import Security

USER = "coach@example.org"
PASSWORD = "s3cret-pässword"  # a test server's password, nothing real


@dataclass
class Received:
    """One message the server took (answered 250) or held before dropping the line."""

    mail_from: str
    rcpt_tos: list[str]
    data: bytes
    login: str | None

    def message(self) -> EmailMessage:
        parsed = email.message_from_bytes(self.data, policy=email.policy.default)
        assert isinstance(parsed, EmailMessage)
        return parsed


@dataclass
class Script:
    """What the server does to the next messages; each list is consumed one item per use."""

    #: Reply to the end of DATA content ("250 OK", "451 ...", "550 ...") or "drop": keep the
    #: message and close the connection without answering.
    data: list[str] = field(default_factory=list)
    #: Close the connection when the client sends DATA, before the 354.
    drop_at_data_command: int = 0
    #: Recipient address -> refusal ("550 5.1.1 no such user").
    refuse_rcpt: dict[str, str] = field(default_factory=dict)


class Handler:
    """Records what arrives and follows the :class:`Script`."""

    def __init__(self) -> None:
        self.script = Script()
        self.received: list[Received] = []
        self.refused: list[str] = []

    async def handle_RCPT(  # noqa: N802 - aiosmtpd's hook name
        self, server: SMTP, session: Session, envelope: Envelope, address: str, options: list[str]
    ) -> str:
        refusal = self.script.refuse_rcpt.get(address)
        if refusal is not None:
            self.refused.append(address)
            return refusal
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(  # noqa: N802 - aiosmtpd's hook name
        self, server: SMTP, session: Session, envelope: Envelope
    ) -> str:
        action = self.script.data.pop(0) if self.script.data else "250 OK queued"
        auth = session.auth_data
        login = auth.login.decode() if isinstance(auth, LoginPassword) else None
        received = Received(
            str(envelope.mail_from),
            list(envelope.rcpt_tos),
            bytes(envelope.original_content or b""),
            login,
        )
        if action == "drop":
            # The server holds the message, but the client never hears the 250.
            self.received.append(received)
            assert server.transport is not None
            server.transport.abort()
            return "250 OK"
        if action.startswith("250"):
            self.received.append(received)
        return action


class _ScriptedSMTP(SMTP):
    """aiosmtpd's server, able to hang up when DATA is sent (before any content)."""

    def __init__(self, handler: Handler, **kwargs: Any) -> None:
        super().__init__(handler, **kwargs)
        self.scripted = handler

    async def smtp_DATA(self, arg: str) -> None:  # noqa: N802 - aiosmtpd's command name
        if self.scripted.script.drop_at_data_command > 0:
            self.scripted.script.drop_at_data_command -= 1
            assert self.transport is not None
            self.transport.abort()
            return
        await super().smtp_DATA(arg)


class _Controller(Controller):
    """A controller that binds port 0 and learns the port the system gave it."""

    def factory(self) -> SMTP:
        return _ScriptedSMTP(self.handler, **self.SMTP_kwargs)

    def _trigger_server(self) -> None:
        assert self.server is not None
        self.port = self.server.sockets[0].getsockname()[1]
        super()._trigger_server()


def _authenticate(
    server: SMTP, session: Session, envelope: Envelope, mechanism: str, auth_data: Any
) -> AuthResult:
    ok = (
        isinstance(auth_data, LoginPassword)
        and auth_data.login.decode() == USER
        and auth_data.password.decode() == PASSWORD
    )
    return AuthResult(success=ok, handled=False, auth_data=auth_data)


@dataclass
class SmtpServer:
    """A running test server and the settings to reach it."""

    handler: Handler
    host: str
    port: int
    security: Security
    ca_path: Path

    @property
    def script(self) -> Script:
        return self.handler.script

    @property
    def received(self) -> list[Received]:
        return self.handler.received

    def config_toml(self, *, sender: str = "Coach Ännä <coach@example.org>") -> str:
        lines = [
            "[smtp]",
            f'host = "{self.host}"',
            f"port = {self.port}",
            f'security = "{self.security}"',
            f'from = "{sender}"',
            'reply_to = "replies@example.org"',
            f'ca_file = "{self.ca_path}"',
            "timeout_s = 5",
        ]
        if self.security != "none":
            lines.append(f'username = "{USER}"')
        return "\n".join(lines) + "\n"


@pytest.fixture(scope="session")
def tls_ca(tmp_path_factory: pytest.TempPathFactory) -> tuple[trustme.CA, Path]:
    """A throw-away CA; the server certificate it issues is valid for 127.0.0.1."""
    ca = trustme.CA()
    path = tmp_path_factory.mktemp("ca") / "ca.pem"
    ca.cert_pem.write_to_path(str(path))
    return ca, path


@contextmanager
def start_server(ca: trustme.CA, ca_path: Path, security: Security) -> Iterator[SmtpServer]:
    """Run an aiosmtpd server with ``security`` for the ``with`` block."""
    handler = Handler()
    server_ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ca.issue_cert("127.0.0.1", "localhost").configure_cert(server_ctx)
    kwargs: dict[str, Any] = {"hostname": "127.0.0.1", "port": 0}
    if security == "starttls":
        kwargs |= {
            "tls_context": server_ctx,
            "require_starttls": True,
            "authenticator": _authenticate,
            "auth_required": True,
        }
    elif security == "tls":
        # With implicit TLS aiosmtpd cannot see that the line is encrypted and would hide AUTH.
        # (AUTH is offered but not required here, which aiosmtpd would warn about; the tests
        # check the login on each received message instead.)
        kwargs |= {
            "ssl_context": server_ctx,
            "authenticator": _authenticate,
            "auth_require_tls": False,
        }
    controller = _Controller(handler, **kwargs)
    controller.start()
    try:
        yield SmtpServer(handler, "127.0.0.1", controller.port, security, ca_path)
    finally:
        controller.stop()


@pytest.fixture
def smtp_server(tls_ca: tuple[trustme.CA, Path], home: Path) -> Iterator[SmtpServer]:
    """A STARTTLS + AUTH server, with config.toml pointing at it (password: ``smtp_password``)."""
    with start_server(*tls_ca, "starttls") as server:
        use_server(server, home)
        yield server


@pytest.fixture
def smtps_server(tls_ca: tuple[trustme.CA, Path], home: Path) -> Iterator[SmtpServer]:
    """An implicit-TLS (port-465 style) + AUTH server, with config.toml pointing at it."""
    with start_server(*tls_ca, "tls") as server:
        use_server(server, home)
        yield server


def use_server(server: SmtpServer, home: Path) -> None:
    """Point stridewise's config.toml at ``server`` (the password comes from ``smtp_password``)."""
    home.mkdir(parents=True, exist_ok=True)
    (home / "config.toml").write_text(server.config_toml(), encoding="utf-8")


@pytest.fixture
def smtp_password(monkeypatch: pytest.MonkeyPatch) -> str:
    monkeypatch.setenv("STRIDEWISE_SMTP_PASSWORD", PASSWORD)
    return PASSWORD


@pytest.fixture
def closed_port() -> Iterator[int]:
    """A port bound but not listening: connecting to it is refused, and no one can take it."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.bind(("127.0.0.1", 0))
    try:
        yield sock.getsockname()[1]
    finally:
        sock.close()


# -- a rendered plan built by hand, shaped like planner.delivery.render.RenderedPlan ------------


def tiny_png(width: int = 2, height: int = 2) -> bytes:
    """A valid grey PNG made with zlib (PNG spec: signature, IHDR, IDAT, IEND chunks)."""

    def chunk(kind: bytes, body: bytes) -> bytes:
        crc = zlib.crc32(kind + body) & 0xFFFFFFFF
        return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", crc)

    rows = b"".join(b"\x00" + b"\x80" * width for _ in range(height))
    header = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", header)
        + chunk(b"IDAT", zlib.compress(rows))
        + chunk(b"IEND", b"")
    )


def sample_ics(week: str = "2026-W49") -> bytes:
    cal = icalendar.Calendar()
    cal.add("prodid", "-//stridewise tests//EN")
    cal.add("version", "2.0")
    event = icalendar.Event()
    event.add("uid", f"{week}-mon-1@stridewise.test")
    event.add("dtstamp", datetime(2026, 11, 30, 6, 0, tzinfo=UTC))
    event.add("dtstart", datetime(2026, 11, 30, 17, 0, tzinfo=UTC))
    event.add("dtend", datetime(2026, 11, 30, 17, 25, tzinfo=UTC))
    event.add("summary", "Push: pogo hops, calf raises – 25 min")
    cal.add_component(event)
    return bytes(cal.to_ical())


@dataclass(frozen=True)
class SamplePlan:
    """The fields of ``RenderedPlan`` the mail uses, filled with real bytes."""

    html: str
    text: str
    ics: bytes
    fit_workouts: dict[str, bytes]
    chart_png: bytes | None
    chart_cid: str


FIT_SAMPLE = Path(__file__).parent / "fixtures" / "fit" / "Settings.fit"


@pytest.fixture
def rendered() -> SamplePlan:
    """A hand-built rendered plan (real PNG, real ICS, a real FIT file as the workout)."""
    return sample_plan()


def sample_plan(name: str = "Zoë") -> SamplePlan:
    cid = "limiter-chart.2026-W49@stridewise"
    return SamplePlan(
        html=(
            f"<html><body><h1>Week 49 for {name}</h1><p>Push first – calf work.</p>"
            f'<img src="cid:{cid}" alt="limiter chart"><p>.leading dot line</p></body></html>'
        ),
        text=f"Week 49 for {name}\n\nPush first – calf work.\n.leading dot line\n",
        ics=sample_ics(),
        fit_workouts={"2026-W49-mon-push.fit": FIT_SAMPLE.read_bytes()},
        chart_png=tiny_png(),
        chart_cid=cid,
    )
