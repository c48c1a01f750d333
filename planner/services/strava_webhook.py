"""Strava webhooks: the subscription, the handshake, and events handled in the background.

Strava pushes an event for every new, changed or deleted activity and for an athlete who
withdraws access (Strava webhook docs). The callback must answer within two seconds, so the
endpoint only stores the event (:func:`record_event`, one insert) and hands its key to the
:class:`EventWorker` thread, which runs the athlete's incremental sync and re-analysis.

* **Exactly once.** An event's key is its identity (subscription, object, aspect, event
  time); Strava's retries repeat it and find it stored, so they change nothing. The worker
  claims an event by moving it from ``queued`` to ``running`` in one statement, so it runs once
  even when handed over twice; events left ``queued`` by a stopped server run at the next start.
* **Deauthorisation** (``object_type`` athlete, ``updates`` ``{"authorized": "false"}``) deletes
  that athlete's Strava tokens — after asking Strava whether it still accepts them, because
  Strava does not sign events and anyone can post to the callback address: a forged event
  costs one API request and changes nothing.
* **Subscription.** ``stridewise strava subscribe --callback URL`` creates the application's one
  subscription with a fresh random verify token kept in the store; the server answers the
  handshake only for that token, and ignores events of any other subscription.
"""

from __future__ import annotations

import dataclasses
import logging
import queue
import secrets
import threading
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from connectors.strava import PushSubscription, StravaConnector
from connectors.tokens import open_token_store
from planner.errors import AuthError, ConfigError, StridewiseError
from planner.records import DEFAULT_ATHLETE
from planner.store.database import Store
from planner.store.strava_events import (
    StoredEvent,
    add_event,
    claim_event,
    delete_state,
    finish_event,
    get_event,
    queued_keys,
)

log = logging.getLogger(__name__)

VERIFY_TOKEN_KEY = "strava:webhook:verify_token"
SUBSCRIPTION_KEY = "strava:webhook:subscription_id"
OBJECT_TYPES = ("activity", "athlete")
ASPECT_TYPES = ("create", "update", "delete")

ConnectorFactory = Callable[[str], StravaConnector]


def _owner_key(owner_id: int) -> str:
    return f"strava:owner:{owner_id}"


# -- the handshake and incoming events --------------------------------------------------------


def handshake(store: Store, mode: str | None, challenge: str | None, token: str | None) -> str:
    """The ``hub.challenge`` to echo when ``hub.verify_token`` is ours; AuthError otherwise."""
    expected = store.get_state(VERIFY_TOKEN_KEY)
    if (
        mode != "subscribe"
        or not challenge
        or not token
        or not expected
        or not secrets.compare_digest(str(token), str(expected))
    ):
        raise AuthError("not a Strava subscription check for this server")
    return challenge


@dataclass(frozen=True, slots=True)
class WebhookEvent:
    """One event as Strava posts it (Strava webhook docs, "Event Data")."""

    object_type: str
    object_id: int
    aspect_type: str
    owner_id: int
    subscription_id: int
    event_time: int
    updates: dict[str, Any]

    @property
    def key(self) -> str:
        return (
            f"{self.subscription_id}:{self.object_type}:{self.object_id}:{self.aspect_type}"
            f":{self.event_time}"
        )

    @classmethod
    def parse(cls, raw: Any) -> WebhookEvent:
        if not isinstance(raw, dict):
            raise ConfigError("a Strava event is a JSON object")
        try:
            event = cls(
                object_type=str(raw["object_type"]),
                object_id=int(raw["object_id"]),
                aspect_type=str(raw["aspect_type"]),
                owner_id=int(raw["owner_id"]),
                subscription_id=int(raw["subscription_id"]),
                event_time=int(raw["event_time"]),
                updates=dict(raw.get("updates") or {}),
            )
        except (KeyError, TypeError, ValueError):
            raise ConfigError("not a Strava event (missing or malformed fields)") from None
        if event.object_type not in OBJECT_TYPES or event.aspect_type not in ASPECT_TYPES:
            raise ConfigError("not a Strava event (unknown object or aspect type)")
        return event


