"""Which Strava host serves which request, by date: OAuth stays, the API moves (pure).

Strava's changelog of 1 June 2026 (tracked upstream in stravalib/stravalib#730, #737, #738)
moves the API base from ``https://www.strava.com/api/v3`` to ``https://api-v3.strava.com``
(no ``/api/v3`` prefix), available from 4 January 2027 and mandatory from 1 June 2027, while
OAuth (``oauth/authorize``, ``oauth/token``, ``oauth/revoke``) stays on ``www.strava.com``.
stravalib 2.6.0, the newest release, still has one ``protocol.server`` for both, so
:class:`connectors.strava.StravaConnector` sets ``server`` to the OAuth host and sends API
calls to absolute URLs built from :func:`api_bases`.

Nothing here reads the clock or the environment by itself: ``now`` and ``environ`` are
arguments, so the choice over time is testable (as stravalib's own
``get_seconds_until_next_quarter(now)``).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from urllib.parse import urlsplit

from planner.errors import ConfigError

API_ENV = "STRIDEWISE_STRAVA_API"
OAUTH_ENV = "STRIDEWISE_STRAVA_OAUTH"

OAUTH_HOST = "www.strava.com"
OLD_API_BASE = "https://www.strava.com/api/v3"
NEW_API_BASE = "https://api-v3.strava.com"

#: The new base answers from this day on (Strava changelog, 1 June 2026). Strava gives no
#: time of day or zone; midnight UTC is our assumption, and harmless: until 1 June 2027 a new
#: host that does not answer yet falls back to the old one.
NEW_API_FROM = datetime(2027, 1, 4, tzinfo=UTC)
#: From this day the old base and ``oauth/deauthorize`` are retired and the new base is
#: mandatory (Strava changelog, 1 June 2026). Midnight UTC: our assumption, as above.
OLD_API_UNTIL = datetime(2027, 6, 1, tzinfo=UTC)


@dataclass(frozen=True, slots=True)
class StravaHosts:
    """Where OAuth and the two API bases live.

    ``oauth`` is a ``host[:port]`` (stravalib's ``protocol.server``); ``api_new`` and
    ``api_old`` are base URLs that API paths such as ``/athlete/activities`` are appended to.
    ``pinned`` means one base was chosen by configuration: no date logic, no fallback.
    """

    oauth: str = OAUTH_HOST
    api_new: str = NEW_API_BASE
    api_old: str = OLD_API_BASE
    pinned: bool = False


def api_bases(hosts: StravaHosts, now: datetime) -> tuple[str, ...]:
    """The API bases to use at ``now``, preferred first; a later one is only a fallback for
    when an earlier one does not answer at all (no connection)."""
    if hosts.pinned or now >= OLD_API_UNTIL:
        return (hosts.api_new,)
    if now < NEW_API_FROM:
        return (hosts.api_old,)
    if hosts.api_new == hosts.api_old:
        return (hosts.api_new,)
    return (hosts.api_new, hosts.api_old)


def hosts_from_env(environ: Mapping[str, str]) -> StravaHosts:
    """Strava's own hosts, or the ones ``STRIDEWISE_STRAVA_API`` / ``_OAUTH`` name.

    ``STRIDEWISE_STRAVA_API=host:port`` keeps its old meaning: every call, OAuth and API, goes
    to that host over HTTPS, API paths under ``/api/v3`` (the layout of today's base). A full
    ``https://host[:port][/prefix]`` is used as the API base as written, so a proxy of the
    new layout (no prefix) works too. ``STRIDEWISE_STRAVA_OAUTH=host:port`` sends OAuth
    elsewhere than the API.
    """
    api = (environ.get(API_ENV) or "").strip()
    oauth = (environ.get(OAUTH_ENV) or "").strip()
    if oauth:
        oauth = _host(OAUTH_ENV, oauth)
    if not api:
        return StravaHosts(oauth=oauth or OAUTH_HOST)
    if "://" in api:
        parts = urlsplit(api)
        if parts.scheme != "https" or not parts.netloc or parts.query or parts.fragment:
            raise ConfigError(f"{API_ENV} must be host:port or an https:// URL, got {api!r}")
        base = api.rstrip("/")
        api_host = parts.netloc
    else:
        api_host = _host(API_ENV, api)
        base = f"https://{api_host}/api/v3"
    return StravaHosts(oauth=oauth or api_host, api_new=base, api_old=base, pinned=True)


def _host(name: str, value: str) -> str:
    parts = urlsplit(f"//{value}")
    if not parts.hostname or parts.path or parts.query or parts.fragment:
        raise ConfigError(f"{name} must be host or host:port, got {value!r}")
    try:
        parts.port  # noqa: B018 - raises on a port that is not a number
    except ValueError:
        raise ConfigError(f"{name} must be host or host:port, got {value!r}") from None
    return value
