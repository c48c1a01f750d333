"""Strava adapter: OAuth, activity listing, streams → canonical frame. stravalib stops here.

Everything that talks to Strava goes through :class:`StravaConnector`, which drives the
unmodified stravalib client and hands back only our records (:class:`Activity`,
:class:`ImportedActivity`, :class:`Tokens`). Every stravalib or requests exception is
translated here into :class:`AuthError` (401/403: connect again), :class:`RateLimitedError`
(429, or our own stop just before the limit, with the time the window resets),
:class:`StravaUnavailableError` (5xx or network failure that retrying did not fix) or
:class:`ServiceError`.

Advanced settings (for proxies and end-to-end checks):

* API calls go to ``https://www.strava.com/api/v3`` until 4 January 2027, then to
  ``https://api-v3.strava.com`` (falling back to the old base while the new one does not
  answer, until 1 June 2027); OAuth stays on ``www.strava.com`` (:mod:`connectors.strava_hosts`);
* ``STRIDEWISE_STRAVA_API=host:port`` sends every Strava call, OAuth and API, to that host
  over HTTPS (an ``https://`` URL is taken as the API base as written);
  ``STRIDEWISE_STRAVA_OAUTH=host:port`` sends OAuth calls to another host;
* ``STRIDEWISE_STRAVA_CA=FILE`` trusts that CA bundle for it (and ignores ``REQUESTS_CA_BUNDLE``
  and proxy variables, which would otherwise override the bundle silently);
* ``STRIDEWISE_STRAVA_CLIENT_ID`` / ``STRIDEWISE_STRAVA_CLIENT_SECRET`` supply the API
  application's credentials (else the ``[strava]`` table of ``config.toml``).
"""

from __future__ import annotations

import contextlib
import dataclasses
import html
import os
import re
import secrets
import threading
import time
import webbrowser
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, HTTPServer
from pathlib import Path
from typing import Any, TypeVar
from urllib.parse import parse_qs, urlsplit

import numpy as np
import pandas as pd
import requests
from requests.adapters import HTTPAdapter
from stravalib import exc as strava_exc
from stravalib import model as strava_model
from stravalib.client import Client
from stravalib.protocol import Scope
from stravalib.util.limiter import RateLimiter

from connectors.strava_hosts import (
    API_ENV,
    OAUTH_ENV,
    StravaHosts,
    api_bases,
    hosts_from_env,
)
from connectors.tokens import Tokens, TokenStore, open_token_store
from planner.connector import Connected, ConnectPrompts, Disconnected, ListedPage
from planner.errors import (
    AuthError,
    ConfigError,
    NotFoundError,
    RateLimitedError,
    ServiceError,
    ServiceUnavailableError,
    StridewiseError,
)
from planner.records import DEFAULT_ATHLETE, Activity, ImportedActivity, Source
from planner.schema import (
    INDEX_NAME,
    Col,
    clip_implausible,
    empty_stream,
    validate_stream,
)
from planner.store.config import load_config

CA_ENV = "STRIDEWISE_STRAVA_CA"
CLIENT_ID_ENV = "STRIDEWISE_STRAVA_CLIENT_ID"
CLIENT_SECRET_ENV = "STRIDEWISE_STRAVA_CLIENT_SECRET"

SCOPE: Scope = "activity:read_all"
RECONNECT = "run 'stridewise strava connect' again"

#: Streams requested for runs: Strava's stream types (domain.md §1).
STREAM_TYPES: tuple[str, ...] = (
    "time",
    "distance",
    "velocity_smooth",
    "heartrate",
    "cadence",
    "watts",
    "altitude",
    "grade_smooth",
    "latlng",
    "moving",
    "temp",
)

#: Strava sport types that are runs, and the FIT sub-sport each one corresponds to.
RUN_SPORT_TYPES: dict[str, str | None] = {
    "Run": None,
    "TrailRun": "trail",
    "VirtualRun": "virtual_activity",
}

#: Streams that map one-to-one onto a canonical column, with the factor to its unit.
_STREAM_COLUMNS: dict[str, tuple[Col, float]] = {
    "distance": (Col.DISTANCE_M, 1.0),
    "velocity_smooth": (Col.SPEED_MPS, 1.0),
    "heartrate": (Col.HEART_RATE_BPM, 1.0),
    # Strava reports run cadence per foot (strides/min); steps/min is twice that, as for FIT
    # cadence (domain.md §1).
    "cadence": (Col.CADENCE_SPM, 2.0),
    "watts": (Col.POWER_W, 1.0),
    "altitude": (Col.ALTITUDE_M, 1.0),
    "grade_smooth": (Col.GRADE_PCT, 1.0),  # Strava's grade_smooth is already in percent
    "temp": (Col.TEMPERATURE_C, 1.0),
}

#: Refresh the access token when less than this is left. Access tokens live 6 h (domain.md
#: §1) and Strava hands out a new one only when less than 1 h is left (Strava authentication
#: docs); 10 minutes outlasts any single request burst of ours. Our own choice within that.
REFRESH_MARGIN_S = 600.0

#: Requests left unused below each rate limit (reads 100/15 min, 1,000/day; overall 200/15 min,
#: 2,000/day — domain.md §1). Strava counts per application, so a little headroom keeps other
#: tools of the same application working. Our own choice.
RATE_RESERVE = 3

#: 5xx answers and dropped connections are retried this many times, waiting BACKOFF_S, then
#: twice as long each time (1, 2, 4, 8 s): our own choice, short enough for an interactive sync.
RETRIES = 4
BACKOFF_S = 1.0

