"""Garmin Connect adapter: garminconnect objects and exceptions stop here.

Garmin's login is fragile: it answers repeated logins with HTTP 429 and its single sign-on
changes every year or two (domain.md §1). So this connector is best-effort and careful:

* it logs in with a password exactly once, when asked to (``stridewise garmin login``), and
  keeps only the tokens, in garminconnect's own ``garmin_tokens.json`` format, readable by the
  user alone (0600 file; 0700 directory when the directory is ours). The password is never
  stored, and a sync never logs in: without valid tokens it stops and says so;
* 5xx answers and dropped connections are retried with exponential backoff (the sleep is
  injectable); 401, 429 and other 4xx answers are not retried;
* every garminconnect or ``requests`` failure is translated into :class:`AuthError`,
  :class:`RateLimitedError` or :class:`ServiceError` (:class:`GarminUnavailableError` when
  retrying did not help), each with one clear sentence; on 429 or a refused login it names the
  reliable fallback: the Garmin account export imported with ``stridewise import``.

Advanced settings, for proxies and end-to-end checks (documented in ``docs/garmin.md``):
``STRIDEWISE_GARMIN_API`` sends every Connect API call (and the token refresh) to another base
URL, ``STRIDEWISE_GARMIN_SSO`` does the same for the login pages, and
``STRIDEWISE_GARMIN_TOKENS`` names the token store (a ``.json`` file or a directory).
"""

from __future__ import annotations

import contextlib
import io
import json
import logging
import os
import re
import secrets
import time
import zipfile
import zlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any, Literal, TypeVar

import fitdecode.profile
import requests
from garminconnect import (
    Garmin,
    GarminConnectAuthenticationError,
    GarminConnectConnectionError,
    GarminConnectInvalidFileFormatError,
    GarminConnectNotFoundError,
    GarminConnectTooManyRequestsError,
)
from garminconnect.client import token_file_path

from planner.connector import Connected, ConnectPrompts, Disconnected, FitDownload, ListedPage
from planner.errors import (
    ArchiveError,
    AuthError,
    ConfigError,
    RateLimitedError,
    ServiceError,
    ServiceUnavailableError,
    StridewiseError,
)
from planner.records import Activity, Source
from planner.store.config import data_dir

API_ENV = "STRIDEWISE_GARMIN_API"
SSO_ENV = "STRIDEWISE_GARMIN_SSO"
TOKENS_ENV = "STRIDEWISE_GARMIN_TOKENS"
EMAIL_ENV = "STRIDEWISE_GARMIN_EMAIL"
PASSWORD_ENV = "STRIDEWISE_GARMIN_PASSWORD"

TOKEN_FILE_NAME = "garmin_tokens.json"  # garminconnect's name inside a token directory
PENDING_MFA_FILE_NAME = "garmin_mfa_pending.json"

#: Retries of a transient failure (5xx, dropped connection) and the first wait; the wait
#: doubles each time (1, 2, 4 s) up to the cap. Our own choice: long enough to ride out a
#: brief outage, short enough that a dead service is reported within seconds.
RETRIES = 3
BACKOFF_S = 1.0
BACKOFF_MAX_S = 30.0

#: Garmin sends no Retry-After with its 429s. Login blocks are reported to lift within about
#: an hour (garminconnect issue tracker; unverified), so we ask the user to wait that long.
RATE_LIMIT_WAIT_S = 3600.0

#: Looking for a workout whose upload answer was lost: newest first, this many pages of this
#: size. Our choice: it was created moments before, so the first page is where it is.
WORKOUT_PAGE = 100
WORKOUT_SEARCH_PAGES = 3

#: Largest FIT file we inflate from an original download. Our own cap against zip bombs: a
#: 24-hour ultra with every sensor stays well under 20 MB.
MAX_FIT_BYTES = 64 * 1024 * 1024

EXPORT_FALLBACK = (
    "The reliable fallback is your Garmin account export"
    " (https://www.garmin.com/account/datamanagement/exportdata/):"
    " import its zip with 'stridewise import PATH'."
)

#: Garmin Connect activity type keys of runs (``activityType.typeKey``); the recorded list
#: shows the family also through ``parentTypeId`` 1 (trail_running).
RUNNING_TYPE_KEYS = frozenset(
    {
        "running",
        "trail_running",
        "treadmill_running",
        "track_running",
        "street_running",
        "indoor_running",
        "virtual_run",
        "obstacle_run",
        "ultra_run",
    }
)
_RUNNING_PARENT_TYPE_ID = 1
_RUNNING_TYPE_ID = 1

