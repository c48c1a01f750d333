"""The routes of ``stridewise serve``: each reads the request, calls a service, renders a page.

No use-case logic lives here: the roster, the athlete page and the buttons are
planner/services/dashboard.py, the feed planner/services/calendar.py, the webhook
planner/services/strava_webhook.py — the same services the command line calls. Service
calls run in a worker thread with their own store connection (SQLite connections are not
shared between threads).
"""

from __future__ import annotations

import json
import logging
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar
from urllib.parse import parse_qs, quote

from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import (
    HTMLResponse,
    JSONResponse,
    PlainTextResponse,
    RedirectResponse,
    Response,
)
from starlette.routing import Route

from planner.delivery.render import render_page, static_file
from planner.errors import AuthError, NotFoundError, StridewiseError
from planner.services import accounts, calendar, dashboard, strava_webhook
from planner.services.activities import open_store
from planner.services.strava_webhook import EventWorker
from planner.web.security import Guard, csrf_ok, log_in, session_of

log = logging.getLogger("stridewise.web")

#: Largest request body accepted: forms and Strava events are a few hundred bytes.
MAX_BODY_BYTES = 64 * 1024

T = TypeVar("T")


@dataclass(frozen=True, slots=True)
class WebSettings:
    db: Path | None
    access_token: str | None = None
    loopback_only: bool = True