#: stravalib passes no timeout to requests; without one a silent server hangs the sync forever.
REQUEST_TIMEOUT_S = 30.0

#: How long ``strava connect`` waits for the browser to come back to the loopback server.
REDIRECT_TIMEOUT_S = 300.0

#: The redirect target for ``--no-browser``: Strava allows localhost for any application, and
#: the user copies the address the browser fails to open.
PASTE_REDIRECT_URI = "http://localhost/exchange_token"

T = TypeVar("T")


@dataclass(frozen=True, slots=True)
class PushSubscription:
    """The application's webhook subscription at Strava."""

    id: int
    callback_url: str


#: Strava's maximum page size for the activity list (Strava API reference): fewest requests.
PER_PAGE = 200

#: Strava's ``after`` is exclusive; listing from one second earlier re-lists the activity at
#: the sync's cursor, which is recognised by its id and costs nothing more.
_OVERLAP = timedelta(seconds=1)


def _status_of(exc: StridewiseError) -> str:
    found = re.search(r"HTTP \d{3}", str(exc))
    return found.group(0) if found else "refused"


class StravaUnavailableError(ServiceUnavailableError):
    """Strava (or the network to it) failed in a way that retrying with backoff did not fix."""


class _TransientError(Exception):
    """A failure worth retrying (5xx, dropped connection, timeout); never leaves this module.

    ``no_answer``: no HTTP answer at all (refused, unreachable, dropped), which is what makes
    the new API host fall back to the old one during the transition.
    """

    def __init__(self, message: str, *, no_answer: bool = False):
        super().__init__(message)
        self.message = message
        self.no_answer = no_answer


# -- application credentials -------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class AppCredentials:
    """The user's own Strava API application (https://www.strava.com/settings/api)."""

    client_id: int
    client_secret: str = field(repr=False)


def app_credentials(config: Mapping[str, Any] | None = None) -> AppCredentials:
    """Client id and secret from the environment, else ``[strava]`` in config.toml."""
    table = (config if config is not None else load_config()).get("strava", {})
    if not isinstance(table, Mapping):
        raise ConfigError("config.toml: [strava] must be a table")
    raw_id = os.environ.get(CLIENT_ID_ENV) or table.get("client_id")
    secret = os.environ.get(CLIENT_SECRET_ENV) or table.get("client_secret")
    if not raw_id or not secret:
        raise ConfigError(
            "Strava API application not configured: set STRIDEWISE_STRAVA_CLIENT_ID and"
            " STRIDEWISE_STRAVA_CLIENT_SECRET, or client_id and client_secret under [strava]"
            " in config.toml (create the application at https://www.strava.com/settings/api)"
        )
    try:
        client_id = int(str(raw_id).strip())
    except ValueError:
        raise ConfigError("Strava client_id must be a number") from None
    return AppCredentials(client_id, str(secret).strip())


# -- rate limits ---------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class RateUsage:
    """One limit pair as Strava reports it: 15-minute and daily usage against their limits."""

    short_usage: int
    short_limit: int
    long_usage: int
    long_limit: int

    @property
    def short_left(self) -> int:
        return self.short_limit - self.short_usage

    @property
    def long_left(self) -> int:
        return self.long_limit - self.long_usage


def _pair(value: str | None) -> tuple[int, int] | None:
    if not value:
        return None
    try:
        first, second = (int(part.strip()) for part in value.split(",")[:2])
    except ValueError:
        return None
    return first, second


def _usage(headers: Mapping[str, str], prefix: str) -> RateUsage | None:
    limit = _pair(headers.get(f"{prefix}-limit"))
    usage = _pair(headers.get(f"{prefix}-usage"))
    if limit is None or usage is None:
        return None
    return RateUsage(usage[0], limit[0], usage[1], limit[1])


def next_quarter_hour(now: datetime) -> datetime:
    """When Strava's 15-minute window resets: at :00, :15, :30 and :45 UTC (Strava docs)."""
    floor = now.replace(minute=now.minute - now.minute % 15, second=0, microsecond=0)
    return floor + timedelta(minutes=15)


def next_utc_midnight(now: datetime) -> datetime:
    """When Strava's daily window resets: midnight UTC (Strava rate-limit docs)."""
    return now.astimezone(UTC).replace(hour=0, minute=0, second=0, microsecond=0) + timedelta(
        days=1
    )


class RateWatch(RateLimiter):
    """Remembers the usage Strava reported on the latest response; never sleeps.

    stravalib calls a rate limiter with each API response's headers. Its default limiter sleeps
    until the window resets; a command-line sync should rather stop, say when to come back,
    and resume then — so this one only records, and :class:`StravaConnector` decides.
    """

    def __init__(self) -> None:
        super().__init__()
        self.overall: RateUsage | None = None
        self.read: RateUsage | None = None

    def __call__(self, args: dict[str, str], method: Any) -> None:
        headers = {str(k).casefold(): str(v) for k, v in args.items()}
        self.overall = _usage(headers, "x-ratelimit") or self.overall
        # The read limit applies to GET requests only; every API call we make is a GET.
        if method == "GET":
            self.read = _usage(headers, "x-readratelimit") or self.read

    def _known(self) -> list[RateUsage]:
        return [u for u in (self.overall, self.read) if u is not None]

    def left(self) -> tuple[int, int] | None:
        """Requests left in the 15-minute and the daily window, or None before any response."""
        known = self._known()
        if not known:
            return None
        return min(u.short_left for u in known), min(u.long_left for u in known)

    def reset_at(self, now: datetime, reserve: int = 0) -> datetime:
        """When the window that stops us resets: midnight UTC if a daily limit is (nearly)
        used up, else the next quarter hour."""
        if any(u.long_left <= reserve for u in self._known()):
            return next_utc_midnight(now)
        return next_quarter_hour(now)