# The FIT profile's sport names by number. In the recorded activity list ``sportTypeId``
# carries that number (trail run 1, hiking 17, stand-up paddleboarding 37), so a Garmin
# activity gets the same sport name as the same activity imported from its FIT file, which
# lets the store recognise it; when the field is missing the type key is used instead.
_FIT_SPORTS: dict[int, str] = dict(fitdecode.profile.FIELD_TYPES["sport"].enum)

_STATUS_RE = re.compile(r"API Error (\d{3})")

# garminconnect logs warnings and tracebacks for failures we translate into one clear line;
# without a handler Python would print them on stderr. Users who configure logging still
# see them.
logging.getLogger("garminconnect").addHandler(logging.NullHandler())

T = TypeVar("T")


class GarminUnavailableError(ServiceUnavailableError):
    """Garmin Connect kept failing (5xx or dropped connections) after every retry."""


# -- where tokens live -------------------------------------------------------------------------


def token_file() -> Path:
    """The token file: ``$STRIDEWISE_GARMIN_TOKENS`` (file or directory) or our data folder."""
    raw = os.environ.get(TOKENS_ENV, "").strip()
    base = raw or str(data_dir() / "garmin")
    try:
        # garminconnect's own rule: a directory (or a name without .json) holds
        # garmin_tokens.json; symlinks anywhere in the path are refused.
        return token_file_path(base)
    except ValueError as exc:
        raise ConfigError(f"{TOKENS_ENV}: {exc}") from None


def pending_mfa_file() -> Path:
    """Where a login waiting for its MFA code keeps its state (beside the tokens)."""
    return token_file().with_name(PENDING_MFA_FILE_NAME)


def _owns_directory() -> bool:
    """True when the token store is a directory (ours alone, so it may be made 0700).

    When ``STRIDEWISE_GARMIN_TOKENS`` names a ``.json`` file, its folder is the user's choice
    (perhaps their home) and keeps its permissions; the file itself is still 0600.
    """
    raw = os.environ.get(TOKENS_ENV, "").strip()
    return not raw or token_file().parent == Path(raw).expanduser()


def _write_private(path: Path, text: str) -> None:
    """Write a secret atomically as a 0600 file (never through a symlink)."""
    parent = path.parent
    try:
        parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        if _owns_directory():
            parent.chmod(0o700)
        tmp = parent / f".{path.name}.{secrets.token_hex(8)}.tmp"
        flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_NOFOLLOW", 0)
        fd = os.open(tmp, flags, 0o600)
        try:
            with os.fdopen(fd, "w", encoding="utf-8") as fh:
                fh.write(text)
            tmp.chmod(0o600)  # in case the filesystem ignored the mode
            tmp.replace(path)
        except BaseException:
            with contextlib.suppress(OSError):
                tmp.unlink()
            raise
    except OSError as exc:
        raise ConfigError(f"cannot write {path}: {exc.strerror or exc}") from None


def _read_private(path: Path) -> str:
    try:
        fd = os.open(path, os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0))
        with os.fdopen(fd, encoding="utf-8") as fh:
            return fh.read()
    except OSError as exc:
        raise ConfigError(f"cannot read {path}: {exc.strerror or exc}") from None


def _remove(path: Path) -> bool:
    try:
        path.unlink()
    except FileNotFoundError:
        return False
    except OSError as exc:
        raise ConfigError(f"cannot delete {path}: {exc.strerror or exc}") from None
    return True


# -- the garminconnect client, redirected when asked --------------------------------------------


def _base_url(env: str) -> str | None:
    raw = os.environ.get(env, "").strip()
    if not raw:
        return None
    if not raw.startswith(("http://", "https://")):
        raise ConfigError(f"{env} must be an http:// or https:// URL, got {raw!r}")
    return raw.rstrip("/")


