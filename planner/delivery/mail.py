"""Weekly-plan e-mail: building the MIME message and handing it to an SMTP server.

One message per athlete and week::

    multipart/mixed
      multipart/alternative
        text/plain                      the plain-text plan
        multipart/related
          text/html                     the HTML plan, showing the chart as cid:<chart_cid>
          image/png                     the limiter chart, Content-ID <chart_cid>, inline
      text/calendar                     plan-<week>.ics
      application/vnd.ant.fit           one per watch workout

:func:`deliver` speaks SMTP itself (through :mod:`smtplib`) so it can tell the caller the
moment the message content starts to leave (``before_content``), which the outbox uses for its
exactly-once protocol (docs/email.md), and so it can sort failures:

* :class:`TransientDeliveryError` — worth retrying: connection refused, reset or timed out
  before the content was sent, or a 4xx reply;
* :class:`PermanentDeliveryError` — this message will never go through: a 5xx reply to the
  recipient or to the content (bad address, message refused);
* :class:`UncertainDeliveryError` — the connection broke after the content was sent and before
  the server's answer: the message may have been delivered;
* :class:`~planner.errors.AuthError` / :class:`~planner.errors.ConfigError` — the settings or
  the server are wrong (login refused, TLS failed, sender refused): no message can go through
  until someone fixes them.
"""

from __future__ import annotations

import base64
import hashlib
import re
import smtplib
import ssl
import uuid
from collections.abc import Callable, Mapping
from datetime import datetime
from email import policy
from email.headerregistry import Address
from email.message import EmailMessage
from typing import Protocol

from planner.delivery.mailconfig import SmtpSettings
from planner.errors import AuthError, ConfigError, DeliveryError, StridewiseError

#: Bytes on the wire: CRLF line ends and RFC 2047-encoded non-ASCII names (RFC 5322/5321).
WIRE_POLICY = policy.SMTP
FIT_MIME = ("application", "vnd.ant.fit")  # IANA-registered media type for FIT files


class TransientDeliveryError(DeliveryError):
    """The server or the network failed for now; the same message may succeed later."""


class PermanentDeliveryError(DeliveryError):
    """The server refused this message or its recipient for good (a 5xx reply)."""


class UncertainDeliveryError(DeliveryError):
    """The connection broke after the content was sent: the message may have been delivered."""


class RenderedMail(Protocol):
    """What the mail needs from a rendered plan (``planner.delivery.render.RenderedPlan`` fits)."""

    @property
    def html(self) -> str: ...
    @property
    def text(self) -> str: ...
    @property
    def ics(self) -> bytes: ...
    @property
    def fit_workouts(self) -> Mapping[str, bytes]: ...
    @property
    def chart_png(self) -> bytes | None: ...
    @property
    def chart_cid(self) -> str: ...


def content_hash(rendered: RenderedMail) -> str:
    """SHA-256 over everything the athlete reads, so a changed plan is told from a resent one."""
    digest = hashlib.sha256()
    parts: list[tuple[str, bytes]] = [
        ("text", rendered.text.encode()),
        ("html", rendered.html.encode()),
        ("ics", rendered.ics),
        ("chart", rendered.chart_png or b""),
    ]
    parts += [(f"fit:{name}", data) for name, data in sorted(rendered.fit_workouts.items())]
    for label, data in parts:
        # Length-prefixed so moving bytes from one part to the next changes the hash.
        digest.update(f"{label}:{len(data)}:".encode())
        digest.update(data)
    return digest.hexdigest()


def new_message_id(sender: Address) -> str:
    """A globally unique Message-ID in the sender's domain (RFC 5322 §3.6.4)."""
    return f"<{uuid.uuid4().hex}.stridewise@{sender.domain}>"