# -- streams → canonical frame ------------------------------------------------------------------


def _floats(values: Sequence[Any]) -> np.ndarray:
    return np.array([np.nan if v is None else v for v in values], dtype=np.float64)


def streams_to_frame(
    start_utc: datetime, streams: Mapping[str, Sequence[Any]]
) -> tuple[pd.DataFrame, tuple[str, ...]]:
    """Convert a run's Strava streams to the canonical per-second frame.

    Parameters
    ----------
    start_utc
        The activity's ``start_date`` (UTC); the ``time`` stream holds offsets from it, in s.
    streams
        Stream type → its values, as Strava returns them with ``key_by_type``: ``distance``
        (m), ``velocity_smooth`` (m/s), ``heartrate`` (bpm), ``cadence`` (per foot, 1/min),
        ``watts`` (W), ``altitude`` (m), ``grade_smooth`` (%), ``temp`` (°C), ``latlng``
        ([lat, lon] in degrees), ``moving`` (bool, not kept).

    Returns
    -------
    tuple
        The validated frame (``cadence_spm`` = 2 × Strava cadence, steps/min) and warnings.
        Without a ``time`` stream the samples cannot be placed in time: the frame is empty.
    """
    notes: list[str] = []
    time_values = streams.get("time")
    if not time_values:
        return empty_stream(), ("Strava returned no time stream; stored without samples",)
    offsets = _floats(time_values)
    n = len(offsets)
    columns: dict[str, np.ndarray] = {}
    for key, (col, factor) in _STREAM_COLUMNS.items():
        data = streams.get(key)
        if data is None:
            continue
        if len(data) != n:
            notes.append(f"{key} stream has {len(data)} samples, time has {n}; dropped")
            continue
        columns[col.value] = _floats(data) * factor
    latlng = streams.get("latlng")
    if latlng is not None:
        if len(latlng) != n:
            notes.append(f"latlng stream has {len(latlng)} samples, time has {n}; dropped")
        else:
            pairs = [p if isinstance(p, Sequence) and len(p) == 2 else (None, None) for p in latlng]
            columns[Col.LAT_DEG.value] = _floats([p[0] for p in pairs])
            columns[Col.LON_DEG.value] = _floats([p[1] for p in pairs])

    # Keep samples whose offset is known and later than every one before it: the schema
    # needs a strictly increasing index, and a repeated offset carries no new time.
    known = ~np.isnan(offsets)
    running_max = np.maximum.accumulate(np.where(known, offsets, -np.inf))
    previous = np.concatenate(([-np.inf], running_max[:-1]))
    keep = known & (offsets > previous)
    if not keep.all():
        notes.append(f"{int((~keep).sum())} samples with a missing or repeated time dropped")
    start_s = start_utc.astimezone(UTC).timestamp()
    index = pd.DatetimeIndex(
        pd.to_datetime(start_s + offsets[keep], unit="s", utc=True), name=INDEX_NAME
    )
    frame = pd.DataFrame({k: v[keep] for k, v in columns.items()}, index=index)
    frame, dropped = clip_implausible(frame)
    notes.extend(f"{count} implausible {name} values set to NaN" for name, count in dropped.items())
    return validate_stream(frame), tuple(notes)


def summary_to_activity(summary: strava_model.SummaryActivity) -> Activity:
    """Our metadata record for one Strava activity (no samples yet)."""
    type_name = summary.type.root if summary.type is not None else None
    sport_type = summary.sport_type.root if summary.sport_type is not None else None
    kind = sport_type or type_name or "Workout"
    if kind in RUN_SPORT_TYPES or (sport_type is None and type_name == "Run"):
        sport = "running"
        sub_sport = RUN_SPORT_TYPES.get(kind)
        if summary.trainer and sub_sport is None:
            sub_sport = "treadmill"
    else:
        sport = (type_name or kind).lower()
        sub_sport = sport_type.lower() if sport_type and sport_type != type_name else None
    if summary.id is None or summary.start_date is None:
        raise ServiceError("Strava listed an activity without an id or start date")
    elapsed = float(summary.elapsed_time) if summary.elapsed_time is not None else 0.0
    extra: dict[str, Any] = {
        "strava_id": summary.id,
        "strava_type": type_name,
        "strava_sport_type": sport_type,
        "manual": bool(summary.manual),
        "trainer": bool(summary.trainer),
    }
    if summary.timezone is not None:
        extra["timezone"] = str(summary.timezone)
    return Activity(
        source=Source.STRAVA,
        source_ref=str(summary.id),
        sport=sport,
        sub_sport=sub_sport,
        start_utc=summary.start_date.astimezone(UTC),
        elapsed_s=elapsed,
        moving_s=float(summary.moving_time) if summary.moving_time is not None else None,
        distance_m=float(summary.distance) if summary.distance is not None else None,
        name=summary.name,
        device=summary.device_name,
        decoder="strava-api",
        dynamics=(),  # Strava has no running dynamics (domain.md §1)
        extra=extra,
    )


# -- HTTP session ------------------------------------------------------------------------------