def _new_api(
    email: str | None = None,
    password: str | None = None,
    *,
    prompt_mfa: Callable[[], str] | None = None,
) -> Garmin:
    """A garminconnect client that does no retries of its own (we retry, with our sleep)."""
    api = Garmin(
        email,
        password,
        prompt_mfa=prompt_mfa,
        return_on_mfa=prompt_mfa is None,
        retry_attempts=0,
    )
    # garminconnect 0.3 builds every API URL from these private attributes; there is no
    # public setting. The version is pinned and tests/test_garmin.py checks they still exist.
    api_base = _base_url(API_ENV)
    if api_base is not None:
        api.client._connectapi = api_base
        api.client._di_token_url = f"{api_base}/di-oauth2-service/oauth/token"
    sso_base = _base_url(SSO_ENV)
    if sso_base is not None:
        api.client._sso = sso_base
    return api


# -- error translation --------------------------------------------------------------------------

_GARMIN_ERRORS = (
    GarminConnectConnectionError,
    GarminConnectAuthenticationError,
    GarminConnectTooManyRequestsError,
    GarminConnectInvalidFileFormatError,
    requests.RequestException,
)


def _chain(exc: BaseException) -> list[BaseException]:
    seen: list[BaseException] = []
    cur: BaseException | None = exc
    while cur is not None and all(cur is not s for s in seen):
        seen.append(cur)
        cur = cur.__cause__ or cur.__context__
    return seen


def _status(exc: BaseException) -> int | None:
    """The HTTP status behind a garminconnect error, when there was one."""
    for err in _chain(exc):
        code = getattr(getattr(err, "response", None), "status_code", None)
        if isinstance(code, int):
            return code
        match = _STATUS_RE.search(str(err))
        if match:
            return int(match.group(1))
    return None


def _network_cause(exc: BaseException) -> BaseException | None:
    for err in _chain(exc):
        if isinstance(err, requests.ConnectionError | requests.Timeout | ConnectionError):
            return err
    return None


def _is_transient(exc: BaseException) -> bool:
    """5xx answers and dropped or refused connections; never 401, 429 or other 4xx."""
    if isinstance(exc, GarminConnectAuthenticationError | GarminConnectTooManyRequestsError):
        return False
    status = _status(exc)
    if status is not None:
        return 500 <= status < 600
    return _network_cause(exc) is not None


def _rate_limited(what: str) -> RateLimitedError:
    return RateLimitedError(
        f"Garmin Connect answered HTTP 429 (too many requests) while {what}: Garmin blocks"
        " clients that log in or fetch too often. Wait about an hour before trying again, and"
        f" do not retry in a loop. {EXPORT_FALLBACK}",
        retry_after_s=RATE_LIMIT_WAIT_S,
    )


def _session_refused(what: str, status: int | None) -> AuthError:
    code = f"HTTP {status}" if status else "login refused"
    return AuthError(
        f"Garmin Connect no longer accepts the stored login ({code}) while {what}."
        " Run 'stridewise garmin login' to log in again (once; repeated logins get blocked)."
        f" If logging in keeps failing: {EXPORT_FALLBACK}"
    )


def _reason(exc: BaseException) -> str:
    network = _network_cause(exc)
    if network is not None:
        inner = _chain(network)[-1]
        return f"connection failed ({type(inner).__name__})"
    status = _status(exc)
    if status is not None:
        return f"HTTP {status}"
    return str(exc).splitlines()[0][:200] if str(exc) else type(exc).__name__


def _translate(exc: BaseException, what: str, attempts: int = 1) -> StridewiseError:
    """One of our errors for a garminconnect/requests failure (the only place this happens)."""
    status = _status(exc)
    if isinstance(exc, GarminConnectTooManyRequestsError) or status == 429:
        return _rate_limited(what)
    if isinstance(exc, GarminConnectAuthenticationError) or status == 401:
        return _session_refused(what, status)
    if _is_transient(exc):
        tries = f" after {attempts} attempts" if attempts > 1 else ""
        return GarminUnavailableError(
            f"Garmin Connect is unavailable ({_reason(exc)}{tries}) while {what};"
            " run the same command later to continue"
        )
    if isinstance(exc, GarminConnectNotFoundError) or status == 404:
        return ServiceError(f"Garmin Connect has no such item (HTTP 404) while {what}")
    if status is not None:
        return ServiceError(f"Garmin Connect refused the request (HTTP {status}) while {what}")
    return ServiceError(f"Garmin Connect failed while {what}: {_reason(exc)}")