def build_message(
    rendered: RenderedMail,
    *,
    recipient: Address,
    settings: SmtpSettings,
    subject: str,
    message_id: str,
    date: datetime,
    ics_filename: str,
) -> EmailMessage:
    """The complete message for one athlete (structure in the module docstring)."""
    msg = EmailMessage(policy=WIRE_POLICY)
    msg["Subject"] = subject
    msg["From"] = settings.sender
    msg["To"] = recipient
    msg["Reply-To"] = settings.reply_to
    msg["Date"] = date
    msg["Message-ID"] = message_id
    # RFC 2369: mail clients offer an unsubscribe button that writes to the coach.
    msg["List-Unsubscribe"] = f"<mailto:{settings.reply_to.addr_spec}?subject=unsubscribe>"
    # RFC 3834: keeps vacation auto-replies from answering a weekly robot.
    msg["Auto-Submitted"] = "auto-generated"
    # Quoted-printable keeps every line 7-bit, so relays without 8BITMIME pass it unchanged.
    msg.set_content(rendered.text, subtype="plain", cte="quoted-printable")
    msg.add_alternative(rendered.html, subtype="html", cte="quoted-printable")
    if rendered.chart_png:
        html_part = next(p for p in msg.iter_parts() if p.get_content_type() == "text/html")
        html_part.add_related(
            rendered.chart_png,
            maintype="image",
            subtype="png",
            cid=f"<{rendered.chart_cid}>",
            disposition="inline",
            filename="limiter-chart.png",
        )
    # Base64 keeps the calendar's CRLF lines and 75-octet folding byte for byte.
    msg.add_attachment(
        rendered.ics,
        maintype="text",
        subtype="calendar",
        filename=ics_filename,
        params={"charset": "utf-8"},
    )
    for name, data in sorted(rendered.fit_workouts.items()):
        msg.add_attachment(data, maintype=FIT_MIME[0], subtype=FIT_MIME[1], filename=name)
    return msg


# -- SMTP -----------------------------------------------------------------------------------

_EOL = re.compile(rb"\r\n|\r|\n")
_LEADING_DOT = re.compile(rb"(?m)^\.")


def _wire_data(message: EmailMessage) -> bytes:
    """The DATA payload: CRLF lines, dot-stuffed, ending in ``<CRLF>.<CRLF>`` (RFC 5321 §4.5.2)."""
    data = _EOL.sub(b"\r\n", message.as_bytes(policy=WIRE_POLICY))
    data = _LEADING_DOT.sub(b"..", data)
    if not data.endswith(b"\r\n"):
        data += b"\r\n"
    return data + b".\r\n"


def tls_context(settings: SmtpSettings) -> ssl.SSLContext:
    """Certificate and host-name checks on; a configured ``ca_file`` replaces the system CAs."""
    cafile = str(settings.ca_file) if settings.ca_file is not None else None
    return ssl.create_default_context(cafile=cafile)


def _reply_text(code: int, reply: bytes | str) -> str:
    text = reply.decode(errors="replace") if isinstance(reply, bytes) else reply
    return f"{code} {' '.join(text.split())}"


def _refused(code: int, reply: bytes | str, what: str) -> DeliveryError:
    """Classify a refusal by its reply code: 4xx try later (RFC 5321 §4.2.1), else give up."""
    text = f"{what}: {_reply_text(code, reply)}"
    if 400 <= code < 500:
        return TransientDeliveryError(text)
    return PermanentDeliveryError(text)


def _translate(exc: Exception, settings: SmtpSettings, stage: str) -> StridewiseError:
    """A smtplib or socket exception, before the content was sent, as one of ours."""
    server = f"{settings.host}:{settings.port}"
    if isinstance(exc, ssl.SSLCertVerificationError):
        return ConfigError(f"TLS certificate of {server} not trusted: {exc.verify_message}")
    if isinstance(exc, ssl.SSLError):
        return ConfigError(
            f"TLS with {server} failed ({exc.reason or exc}): check the security setting"
            f" ({settings.security}) and the port"
        )
    if isinstance(exc, smtplib.SMTPAuthenticationError):
        if 400 <= exc.smtp_code < 500:
            return TransientDeliveryError(f"login: {_reply_text(exc.smtp_code, exc.smtp_error)}")
        return AuthError(
            f"SMTP server {server} refused the login of {settings.username!r}:"
            f" {_reply_text(exc.smtp_code, exc.smtp_error)}"
        )
    if isinstance(exc, smtplib.SMTPResponseException):
        if 400 <= exc.smtp_code < 500:
            return TransientDeliveryError(f"{stage}: {_reply_text(exc.smtp_code, exc.smtp_error)}")
        return ConfigError(
            f"SMTP server {server} at {stage}: {_reply_text(exc.smtp_code, exc.smtp_error)}"
        )
    if isinstance(exc, smtplib.SMTPException) and not isinstance(
        exc, smtplib.SMTPServerDisconnected
    ):
        # e.g. no AUTH offered, or no login method in common with the server
        return ConfigError(f"SMTP server {server} at {stage}: {exc}")
    # Refused, reset, timed out, unreachable, or closed on us: nothing was handed over.
    return TransientDeliveryError(f"{stage}: {server}: {exc or type(exc).__name__}")