class _TimeoutAdapter(HTTPAdapter):
    """Gives every request a timeout, since stravalib sets none."""

    def __init__(self, timeout_s: float):
        super().__init__(max_retries=0)  # retries are ours: they count against rate limits
        self.timeout_s = timeout_s

    def send(self, request: Any, **kwargs: Any) -> Any:  # type: ignore[override]
        if kwargs.get("timeout") is None:
            kwargs["timeout"] = self.timeout_s
        return super().send(request, **kwargs)


def make_session(ca_file: str | None, timeout_s: float = REQUEST_TIMEOUT_S) -> requests.Session:
    """A requests session with a default timeout, trusting ``ca_file`` when given."""
    session = requests.Session()
    adapter = _TimeoutAdapter(timeout_s)
    session.mount("https://", adapter)
    session.mount("http://", adapter)
    if ca_file:
        if not Path(ca_file).is_file():
            raise ConfigError(f"{CA_ENV}: no such file {ca_file}")
        session.verify = ca_file
        # Otherwise REQUESTS_CA_BUNDLE / CURL_CA_BUNDLE silently replace `verify`.
        session.trust_env = False
    return session


@contextlib.contextmanager
def _silent_credential_check() -> Iterator[None]:
    """stravalib reads STRAVA_CLIENT_ID/SECRET at construction and, when they are absent, logs
    through the root logger — which installs a stderr handler for the whole process. We pass
    credentials ourselves, so silence that check for the moment of construction."""
    name = "SILENCE_TOKEN_WARNINGS"
    before = os.environ.get(name)
    os.environ[name] = "true"
    try:
        yield
    finally:
        if before is None:
            os.environ.pop(name, None)
        else:
            os.environ[name] = before


# -- the adapter -------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class ConnectResult:
    """What ``strava connect`` achieved (no secrets)."""

    athlete_key: str
    strava_athlete_id: int | None
    strava_athlete_name: str | None
    scope: str | None
    storage: str