def record_event(store: Store, raw: Any) -> tuple[str | None, bool]:
    """Store an incoming event; (its key, True when new). (None, False): not for us."""
    event = WebhookEvent.parse(raw)
    ours = store.get_state(SUBSCRIPTION_KEY)
    if ours is not None and int(ours) != event.subscription_id:
        return None, False
    new = add_event(store, event.key, dataclasses.asdict(event))
    return event.key, new


def queued_events(store: Store) -> list[str]:
    """Keys of events stored but not yet handled (oldest first)."""
    return queued_keys(store)


def event_record(store: Store, key: str) -> StoredEvent | None:
    return get_event(store, key)


# -- handling one event -----------------------------------------------------------------------


def athlete_for_owner(store: Store, owner_id: int) -> str | None:
    """The stridewise athlete whose Strava tokens belong to Strava athlete ``owner_id``."""
    known = store.get_state(_owner_key(owner_id))
    if known is not None and store.find_athlete(str(known)) is not None:
        return str(known)
    tokens = open_token_store()
    candidates = [a.id for a in store.list_athletes()]
    if DEFAULT_ATHLETE not in candidates:
        candidates.append(DEFAULT_ATHLETE)
    for athlete_id in candidates:
        try:
            found = tokens.load(athlete_id)
        except StridewiseError:
            continue
        if found is not None and found.strava_athlete_id == owner_id:
            store.set_state(_owner_key(owner_id), athlete_id)
            return athlete_id
    return None


def process_event(store: Store, key: str, connector: ConnectorFactory | None = None) -> str | None:
    """Handle one stored event if nobody has yet; return its outcome (None: not claimed)."""
    event = claim_event(store, key)
    if event is None:
        return None
    make = connector or (lambda athlete_id: StravaConnector(athlete_id))
    athlete_id = athlete_for_owner(store, event.owner_id)
    if athlete_id is None:
        outcome = f"no athlete here is connected to Strava athlete {event.owner_id}"
        finish_event(store, key, "ignored", None, outcome)
        return outcome
    try:
        if event.object_type == "athlete":
            state, outcome = _athlete_event(store, athlete_id, event.updates, make)
        elif event.aspect_type == "delete":
            state, outcome = "ignored", "deleted on Strava; the stored copy is kept"
        else:
            state, outcome = _activity_event(store, athlete_id, make)
    except StridewiseError as exc:
        from planner.services.dashboard import record_error

        record_error(store, athlete_id, "sync", f"Strava event: {exc}")
        state, outcome = "failed", str(exc)
    finish_event(store, key, state, athlete_id, outcome)
    return outcome


def _athlete_event(
    store: Store, athlete_id: str, updates: dict[str, Any], make: ConnectorFactory
) -> tuple[str, str]:
    if str(updates.get("authorized", "")).lower() != "false":
        return "ignored", "athlete update without a change of authorisation"
    connector = make(athlete_id)
    if connector.still_authorised():
        return "ignored", "Strava still accepts this athlete's authorisation: nothing deleted"
    connector.forget()
    return "done", f"{athlete_id} withdrew access on Strava: disconnected, tokens deleted"


def _activity_event(store: Store, athlete_id: str, make: ConnectorFactory) -> tuple[str, str]:
    from planner.services.dashboard import clear_error, record_error
    from planner.services.sync import sync_account

    summary = sync_account(store, "strava", athlete_id, session=make(athlete_id))
    if summary.error or summary.rate_limited:
        problem = summary.error or summary.message or "stopped"
        record_error(store, athlete_id, "sync", f"Strava sync: {problem}")
        return "failed", problem
    clear_error(store, athlete_id, "sync")
    outcome = (
        f"synced: {len(summary.imported)} imported, {len(summary.replaced)} replaced,"
        f" {summary.duplicates} already known"
    )
    if summary.imported or summary.replaced:
        outcome += "; " + reanalyse(store, athlete_id)
    return "done", outcome


