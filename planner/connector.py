"""The one shape every activity connector has: the built-in Strava and Garmin Connect, and plugins.

A connector is registered under the ``stridewise.connectors`` entry-point group (docs/plugins.md)
and found only there. It does the talking to one service and returns our records; it never
touches the store. Everything a sync has in common — where to start, what is already stored,
the cursor, the summary, progress, what an error means for the cursor — belongs to the one
sync service (:mod:`planner.services.sync`), so every connector behaves the same way.

Errors a connector raises tell the sync service what to do (all are :mod:`planner.errors`):

* :class:`~planner.errors.AuthError` — not connected, or the service refused the tokens: the
  sync stops (``open`` raising it stops it before any request);
* :class:`~planner.errors.RateLimitedError` — the service's rate limit: the sync stops and says
  when to come back;
* :class:`~planner.errors.ServiceUnavailableError` — an outage that the connector's own retries
  did not fix: the activity failed, the cursor stays before it, and several in a row stop the
  sync;
* any other :class:`~planner.errors.StridewiseError` from ``fetch`` — this one activity cannot
  be had (a 4xx, a file we cannot read): it is reported and the sync moves on.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Protocol, runtime_checkable

from planner.records import Activity, ImportedActivity, Source

__all__ = [
    "ConnectPrompts",
    "Connected",
    "Connector",
    "Disconnected",
    "Fetched",
    "FitDownload",
    "ListedPage",
    "SyncSession",
]


@dataclass(frozen=True, slots=True)
class ListedPage:
    """Activities a service listed, oldest first, as metadata-only records (no samples).

    Each activity carries the connector's ``source`` and the service's id as ``source_ref``.
    ``unreadable`` describes list entries that could not be turned into a record; ``last``
    is False while more pages follow.
    """

    activities: tuple[Activity, ...]
    unreadable: tuple[str, ...] = ()
    last: bool = True


@dataclass(frozen=True, slots=True)
class FitDownload:
    """An activity's original FIT file; the sync decodes it with the FIT importer."""

    data: bytes
    display: str  # how errors name it, e.g. "garmin activity 9003"


#: What fetching one listed run gives: its FIT file, or our records with their stream columns.
Fetched = FitDownload | tuple[ImportedActivity, ...]


class SyncSession(Protocol):
    """One athlete's open connection to a service, good for one sync."""

    def list_since(self, start: datetime) -> Iterator[ListedPage]:
        """Activities that started at ``start`` (UTC) or later, oldest first, page by page.

        Listing a little earlier than ``start`` is fine (the sync drops what started before it
        and recognises what it already stored); listing later loses activities.
        """
        ...

    def fetch(self, activity: Activity) -> Fetched:
        """One listed run, whole: its FIT file or our records with their streams."""
        ...

    def report(self) -> Mapping[str, object]:
        """Facts about this session for the sync summary (JSON values), e.g. requests sent."""
        ...

    def notes(self) -> tuple[str, ...]:
        """Sentences the user should read after the sync (e.g. a fallback that was used)."""
        ...


@dataclass(frozen=True, slots=True)
class ConnectPrompts:
    """How a connector talks to the person connecting (the CLI or a web page supplies these).

    ``ask(question, secret)`` returns the answer (``secret`` hides what is typed);
    ``interactive`` says whether asking is possible at all (a terminal), and ``no_browser``
    that no web browser may be opened on this machine.
    """

    show: Callable[[str], None]
    ask: Callable[[str, bool], str]
    interactive: bool = True
    no_browser: bool = False


@dataclass(frozen=True, slots=True)
class Connected:
    """What ``connect`` did, in the user's words (``done`` False: a step is still to come)."""

    message: str
    done: bool = True
    notes: tuple[str, ...] = ()  # by-the-way facts, said on stderr


@dataclass(frozen=True, slots=True)
class Disconnected:
    """What ``disconnect`` did: whether anything was connected, and what to tell the user."""

    was_connected: bool
    message: str
    warning: str | None = None  # the service did not confirm; said on stderr


@runtime_checkable
class Connector(Protocol):
    """A source of activities. Instances are made by the entry point with no arguments.

    Attributes
    ----------
    name:
        The word in ``stridewise sync NAME`` (the entry point's name is the same).
    label:
        The service's name as users know it ("Strava").
    source:
        The tag stored with every activity from this connector; it ranks copies of one run
        (:data:`planner.records.SOURCE_RANK`).
    trainable:
        False when the service's terms forbid training models on its data (Strava's API
        agreement): the sync marks every activity it stores so that it is analysed for its
        owner but never trained on.
    per_athlete:
        True when each athlete connects their own account; False when one account serves the
        whole installation (its data directory), whatever ``athlete_id`` says.
    ref_key:
        The JSON key naming the service's activity id in a sync summary's ``failed`` list.
    """

    name: str
    label: str
    source: Source
    trainable: bool
    per_athlete: bool
    ref_key: str

    def connect(self, athlete_id: str, prompts: ConnectPrompts) -> Connected:
        """Let stridewise read this athlete's activities; store only tokens, never passwords."""
        ...

    def disconnect(self, athlete_id: str) -> Disconnected:
        """Revoke access where the service allows it, and delete the stored tokens."""
        ...

    def open(self, athlete_id: str) -> SyncSession:
        """A session from the stored tokens; AuthError (saying how to connect) without them."""
        ...