class StravaConnector:
    """Strava for one stridewise athlete: OAuth, listing, streams; tokens kept fresh and saved.

    ``sleep`` and ``clock`` are injectable so retries and token expiry are testable without
    waiting; ``session`` lets a caller supply its own HTTP session. ``hosts`` (default: the
    environment, else Strava's own) and ``now`` (default: ``clock``) choose the API base once,
    at construction (:func:`connectors.strava_hosts.api_bases`).
    """

    def __init__(
        self,
        athlete_key: str,
        *,
        token_store: TokenStore | None = None,
        credentials: AppCredentials | None = None,
        hosts: StravaHosts | None = None,
        now: datetime | None = None,
        ca_file: str | None = None,
        session: requests.Session | None = None,
        sleep: Callable[[float], None] = time.sleep,
        clock: Callable[[], float] = time.time,
        retries: int = RETRIES,
        backoff_s: float = BACKOFF_S,
        reserve: int = RATE_RESERVE,
        per_page: int = PER_PAGE,
    ):
        self.athlete_key = athlete_key
        self.per_page = per_page
        self.tokens_store = token_store if token_store is not None else open_token_store()
        self._credentials = credentials
        self.hosts = hosts if hosts is not None else hosts_from_env(os.environ)
        when = now if now is not None else datetime.fromtimestamp(clock(), UTC)
        self.api_bases = list(api_bases(self.hosts, when))
        #: Set when the new API host did not answer and the old one was used instead.
        self.fell_back_from: str | None = None
        ca = ca_file if ca_file is not None else (os.environ.get(CA_ENV) or None)
        self.sleep = sleep
        self.clock = clock
        self.retries = retries
        self.backoff_s = backoff_s
        self.reserve = reserve
        self.rate = RateWatch()
        self.requests_sent = 0
        self._tokens: Tokens | None = None
        with _silent_credential_check():
            self.client = Client(
                rate_limiter=self.rate,
                requests_session=session if session is not None else make_session(ca),
            )
        # We refresh (with a margin) and persist the new refresh token ourselves; stravalib's
        # own refresh would rotate the token without telling us, losing it.
        self.client.protocol.client_id = None
        self.client.protocol.client_secret = None
        # stravalib builds OAuth URLs from `server` (authorize, token) and API URLs from
        # `server` + `api_base` only for relative paths; our API calls pass absolute URLs
        # (_api_url), so `server` can be the OAuth host while the API moves.
        self.client.protocol.server = self.hosts.oauth

    def _api_url(self, path: str) -> str:
        return self.api_bases[0] + path

    # -- credentials and tokens ------------------------------------------------------------

    @property
    def credentials(self) -> AppCredentials:
        if self._credentials is None:
            self._credentials = app_credentials()
        return self._credentials

    def tokens(self) -> Tokens:
        """The stored tokens, or an error telling the user to connect."""
        if self._tokens is None:
            self._tokens = self.tokens_store.load(self.athlete_key)
        if self._tokens is None:
            who = "" if self.athlete_key == DEFAULT_ATHLETE else f" --athlete {self.athlete_key}"
            raise AuthError(f"Strava is not connected: run 'stridewise strava connect{who}'")
        return self._tokens

    def _store_tokens(self, tokens: Tokens) -> None:
        self.tokens_store.save(self.athlete_key, tokens)
        self._tokens = tokens
        self.client.access_token = tokens.access_token

    def ensure_fresh(self) -> None:
        """Refresh the access token if it expires within :data:`REFRESH_MARGIN_S`."""
        tokens = self.tokens()
        if tokens.expires_at - self.clock() >= REFRESH_MARGIN_S:
            self.client.access_token = tokens.access_token
            return
        creds = self.credentials
        info = self._call(
            "refreshing the Strava access token",
            lambda: self.client.refresh_access_token(
                client_id=creds.client_id,
                client_secret=creds.client_secret,
                refresh_token=tokens.refresh_token,
            ),
            oauth=True,
        )
        self._store_tokens(
            Tokens(
                access_token=str(info["access_token"]),
                refresh_token=str(info["refresh_token"]),
                expires_at=int(info["expires_at"]),
                strava_athlete_id=tokens.strava_athlete_id,
                strava_athlete_name=tokens.strava_athlete_name,
                scope=tokens.scope,
            )
        )

    # -- OAuth -----------------------------------------------------------------------------

    def authorization_url(self, redirect_uri: str, state: str) -> str:
        """The page where the athlete lets the application read their activities."""
        return str(
            self.client.authorization_url(
                client_id=self.credentials.client_id,
                redirect_uri=redirect_uri,
                scope=[SCOPE],
                state=state,
                approval_prompt="auto",
            )
        )

    def exchange_code(self, code: str, scope: str | None = None) -> ConnectResult:
        """Trade the one-time authorisation code for tokens and store them."""
        creds = self.credentials
        answer = self._call(
            "exchanging the Strava authorisation code",
            lambda: self.client.exchange_code_for_token(
                client_id=creds.client_id,
                client_secret=creds.client_secret,
                code=code,
                return_athlete=True,
            ),
            oauth=True,
        )
        info, athlete = answer if isinstance(answer, tuple) else (answer, None)
        name = None
        athlete_id = None
        if athlete is not None:
            athlete_id = athlete.id
            name = " ".join(p for p in (athlete.firstname, athlete.lastname) if p) or None
        self._store_tokens(
            Tokens(
                access_token=str(info["access_token"]),
                refresh_token=str(info["refresh_token"]),
                expires_at=int(info["expires_at"]),
                strava_athlete_id=athlete_id,
                strava_athlete_name=name,
                scope=scope,
            )
        )
        return ConnectResult(
            self.athlete_key, athlete_id, name, scope, self.tokens_store.description
        )

    def disconnect(self) -> str | None:
        """Revoke the authorisation at Strava (``oauth/revoke``) and delete the stored tokens.

        Returns None when Strava confirmed, else why it could not be asked or refused (the
        local tokens are deleted either way, so nothing secret stays behind).
        """
        tokens = self.tokens()
        problem: str | None = None
        try:
            creds = self.credentials
            self._call(
                "revoking stridewise's access at Strava",
                lambda: self._revoke(creds, tokens.refresh_token),
                oauth=True,
            )
        except ConfigError as exc:
            problem = f"{exc}; Strava was not asked to revoke access"
        except AuthError:
            problem = "Strava refused the API application's credentials (HTTP 4xx)"
        except (ServiceError, RateLimitedError) as exc:
            problem = str(exc)
        self.tokens_store.delete(self.athlete_key)
        self._tokens = None
        return problem

    def forget(self) -> bool:
        """Delete the stored tokens without asking Strava (access was already withdrawn
        there); True when there were tokens."""
        self._tokens = None
        return self.tokens_store.delete(self.athlete_key)

    def still_authorised(self) -> bool:
        """Whether Strava still accepts this athlete's authorisation (one API request).

        False when Strava refuses it (the athlete withdrew access); a failure that says
        nothing either way (outage, rate limit) raises as usual.
        """
        try:
            self._call(
                "checking the Strava authorisation", lambda: self.client.protocol.get("/athlete")
            )
        except AuthError:
            return False
        return True

    # -- webhook push subscriptions (one per application; Strava webhook docs) ---------------

    def create_subscription(self, callback_url: str, verify_token: str) -> int:
        """Ask Strava to push events to ``callback_url``; Strava first checks the address with
        a GET carrying ``hub.challenge`` and ``verify_token`` and answers the subscription id."""
        creds = self.credentials
        subscription = self._app_call(
            "creating the Strava push subscription",
            lambda: self.client.create_subscription(
                client_id=creds.client_id,
                client_secret=creds.client_secret,
                callback_url=callback_url,
                verify_token=verify_token,
            ),
        )
        if subscription.id is None:
            raise ServiceError("creating the Strava push subscription: no id in the answer")
        return int(subscription.id)

    def list_subscriptions(self) -> list[PushSubscription]:
        """The application's push subscriptions (Strava allows one)."""
        creds = self.credentials
        found = self._app_call(
            "listing Strava push subscriptions",
            lambda: list(
                self.client.list_subscriptions(
                    client_id=creds.client_id, client_secret=creds.client_secret
                )
            ),
        )
        return [
            PushSubscription(int(s.id), str(s.callback_url or ""))
            for s in found
            if s.id is not None
        ]

    def delete_subscription(self, subscription_id: int) -> None:
        creds = self.credentials
        self._app_call(
            "deleting the Strava push subscription",
            lambda: self.client.delete_subscription(
                subscription_id, client_id=creds.client_id, client_secret=creds.client_secret
            ),
        )

    def _app_call(self, what: str, fn: Callable[[], T]) -> T:
        """A call made with the application's id and secret (no athlete token): a refusal is
        about the request, not about an athlete's authorisation."""
        try:
            return self._call(what, fn, oauth=True)
        except AuthError as exc:
            if "inactive" in str(exc):
                raise
            raise ServiceError(f"{what}: Strava refused it ({_status_of(exc)})") from None

    def _revoke(self, creds: AppCredentials, refresh_token: str) -> None:
        """POST ``oauth/revoke`` (RFC 7009): client credentials by HTTP Basic, the token in
        the form body. Revoking the refresh token revokes its access tokens too (Strava's
        authentication docs, via stravalib/stravalib#738), and the access token then never
        leaves the ``Authorization: Bearer`` header of API calls. stravalib 2.6.0 has no
        revoke call and would add its own bearer header, so the request goes through the
        client's session directly."""
        response = self.client.protocol.rsession.post(
            f"https://{self.hosts.oauth}/oauth/revoke",
            data={"token": refresh_token, "token_type_hint": "refresh_token"},
            auth=(str(creds.client_id), creds.client_secret),
        )
        if response.status_code >= 400:
            raise strava_exc.Fault(f"HTTP {response.status_code}", response=response)

    # -- API -------------------------------------------------------------------------------

    def list_activities(self, after: datetime, page: int, per_page: int) -> list[Activity]:
        """One page of the athlete's activities that start after ``after`` (oldest first)."""
        after_epoch = int(after.astimezone(UTC).timestamp())
        raw = self._call(
            "listing Strava activities",
            lambda: self.client.protocol.get(
                self._api_url("/athlete/activities"),
                after=after_epoch,
                page=page,
                per_page=per_page,
            ),
            api=True,
        )
        if not isinstance(raw, list):
            raise ServiceError("listing Strava activities: unexpected answer (not a list)")
        try:
            summaries = [strava_model.SummaryActivity.model_validate(item) for item in raw]
        except ValueError:
            raise ServiceError("listing Strava activities: unexpected answer") from None
        return [summary_to_activity(s) for s in summaries]

    # -- the sync session (planner.connector.SyncSession) -----------------------------------

    def list_since(self, start: datetime) -> Iterator[ListedPage]:
        """Every activity that started at ``start`` or later, a page of ``per_page`` at a time.

        Strava's ``after`` is exclusive, so the listing starts one second earlier: an activity
        starting exactly at ``start`` (the sync's cursor) is listed again and recognised.
        """
        self.tokens()  # not connected: AuthError before any request
        after = start - _OVERLAP
        page = 1
        while True:
            batch = self.list_activities(after, page, self.per_page)
            last = len(batch) < self.per_page
            yield ListedPage(tuple(sorted(batch, key=lambda a: a.start_utc)), last=last)
            if last:
                return
            page += 1

    def fetch(self, activity: Activity) -> tuple[ImportedActivity]:
        return (self.fetch_run(activity),)

    def report(self) -> dict[str, object]:
        return {"requests": self.requests_sent, "api_fallback": self.fell_back_from}

    def notes(self) -> tuple[str, ...]:
        if self.fell_back_from is None:
            return ()
        return (
            f"note: Strava's new API address ({self.fell_back_from}) did not answer;"
            " the old one was used",
        )

    def fetch_run(self, activity: Activity) -> ImportedActivity:
        """The activity with its streams converted to the canonical frame."""
        activity_id = int(activity.source_ref)
        try:
            raw = self._call(
                f"fetching streams of Strava activity {activity_id}",
                lambda: self.client.protocol.get(
                    self._api_url(f"/activities/{activity_id}/streams"),
                    keys=",".join(STREAM_TYPES),
                    key_by_type=True,
                ),
                api=True,
            )
        except NotFoundError:
            raw = {}  # manual activities have no streams
        streams = _parse_streams(raw)
        frame, notes = streams_to_frame(activity.start_utc, streams)
        extra = dict(activity.extra)
        moving = streams.get("moving")
        if moving is not None:
            extra["stationary_samples"] = sum(1 for m in moving if m is False)
        if not streams:
            notes = ("Strava has no streams for this activity; stored without samples",)
        updated = dataclasses.replace(
            activity, warnings=activity.warnings + notes, n_samples=len(frame), extra=extra
        )
        return ImportedActivity(updated, frame)

    # -- the one door every request goes through -------------------------------------------

    def _check_budget(self) -> None:
        left = self.rate.left()
        if left is None or min(left) > self.reserve:
            return
        now = datetime.fromtimestamp(self.clock(), UTC)
        reset = self.rate.reset_at(now, self.reserve)
        raise RateLimitedError(
            f"stopped before Strava's rate limit ({left[0]} requests left this 15 minutes,"
            f" {left[1]} today); it resets at {reset:%H:%M} UTC",
            retry_after_s=max(0.0, (reset - now).total_seconds()),
            reset_at=reset,
        )

    def _call(self, what: str, fn: Callable[[], T], *, oauth: bool = False, api: bool = False) -> T:
        """Run one stravalib call: budget check, token refresh, retries, error translation.

        ``api``: ``fn`` builds its URL from :meth:`_api_url`, so when the preferred API base
        does not answer and a fallback is allowed (:func:`~connectors.strava_hosts.api_bases`)
        the call is repeated at once against the next base, for the rest of this run.
        """
        attempt = 0
        while True:
            if not oauth:
                self._check_budget()
                self.ensure_fresh()
            self.requests_sent += 1
            try:
                return fn()
            except Exception as error:
                translated = self._translate(error, what, oauth=oauth)
            if (
                api
                and isinstance(translated, _TransientError)
                and translated.no_answer
                and len(self.api_bases) > 1
            ):
                self.fell_back_from = self.api_bases.pop(0)
                continue
            if isinstance(translated, _TransientError) and attempt < self.retries:
                self.sleep(self.backoff_s * 2**attempt)
                attempt += 1
                continue
            if isinstance(translated, _TransientError):
                raise StravaUnavailableError(
                    f"{what}: {translated.message} (tried {attempt + 1} times); what was synced"
                    " is kept, run the same command later to continue"
                ) from None
            raise translated from None

    def _translate(
        self, error: Exception, what: str, *, oauth: bool
    ) -> StridewiseError | _TransientError:
        if isinstance(error, StridewiseError):
            return error
        if isinstance(error, strava_exc.Fault):
            return self._translate_status(error, what, oauth=oauth)
        if isinstance(error, requests.exceptions.SSLError):
            return ServiceError(
                f"{what}: TLS verification failed (check {CA_ENV} if you use {API_ENV}"
                f" or {OAUTH_ENV})"
            )
        if isinstance(error, requests.exceptions.ConnectionError):
            return _TransientError(f"connection failed ({type(error).__name__})", no_answer=True)
        if isinstance(
            error, requests.exceptions.Timeout | requests.exceptions.ChunkedEncodingError
        ):
            return _TransientError(f"connection failed ({type(error).__name__})")
        if isinstance(error, requests.exceptions.RequestException):
            return ServiceError(f"{what}: request failed ({type(error).__name__})")
        if isinstance(error, ValueError | KeyError | TypeError):
            # Not JSON, or JSON of the wrong shape: Strava (or a proxy) answered nonsense.
            return ServiceError(f"{what}: unexpected answer from Strava")
        raise error

    def _translate_status(
        self, error: strava_exc.Fault, what: str, *, oauth: bool
    ) -> StridewiseError | _TransientError:
        response = error.response
        status = response.status_code if response is not None else 0
        reason = (response.reason if response is not None else "") or ""
        if isinstance(error, strava_exc.ApplicationInactive):
            return AuthError(_INACTIVE)
        if status == 429:
            now = datetime.fromtimestamp(self.clock(), UTC)
            reset = self.rate.reset_at(now)
            retry_after = response.headers.get("Retry-After") if response is not None else None
            if retry_after and retry_after.isdigit():
                reset = now + timedelta(seconds=int(retry_after))
            return RateLimitedError(
                f"Strava's rate limit was reached; it resets at {reset:%H:%M} UTC",
                retry_after_s=max(0.0, (reset - now).total_seconds()),
                reset_at=reset,
            )
        if 500 <= status < 600:
            return _TransientError(f"Strava answered HTTP {status} {reason}".rstrip())
        if status == 401 or (oauth and 400 <= status < 500):
            return AuthError(
                f"Strava refused the stored authorisation (HTTP {status}): {RECONNECT}"
            )
        if status == 403:
            return AuthError(
                f"Strava denied access (HTTP 403); the authorisation may lack the {SCOPE}"
                f" permission: {RECONNECT}"
            )
        if status == 404:
            return NotFoundError(f"{what}: not found on Strava (HTTP 404)")
        return ServiceError(f"{what}: Strava answered HTTP {status} {reason}".rstrip())