def _connect(settings: SmtpSettings, context: ssl.SSLContext) -> smtplib.SMTP:
    assert settings.host is not None  # checked by deliver()
    if settings.security == "tls":
        return smtplib.SMTP_SSL(
            settings.host, settings.port, timeout=settings.timeout_s, context=context
        )
    return smtplib.SMTP(settings.host, settings.port, timeout=settings.timeout_s)


def _login(conn: smtplib.SMTP, username: str, password: str) -> None:
    if f"{username}{password}".isascii():
        conn.login(username, password)
        return
    # smtplib encodes credentials as ASCII; AUTH PLAIN carries UTF-8 (RFC 4616), so a password
    # like "pässword" goes that way.
    if "plain" not in conn.esmtp_features.get("auth", "").lower().split():
        raise ConfigError("non-ASCII SMTP credentials need AUTH PLAIN, which the server lacks")
    token = base64.b64encode(f"\0{username}\0{password}".encode()).decode("ascii")
    code, reply = conn.docmd("AUTH", f"PLAIN {token}")
    if code != 235:
        raise smtplib.SMTPAuthenticationError(code, reply)


def _quit_quietly(conn: smtplib.SMTP) -> None:
    # After the server accepted the message nothing that QUIT does may turn it into an error.
    try:
        conn.quit()
    except (OSError, smtplib.SMTPException):
        pass
    finally:
        conn.close()


def deliver(
    message: EmailMessage,
    settings: SmtpSettings,
    *,
    before_content: Callable[[], None] | None = None,
) -> str:
    """Send one message; return the server's acceptance reply (e.g. ``250 OK queued as X``).

    ``before_content`` runs after the server said 354 to DATA and before the first byte of the
    content is sent: until then a failure means the server cannot hold the message; after it,
    a broken connection raises :class:`UncertainDeliveryError`.
    """
    if not settings.host:
        raise ConfigError("no SMTP host configured (see docs/email.md)")
    sender = settings.sender.addr_spec
    recipients = [addr.addr_spec for addr in message["To"].addresses]
    payload = _wire_data(message)
    context = tls_context(settings)
    stage = "connect"
    try:
        conn = _connect(settings, context)
    except (OSError, smtplib.SMTPException) as exc:
        raise _translate(exc, settings, stage) from None
    in_data = False  # between 354 and the reply, a QUIT would be read as message text
    try:
        try:
            stage = "EHLO"
            conn.ehlo_or_helo_if_needed()
            if settings.security == "starttls":
                if not conn.has_extn("starttls"):
                    raise ConfigError(
                        f"SMTP server {settings.host}:{settings.port} does not offer STARTTLS:"
                        ' set security = "tls" (port 465) or use another server'
                    )
                stage = "STARTTLS"
                conn.starttls(context=context)
                conn.ehlo()
            if settings.username:
                stage = "login"
                _login(conn, settings.username, settings.password or "")
            stage = "MAIL FROM"
            code, reply = conn.mail(sender)
            if code != 250:
                if 400 <= code < 500:
                    raise TransientDeliveryError(f"sender: {_reply_text(code, reply)}")
                raise ConfigError(
                    f"SMTP server refused the sender {sender}: {_reply_text(code, reply)}"
                )
            for rcpt in recipients:
                stage = "RCPT TO"
                code, reply = conn.rcpt(rcpt)
                if code not in (250, 251):
                    raise _refused(code, reply, f"recipient {rcpt}")
            stage = "DATA"
            code, reply = conn.docmd("DATA")
            if code != 354:
                raise _refused(code, reply, "DATA")
        except (OSError, smtplib.SMTPException) as exc:
            raise _translate(exc, settings, stage) from None
        in_data = True
        if before_content is not None:
            before_content()
        try:
            conn.send(payload)
            code, reply = conn.getreply()
            in_data = False
        except (OSError, smtplib.SMTPException) as exc:
            raise UncertainDeliveryError(
                f"connection to {settings.host}:{settings.port} lost after the message was sent"
                f" and before the server answered ({exc or type(exc).__name__})"
            ) from None
        if code != 250:
            raise _refused(code, reply, "message")
        return _reply_text(code, reply)
    finally:
        if in_data:
            conn.close()  # the server drops a message whose final "." never came
        else:
            _quit_quietly(conn)
