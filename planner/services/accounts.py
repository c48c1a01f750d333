"""Connecting and disconnecting the outside accounts (Garmin Connect, Strava).

The CLI (and any other face) calls these; the connectors do the talking. What a user is asked
(passwords, codes) comes in as callables so this layer never reads a terminal.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from connectors import garmin as gc
from connectors.garmin import LoginResult
from connectors.strava import ConnectResult, StravaConnector, connect_account
from planner.errors import AuthError
from planner.records import DEFAULT_ATHLETE

__all__ = [
    "ConnectResult",
    "GarminLogout",
    "LoginResult",
    "StravaDisconnect",
    "connect_strava",
    "disconnect_strava",
    "garmin_logged_in_as",
    "garmin_login",
    "garmin_logout",
    "garmin_resume_login",
]


def garmin_logged_in_as() -> tuple[str, Path] | None:
    """(display name, token file) when Garmin tokens are stored, else None."""
    who = gc.logged_in_as()
    return None if who is None else (who, gc.token_file())


def garmin_login(
    ask_email: Callable[[], str],
    ask_password: Callable[[], str],
    ask_mfa: Callable[[], str] | None,
) -> LoginResult:
    """Log in with the e-mail and password from the environment or the given prompts."""
    email = os.environ.get(gc.EMAIL_ENV) or ask_email()
    password = os.environ.get(gc.PASSWORD_ENV) or ask_password()
    return gc.login(email, password, prompt_mfa=ask_mfa)


def garmin_resume_login(mfa_code: str) -> LoginResult:
    """Finish a login that stopped for its verification code."""
    return gc.resume_login(mfa_code)


@dataclass(frozen=True, slots=True)
class GarminLogout:
    """What ``garmin logout`` removed (empty: nothing was stored in ``token_file``)."""

    removed: tuple[Path, ...]
    token_file: Path


def garmin_logout() -> GarminLogout:
    """Delete the stored Garmin tokens (and a login waiting for its code)."""
    return GarminLogout(tuple(gc.logout()), gc.token_file())


def connect_strava(
    athlete_id: str | None,
    *,
    no_browser: bool,
    show: Callable[[str], None],
    read_pasted: Callable[[], str],
) -> ConnectResult:
    """Run Strava's OAuth flow for one athlete and store the tokens."""
    connector = StravaConnector(athlete_id or DEFAULT_ATHLETE)
    return connect_account(connector, no_browser=no_browser, show=show, read_pasted=read_pasted)


@dataclass(frozen=True, slots=True)
class StravaDisconnect:
    """What ``strava disconnect`` did: whether tokens were stored, and any warning."""

    was_connected: bool
    warning: str | None = None


def disconnect_strava(athlete_id: str | None) -> StravaDisconnect:
    """Revoke access at Strava (``oauth/revoke``) and delete the stored tokens (a no-op when
    not connected); ``warning`` says why Strava did not confirm, if it did not."""
    connector = StravaConnector(athlete_id or DEFAULT_ATHLETE)
    try:
        connector.tokens()
    except AuthError:
        return StravaDisconnect(was_connected=False)
    return StravaDisconnect(was_connected=True, warning=connector.disconnect())