def reanalyse(store: Store, athlete_id: str) -> str:
    """Analyse with the new runs and rebuild next week's plan when one is already stored (the
    calendar feed then shows it); the week under way is left as the athlete has it."""
    from planner.services.analysis import analyze_athlete
    from planner.services.dashboard import clear_error, record_error
    from planner.services.weekly import build_week, next_week
    from planner.store.planstore import get_plan

    try:
        analyze_athlete(store, athlete_id)
        week = next_week(store.get_athlete(athlete_id))
        if get_plan(store, athlete_id, week) is None:
            return "re-analysed"
        plan, _ = build_week(store, athlete_id, week)
    except StridewiseError as exc:
        record_error(store, athlete_id, "plan", str(exc))
        return f"re-analysis failed: {exc}"
    clear_error(store, athlete_id, "plan")
    return f"re-analysed; plan {week} at revision {plan.revision}"


class EventWorker:
    """One background thread that handles stored events in arrival order."""

    def __init__(self, db: Path | None, *, connector: ConnectorFactory | None = None):
        self.db = db
        self.connector = connector
        self.queue: queue.Queue[str | None] = queue.Queue()
        self.thread = threading.Thread(target=self._run, name="strava-events", daemon=True)

    def start(self) -> None:
        """Start, first re-queueing events a stopped server left unhandled."""
        with Store(self.db) as store:
            for key in queued_events(store):
                self.queue.put(key)
        self.thread.start()

    def submit(self, key: str) -> None:
        self.queue.put(key)

    def stop(self, timeout_s: float = 30.0) -> None:
        """Finish the event in hand, then stop (what is still queued stays stored)."""
        self.queue.put(None)
        self.thread.join(timeout_s)

    def _run(self) -> None:
        with Store(self.db) as store:
            while (key := self.queue.get()) is not None:
                try:
                    process_event(store, key, self.connector)
                except Exception:
                    # A bug in one event must not stop the others; the traceback goes to the
                    # server's log so it can be reported.
                    log.exception("handling Strava event %s failed", key)
                    finish_event(store, key, "failed", None, "internal error (see the server log)")


# -- managing the subscription (``stridewise strava subscribe``) ------------------------------


@dataclass(frozen=True, slots=True)
class SubscribeResult:
    status: str  # "created", "unchanged", "replaced", "deleted", "none", "listed"
    subscriptions: tuple[PushSubscription, ...]


def subscribe(
    store: Store, callback_url: str, connector: StravaConnector | None = None
) -> SubscribeResult:
    """Point the application's one push subscription at ``callback_url``.

    The server behind ``callback_url`` must be running (``stridewise serve`` on the same
    database): Strava checks the address before it answers.
    """
    if not callback_url.startswith(("https://", "http://")):
        raise ConfigError(f"--callback {callback_url!r}: use an http:// or https:// address")
    connector = connector or StravaConnector(DEFAULT_ATHLETE)
    existing = connector.list_subscriptions()
    ours = store.get_state(SUBSCRIPTION_KEY)
    for sub in existing:
        if sub.callback_url == callback_url and ours == sub.id:
            return SubscribeResult("unchanged", (sub,))
    for sub in existing:
        connector.delete_subscription(sub.id)
    # Stored before asking: Strava's check reaches the server while the request is open.
    store.set_state(VERIFY_TOKEN_KEY, secrets.token_urlsafe(24))
    subscription_id = connector.create_subscription(
        callback_url, str(store.get_state(VERIFY_TOKEN_KEY))
    )
    store.set_state(SUBSCRIPTION_KEY, subscription_id)
    status = "replaced" if existing else "created"
    return SubscribeResult(status, (PushSubscription(subscription_id, callback_url),))


def subscriptions(connector: StravaConnector | None = None) -> SubscribeResult:
    connector = connector or StravaConnector(DEFAULT_ATHLETE)
    return SubscribeResult("listed", tuple(connector.list_subscriptions()))


def unsubscribe(store: Store, connector: StravaConnector | None = None) -> SubscribeResult:
    """Delete the application's push subscription(s) and forget the verify token."""
    connector = connector or StravaConnector(DEFAULT_ATHLETE)
    existing = tuple(connector.list_subscriptions())
    for sub in existing:
        connector.delete_subscription(sub.id)
    delete_state(store, VERIFY_TOKEN_KEY, SUBSCRIPTION_KEY)
    return SubscribeResult("deleted" if existing else "none", existing)