# -- what a listed activity is ------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class ActivitySummary:
    """One entry of Garmin's activity list, in our terms (times UTC, SI units)."""

    activity_id: int
    start_utc: datetime
    local_date: str  # YYYY-MM-DD of the local start: Garmin's list filters on this date
    sport: str  # FIT sport name ("running", "hiking", ...), or Garmin's type key
    type_key: str
    is_running: bool
    elapsed_s: float | None = None
    moving_s: float | None = None
    distance_m: float | None = None
    name: str | None = None


@dataclass(frozen=True, slots=True)
class Listing:
    """Activities listed since a date, oldest first, and entries that could not be read."""

    activities: tuple[ActivitySummary, ...]
    unreadable: tuple[str, ...] = ()


def _num(value: Any) -> float | None:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    return float(value)


def _start(entry: dict[str, Any]) -> datetime | None:
    gmt = entry.get("startTimeGMT")
    if isinstance(gmt, str):
        with contextlib.suppress(ValueError):
            return datetime.strptime(gmt[:19], "%Y-%m-%d %H:%M:%S").replace(tzinfo=UTC)
    begin = _num(entry.get("beginTimestamp"))  # ms since the Unix epoch
    return None if begin is None else datetime.fromtimestamp(begin / 1000, UTC)


def parse_activity(entry: Any) -> ActivitySummary | str:
    """An activity-list entry as an :class:`ActivitySummary`, or why it cannot be used."""
    if not isinstance(entry, dict):
        return f"not an activity entry: {type(entry).__name__}"
    activity_id = entry.get("activityId")
    if isinstance(activity_id, bool) or not isinstance(activity_id, int) or activity_id <= 0:
        return f"entry without a usable activityId ({activity_id!r})"
    start = _start(entry)
    if start is None:
        return f"activity {activity_id}: no start time"
    raw_kind = entry.get("activityType")
    kind: dict[str, Any] = raw_kind if isinstance(raw_kind, dict) else {}
    type_key = str(kind.get("typeKey") or "unknown")
    sport_id = entry.get("sportTypeId")
    sport = _FIT_SPORTS.get(sport_id, type_key) if isinstance(sport_id, int) else type_key
    running = (
        type_key in RUNNING_TYPE_KEYS
        or kind.get("parentTypeId") == _RUNNING_PARENT_TYPE_ID
        or kind.get("typeId") == _RUNNING_TYPE_ID
        or sport == "running"
    )
    local = entry.get("startTimeLocal")
    local_date = (
        local[:10] if isinstance(local, str) and len(local) >= 10 else start.date().isoformat()
    )
    name = entry.get("activityName")
    return ActivitySummary(
        activity_id=activity_id,
        start_utc=start,
        local_date=local_date,
        sport="running" if running else sport,
        type_key=type_key,
        is_running=running,
        elapsed_s=_num(entry.get("elapsedDuration")) or _num(entry.get("duration")),
        moving_s=_num(entry.get("movingDuration")),
        distance_m=_num(entry.get("distance")),
        name=name if isinstance(name, str) and name else None,
    )


def listed_activity(listed: ActivitySummary) -> Activity:
    """A list entry as our metadata-only record (no samples until the FIT file is fetched)."""
    return Activity(
        source=Source.GARMIN,
        source_ref=str(listed.activity_id),
        sport=listed.sport,
        sub_sport=None,
        start_utc=listed.start_utc,
        elapsed_s=listed.elapsed_s or 0.0,
        moving_s=listed.moving_s,
        distance_m=listed.distance_m,
        name=listed.name,
        extra={"garmin_activity_id": listed.activity_id, "garmin_type": listed.type_key},
    )


# -- the original download ----------------------------------------------------------------------

_FIT_MAGIC = b".FIT"


def _looks_like_fit(data: bytes) -> bool:
    return len(data) >= 12 and data[8:12] == _FIT_MAGIC


