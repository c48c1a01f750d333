"""A loopback Garmin Connect for tests: replays recorded payloads per path, injects faults.

The unmodified garminconnect client talks real HTTP to it (``STRIDEWISE_GARMIN_API`` and
``STRIDEWISE_GARMIN_SSO`` point there). It serves the Connect API paths the connector uses,
the DI token endpoint, and the mobile SSO login with MFA. Faults (an HTTP status, a dropped
connection, or ``drop_after``: do the request, then drop the connection before answering)
are queued per path prefix; every request is logged so tests can count them.

It also keeps a workout library and a training calendar (upload, update, delete, schedule,
unschedule, list, calendar month), and checks every workout body against garminconnect's
own pydantic models (``garminconnect.workout``) and exercise catalogue: a body they would not
produce, or an exercise Garmin does not have, is answered 400 and kept in ``invalid``.
"""

from __future__ import annotations

import base64
import io
import json
import secrets
import threading
import time
import zipfile
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler
from pathlib import Path
from types import TracebackType
from typing import Any
from urllib.parse import parse_qs, urlsplit

from tests.loopback import Loopback

GARMIN_FIXTURES = Path(__file__).parent / "fixtures" / "garmin"
CLIENT_ID = "GARMIN_CONNECT_MOBILE_ANDROID_DI_2025Q2"

LIST_PATH = "/activitylist-service/activities/search/activities"
DOWNLOAD_PATH = "/download-service/files/activity/"
TOKEN_PATH = "/di-oauth2-service/oauth/token"
PROFILE_PATH = "/userprofile-service/socialProfile"
SETTINGS_PATH = "/userprofile-service/userprofile/user-settings"
SSO_PREFIXES = ("/mobile/", "/portal/", "/sso/")
_PROFILES = {
    PROFILE_PATH: "userprofile_socialProfile.json",
    SETTINGS_PATH: "userprofile_user-settings.json",
}


def point_at(server: GarminServer, monkeypatch: Any) -> None:
    """Send every Garmin API and login request to ``server``; no other token store applies."""
    for name, value in (
        ("STRIDEWISE_GARMIN_API", server.url),
        ("STRIDEWISE_GARMIN_SSO", server.url),
    ):
        monkeypatch.setenv(name, value)
    for name in (
        "STRIDEWISE_GARMIN_TOKENS",
        "STRIDEWISE_GARMIN_EMAIL",
        "STRIDEWISE_GARMIN_PASSWORD",
        "GARMINTOKENS",
    ):
        monkeypatch.delenv(name, raising=False)


def fixture_json(name: str) -> Any:
    return json.loads((GARMIN_FIXTURES / name).read_text(encoding="utf-8"))


def make_jwt(expires_in_s: float = 6 * 3600, client_id: str = CLIENT_ID) -> str:
    """An unsigned-looking JWT whose ``exp`` is ``expires_in_s`` away (no SSO host is needed)."""

    def part(value: dict[str, Any]) -> str:
        raw = json.dumps(value, separators=(",", ":")).encode()
        return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()

    header = part({"alg": "RS256", "typ": "JWT"})
    # A fresh jti each time: two tokens made in the same second still differ.
    payload = part(
        {
            "exp": int(time.time() + expires_in_s),
            "client_id": client_id,
            "jti": secrets.token_hex(8),
        }
    )
    return f"{header}.{payload}.c2lnbmF0dXJl"


def token_store(jwt: str, refresh: str = "refresh-token-1") -> str:
    """garminconnect 0.3's ``garmin_tokens.json`` content (what ``Client.dumps`` writes)."""
    return json.dumps({"di_token": jwt, "di_refresh_token": refresh, "di_client_id": CLIENT_ID})


def store_tokens(server: GarminServer) -> Path:
    """Log in as ``garmin login`` would have: the server's tokens in our private token file."""
    from connectors.garmin import token_file

    path = token_file()
    path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    path.write_text(token_store(server.token), encoding="utf-8")
    path.chmod(0o600)
    return path


