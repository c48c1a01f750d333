"""A loopback Garmin Connect for tests: replays recorded payloads per path, injects faults.

The unmodified garminconnect client talks real HTTP to it (``STRIDEWISE_GARMIN_API`` and
``STRIDEWISE_GARMIN_SSO`` point there). It serves the Connect API paths the connector uses,
the DI token endpoint, and the mobile SSO login with MFA. Faults (an HTTP status, or a
dropped connection) are queued per path prefix; every request is logged so tests can count
them.
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
    """Answer the next ``times`` requests under ``prefix`` with ``action`` (status or "drop")."""

    prefix: str
    action: int | str
    times: int
    method: str | None = None


@dataclass(frozen=True)
class Request:
    method: str
    path: str
    query: dict[str, str]
    headers: dict[str, str]


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
        self, prefix: str, action: int | str, times: int = 1, method: str | None = None
    ) -> None:
        with self._lock:
            self.faults.append(Fault(prefix, action, times, method))

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
                    fault.times -= 1
                    return fault.action
        return None

    def _log(self, request: Request) -> None:
        with self._lock:
            self.requests.append(request)

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

        def _serve(self, method: str) -> None:
            split = urlsplit(self.path)
            query = {k: v[-1] for k, v in parse_qs(split.query).items()}
            length = int(self.headers.get("Content-Length") or 0)
            body = self.rfile.read(length) if length else b""
            server._log(Request(method, split.path, query, dict(self.headers.items())))
            action = server._take_fault(method, split.path)
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
            if path in _PROFILES:
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