def extract_fit(data: bytes, activity_id: int) -> bytes:
    """The FIT file inside an ORIGINAL download (a zip holding ``<id>_ACTIVITY.fit``), in memory.

    Raises
    ------
    ArchiveError
        When the download is no readable zip, holds no FIT file, or inflates beyond
        :data:`MAX_FIT_BYTES`.
    """
    where = f"garmin activity {activity_id}"
    if _looks_like_fit(data):  # some uploads come back unzipped
        return data
    try:
        archive = zipfile.ZipFile(io.BytesIO(data))
        members = [m for m in archive.infolist() if not m.is_dir()]
    except (zipfile.BadZipFile, OSError, ValueError) as exc:
        raise ArchiveError(
            f"{where}: the original download is not a readable zip ({exc})"
        ) from None
    fits = [m for m in members if m.filename.lower().endswith(".fit")]
    if not fits:
        found = ", ".join(m.filename for m in members) or "nothing"
        raise ArchiveError(
            f"{where}: the original download holds no FIT file (found {found}); GPX/TCX"
            " uploads are not imported"
        )
    wanted = f"{activity_id}_ACTIVITY.fit".lower()
    member = next((m for m in fits if m.filename.lower().endswith(wanted)), fits[0])
    if member.file_size > MAX_FIT_BYTES:
        raise ArchiveError(f"{where}: {member.filename} would inflate to {member.file_size} bytes")
    try:
        with archive.open(member) as fh:
            fit = fh.read(MAX_FIT_BYTES + 1)
    except (zipfile.BadZipFile, OSError, zlib.error, EOFError) as exc:
        raise ArchiveError(f"{where}: cannot read {member.filename} ({exc})") from None
    if len(fit) > MAX_FIT_BYTES:  # the declared size can lie; what inflates counts
        raise ArchiveError(f"{where}: {member.filename} inflates beyond {MAX_FIT_BYTES} bytes")
    return fit


# -- a session from stored tokens ---------------------------------------------------------------