_INACTIVE = (
    "Strava refuses every request because your Strava API application is inactive (its owner"
    " needs an active Strava subscription); reactivate it at https://www.strava.com/settings/api"
)


def _parse_streams(raw: Any) -> dict[str, list[Any]]:
    """Stream type → values, from the keyed-by-type dict (or Strava's documented list form)."""
    if isinstance(raw, list):
        raw = {item.get("type"): item for item in raw if isinstance(item, dict)}
    if not isinstance(raw, dict):
        raise ServiceError("Strava streams: unexpected answer")
    streams: dict[str, list[Any]] = {}
    for key, value in raw.items():
        try:
            stream = strava_model.Stream.model_validate(value)
        except ValueError:
            raise ServiceError(f"Strava streams: unexpected {key!r} stream") from None
        if stream.data is not None:
            streams[str(key)] = list(stream.data)
    return streams


# -- connecting an account ----------------------------------------------------------------------


@dataclass
class _Redirect:
    code: str | None = None
    state: str | None = None
    scope: str | None = None
    error: str | None = None


class _RedirectCatcher:
    """A short-lived loopback HTTP server that waits for Strava's redirect with the code."""

    def __init__(self) -> None:
        self.result = _Redirect()
        self.done = threading.Event()
        catcher = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                query = parse_qs(urlsplit(self.path).query)
                if "code" not in query and "error" not in query:
                    self.send_error(404)
                    return
                catcher.result = _Redirect(
                    code=query.get("code", [None])[0],
                    state=query.get("state", [None])[0],
                    scope=query.get("scope", [None])[0],
                    error=query.get("error", [None])[0],
                )
                ok = catcher.result.code is not None
                text = (
                    "stridewise is connected to Strava. You can close this tab."
                    if ok
                    else "Strava did not authorise stridewise. You can close this tab."
                )
                body = f"<!doctype html><title>stridewise</title><p>{html.escape(text)}</p>"
                data = body.encode()
                self.send_response(200)
                self.send_header("Content-Type", "text/html; charset=utf-8")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)
                catcher.done.set()

            def log_message(self, format: str, *args: Any) -> None:
                return  # the query string holds the one-time code: keep it off the terminal

        self.server = HTTPServer(("127.0.0.1", 0), Handler)
        self.server.timeout = 0.5

    @property
    def redirect_uri(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}/authorized"

    def wait(self, timeout_s: float) -> _Redirect:
        deadline = time.monotonic() + timeout_s
        while not self.done.is_set():
            if time.monotonic() > deadline:
                raise AuthError(
                    "no answer from the browser in time: run 'stridewise strava connect' again"
                    " (or use --no-browser and paste the code)"
                )
            self.server.handle_request()
        return self.result

    def close(self) -> None:
        self.server.server_close()


