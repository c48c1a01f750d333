"""A loopback Strava for tests: HTTPS with a throwaway CA, recorded payloads, injected faults.

The unmodified stravalib talks real HTTPS to it: ``STRIDEWISE_STRAVA_API`` names its
``127.0.0.1:PORT`` and ``STRIDEWISE_STRAVA_CA`` its CA file (made with trustme). It serves the
OAuth endpoints (authorize → redirect, token exchange and refresh with rotating refresh
tokens, revoke, and the retired deauthorize) and the API paths the connector uses, under
``/api/v3`` (today's base) and at the root (the layout of ``api-v3.strava.com``), checks the
bearer token, counts
usage into Strava's ``X-RateLimit-*`` / ``X-ReadRateLimit-*`` headers (429 past the limit),
and replays the recorded stravalib payloads. Faults (an HTTP status, or a dropped connection)
are queued per path prefix; every request is logged, headers and body included, so tests
can count them and check where credentials travel.
"""

from __future__ import annotations

import base64
import json
import secrets
import ssl
import threading
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler
from pathlib import Path
from types import TracebackType
from typing import Any
from urllib.parse import parse_qs, urlencode, urlsplit

import trustme

from tests.loopback import Loopback

STRAVA_FIXTURES = Path(__file__).parent / "fixtures" / "strava"
API = "/api/v3"
LIST_PATH = f"{API}/athlete/activities"
STREAMS_PREFIX = f"{API}/activities/"
TOKEN_PATH = "/oauth/token"
DEAUTH_PATH = "/oauth/deauthorize"
REVOKE_PATH = "/oauth/revoke"
AUTHORIZE_PATH = "/oauth/authorize"

CLIENT_ID = 4242
CLIENT_SECRET = "app-secret-5b1d0c"

#: Keys of a DetailedActivity that a SummaryActivity (the list endpoint) does not carry.
_DETAIL_ONLY = {
    "best_efforts",
    "segment_efforts",
    "splits_metric",
    "splits_standard",
    "laps",
    "photos",
    "description",
    "calories",
    "gear",
    "guid",
    "device_name",
}


def fixture_json(name: str) -> Any:
    return json.loads((STRAVA_FIXTURES / name).read_text(encoding="utf-8"))


def _iso(value: datetime) -> str:
    return value.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def run_summary(
    activity_id: int,
    start: datetime,
    *,
    sport_type: str | None = "Run",
    activity_type: str = "Run",
    elapsed_s: int = 1800,
    distance_m: float = 5000.0,
    name: str | None = None,
) -> dict[str, Any]:
    """A list entry built from the recorded run (``activity.3.json``) with a new id and start."""
    entry = {
        k: v for k, v in fixture_json("detailed_activity_run.json").items() if k not in _DETAIL_ONLY
    }
    entry.update(
        resource_state=2,
        id=activity_id,
        name=name or f"Run {activity_id}",
        start_date=_iso(start),
        start_date_local=_iso(start),
        elapsed_time=elapsed_s,
        moving_time=elapsed_s,
        distance=distance_m,
        type=activity_type,
        upload_id=activity_id * 10,
        external_id=f"garmin_push_{activity_id}",
    )
    if sport_type is not None:
        entry["sport_type"] = sport_type
    return entry


def ride_summary(activity_id: int, start: datetime, index: int = 0) -> dict[str, Any]:
    """One of Strava's published example rides with a new id and start."""
    entry = dict(fixture_json("swagger_example_athlete_activities.json")[index % 2])
    entry.update(id=activity_id, start_date=_iso(start), start_date_local=_iso(start))
    return entry


def manual_hike(activity_id: int, start: datetime) -> dict[str, Any]:
    """The recorded manual (no GPS) Hike with a new id and start."""
    entry = {
        k: v
        for k, v in fixture_json("detailed_activity_manual.json").items()
        if k not in _DETAIL_ONLY
    }
    entry.update(id=activity_id, start_date=_iso(start), start_date_local=_iso(start))
    return entry