class GarminConnect:
    """A Garmin Connect session restored from stored tokens; it never logs in by itself.

    ``sleep`` waits between retries of transient failures (inject a recorder in tests).
    Tokens the client refreshes on the way are written back at once, so a rotated refresh
    token is never lost to an interruption.
    """

    def __init__(
        self,
        *,
        sleep: Callable[[float], None] = time.sleep,
        retries: int = RETRIES,
        backoff_s: float = BACKOFF_S,
    ):
        self.token_path = token_file()
        if not self.token_path.exists():
            raise AuthError(
                "not logged in to Garmin Connect: run 'stridewise garmin login' first"
                f" (no tokens in {self.token_path}). {EXPORT_FALLBACK}"
            )
        text = _read_private(self.token_path)
        self._api = _new_api()
        try:
            self._api.client.loads(text)
        except GarminConnectConnectionError:
            raise AuthError(
                f"{self.token_path} holds no usable Garmin tokens: run 'stridewise garmin login'"
            ) from None
        self._saved = self._api.client.dumps()
        self._sleep = sleep
        self._retries = max(0, retries)
        self._backoff_s = backoff_s

    def _call(self, what: str, fn: Callable[[], T], *, retry: bool = True) -> T:
        """Run one request: retry transient failures with backoff, translate the rest.

        ``retry=False`` is for requests that are not idempotent (creating a workout or a
        calendar entry): after a dropped connection Garmin may have done it already, so the
        caller records the attempt and checks before trying again.
        """
        attempt = 0
        while True:
            attempt += 1
            try:
                return fn()
            except _GARMIN_ERRORS as exc:
                if retry and _is_transient(exc) and attempt <= self._retries:
                    self._sleep(min(BACKOFF_MAX_S, self._backoff_s * 2 ** (attempt - 1)))
                    continue
                raise _translate(exc, what, attempt) from None
            finally:
                self._persist_refreshed_tokens()

    def _persist_refreshed_tokens(self) -> None:
        current = self._api.client.dumps()
        if current != self._saved and self._api.client.is_authenticated:
            _write_private(self.token_path, current)
            self._saved = current

    def display_name(self) -> str | None:
        """The account's display name (one light request; also proves the tokens work)."""
        profile = self._call(
            "reading the profile",
            lambda: self._api.connectapi("/userprofile-service/socialProfile"),
        )
        name = profile.get("displayName") if isinstance(profile, dict) else None
        return name if isinstance(name, str) and name else None

    def list_activities(self, start: date, end: date | None = None) -> Listing:
        """Activities whose local start date is ``start`` or later, oldest first (paged)."""
        raw = self._call(
            "listing activities",
            lambda: self._api.get_activities_by_date(
                start.isoformat(), end.isoformat() if end else None, None, "asc"
            ),
        )
        parsed = [parse_activity(entry) for entry in (raw if isinstance(raw, list) else [])]
        good = sorted(
            (p for p in parsed if isinstance(p, ActivitySummary)),
            key=lambda a: (a.start_utc, a.activity_id),
        )
        return Listing(tuple(good), tuple(p for p in parsed if isinstance(p, str)))

    def download_original(self, activity_id: int) -> bytes:
        """The ORIGINAL download of one activity: a zip holding ``<id>_ACTIVITY.fit``."""
        data = self._call(
            f"downloading activity {activity_id}",
            lambda: self._api.download_activity(
                str(activity_id), dl_fmt=Garmin.ActivityDownloadFormat.ORIGINAL
            ),
        )
        if not isinstance(data, bytes):
            raise ServiceError(f"Garmin Connect sent no file for activity {activity_id}")
        return data

    # -- the sync session (planner.connector.SyncSession) -----------------------------------

    def list_since(self, start: datetime) -> Iterator[ListedPage]:
        """Activities from the day before ``start``'s UTC date on, in one listing.

        Garmin filters on the activity's *local* start date, which is at most a day from its
        UTC date (time zones span UTC-12 to UTC+14): starting a day early misses nothing.
        """
        listing = self.list_activities(start.astimezone(UTC).date() - timedelta(days=1))
        yield ListedPage(
            tuple(listed_activity(a) for a in listing.activities), listing.unreadable, last=True
        )

    def fetch(self, activity: Activity) -> FitDownload:
        """The run's original FIT file, as the device wrote it (full running dynamics)."""
        activity_id = int(activity.source_ref)
        data = extract_fit(self.download_original(activity_id), activity_id)
        return FitDownload(data, f"garmin activity {activity_id}")

    def report(self) -> dict[str, object]:
        return {}

    def notes(self) -> tuple[str, ...]:
        return ()

    # -- workouts and the training calendar (planner/services/garmin_push.py) ------------------

    def _missing_ok(self, what: str, fn: Callable[[], object]) -> bool:
        """Run an idempotent change; False when Garmin says the item is gone (HTTP 404)."""

        def call() -> bool:
            try:
                fn()
            except GarminConnectNotFoundError:
                return False
            return True

        return self._call(what, call)

    def create_workout(self, body: dict[str, Any]) -> int:
        """Upload a workout to the library (not retried: see :meth:`_call`); its Garmin id."""
        name = body.get("workoutName", "")
        answer = self._call(
            f"uploading workout {name!r}", lambda: self._api.upload_workout(body), retry=False
        )
        workout_id = answer.get("workoutId") if isinstance(answer, dict) else None
        if isinstance(workout_id, bool) or not isinstance(workout_id, int):
            raise ServiceError(f"Garmin Connect sent no workout id for {name!r}")
        return workout_id

    def update_workout(self, workout_id: int, body: dict[str, Any]) -> bool:
        """Replace a workout in place (its calendar entries stay); False when it is gone."""
        return self._missing_ok(
            f"updating workout {workout_id}", lambda: self._api.update_workout(workout_id, body)
        )

    def delete_workout(self, workout_id: int) -> bool:
        """Delete a workout from the library; False when it was already gone."""
        return self._missing_ok(
            f"deleting workout {workout_id}", lambda: self._api.delete_workout(workout_id)
        )

    def schedule_workout(self, workout_id: int, day: date) -> int:
        """Put a workout on the calendar (not retried); the calendar entry's id."""
        answer = self._call(
            f"scheduling workout {workout_id} on {day}",
            lambda: self._api.schedule_workout(workout_id, day.isoformat()),
            retry=False,
        )
        schedule_id = _schedule_id(answer)
        if schedule_id is None:
            raise ServiceError(f"Garmin Connect sent no calendar entry id for workout {workout_id}")
        return schedule_id

    def unschedule_workout(self, schedule_id: int) -> bool:
        """Remove a calendar entry (the workout stays); False when it was already gone."""
        return self._missing_ok(
            f"removing calendar entry {schedule_id}",
            lambda: self._api.unschedule_workout(schedule_id),
        )

    def find_workout(
        self, name: str, marker: str, *, pages: int = WORKOUT_SEARCH_PAGES
    ) -> int | None:
        """The id of a library workout with this name whose description holds ``marker``.

        Used after an upload whose answer was lost: the newest workouts are searched first.
        """
        for page in range(pages):

            def listing(start: int = page * WORKOUT_PAGE) -> Any:
                return self._api.get_workouts(
                    start, WORKOUT_PAGE, order_by="CREATED_DATE", order_seq="DESC"
                )

            rows = self._call("listing workouts", listing)
            entries = rows if isinstance(rows, list) else []
            for entry in entries:
                if not isinstance(entry, dict) or entry.get("workoutName") != name:
                    continue
                description = entry.get("description")
                workout_id = entry.get("workoutId")
                if (
                    isinstance(description, str)
                    and marker in description.splitlines()
                    and isinstance(workout_id, int)
                    and not isinstance(workout_id, bool)
                ):
                    return workout_id
            if len(entries) < WORKOUT_PAGE:
                break
        return None

    def find_schedule(self, workout_id: int, day: date) -> int | None:
        """The calendar entry of ``workout_id`` on ``day``, if there is one."""
        month = self._call(
            f"reading the calendar of {day:%Y-%m}",
            lambda: self._api.get_scheduled_workouts(day.year, day.month),
        )
        items = month.get("calendarItems") if isinstance(month, dict) else None
        for item in items if isinstance(items, list) else []:
            if (
                isinstance(item, dict)
                and item.get("itemType") == "workout"
                and item.get("workoutId") == workout_id
                and item.get("date") == day.isoformat()
            ):
                return _schedule_id(item)
        return None