def create_app(settings: WebSettings, *, worker: EventWorker | None = None) -> Starlette:
    """The web application; the Strava event worker runs while the app does."""
    events = worker or EventWorker(settings.db)

    def with_store(fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
        with open_store(settings.db) as store:
            return fn(store, *args, **kwargs)

    async def call(fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
        return await run_in_threadpool(with_store, fn, *args, **kwargs)

    def page(request: Request, name: str, status: int = 200, **context: Any) -> HTMLResponse:
        html = render_page(name, csrf=session_of(request).csrf, **context)
        return HTMLResponse(html, status_code=status)

    async def form_of(request: Request) -> dict[str, str]:
        body = (await body_of(request)).decode("utf-8", errors="replace")
        return {k: v[-1] for k, v in parse_qs(body).items()}

    # -- pages -------------------------------------------------------------------------------

    async def roster(request: Request) -> Response:
        sort = request.query_params.get("sort") or "name"
        limiter = request.query_params.get("limiter") or None
        rows = await call(dashboard.roster, sort=sort, limiter=limiter)
        return page(
            request,
            "roster.html.j2",
            rows=rows,
            sort=sort,
            sorts=dashboard.SORTS,
            limiter=limiter,
            limiters=dashboard.limiter_choices(),
        )

    async def athlete(request: Request) -> Response:
        athlete_id = request.path_params["athlete_id"]
        week = dashboard.week_param(request.query_params.get("week"))
        view = await call(dashboard.athlete_view, athlete_id, week)
        session = session_of(request)
        notice, session.notice = session.notice, None
        return page(request, "athlete.html.j2", view=view, notice=notice)

    async def chart(request: Request) -> Response:
        athlete_id = request.path_params["athlete_id"]
        png = await call(dashboard.athlete_chart, athlete_id, request.path_params["name"])
        # The address carries the analysis' version (?v=), so a cached copy is never stale.
        return Response(
            png, media_type="image/png", headers={"Cache-Control": "private, max-age=86400"}
        )

    async def act(request: Request) -> Response:
        athlete_id = request.path_params["athlete_id"]
        name = request.path_params["action"]
        form = await form_of(request)
        if not csrf_ok(request, form):
            return PlainTextResponse("this form has expired: reload the page", status_code=403)
        result = await call(dashboard.action, name, athlete_id, form.get("week"))
        session_of(request).notice = (result.ok, result.message)
        target = f"/athletes/{quote(athlete_id)}?week={result.week}"
        return RedirectResponse(target, status_code=303)

    async def strava_connect(request: Request) -> Response:
        athlete_id = request.path_params["athlete_id"]
        form = await form_of(request)
        if not csrf_ok(request, form):
            return PlainTextResponse("this form has expired: reload the page", status_code=403)
        await call(dashboard.athlete_exists, athlete_id)
        redirect_uri = str(request.url_for("strava_authorized"))
        url, state = await run_in_threadpool(
            accounts.strava_authorization_url, athlete_id, redirect_uri
        )
        session_of(request).connects[state] = athlete_id
        return RedirectResponse(url, status_code=303)

    async def strava_authorized(request: Request) -> Response:
        q = request.query_params
        state = q.get("state") or ""
        athlete_id = session_of(request).connects.pop(state, None)
        if athlete_id is None:
            raise AuthError("this Strava answer does not belong to a connect started here")
        query = {k: v for k, v in q.items() if k in ("code", "state", "scope", "error")}
        await run_in_threadpool(accounts.strava_connect_finish, athlete_id, query, state)
        session_of(request).notice = (True, "Strava is connected: new runs arrive by webhook.")
        return RedirectResponse(f"/athletes/{quote(athlete_id)}", status_code=303)

    async def feed(request: Request) -> Response:
        token = request.path_params["token"]
        data = await call(calendar.calendar_feed, token)
        return Response(
            data,
            media_type="text/calendar; charset=utf-8",
            headers={"Cache-Control": "private, max-age=300"},
        )

    async def webhook_check(request: Request) -> Response:
        q = request.query_params
        challenge = await call(
            strava_webhook.handshake,
            q.get("hub.mode"),
            q.get("hub.challenge"),
            q.get("hub.verify_token"),
        )
        return JSONResponse({"hub.challenge": challenge})

    async def webhook_event(request: Request) -> Response:
        try:
            raw = json.loads(await body_of(request))
        except ValueError:
            return JSONResponse({"error": "not JSON"}, status_code=400)
        key, new = await call(strava_webhook.record_event, raw)
        if key is not None and new:
            events.submit(key)
        return JSONResponse({"received": key is not None, "new": new})

    async def login(request: Request) -> Response:
        if request.method == "GET":
            return page(request, "login.html.j2", wrong=False)
        form = await form_of(request)
        if not csrf_ok(request, form):
            return PlainTextResponse("this form has expired: reload the page", status_code=403)
        if not log_in(request, form.get("token", "")):
            return page(request, "login.html.j2", status=403, wrong=True)
        return RedirectResponse("/", status_code=303)

    async def static(request: Request) -> Response:
        data = static_file(request.path_params["name"])
        if data is None:
            return PlainTextResponse("not found", status_code=404)
        return Response(
            data, media_type="text/css", headers={"Cache-Control": "public, max-age=3600"}
        )

    # -- errors: one plain sentence, never a traceback or a secret ---------------------------

    async def known_error(request: Request, exc: Exception) -> Response:
        status = (
            404 if isinstance(exc, NotFoundError) else 403 if isinstance(exc, AuthError) else 400
        )
        if request.url.path.startswith(("/calendar/", "/strava/")):
            return PlainTextResponse(str(exc) if status != 404 else "not found", status_code=status)
        return page(request, "error.html.j2", status=status, message=str(exc))

    async def bug(request: Request, exc: Exception) -> Response:
        log.error("internal error on %s %s", request.method, request.url.path, exc_info=exc)
        return PlainTextResponse("internal error: the server log has the details", status_code=500)

    @asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        await run_in_threadpool(events.start)
        try:
            yield
        finally:
            await run_in_threadpool(events.stop)

    routes = [
        Route("/", roster, methods=["GET"]),
        Route("/athletes/{athlete_id}", athlete, methods=["GET"]),
        Route("/athletes/{athlete_id}/charts/{name}.png", chart, methods=["GET"]),
        Route("/athletes/{athlete_id}/strava-connect", strava_connect, methods=["POST"]),
        Route("/athletes/{athlete_id}/{action:str}", act, methods=["POST"]),
        Route("/calendar/{token}.ics", feed, methods=["GET"]),
        Route("/strava/webhook", webhook_check, methods=["GET"]),
        Route("/strava/webhook", webhook_event, methods=["POST"]),
        Route("/strava/authorized", strava_authorized, methods=["GET"], name="strava_authorized"),
        Route("/login", login, methods=["GET", "POST"]),
        Route("/static/{name}", static, methods=["GET"]),
    ]
    return Starlette(
        routes=routes,
        middleware=[
            Middleware(
                Guard,
                access_token=settings.access_token,
                loopback_only=settings.loopback_only,
            )
        ],
        exception_handlers={StridewiseError: known_error, Exception: bug},
        lifespan=lifespan,
    )


async def body_of(request: Request) -> bytes:
    """The request body, refused with 413 past :data:`MAX_BODY_BYTES` (declared or sent)."""
    declared = request.headers.get("content-length", "0")
    if not declared.isdigit() or int(declared) > MAX_BODY_BYTES:
        raise HTTPException(413, "request body too large")
    chunks, size = [], 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > MAX_BODY_BYTES:
            raise HTTPException(413, "request body too large")
        chunks.append(chunk)
    return b"".join(chunks)
