"""Calendar subscriptions: one unguessable, revocable feed address per athlete.

``stridewise athlete calendar-url A`` prints the address (creating the token on first use);
``--rotate`` replaces the token, which revokes the old address at once. The feed always holds
the current and the next ISO week (in the athlete's time zone): the stored plan of each week,
or a freshly built one when the week has none yet. Event UIDs are stable per athlete, week and
session slot and SEQUENCE is the plan's revision − 1 (planner/delivery/render.py), so a
calendar that polls the feed updates events in place when a plan changes.

The token is the only credential the address carries: 32 random bytes (256 bits, far beyond
guessing), stored in the database and looked up by its SHA-256 so a request never compares
the secret itself.
"""

from __future__ import annotations

import hashlib
import secrets
from dataclasses import dataclass
from datetime import datetime

from planner.errors import ConfigError, NotFoundError
from planner.plan import Plan
from planner.store.calendar_feeds import (
    athlete_of_feed,
    delete_feed_token,
    feed_token,
    save_feed_token,
)
from planner.store.config import load_config
from planner.store.database import Store
from planner.store.planstore import get_plan

#: Where ``stridewise serve`` answers when nothing else is configured (its default --port).
DEFAULT_BASE_URL = "http://127.0.0.1:8765"
#: Bytes of randomness in a token: 256 bits, the size ``secrets`` recommends for tokens.
TOKEN_BYTES = 32
FEED_PREFIX = "/calendar/"
FEED_SUFFIX = ".ics"


def _sha(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def base_url(override: str | None = None) -> str:
    """The public address of ``stridewise serve``: the option, else ``[serve] base_url``."""
    if override:
        url = override
    else:
        table = load_config().get("serve", {})
        url = str(table.get("base_url") or DEFAULT_BASE_URL) if isinstance(table, dict) else ""
    if not url.startswith(("http://", "https://")):
        raise ConfigError(f"base URL {url!r}: use an http:// or https:// address")
    return url.rstrip("/")


@dataclass(frozen=True, slots=True)
class CalendarUrl:
    """An athlete's feed address and whether this call made a new token."""

    athlete_id: str
    url: str
    created: bool


def calendar_url(
    store: Store, athlete_id: str, *, rotate: bool = False, base: str | None = None
) -> CalendarUrl:
    """The athlete's feed address; ``rotate`` issues a new token and revokes the old one."""
    store.get_athlete(athlete_id)
    token = feed_token(store, athlete_id)
    created = token is None or rotate
    if token is None or rotate:
        token = secrets.token_urlsafe(TOKEN_BYTES)
        save_feed_token(store, athlete_id, token, _sha(token))
    return CalendarUrl(athlete_id, f"{base_url(base)}{FEED_PREFIX}{token}{FEED_SUFFIX}", created)


def revoke_calendar(store: Store, athlete_id: str) -> bool:
    """Withdraw the athlete's feed address; True when there was one."""
    store.get_athlete(athlete_id)
    return delete_feed_token(store, athlete_id)


def has_calendar(store: Store, athlete_id: str) -> bool:
    return feed_token(store, athlete_id) is not None


def athlete_for_token(store: Store, token: str) -> str:
    """The athlete a feed token belongs to; NotFoundError for an unknown or revoked one."""
    athlete_id = athlete_of_feed(store, _sha(token))
    if athlete_id is None:
        raise NotFoundError("no such calendar")  # says nothing about why
    return athlete_id


def feed_weeks(store: Store, athlete_id: str, now: datetime | None = None) -> list[Plan]:
    """The current and the next week's plans (stored, or built now when missing)."""
    from planner.services.weekly import build_week, current_week

    athlete = store.get_athlete(athlete_id)
    this_week = current_week(athlete, now)
    plans = []
    for week in (this_week, this_week.shift(1)):
        plan = get_plan(store, athlete_id, week)
        if plan is None:
            plan, _ = build_week(store, athlete_id, week)
        plans.append(plan)
    return plans


def calendar_feed(store: Store, token: str, now: datetime | None = None) -> bytes:
    """The iCalendar document behind a feed address."""
    from planner.delivery.render import render_feed

    athlete_id = athlete_for_token(store, token)
    athlete = store.get_athlete(athlete_id)
    return render_feed(feed_weeks(store, athlete_id, now), athlete)
