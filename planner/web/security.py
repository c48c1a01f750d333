"""The web face's guard: sessions, the access token, CSRF tokens, host check, headers, log.

* **Sessions** are random ids in an HttpOnly, SameSite=Lax cookie; what a session may do lives
  in this process only (a restart logs everybody out, which is fine for one coach).
* **Access token**: when the server has one (always when it listens beyond loopback), every
  page but the public ones needs a session that logged in with it, or an
  ``Authorization: Bearer`` header. The token is compared in constant time and never echoed.
* **CSRF**: every POST form carries the session's random token; a POST without the matching
  token is refused (the webhook, which Strava posts, is the one exception, and changes
  nothing but a queue).
* **Host check**: on a loopback bind only loopback host names are answered, so a web page
  that rebinds its own DNS name to 127.0.0.1 cannot read the dashboard.
* **Log**: one line per request, path only — never a query string (OAuth codes, the webhook's
  verify token) and never a calendar token (``/calendar/…`` is shown redacted).
"""

from __future__ import annotations

import logging
import secrets
import time
from collections import OrderedDict
from dataclasses import dataclass, field
from typing import Final

from starlette.middleware.base import BaseHTTPMiddleware, RequestResponseEndpoint
from starlette.requests import Request
from starlette.responses import PlainTextResponse, RedirectResponse, Response
from starlette.types import ASGIApp

log = logging.getLogger("stridewise.web")

SESSION_COOKIE: Final = "stridewise_session"
#: Paths anyone may reach: the calendar feed (its token is its credential), Strava's webhook
#: (Strava cannot log in), the log-in page and the stylesheets.
PUBLIC_PREFIXES: Final = ("/calendar/", "/strava/webhook", "/login", "/static/")
#: Paths machines poll or post to: they get no session (and no cookie).
SESSIONLESS_PREFIXES: Final = ("/calendar/", "/strava/webhook", "/static/")
#: Sessions kept at most, oldest dropped first: a client that never sends its cookie back
#: must not grow the table without end. Our own number, far above one coach's browsers.
MAX_SESSIONS: Final = 5000
LOOPBACK_HOSTS: Final = frozenset({"127.0.0.1", "localhost", "[::1]", "::1"})
#: Content-Security-Policy: no scripts at all, styles and images only from this server (and
#: the charts as data: URIs), no framing, forms post only here.
CSP: Final = (
    "default-src 'none'; style-src 'self'; img-src 'self' data:; form-action 'self';"
    " frame-ancestors 'none'; base-uri 'none'"
)


@dataclass(slots=True)
class Session:
    csrf: str = field(default_factory=lambda: secrets.token_urlsafe(32))
    authed: bool = False
    # Strava connects this session started: state -> athlete (the redirect must match one).
    connects: dict[str, str] = field(default_factory=dict)
    # What the last button did (ok, sentence), shown once on the next page.
    notice: tuple[bool, str] | None = None


class Guard(BaseHTTPMiddleware):
    """Host check, access control, session cookie, security headers and the access log."""

    def __init__(self, app: ASGIApp, *, access_token: str | None, loopback_only: bool):
        super().__init__(app)
        self.access_token = access_token
        self.loopback_only = loopback_only
        self.sessions: OrderedDict[str, Session] = OrderedDict()

    def check_token(self, given: str) -> bool:
        return self.access_token is not None and secrets.compare_digest(
            given.encode(), self.access_token.encode()
        )

    async def dispatch(self, request: Request, call_next: RequestResponseEndpoint) -> Response:
        started = time.perf_counter()
        response = await self._guarded(request, call_next)
        _headers(response)
        log.info(
            "%s %s %d %.0f ms",
            request.method,
            redact(request.url.path),
            response.status_code,
            (time.perf_counter() - started) * 1000,
        )
        return response

    async def _guarded(self, request: Request, call_next: RequestResponseEndpoint) -> Response:
        host = (request.headers.get("host") or "").rsplit(":", 1)[0]
        if self.loopback_only and host not in LOOPBACK_HOSTS:
            return PlainTextResponse("unknown host name", status_code=400)
        path = request.url.path
        sid = request.cookies.get(SESSION_COOKIE, "")
        session = self.sessions.get(sid)
        fresh = session is None and not path.startswith(SESSIONLESS_PREFIXES)
        if session is None:
            session = Session()  # a machine's request: used for this request only
        if fresh:
            sid = secrets.token_urlsafe(32)
            self.sessions[sid] = session
            while len(self.sessions) > MAX_SESSIONS:
                self.sessions.popitem(last=False)
        elif sid in self.sessions:
            self.sessions.move_to_end(sid)  # recently used: dropped last
        bearer = request.headers.get("authorization", "")
        if bearer.startswith("Bearer ") and self.check_token(bearer[len("Bearer ") :]):
            session.authed = True
        request.state.session = session
        request.state.guard = self
        public = path.startswith(PUBLIC_PREFIXES)
        if self.access_token is not None and not session.authed and not public:
            if request.method == "GET":
                response: Response = RedirectResponse("/login", status_code=303)
            else:
                response = PlainTextResponse("log in first", status_code=401)
        else:
            response = await call_next(request)
        if fresh:
            response.set_cookie(
                SESSION_COOKIE,
                sid,
                httponly=True,
                samesite="lax",
                secure=request.url.scheme == "https",
            )
        return response


def _headers(response: Response) -> None:
    response.headers.setdefault("Content-Security-Policy", CSP)
    response.headers["X-Content-Type-Options"] = "nosniff"
    response.headers["Referrer-Policy"] = "no-referrer"
    response.headers["X-Frame-Options"] = "DENY"
    response.headers.setdefault("Cache-Control", "no-store")


def redact(path: str) -> str:
    """A request path fit for a log line: a calendar token becomes ``…``."""
    if path.startswith("/calendar/"):
        return "/calendar/….ics"
    return path


def session_of(request: Request) -> Session:
    session: Session = request.state.session
    return session


def csrf_ok(request: Request, form: dict[str, str]) -> bool:
    """The form's ``csrf`` field matches the session's token."""
    given = form.get("csrf", "")
    return bool(given) and secrets.compare_digest(given, session_of(request).csrf)


def log_in(request: Request, token: str) -> bool:
    guard: Guard = request.state.guard
    if not guard.check_token(token):
        return False
    session_of(request).authed = True
    return True