def original_zip(activity_id: int, fit: bytes) -> bytes:
    """An ORIGINAL download as Garmin serves it: a zip holding ``<id>_ACTIVITY.fit``."""
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        archive.writestr(f"{activity_id}_ACTIVITY.fit", fit)
    return buffer.getvalue()


def list_entry(
    template: dict[str, Any],
    activity_id: int,
    start_gmt: str,
    *,
    elapsed_s: float | None = None,
    local_offset_h: int = 0,
) -> dict[str, Any]:
    """A copy of a recorded list entry with a new id and start ("YYYY-MM-DD HH:MM:SS" GMT)."""
    from datetime import datetime, timedelta

    entry = json.loads(json.dumps(template))
    start = datetime.strptime(start_gmt, "%Y-%m-%d %H:%M:%S")
    entry["activityId"] = activity_id
    entry["startTimeGMT"] = start_gmt
    entry["startTimeLocal"] = (start + timedelta(hours=local_offset_h)).strftime(
        "%Y-%m-%d %H:%M:%S"
    )
    entry["beginTimestamp"] = int((start - datetime(1970, 1, 1)).total_seconds() * 1000)
    if elapsed_s is not None:
        entry["elapsedDuration"] = elapsed_s
        entry["duration"] = elapsed_s
    return entry


@dataclass
class Fault:
    """Answer the next ``times`` requests under ``prefix`` with ``action``.

    ``action`` is an HTTP status, ``"drop"`` (close without doing anything) or
    ``"drop_after"`` (do the request, then close without answering: the answer is lost).
    """

    prefix: str
    action: int | str
    times: int
    method: str | None = None
    after: int = 0  # let this many matching requests through first


@dataclass(frozen=True)
class Request:
    method: str
    path: str
    query: dict[str, str]
    headers: dict[str, str]
    body: bytes = b""


WORKOUT_PATH = "/workout-service/workout"
WORKOUTS_PATH = "/workout-service/workouts"
SCHEDULE_PATH = "/workout-service/schedule/"
CALENDAR_PATH = "/calendar-service/year/"


def check_workout(body: Any) -> str | None:
    """Why garminconnect's models would not produce this workout body; None when they would."""
    from garminconnect.exercises import EXERCISES
    from garminconnect.workout import (
        BaseWorkout,
        RunningWorkout,
        SportType,
        StrengthWorkout,
    )
    from pydantic import ValidationError

    if not isinstance(body, dict):
        return "the body is not a JSON object"
    try:
        base = BaseWorkout.model_validate(body)
        models: dict[int, type[BaseWorkout]] = {
            SportType.STRENGTH_TRAINING: StrengthWorkout,
            SportType.RUNNING: RunningWorkout,
        }
        model = models.get(base.sportType.get("sportTypeId", 0))
        if model is None:
            return f"unexpected sport type {base.sportType}"
        workout = model.model_validate(body)
    except ValidationError as exc:
        return f"garminconnect.workout rejects it: {exc.errors()[0]}"
    if workout.to_dict() != body:
        return "the body is not what garminconnect's model serialises (extra or missing keys)"
    known = {(e["category"], e["exercise"]) for e in EXERCISES}
    # An empty exercise name shows the category alone (garminconnect.workout's helpers).
    known |= {(e["category"], "") for e in EXERCISES}
    orders: list[int] = []

    def walk(steps: list[Any]) -> str | None:
        for step in steps:
            orders.append(step.stepOrder)
            extra = step.model_extra or {}
            if step.type == "RepeatGroupDTO":
                if step.numberOfIterations < 1 or not step.workoutSteps:
                    return f"step {step.stepOrder}: an empty repeat"
                problem = walk(step.workoutSteps)
                if problem:
                    return problem
            elif step.type != "ExecutableStepDTO":
                return f"step {step.stepOrder}: unknown type {step.type}"
            elif (
                "category" in extra and (extra["category"], extra.get("exerciseName")) not in known
            ):
                return f"step {step.stepOrder}: no such Garmin exercise {extra}"
        return None

    for segment in workout.workoutSegments:
        if segment.sportType != workout.sportType:
            return "a segment's sport type differs from the workout's"
        problem = walk(segment.workoutSteps)
        if problem:
            return problem
    if len(orders) != len(set(orders)):
        return f"stepOrder repeats: {sorted(orders)}"
    return None