_CODE = re.compile(r"^[A-Za-z0-9._~-]+$")


def parse_pasted(text: str) -> _Redirect:
    """The code (and state, scope) from a pasted redirect address or a bare code."""
    text = text.strip()
    if "code=" in text or "error=" in text:
        query = parse_qs(urlsplit(text).query or text.lstrip("?"))
        return _Redirect(
            code=query.get("code", [None])[0],
            state=query.get("state", [None])[0],
            scope=query.get("scope", [None])[0],
            error=query.get("error", [None])[0],
        )
    if not text or not _CODE.match(text):
        raise AuthError("that is not an authorisation code or a redirect address")
    return _Redirect(code=text)


def _check_redirect(redirect: _Redirect, state: str) -> str:
    if redirect.error or not redirect.code:
        raise AuthError(f"Strava did not authorise stridewise ({redirect.error or 'no code'})")
    if redirect.state is not None and not secrets.compare_digest(redirect.state, state):
        raise AuthError("the redirect does not belong to this connect attempt (state mismatch)")
    if redirect.scope is not None:
        granted = set(redirect.scope.split(","))
        if not granted & {"activity:read", "activity:read_all"}:
            raise AuthError(
                "Strava was not allowed to share your activities: tick 'View data about your"
                " activities' on the Strava page and connect again"
            )
    return redirect.code