def run_streams(
    n: int = 600,
    *,
    cadence_per_foot: int = 85,
    speed_mps: float = 3.2,
    pause_after: int | None = None,
    pause_s: int = 30,
) -> dict[str, dict[str, Any]]:
    """Run streams to Strava's published StreamSet schema (``key_by_type=true``).

    1 Hz samples; ``pause_after`` inserts a timer pause (a jump in ``time``) after that sample.
    """
    time_s: list[int] = []
    t = 0
    for i in range(n):
        time_s.append(t)
        t += 1 + (pause_s if pause_after is not None and i == pause_after else 0)
    distance = [round(speed_mps * i, 1) for i in range(n)]

    def stream(data: list[Any]) -> dict[str, Any]:
        return {"data": data, "series_type": "distance", "original_size": n, "resolution": "high"}

    return {
        "time": stream(time_s),
        "distance": stream(distance),
        "velocity_smooth": stream([speed_mps] * n),
        "heartrate": stream([120 + i % 40 for i in range(n)]),
        "cadence": stream([cadence_per_foot] * n),
        "watts": stream([250 + i % 10 for i in range(n)]),
        "altitude": stream([12.0 + 0.01 * i for i in range(n)]),
        "grade_smooth": stream([0.5] * n),
        "latlng": stream([[37.77 + i * 1e-5, -122.42 + i * 1e-5] for i in range(n)]),
        "moving": stream([i % 100 != 0 for i in range(n)]),
        "temp": stream([18] * n),
    }


@dataclass
class Fault:
    """Answer requests whose path starts with ``prefix`` with ``status`` (or drop them)."""

    prefix: str
    status: int | str  # an HTTP status, or "drop" to close the connection without an answer
    times: int = 1
    skip: int = 0  # let this many matching requests through first
    headers: dict[str, str] = field(default_factory=dict)
    body: Any = None


@dataclass(frozen=True)
class Seen:
    method: str
    path: str
    query: dict[str, str]
    form: dict[str, str]
    authorization: str | None
    target: str = ""  # the request line's target as sent: path and query string
    headers: tuple[tuple[str, str], ...] = ()
    body: str = ""


