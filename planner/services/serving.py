"""``stridewise serve``: the coach's web dashboard, calendar feeds and Strava's webhook.

Safe by default: it listens on loopback unless told otherwise, and refuses any other address
unless an access token is set (``STRIDEWISE_SERVE_TOKEN``, from the environment so it never
lands in shell history or a process list). With a token, every page but the calendar feeds,
Strava's webhook and the log-in page needs it (planner/web/security.py).
"""

from __future__ import annotations

import ipaddress
import os
from collections.abc import Callable
from pathlib import Path

from planner.errors import ConfigError

TOKEN_ENV = "STRIDEWISE_SERVE_TOKEN"
DEFAULT_HOST = "127.0.0.1"
DEFAULT_PORT = 8765
#: Shortest access token accepted: 16 characters of a random token is ~96 bits — our own
#: floor, far beyond online guessing; `secrets.token_urlsafe()` gives 43.
MIN_TOKEN_CHARS = 16


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False  # a host name other than localhost: may resolve anywhere


def access_token() -> str | None:
    token = os.environ.get(TOKEN_ENV) or None
    if token is not None and len(token) < MIN_TOKEN_CHARS:
        raise ConfigError(
            f"{TOKEN_ENV} is too short: use at least {MIN_TOKEN_CHARS} random characters"
            " (e.g. python -c 'import secrets; print(secrets.token_urlsafe())')"
        )
    return token


def check_bind(host: str) -> str | None:
    """The access token to require; ConfigError when ``host`` is not loopback and none is set."""
    token = access_token()
    if not is_loopback(host) and token is None:
        raise ConfigError(
            f"refusing to listen on {host} without an access token: set {TOKEN_ENV}"
            " (or keep the default --host 127.0.0.1)"
        )
    return token


def serve(
    db: Path | None,
    host: str = DEFAULT_HOST,
    port: int = DEFAULT_PORT,
    *,
    ready: Callable[[str], None] | None = None,
) -> None:
    """Check the bind, then serve until interrupted; ``ready`` gets the address once bound."""
    from planner.services.activities import open_store
    from planner.web.app import WebSettings
    from planner.web.server import bind, run

    token = check_bind(host)
    with open_store(db):
        pass  # create and migrate the database before the first request, errors as one line
    try:
        sock = bind(host, port)
    except OSError as exc:
        raise ConfigError(f"cannot listen on {host}:{port}: {exc.strerror}") from None
    settings = WebSettings(db=db, access_token=token, loopback_only=is_loopback(host))
    run(settings, sock, ready=ready)
