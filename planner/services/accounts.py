"""Connecting and disconnecting the outside accounts, whatever connector they belong to.

The CLI (and any other face) calls these; the connectors (:mod:`planner.connector`, found in
the registry) do the talking. What a user is asked (passwords, codes) comes in through
:class:`~planner.connector.ConnectPrompts`, so this layer never reads a terminal. Strava's
web-redirect flow and Garmin's second login step (the verification code) are the two steps
that only one service has, and have their own functions here.
"""

from __future__ import annotations

import secrets
from collections.abc import Mapping

from connectors import garmin as gc
from connectors.strava import ConnectResult, StravaConnector, finish_connect
from planner.connector import Connected, ConnectPrompts, Disconnected
from planner.records import DEFAULT_ATHLETE
from planner.services.registry import load_connector

__all__ = [
    "ConnectPrompts",
    "ConnectResult",
    "Connected",
    "Disconnected",
    "connect",
    "disconnect",
    "garmin_resume_login",
    "strava_authorization_url",
    "strava_connect_finish",
]


def connect(name: str, athlete_id: str | None, prompts: ConnectPrompts) -> Connected:
    """Let stridewise read an athlete's activities from the connector called ``name``."""
    return load_connector(name).connect(athlete_id or DEFAULT_ATHLETE, prompts)


def disconnect(name: str, athlete_id: str | None) -> Disconnected:
    """Revoke access where the service allows it, and delete the stored tokens."""
    return load_connector(name).disconnect(athlete_id or DEFAULT_ATHLETE)


def garmin_resume_login(mfa_code: str) -> Connected:
    """Finish a Garmin login that stopped for its verification code."""
    result = gc.resume_login(mfa_code)
    return Connected(gc.login_message(result), notes=result.notes)


def strava_authorization_url(athlete_id: str, redirect_uri: str) -> tuple[str, str]:
    """Where to send a browser to connect ``athlete_id``'s Strava account, and the random
    state its redirect must bring back (the web face's version of ``strava connect``)."""
    state = secrets.token_urlsafe(16)
    return StravaConnector(athlete_id).authorization_url(redirect_uri, state), state


def strava_connect_finish(
    athlete_id: str, query: Mapping[str, str], expected_state: str
) -> ConnectResult:
    """Check Strava's redirect (its query string) and store the tokens, as ``strava connect``."""
    return finish_connect(StravaConnector(athlete_id), query, expected_state)