def connect_account(
    connector: StravaConnector,
    *,
    no_browser: bool,
    show: Callable[[str], None],
    read_pasted: Callable[[], str],
    open_url: Callable[[str], object] = webbrowser.open,
    timeout_s: float = REDIRECT_TIMEOUT_S,
) -> ConnectResult:
    """Run the OAuth dance: show the authorisation URL, get the code, store the tokens."""
    state = secrets.token_urlsafe(16)
    if no_browser:
        url = connector.authorization_url(PASTE_REDIRECT_URI, state)
        show(
            "Open this address in a browser, allow access, then copy the address the browser"
            f" is sent to (it will not load) and paste it here:\n\n  {url}\n"
        )
        redirect = parse_pasted(read_pasted())
    else:
        catcher = _RedirectCatcher()
        try:
            url = connector.authorization_url(catcher.redirect_uri, state)
            show(f"Opening Strava in your browser. If it does not open, visit:\n\n  {url}\n")
            with contextlib.suppress(Exception):  # no browser is fine: the URL is shown
                open_url(url)
            redirect = catcher.wait(timeout_s)
        finally:
            catcher.close()
    code = _check_redirect(redirect, state)
    return connector.exchange_code(code, redirect.scope)


def finish_connect(
    connector: StravaConnector, query: Mapping[str, str], expected_state: str
) -> ConnectResult:
    """Finish a connect whose redirect reached another server (``stridewise serve``): the
    same checks of its ``query`` as :func:`connect_account` (state, scope), then the code is
    traded for tokens."""
    redirect = _Redirect(**{k: query.get(k) for k in ("code", "state", "scope", "error")})
    if redirect.state is None:
        raise AuthError("the redirect does not belong to this connect attempt (no state)")
    return connector.exchange_code(_check_redirect(redirect, expected_state), redirect.scope)


# -- the connector (registered under ``stridewise.connectors`` as "strava") ------------------


class StravaService:
    """Strava as a :class:`planner.connector.Connector`: one account per athlete.

    Strava's API agreement forbids training models on its data, so ``trainable`` is False;
    its streams have no running dynamics, so a FIT or Garmin copy of a run always wins.
    """

    name = "strava"
    label = "Strava"
    source = Source.STRAVA
    trainable = False
    per_athlete = True
    ref_key = "strava_id"

    def connect(self, athlete_id: str, prompts: ConnectPrompts) -> Connected:
        result = connect_account(
            StravaConnector(athlete_id),
            no_browser=prompts.no_browser or not prompts.interactive,
            show=prompts.show,
            read_pasted=lambda: prompts.ask("code or redirect address", False),
        )
        who = result.strava_athlete_name or (
            f"athlete {result.strava_athlete_id}" if result.strava_athlete_id else "your account"
        )
        return Connected(f"connected to Strava as {who}; tokens stored in the {result.storage}")

    def disconnect(self, athlete_id: str) -> Disconnected:
        connector = StravaConnector(athlete_id)
        try:
            connector.tokens()
        except AuthError:
            return Disconnected(False, "Strava is not connected; nothing to do")
        warning = connector.disconnect()
        if warning:
            return Disconnected(
                True,
                "stored tokens deleted; Strava's authorisation may still be active",
                f"warning: Strava did not confirm: {warning}; revoke access yourself at"
                " https://www.strava.com/settings/apps",
            )
        return Disconnected(True, "Strava revoked stridewise's access; stored tokens deleted")

    def open(self, athlete_id: str) -> StravaConnector:
        connector = StravaConnector(athlete_id)
        connector.tokens()  # not connected: AuthError saying how, before any request
        return connector