def _schedule_id(answer: object) -> int | None:
    """A calendar entry's id: ``workoutScheduleId`` in the schedule answer, else the item id.

    Which key a calendar-month item carries it under is not documented; these are the names
    seen in public clients (unverified against Garmin, see docs/garmin.md).
    """
    if not isinstance(answer, dict):
        return None
    for key in ("workoutScheduleId", "scheduledWorkoutId", "id"):
        value = answer.get(key)
        if isinstance(value, int) and not isinstance(value, bool):
            return value
    return None


# -- login and logout ---------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class LoginResult:
    """What ``stridewise garmin login`` achieved."""

    status: Literal["logged_in", "already", "needs_mfa"]
    token_path: Path
    display_name: str | None = None
    pending_path: Path | None = None
    notes: tuple[str, ...] = ()


def logged_in_as() -> str | None:
    """The display name behind valid stored tokens; None when there are none or Garmin refuses them.

    A 429 or an outage is raised, not hidden: logging in again would only make it worse.
    """
    path = token_file()
    if not path.exists():
        return None
    try:
        session = GarminConnect(retries=0)
        return session.display_name() or "(no display name)"
    except AuthError:
        return None


def login(email: str, password: str, *, prompt_mfa: Callable[[], str] | None) -> LoginResult:
    """Log in once with a password and store the tokens (never the password).

    With ``prompt_mfa`` Garmin's MFA code is asked for on the spot; without it a login that
    needs MFA stops, keeps its state in a 0600 file, and :func:`resume_login` finishes it.
    There is exactly one login attempt per call (garminconnect tries its few sign-in
    strategies in turn within it); the caller checks for valid tokens first.
    """
    if not email or not password:
        raise AuthError("a Garmin e-mail and password are needed to log in")
    path = token_file()
    api = _new_api(email, password, prompt_mfa=prompt_mfa)
    try:
        # Client.login, not Garmin.login: the latter also reads the GARMINTOKENS variable
        # and writes tokens with its own permissions policy; we store them ourselves.
        status, state = api.client.login(
            email, password, prompt_mfa=prompt_mfa, return_on_mfa=prompt_mfa is None
        )
    except _GARMIN_ERRORS as exc:
        raise _login_error(exc) from None
    finally:
        api.password = None
    if status == "needs_mfa":
        pending = pending_mfa_file()
        _write_private(pending, json.dumps({"state": state, "saved_utc": _now()}))
        return LoginResult("needs_mfa", path, pending_path=pending)
    return _finish_login(api, path)


def resume_login(mfa_code: str) -> LoginResult:
    """Finish a login that stopped for its MFA code (the second, non-interactive call)."""
    pending = pending_mfa_file()
    if not pending.exists():
        raise AuthError(
            "no Garmin login is waiting for an MFA code: run 'stridewise garmin login' first"
        )
    try:
        state = json.loads(_read_private(pending))["state"]
    except (ValueError, KeyError, TypeError):
        _remove(pending)
        raise AuthError(
            f"{pending} is damaged and was removed: run 'stridewise garmin login' again"
        ) from None
    api = _new_api()
    try:
        api.client.resume_login(state, mfa_code.strip())
    except GarminConnectAuthenticationError as exc:
        if "Invalid MFA client_state" in str(exc):
            _remove(pending)
            raise AuthError(
                "the waiting Garmin login cannot be resumed: run 'stridewise garmin login' again"
            ) from None
        # A wrong code leaves the pending login usable: the user may try the right one.
        raise AuthError(
            "Garmin did not accept the MFA code: run 'stridewise garmin login --mfa-code CODE'"
            " with the newest code, or start over with 'stridewise garmin login'"
        ) from None
    except _GARMIN_ERRORS as exc:
        raise _login_error(exc) from None
    return _finish_login(api, token_file())