@dataclass
class GarminServer:
    """Replays recorded payloads; ``with GarminServer() as server:`` runs it on a free port."""

    activities: list[dict[str, Any]] = field(default_factory=list)
    downloads: dict[int, bytes] = field(default_factory=dict)
    token: str = field(default_factory=make_jwt)
    refresh_answer: tuple[int, dict[str, Any]] = (400, {"error": "invalid_grant"})
    login_answer: tuple[int, dict[str, Any]] = (
        200,
        {
            "responseStatus": {"type": "MFA_REQUIRED"},
            "customerMfaInfo": {"mfaLastMethodUsed": "email"},
        },
    )
    mfa_code: str = "123456"
    sso_status: int | None = None  # answer every SSO request with this status (e.g. 429)
    faults: list[Fault] = field(default_factory=list)
    requests: list[Request] = field(default_factory=list)
    workouts: dict[int, dict[str, Any]] = field(default_factory=dict)  # the workout library
    schedules: dict[int, dict[str, Any]] = field(default_factory=dict)  # calendar entries
    invalid: list[str] = field(default_factory=list)  # bodies garminconnect's models reject
    last_id: int = 900_000

    def __post_init__(self) -> None:
        self._lock = threading.Lock()
        self._server: Loopback | None = None

    # -- lifecycle ----------------------------------------------------------------------------

    def __enter__(self) -> GarminServer:
        self._server = Loopback(_handler(self))
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        assert self._server is not None
        self._server.stop()

    @property
    def url(self) -> str:
        assert self._server is not None
        return f"http://127.0.0.1:{self._server.port}"

    # -- set-up and inspection ----------------------------------------------------------------

    def fail(
        self,
        prefix: str,
        action: int | str,
        times: int = 1,
        method: str | None = None,
        after: int = 0,
    ) -> None:
        with self._lock:
            self.faults.append(Fault(prefix, action, times, method, after))

    def count(self, prefix: str, method: str | None = None) -> int:
        with self._lock:
            return sum(
                1
                for r in self.requests
                if r.path.startswith(prefix) and (method is None or r.method == method)
            )

    def list_pages(self) -> list[int]:
        """The ``start`` offsets of every activity-list request, in order."""
        with self._lock:
            return [int(r.query.get("start", "0")) for r in self.requests if r.path == LIST_PATH]

    def _take_fault(self, method: str, path: str) -> int | str | None:
        with self._lock:
            for fault in self.faults:
                if (
                    fault.times > 0
                    and path.startswith(fault.prefix)
                    and fault.method in (None, method)
                ):
                    if fault.after > 0:
                        fault.after -= 1
                        continue
                    fault.times -= 1
                    return fault.action
        return None

    def _log(self, request: Request) -> None:
        with self._lock:
            self.requests.append(request)

    # -- the workout library and the calendar ------------------------------------------------

    def _new_id(self) -> int:
        self.last_id += 1
        return self.last_id

    def add_workout(self, body: dict[str, Any]) -> int:
        """A workout in the library as if its owner made it in Garmin Connect."""
        with self._lock:
            return self._store_workout(body)

    def add_schedule(self, workout_id: int, day: str) -> int:
        with self._lock:
            schedule_id = self._new_id()
            self.schedules[schedule_id] = {"workoutId": workout_id, "date": day}
            return schedule_id

    def _store_workout(self, body: dict[str, Any]) -> int:
        workout_id = self._new_id()
        self.workouts[workout_id] = {**body, "workoutId": workout_id, "ownerId": 1}
        return workout_id

    def calendar(self) -> list[tuple[str, str]]:
        """(date, workout name) of every calendar entry, sorted."""
        with self._lock:
            return sorted(
                (entry["date"], self.workouts.get(entry["workoutId"], {}).get("workoutName", "?"))
                for entry in self.schedules.values()
            )

    def _workouts_api(
        self, method: str, path: str, query: dict[str, str], body: bytes
    ) -> tuple[int, Any]:
        """The workout-service and calendar-service paths; (status, JSON or None for 204)."""
        try:
            data = json.loads(body) if body else None
        except ValueError:
            return 400, {"message": "not JSON"}
        with self._lock:
            if path == WORKOUT_PATH and method == "POST":
                problem = check_workout(data)
                if problem:
                    self.invalid.append(problem)
                    return 400, {"message": problem}
                workout_id = self._store_workout(data)
                return 200, self.workouts[workout_id]
            if path == WORKOUTS_PATH and method == "GET":
                rows = sorted(self.workouts.values(), key=lambda w: w["workoutId"])
                if query.get("orderSeq") == "DESC":
                    rows.reverse()
                start, limit = int(query.get("start", "0")), int(query.get("limit", "100"))
                keys = ("workoutId", "workoutName", "description", "sportType", "ownerId")
                return 200, [{k: w.get(k) for k in keys} for w in rows[start : start + limit]]
            if path.startswith(WORKOUT_PATH + "/"):
                workout_id = int(path.rsplit("/", 1)[-1])
                if workout_id not in self.workouts:
                    return 404, {"message": "workout not found"}
                if method == "GET":
                    return 200, self.workouts[workout_id]
                if method == "DELETE":
                    del self.workouts[workout_id]
                    return 204, None
                if method == "PUT":
                    if not isinstance(data, dict) or data.get("workoutId") != workout_id:
                        self.invalid.append("PUT body without its workoutId")
                        return 400, {"message": "workoutId mismatch"}
                    problem = check_workout(data)
                    if problem:
                        self.invalid.append(problem)
                        return 400, {"message": problem}
                    self.workouts[workout_id] = {**data, "ownerId": 1}
                    return 204, None
            if path.startswith(SCHEDULE_PATH):
                item_id = int(path.rsplit("/", 1)[-1])
                if method == "POST":
                    if not isinstance(data, dict) or set(data) != {"date"}:
                        self.invalid.append(f"schedule body {data!r}")
                        return 400, {"message": "expected {'date': 'YYYY-MM-DD'}"}
                    if item_id not in self.workouts:
                        return 404, {"message": "workout not found"}
                    schedule_id = self._new_id()
                    self.schedules[schedule_id] = {"workoutId": item_id, "date": data["date"]}
                    workout = self.workouts[item_id]
                    return 200, {
                        "workoutScheduleId": schedule_id,
                        "workout": {"workoutId": item_id, "workoutName": workout["workoutName"]},
                        "calendarDate": data["date"],
                    }
                if method == "DELETE":
                    if self.schedules.pop(item_id, None) is None:
                        return 404, {"message": "schedule not found"}
                    return 204, None
            if path.startswith(CALENDAR_PATH) and method == "GET":
                parts = path.split("/")  # /calendar-service/year/Y/month/M (0-based month)
                prefix = f"{int(parts[3]):04d}-{int(parts[5]) + 1:02d}-"
                items: list[dict[str, Any]] = [
                    {
                        "id": schedule_id,
                        "itemType": "workout",
                        "workoutId": entry["workoutId"],
                        "title": self.workouts.get(entry["workoutId"], {}).get("workoutName"),
                        "date": entry["date"],
                    }
                    for schedule_id, entry in sorted(self.schedules.items())
                    if entry["date"].startswith(prefix)
                ]
                # An activity on the calendar too: the push must look at workouts only.
                items.append({"id": 1, "itemType": "activity", "date": prefix + "01"})
                return 200, {"calendarItems": items}
        return 404, {"message": "not found"}

    def _page(self, query: dict[str, str]) -> list[dict[str, Any]]:
        rows = [
            a
            for a in self.activities
            if a["startTimeLocal"][:10] >= query.get("startDate", "0000-00-00")
            and a["startTimeLocal"][:10] <= query.get("endDate", "9999-99-99")
        ]
        rows.sort(key=lambda a: a["startTimeLocal"], reverse=query.get("sortOrder") != "asc")
        start = int(query.get("start", "0"))
        return rows[start : start + int(query.get("limit", "20"))]


