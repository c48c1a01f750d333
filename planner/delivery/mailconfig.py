"""SMTP settings: the ``[smtp]`` table of config.toml, each key overridable from the environment.

``config.toml``::

    [smtp]
    host = "smtp.example.org"
    port = 587                      # default: 587 starttls, 465 tls, 25 none
    security = "starttls"           # starttls | tls | none (none: loopback relays only)
    username = "coach@example.org"
    from = "Coach Ana <coach@example.org>"
    reply_to = "coach@example.org"  # default: the from address
    ca_file = "/etc/ssl/private-ca.pem"   # optional: trust a private CA
    timeout_s = 30

Environment overrides (for servers and cron): ``STRIDEWISE_SMTP_HOST``, ``STRIDEWISE_SMTP_PORT``,
``STRIDEWISE_SMTP_SECURITY``, ``STRIDEWISE_SMTP_USER``, ``STRIDEWISE_SMTP_PASSWORD``,
``STRIDEWISE_SMTP_FROM``.

The password comes from ``STRIDEWISE_SMTP_PASSWORD`` or the system keyring (service
``stridewise-smtp``, the username as key: ``keyring set stridewise-smtp USER``). A ``password``
in config.toml is read only when the same table says ``plaintext_password = true``; without that
opt-in it is an error, so a password never sits in a file by accident. The password is never
printed or logged: :class:`SmtpSettings` hides it from ``repr``.
"""

from __future__ import annotations

import ipaddress
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from email.headerregistry import Address
from email.utils import parseaddr
from pathlib import Path
from typing import Any, Literal

from email_validator import EmailNotValidError, validate_email

from planner.errors import ConfigError
from planner.store.config import load_config

Security = Literal["starttls", "tls", "none"]
SECURITIES: tuple[Security, ...] = ("starttls", "tls", "none")
#: Submission ports: 587 for STARTTLS (RFC 6409), 465 for implicit TLS (RFC 8314), 25 for a
#: plain local relay.
DEFAULT_PORTS: dict[Security, int] = {"starttls": 587, "tls": 465, "none": 25}
#: Seconds to wait for the server at each step; our own choice, long enough for a slow relay.
DEFAULT_TIMEOUT_S = 30.0
KEYRING_SERVICE = "stridewise-smtp"

ENV_HOST = "STRIDEWISE_SMTP_HOST"
ENV_PORT = "STRIDEWISE_SMTP_PORT"
ENV_SECURITY = "STRIDEWISE_SMTP_SECURITY"
ENV_USER = "STRIDEWISE_SMTP_USER"
ENV_PASSWORD = "STRIDEWISE_SMTP_PASSWORD"
ENV_FROM = "STRIDEWISE_SMTP_FROM"

_KNOWN_KEYS = frozenset(
    {
        "host",
        "port",
        "security",
        "username",
        "password",
        "plaintext_password",
        "from",
        "reply_to",
        "ca_file",
        "timeout_s",
    }
)


@dataclass(frozen=True, slots=True)
class SmtpSettings:
    """Everything needed to build and deliver mail. ``host`` is None when only dry runs work."""

    host: str | None
    port: int
    security: Security
    sender: Address
    reply_to: Address
    username: str | None = None
    password: str | None = field(default=None, repr=False)
    ca_file: Path | None = None
    timeout_s: float = DEFAULT_TIMEOUT_S

    def __repr__(self) -> str:
        hidden = "'***'" if self.password else "None"
        return (
            f"SmtpSettings(host={self.host!r}, port={self.port}, security={self.security!r},"
            f" sender={str(self.sender)!r}, reply_to={str(self.reply_to)!r},"
            f" username={self.username!r}, password={hidden}, ca_file={self.ca_file!r},"
            f" timeout_s={self.timeout_s})"
        )

    __str__ = __repr__


def is_loopback(host: str) -> bool:
    """True for ``localhost`` and loopback IP literals; no DNS look-up is made."""
    if host.lower().rstrip(".") == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def parse_address(value: str, what: str) -> Address:
    """``Name <addr>`` or ``addr`` as an :class:`~email.headerregistry.Address` (ASCII form)."""
    name, addr = parseaddr(value)
    try:
        checked = validate_email(addr, check_deliverability=False, allow_smtputf8=False)
    except EmailNotValidError as exc:
        raise ConfigError(f"SMTP {what} {value!r}: {exc}") from None
    return Address(display_name=name, addr_spec=checked.ascii_email or checked.normalized)


