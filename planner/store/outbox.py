"""The outbox: one row per message, so each athlete gets each week's plan exactly once.

A row records (athlete, ISO week, content hash, Message-ID, recipient) and a state::

    queued ──▶ sending ──▶ sent
      ▲           │
      └───────────┤  (4xx, or the connection broke before the content left)
                  ▼
                failed     (5xx: bad recipient, message refused)

The rule that makes a crash safe: the row is set to ``sending`` and committed (durably:
``synchronous=FULL``) *before* the first byte of the message content goes to the server, and
set to ``sent`` after the server's 250. A process that dies anywhere in between leaves
``sending`` behind, which every later run reads as "possibly delivered" and does not send again
unless told to (``--resend``). A duplicate would need the row to say ``queued`` while the
server holds the message, and that cannot happen: the server only holds a message once it has
its content, and by then ``sending`` is on disk. The price is the opposite, rarer case: a crash
after ``sending`` but before the server took the message leaves a message that was never
delivered marked as possibly delivered; the run reports it, and ``--resend`` sends it. Details
and the full table of cases: docs/email.md.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from enum import StrEnum
from typing import Literal

from planner.store.database import Store


class State(StrEnum):
    """Where one message is on its way."""

    QUEUED = "queued"
    SENDING = "sending"
    SENT = "sent"
    FAILED = "failed"


@dataclass(frozen=True, slots=True)
class OutboxEntry:
    """One message to one athlete for one ISO week (times are UTC ISO-8601 strings)."""

    id: int
    athlete_id: str
    week: str
    content_hash: str
    message_id: str
    recipient: str
    state: State
    attempts: int
    last_error: str | None
    created_at: str
    updated_at: str
    sent_at: str | None
    server_reply: str | None  # e.g. "250 2.0.0 Ok: queued as 4F2A1" - ties it to server logs


Action = Literal["send", "skip_sent", "skip_uncertain", "skip_failed"]


def next_action(entry: OutboxEntry | None, *, recipient: str, resend: bool) -> Action:
    """What to do about a week given its latest outbox row.

    ``send`` means: send (a new row unless ``entry`` is a queued one, which is retried).
    A ``failed`` row is retried only when the address changed since, or with ``resend``.
    """
    if entry is None or entry.state is State.QUEUED or resend:
        return "send"
    if entry.state is State.SENT:
        return "skip_sent"
    if entry.state is State.SENDING:
        return "skip_uncertain"
    return "send" if entry.recipient != recipient else "skip_failed"


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")


class Outbox:
    """The ``outbox`` table of a :class:`~planner.store.database.Store`; each change commits."""

    def __init__(self, store: Store):
        self.store = store

    @contextmanager
    def _durable(self) -> Iterator[sqlite3.Connection]:
        """A transaction that reaches the disk before it returns, power loss included.

        The store runs WAL with ``synchronous=NORMAL``, where a commit survives a process crash
        but maybe not a power cut; the exactly-once promise needs both, so outbox writes ask
        for ``FULL`` (SQLite docs, "PRAGMA synchronous").
        """
        db = self.store.db
        previous = db.execute("PRAGMA synchronous").fetchone()[0]
        db.execute("PRAGMA synchronous=FULL")
        try:
            with self.store.transaction() as tx:
                yield tx
        finally:
            db.execute(f"PRAGMA synchronous={int(previous)}")

    def get(self, entry_id: int) -> OutboxEntry:
        row = self.store.db.execute("SELECT * FROM outbox WHERE id = ?", (entry_id,)).fetchone()
        return _entry(row)

    def latest(self, athlete_id: str, week: str) -> OutboxEntry | None:
        """The newest row for this athlete and week, if any."""
        row = self.store.db.execute(
            "SELECT * FROM outbox WHERE athlete_id = ? AND week = ? ORDER BY id DESC LIMIT 1",
            (athlete_id, week),
        ).fetchone()
        return None if row is None else _entry(row)

    def entries(self, athlete_id: str | None = None) -> list[OutboxEntry]:
        """Every row, oldest first (optionally one athlete's)."""
        sql, args = "SELECT * FROM outbox", []
        if athlete_id is not None:
            sql += " WHERE athlete_id = ?"
            args.append(athlete_id)
        return [_entry(r) for r in self.store.db.execute(sql + " ORDER BY id", args)]

    def stale_queued(self, athlete_id: str, before_week: str) -> list[OutboxEntry]:
        """Queued rows of weeks before ``before_week`` (ISO week strings sort by time)."""
        rows = self.store.db.execute(
            "SELECT * FROM outbox WHERE athlete_id = ? AND state = 'queued' AND week < ?"
            " ORDER BY id",
            (athlete_id, before_week),
        )
        return [_entry(r) for r in rows]

    def enqueue(
        self, athlete_id: str, week: str, content_hash: str, message_id: str, recipient: str
    ) -> OutboxEntry:
        """A new ``queued`` row."""
        now = _now()
        with self._durable() as db:
            cursor = db.execute(
                "INSERT INTO outbox (athlete_id, week, content_hash, message_id, recipient,"
                " state, attempts, created_at, updated_at) VALUES (?, ?, ?, ?, ?, 'queued', 0,"
                " ?, ?)",
                (athlete_id, week, content_hash, message_id, recipient, now, now),
            )
        return self.get(int(cursor.lastrowid or 0))

    def requeue(self, entry: OutboxEntry, content_hash: str, recipient: str) -> OutboxEntry:
        """Refresh a queued row with this run's content; it keeps its Message-ID."""
        self._update(entry, State.QUEUED, content_hash=content_hash, recipient=recipient)
        return self.get(entry.id)

    def mark_sending(self, entry: OutboxEntry) -> None:
        """Committed before the content is sent: from now on the message may be delivered."""
        self._update(entry, State.SENDING, attempt=True)

    def mark_sent(self, entry: OutboxEntry, reply: str) -> None:
        self._update(entry, State.SENT, last_error=None, sent_at=_now(), server_reply=reply)

    def mark_queued(self, entry: OutboxEntry, error: str) -> None:
        self._update(entry, State.QUEUED, last_error=error)

    def mark_failed(self, entry: OutboxEntry, error: str) -> None:
        self._update(entry, State.FAILED, last_error=error)

    def note_uncertain(self, entry: OutboxEntry, error: str) -> None:
        """Keep ``sending`` (the message may be out) but say what went wrong."""
        self._update(entry, State.SENDING, last_error=error)

    def _update(
        self, entry: OutboxEntry, state: State, *, attempt: bool = False, **columns: str | None
    ) -> None:
        # Column names come from the methods above, never from input.
        values = {"state": state.value, "updated_at": _now(), **columns}
        sets = ", ".join(f"{name} = ?" for name in values)
        if attempt:
            sets += ", attempts = attempts + 1"
        with self._durable() as db:
            db.execute(f"UPDATE outbox SET {sets} WHERE id = ?", (*values.values(), entry.id))


def _entry(row: sqlite3.Row) -> OutboxEntry:
    return OutboxEntry(
        id=int(row["id"]),
        athlete_id=row["athlete_id"],
        week=row["week"],
        content_hash=row["content_hash"],
        message_id=row["message_id"],
        recipient=row["recipient"],
        state=State(row["state"]),
        attempts=int(row["attempts"]),
        last_error=row["last_error"],
        created_at=row["created_at"],
        updated_at=row["updated_at"],
        sent_at=row["sent_at"],
        server_reply=row["server_reply"],
    )