def _finish_login(api: Garmin, path: Path) -> LoginResult:
    _write_private(path, api.client.dumps())
    _remove(pending_mfa_file())  # an older half-finished login is void now
    name: str | None = None
    notes: tuple[str, ...] = ()
    try:
        profile = api.connectapi("/userprofile-service/socialProfile")
        raw = profile.get("displayName") if isinstance(profile, dict) else None
        name = raw if isinstance(raw, str) and raw else None
    except _GARMIN_ERRORS as exc:
        # The tokens are stored and verified by the login itself; the name is a courtesy.
        notes = (f"could not read the profile: {_translate(exc, 'reading the profile')}",)
    return LoginResult("logged_in", path, display_name=name, notes=notes)


def _login_error(exc: BaseException) -> StridewiseError:
    if isinstance(exc, GarminConnectTooManyRequestsError) or _status(exc) in (427, 429):
        return _rate_limited("logging in")
    if isinstance(exc, GarminConnectAuthenticationError):
        return AuthError(
            "Garmin refused the login (wrong e-mail or password, a locked account, or a failed"
            f" verification code). Check them and try once more, not in a loop. {EXPORT_FALLBACK}"
        )
    return ServiceError(
        f"the Garmin login did not work ({_reason(exc)}); Garmin's sign-in changes from time"
        f" to time, so this connector is best-effort. {EXPORT_FALLBACK}"
    )


def logout() -> list[Path]:
    """Delete the stored tokens and any waiting MFA login; returns the files removed."""
    removed = []
    for path in (token_file(), pending_mfa_file()):
        if _remove(path):
            removed.append(path)
    return removed


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")


# -- the connector (registered under ``stridewise.connectors`` as "garmin") ------------------


class GarminService:
    """Garmin Connect as a :class:`planner.connector.Connector`.

    One account per installation (its tokens live in the data directory), whatever athlete a
    sync files the activities under; each run comes as the device's original FIT file.
    """

    name = "garmin"
    label = "Garmin Connect"
    source = Source.GARMIN
    trainable = True
    per_athlete = False
    ref_key = "activity_id"

    def connect(self, athlete_id: str, prompts: ConnectPrompts) -> Connected:
        who = logged_in_as()
        if who is not None:
            return Connected(
                f"already logged in to Garmin Connect as {who} (tokens in {token_file()});"
                " run 'stridewise garmin logout' first to switch accounts"
            )
        email = os.environ.get(EMAIL_ENV) or prompts.ask("Garmin e-mail", False)
        password = os.environ.get(PASSWORD_ENV) or prompts.ask("Garmin password", True)
        ask_code = None
        if prompts.interactive:

            def ask_code() -> str:
                return prompts.ask("Garmin verification code", False).strip()

        result = login(email, password, prompt_mfa=ask_code)
        if result.status == "needs_mfa":
            return Connected(
                "Garmin sent a verification code (by e-mail or SMS). Finish the login with:\n"
                "  stridewise garmin login --mfa-code CODE",
                done=False,
            )
        return Connected(login_message(result), notes=result.notes)

    def disconnect(self, athlete_id: str) -> Disconnected:
        removed = logout()
        if removed:
            return Disconnected(
                True, "logged out of Garmin Connect: deleted " + ", ".join(map(str, removed))
            )
        return Disconnected(False, f"not logged in to Garmin Connect (no tokens in {token_file()})")

    def open(self, athlete_id: str) -> GarminConnect:
        return GarminConnect()


def login_message(result: LoginResult) -> str:
    """What a finished login says: who, and where the tokens are."""
    return (
        f"logged in to Garmin Connect as {result.display_name or 'your account'}; tokens saved"
        f" in {result.token_path} (readable by you only). The password is not stored."
    )