def _keyring_password(username: str) -> str | None:
    import keyring
    from keyring.errors import KeyringError

    try:
        return keyring.get_password(KEYRING_SERVICE, username)
    except KeyringError:
        # No usable keyring (headless server): the env var is the way there.
        return None


def load_smtp_settings(
    *,
    sending: bool = True,
    config: Mapping[str, Any] | None = None,
    env: Mapping[str, str] | None = None,
) -> SmtpSettings:
    """Read the SMTP settings; with ``sending=False`` (dry runs) host and password may be absent.

    Raises :class:`ConfigError` with one line naming the setting when something cannot work.
    """
    env = os.environ if env is None else env
    table = dict((load_config() if config is None else config).get("smtp", {}))
    unknown = sorted(set(table) - _KNOWN_KEYS)
    if unknown:
        raise ConfigError(f"config.toml [smtp]: unknown key(s) {', '.join(unknown)}")

    def pick(env_name: str, key: str) -> Any:
        value = env.get(env_name)
        return value if value not in (None, "") else table.get(key)

    security = str(pick(ENV_SECURITY, "security") or "starttls").lower()
    if security not in SECURITIES:
        raise ConfigError(f"SMTP security {security!r}: use starttls, tls or none")
    sec: Security = security
    host = pick(ENV_HOST, "host")
    host = str(host).strip() if host else None
    if sending and not host:
        raise ConfigError(
            f"no SMTP host: set host in the [smtp] table of config.toml or {ENV_HOST}"
        )
    if host and sec == "none" and not is_loopback(host):
        raise ConfigError(
            f"SMTP security 'none' is only allowed for a loopback relay, not {host!r}:"
            " use starttls or tls"
        )
    raw_port = pick(ENV_PORT, "port")
    try:
        port = int(raw_port) if raw_port is not None else DEFAULT_PORTS[sec]
    except (TypeError, ValueError):
        raise ConfigError(f"SMTP port {raw_port!r}: not a number") from None
    if not 0 < port < 65536:
        raise ConfigError(f"SMTP port {port}: use 1 to 65535")

    raw_from = pick(ENV_FROM, "from")
    if not raw_from:
        raise ConfigError(f"no sender: set from in the [smtp] table of config.toml or {ENV_FROM}")
    sender = parse_address(str(raw_from), "from")
    reply_to = (
        parse_address(str(table["reply_to"]), "reply_to") if table.get("reply_to") else sender
    )

    username = pick(ENV_USER, "username")
    username = str(username) if username else None
    password = _password(table, env, username) if sending and username else None
    if sending and username and not password:
        raise ConfigError(
            f"no password for SMTP user {username!r}: set {ENV_PASSWORD} or store it with"
            f" 'keyring set {KEYRING_SERVICE} {username}'"
        )
    ca_file = Path(str(table["ca_file"])).expanduser() if table.get("ca_file") else None
    if ca_file is not None and not ca_file.is_file():
        raise ConfigError(f"SMTP ca_file {str(ca_file)!r}: no such file")
    try:
        timeout_s = float(table.get("timeout_s", DEFAULT_TIMEOUT_S))
    except (TypeError, ValueError):
        raise ConfigError(f"SMTP timeout_s {table.get('timeout_s')!r}: not a number") from None
    return SmtpSettings(
        host=host,
        port=port,
        security=sec,
        sender=sender,
        reply_to=reply_to,
        username=username,
        password=password,
        ca_file=ca_file,
        timeout_s=timeout_s,
    )


def _password(table: Mapping[str, Any], env: Mapping[str, str], username: str) -> str | None:
    if "password" in table and table.get("plaintext_password") is not True:
        raise ConfigError(
            "config.toml [smtp] holds a plain-text password: move it to the keyring"
            f" ('keyring set {KEYRING_SERVICE} {username}') or {ENV_PASSWORD}, or opt in"
            " with plaintext_password = true"
        )
    from_env = env.get(ENV_PASSWORD)
    if from_env:
        return from_env
    if "password" in table:
        return str(table["password"])
    return _keyring_password(username)