class StravaServer:
    """The loopback Strava. Use as a context manager; ``address`` is ``127.0.0.1:PORT``."""

    def __init__(self, folder: Path):
        self.ca = trustme.CA(key_type=trustme.KeyType.ECDSA)  # fast to generate
        self.ca_file = folder / "strava-ca.pem"
        self.ca.cert_pem.write_to_path(str(self.ca_file))
        self.activities: dict[int, dict[str, Any]] = {}
        self.streams: dict[int, dict[str, dict[str, Any]]] = {}
        self.codes: set[str] = {"auth-code-1"}
        self.granted_scope = "read,activity:read_all"
        self.access_token = "acc-" + secrets.token_hex(8)
        self.refresh_token = "ref-" + secrets.token_hex(8)
        self.issued = [self.access_token, self.refresh_token]  # every token handed out
        self.expires_in_s = 6 * 3600
        self.token_valid = True
        self.deauthorized = False
        self.revoked: list[tuple[str, str | None]] = []  # (token, token_type_hint)
        self.athlete = fixture_json("athlete_detailed.json")
        # Strava's 2026 limits (domain.md §1): overall 200/15 min, 2,000/day; reads 100, 1,000.
        self.limits = {"overall": [200, 2000], "read": [100, 1000]}
        self.usage = {"overall": [0, 0], "read": [0, 0]}
        self.faults: list[Fault] = []
        self.log: list[Seen] = []
        self.lock = threading.Lock()
        self._server: Loopback | None = None

    # -- set-up ----------------------------------------------------------------------------

    def add(self, summary: dict[str, Any], streams: dict[str, dict[str, Any]] | None = None) -> int:
        activity_id = int(summary["id"])
        self.activities[activity_id] = summary
        if streams is not None:
            self.streams[activity_id] = streams
        return activity_id

    def inject(
        self,
        prefix: str,
        status: int | str,
        *,
        times: int = 1,
        skip: int = 0,
        headers: dict[str, str] | None = None,
        body: Any = None,
    ) -> None:
        with self.lock:
            self.faults.append(Fault(prefix, status, times, skip, dict(headers or {}), body))

    def issue_tokens(self) -> dict[str, Any]:
        """Rotate both tokens, as Strava does on every exchange or refresh."""
        self.access_token = "acc-" + secrets.token_hex(8)
        self.refresh_token = "ref-" + secrets.token_hex(8)
        self.issued += [self.access_token, self.refresh_token]
        self.token_valid = True
        expires_at = int(time.time()) + self.expires_in_s
        return {
            "token_type": "Bearer",
            "expires_at": expires_at,
            "expires_in": self.expires_in_s,
            "refresh_token": self.refresh_token,
            "access_token": self.access_token,
        }

    def token_file_content(self, expires_at: int | None = None, key: str = "me") -> str:
        """A stridewise token file for the server's current tokens."""
        account = {
            "access_token": self.access_token,
            "refresh_token": self.refresh_token,
            "expires_at": expires_at if expires_at is not None else int(time.time()) + 6 * 3600,
            "strava_athlete_id": self.athlete["id"],
            "strava_athlete_name": "Test Athlete",
            "scope": self.granted_scope,
        }
        return json.dumps({"format": 1, "accounts": {key: account}})

    @property
    def address(self) -> str:
        assert self._server is not None
        return f"127.0.0.1:{self._server.port}"

    def count(self, prefix: str = "", method: str | None = None) -> int:
        with self.lock:
            return sum(
                1
                for s in self.log
                if s.path.startswith(prefix) and (method is None or s.method == method)
            )

    def requests_to(self, prefix: str) -> list[Seen]:
        with self.lock:
            return [s for s in self.log if s.path.startswith(prefix)]

    # -- lifecycle -------------------------------------------------------------------------

    def __enter__(self) -> StravaServer:
        cert = self.ca.issue_cert("127.0.0.1")
        context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        cert.configure_cert(context)
        self._server = Loopback(_handler(self), tls=context)
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        assert self._server is not None
        self._server.stop()

    # -- request handling (called from handler threads) ------------------------------------

    def _take_fault(self, path: str) -> Fault | None:
        with self.lock:
            for fault in self.faults:
                if not path.startswith(fault.prefix) or fault.times <= 0:
                    continue
                if fault.skip > 0:
                    fault.skip -= 1
                    continue
                fault.times -= 1
                return fault
        return None

    def _rate_headers(self) -> dict[str, str]:
        return {
            "X-RateLimit-Limit": "{},{}".format(*self.limits["overall"]),
            "X-RateLimit-Usage": "{},{}".format(*self.usage["overall"]),
            "X-ReadRateLimit-Limit": "{},{}".format(*self.limits["read"]),
            "X-ReadRateLimit-Usage": "{},{}".format(*self.usage["read"]),
        }

    def _count_usage(self, method: str) -> bool:
        """Count one API request; False when it is over a limit (→ 429)."""
        with self.lock:
            kinds = ["overall"] + (["read"] if method == "GET" else [])
            for kind in kinds:
                self.usage[kind][0] += 1
                self.usage[kind][1] += 1
            return all(
                self.usage[k][0] <= self.limits[k][0] and self.usage[k][1] <= self.limits[k][1]
                for k in kinds
            )

    def handle(
        self,
        method: str,
        path: str,
        query: dict[str, str],
        form: dict[str, str],
        authorization: str | None,
        seen: Seen | None = None,
    ) -> tuple[int | str, dict[str, str], Any]:
        with self.lock:
            self.log.append(seen or Seen(method, path, query, form, authorization))
        fault = self._take_fault(path)
        headers: dict[str, str] = {}
        if not path.startswith(("/oauth/", API + "/")):
            path = API + path  # api-v3.strava.com serves the same API without the prefix
        if path.startswith(API):
            within = self._count_usage(method)
            headers.update(self._rate_headers())
            if fault is not None:
                if fault.status == "drop":
                    return "drop", {}, None
                return (
                    fault.status,
                    {**headers, **fault.headers},
                    fault.body or _error_body(int(fault.status)),
                )
            if not within:
                return 429, headers, _error_body(429)
            if not self._authorised(authorization):
                return 401, headers, _error_body(401)
            return self._api(method, path, query, headers)
        if fault is not None:
            if fault.status == "drop":
                return "drop", {}, None
            return fault.status, dict(fault.headers), fault.body or _error_body(int(fault.status))
        if path == AUTHORIZE_PATH:
            return self._authorize(query)
        if path == TOKEN_PATH and method == "POST":
            return self._token(form)
        if path == REVOKE_PATH and method == "POST":
            return self._revoke(form, authorization)
        if path == DEAUTH_PATH and method == "POST":
            token = form.get("access_token") or _bearer(authorization)
            if token != self.access_token or not self.token_valid:
                return 401, {}, _error_body(401)
            self.token_valid = False
            self.deauthorized = True
            return 200, {}, {"access_token": token}
        return 404, {}, _error_body(404)

    def _revoke(
        self, form: dict[str, str], authorization: str | None
    ) -> tuple[int | str, dict[str, str], Any]:
        """RFC 7009 as Strava describes it (stravalib/stravalib#738): client credentials by
        HTTP Basic; revoking either token revokes both; an unknown token is not an error."""
        expected = base64.b64encode(f"{CLIENT_ID}:{CLIENT_SECRET}".encode()).decode()
        if authorization != f"Basic {expected}":
            return 401, {}, _error_body(401)
        token = form.get("token", "")
        with self.lock:
            self.revoked.append((token, form.get("token_type_hint")))
            if token in (self.access_token, self.refresh_token):
                self.token_valid = False
                self.deauthorized = True
        return 200, {}, {}

    def _authorised(self, authorization: str | None) -> bool:
        return self.token_valid and _bearer(authorization) == self.access_token

    def _authorize(self, query: dict[str, str]) -> tuple[int | str, dict[str, str], Any]:
        """Strava's consent page, already approved: redirect back with a fresh code."""
        if str(query.get("client_id")) != str(CLIENT_ID):
            return 400, {}, _error_body(400)
        code = "auth-code-" + secrets.token_hex(6)
        with self.lock:
            self.codes.add(code)
        params = {"state": query.get("state", ""), "code": code, "scope": self.granted_scope}
        location = f"{query['redirect_uri']}?{urlencode(params)}"
        return 302, {"Location": location}, None

    def _token(self, form: dict[str, str]) -> tuple[int | str, dict[str, str], Any]:
        if form.get("client_id") != str(CLIENT_ID) or form.get("client_secret") != CLIENT_SECRET:
            return (
                401,
                {},
                {
                    "message": "Bad Request",
                    "errors": [
                        {"resource": "Application", "field": "client_id", "code": "invalid"}
                    ],
                },
            )
        grant = form.get("grant_type")
        with self.lock:
            if grant == "authorization_code":
                if form.get("code") not in self.codes:
                    return (
                        400,
                        {},
                        {
                            "message": "Bad Request",
                            "errors": [
                                {
                                    "resource": "AuthorizationCode",
                                    "field": "code",
                                    "code": "invalid",
                                }
                            ],
                        },
                    )
                self.codes.discard(form["code"])
                body = self.issue_tokens()
                body["athlete"] = self.athlete
                return 200, {}, body
            if grant == "refresh_token":
                if form.get("refresh_token") != self.refresh_token or self.deauthorized:
                    return (
                        400,
                        {},
                        {
                            "message": "Bad Request",
                            "errors": [
                                {
                                    "resource": "RefreshToken",
                                    "field": "refresh_token",
                                    "code": "invalid",
                                }
                            ],
                        },
                    )
                return 200, {}, self.issue_tokens()
        return 400, {}, _error_body(400)

    def _api(
        self, method: str, path: str, query: dict[str, str], headers: dict[str, str]
    ) -> tuple[int | str, dict[str, str], Any]:
        if path == LIST_PATH and method == "GET":
            return 200, headers, self._list(query)
        if path == f"{API}/athlete":
            return 200, headers, self.athlete
        if path.startswith(STREAMS_PREFIX) and path.endswith("/streams"):
            activity_id = int(path[len(STREAMS_PREFIX) : -len("/streams")])
            streams = self.streams.get(activity_id)
            if streams is None:
                return 404, headers, _error_body(404)
            keys = query.get("keys", "").split(",")
            return 200, headers, {k: v for k, v in streams.items() if k in keys}
        return 404, headers, _error_body(404)

    def _list(self, query: dict[str, str]) -> list[dict[str, Any]]:
        """Strava's paging: filter by after/before, oldest first when ``after`` is given."""

        def start(entry: dict[str, Any]) -> float:
            return datetime.fromisoformat(entry["start_date"].replace("Z", "+00:00")).timestamp()

        items = list(self.activities.values())
        if query.get("after"):
            items = [a for a in items if start(a) > int(query["after"])]
        if query.get("before"):
            items = [a for a in items if start(a) < int(query["before"])]
        items.sort(key=start, reverse=not query.get("after"))
        page = int(query.get("page", 1))
        per_page = int(query.get("per_page", 30))
        return items[(page - 1) * per_page : page * per_page]