def _handler(server: GarminServer) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"  # keep-alive, as Garmin serves it

        def log_message(self, format: str, *args: Any) -> None:  # quiet test output
            return

        def do_GET(self) -> None:
            self._serve("GET")

        def do_POST(self) -> None:
            self._serve("POST")

        def do_PUT(self) -> None:
            self._serve("PUT")

        def do_DELETE(self) -> None:
            self._serve("DELETE")

        def _serve(self, method: str) -> None:
            split = urlsplit(self.path)
            query = {k: v[-1] for k, v in parse_qs(split.query).items()}
            length = int(self.headers.get("Content-Length") or 0)
            body = self.rfile.read(length) if length else b""
            server._log(Request(method, split.path, query, dict(self.headers.items()), body))
            action = server._take_fault(method, split.path)
            if action == "drop_after":
                # The request is done, but its answer never arrives.
                list(self._route(method, split.path, query, body))
                self.close_connection = True
                return
            if action == "drop":
                # Close without a response: the client sees the connection reset mid-request.
                self.close_connection = True
                return
            if isinstance(action, int):
                self._json(action, {"message": f"injected HTTP {action}"})
                return
            for status, payload, kind in self._route(method, split.path, query, body):
                self._send(status, payload, kind)
                return

        def _route(
            self, method: str, path: str, query: dict[str, str], body: bytes
        ) -> Iterator[tuple[int, bytes, str]]:
            if path.startswith(SSO_PREFIXES):
                yield self._sso(method, path, body)
                return
            if path == TOKEN_PATH and method == "POST":
                form = {k: v[-1] for k, v in parse_qs(body.decode()).items()}
                if form.get("grant_type") == "refresh_token":
                    status, answer = server.refresh_answer
                else:  # a CAS service ticket exchanged at the end of a login
                    status, answer = 200, {"access_token": server.token, "refresh_token": "r-2"}
                yield status, json.dumps(answer).encode(), "application/json"
                return
            if self.headers.get("Authorization") != f"Bearer {server.token}":
                yield 401, b'{"message": "Token is not active"}', "application/json"
                return
            if path.startswith(("/workout-service/", "/calendar-service/")):
                status, answer = server._workouts_api(method, path, query, body)
                payload = b"" if answer is None else json.dumps(answer).encode()
                yield status, payload, "application/json"
            elif path in _PROFILES:
                yield 200, (GARMIN_FIXTURES / _PROFILES[path]).read_bytes(), "application/json"
            elif path == LIST_PATH:
                yield 200, json.dumps(server._page(query)).encode(), "application/json"
            elif path.startswith(DOWNLOAD_PATH):
                activity_id = int(path.rsplit("/", 1)[-1])
                data = server.downloads.get(activity_id)
                if data is None:
                    body = (GARMIN_FIXTURES / "download_403_not_owner.json").read_bytes()
                    yield 403, body, "application/json"
                else:
                    yield 200, data, "application/x-zip-compressed"
            else:
                yield 404, b'{"message": "not found"}', "application/json"

        def _sso(self, method: str, path: str, body: bytes) -> tuple[int, bytes, str]:
            if server.sso_status is not None:
                return server.sso_status, b"<html><title>blocked</title></html>", "text/html"
            if method == "GET" and path.endswith("/sign-in"):
                return 200, b"<html><title>GARMIN Authentication</title></html>", "text/html"
            if method == "POST" and path == "/mobile/api/login":
                status, body = server.login_answer
                return status, json.dumps(body).encode(), "application/json"
            if method == "POST" and path.endswith("/api/mfa/verifyCode"):
                code = json.loads(body or b"{}").get("mfaVerificationCode")
                answer: dict[str, Any] = (
                    {"responseStatus": {"type": "SUCCESSFUL"}, "serviceTicketId": "ST-1-loopback"}
                    if code == server.mfa_code
                    else {"responseStatus": {"type": "INVALID_MFA_CODE"}}
                )
                return 200, json.dumps(answer).encode(), "application/json"
            return 404, b"<html><title>not found</title></html>", "text/html"

        def _json(self, status: int, body: Any) -> None:
            self._send(status, json.dumps(body).encode(), "application/json")

        def _send(self, status: int, body: bytes, kind: str) -> None:
            self.send_response(status)
            self.send_header("Content-Type", kind)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

    return Handler