def _bearer(authorization: str | None) -> str | None:
    if authorization and authorization.startswith("Bearer "):
        return authorization[len("Bearer ") :]
    return None


def _error_body(status: int) -> dict[str, Any]:
    """Error bodies in Strava's published Fault shape."""
    known = {
        400: ("Bad Request", "Application", "request", "invalid"),
        401: ("Authorization Error", "Athlete", "access_token", "invalid"),
        403: ("Forbidden", "Athlete", "access_token", "activity:read_permission"),
        404: ("Record Not Found", "Activity", "id", "invalid"),
        429: ("Rate Limit Exceeded", "Application", "rate limit", "exceeded"),
    }
    message, resource, field_, code = known.get(status, ("Internal Server Error", "", "", "error"))
    return {"message": message, "errors": [{"resource": resource, "field": field_, "code": code}]}


def _handler(server: StravaServer) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def _serve(self, method: str) -> None:
            parts = urlsplit(self.path)
            query = {k: v[-1] for k, v in parse_qs(parts.query).items()}
            length = int(self.headers.get("Content-Length") or 0)
            raw = self.rfile.read(length).decode() if length else ""
            form = {k: v[-1] for k, v in parse_qs(raw).items()}
            authorization = self.headers.get("Authorization")
            seen = Seen(
                method,
                parts.path,
                query,
                form,
                authorization,
                target=self.path,
                headers=tuple((str(k), str(v)) for k, v in self.headers.items()),
                body=raw,
            )
            status, headers, body = server.handle(
                method, parts.path, query, form, authorization, seen
            )
            if status == "drop":
                self.close_connection = True  # no answer at all: the client sees a dropped line
                return
            data = b"" if body is None else json.dumps(body).encode()
            self.send_response(int(status))
            for name, value in headers.items():
                self.send_header(name, value)
            if body is not None:
                self.send_header("Content-Type", "application/json; charset=utf-8")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def do_GET(self) -> None:
            self._serve("GET")

        def do_POST(self) -> None:
            self._serve("POST")

        def log_message(self, format: str, *args: Any) -> None:
            return

    return Handler


def write_tokens(
    server: StravaServer, token_file: Path, expires_in_s: float = 6 * 3600, key: str = "me"
) -> None:
    """Store the server's current tokens for ``key`` as if ``strava connect`` had run."""
    token_file.parent.mkdir(parents=True, exist_ok=True)
    token_file.write_text(server.token_file_content(int(time.time() + expires_in_s), key))
    token_file.chmod(0o600)


class Sleeps(list[float]):
    """Records the backoff instead of sleeping."""

    def __call__(self, seconds: float) -> None:
        self.append(seconds)


def point_stridewise_at(server: StravaServer, token_file: Path, setenv: Any) -> None:
    """Set the documented environment variables so stridewise talks to ``server`` only.

    ``setenv`` is ``monkeypatch.setenv``. The file token store is selected both by naming the
    file and by the fail keyring backend, so no test ever touches a real keyring.
    """
    setenv("STRIDEWISE_STRAVA_API", server.address)
    setenv("STRIDEWISE_STRAVA_CA", str(server.ca_file))
    setenv("STRIDEWISE_STRAVA_TOKENS", str(token_file))
    setenv("STRIDEWISE_STRAVA_CLIENT_ID", str(CLIENT_ID))
    setenv("STRIDEWISE_STRAVA_CLIENT_SECRET", CLIENT_SECRET)
    setenv("PYTHON_KEYRING_BACKEND", "keyring.backends.fail.Keyring")
