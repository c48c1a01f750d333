"""Deliver one outbox row's message exactly once (the protocol is in :mod:`planner.store.outbox`).

The row is set to ``sending`` and committed before the first byte of content leaves, and to
``sent`` after the server's 250; see docs/email.md for every case.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from email.message import EmailMessage

from planner.delivery.mail import (
    PermanentDeliveryError,
    TransientDeliveryError,
    UncertainDeliveryError,
    deliver,
)
from planner.delivery.mailconfig import SmtpSettings
from planner.errors import AuthError, ConfigError
from planner.store.outbox import Outbox, OutboxEntry

#: Seconds to wait before the 2nd and 3rd attempt within one run. Our own choice: long enough
#: to ride out a relay restart or a greylisting 451, short enough that an hourly run stays
#: short; anything longer is left queued for the next run.
DEFAULT_BACKOFF_S: tuple[float, ...] = (5.0, 30.0)


#: ``(event, entry)`` with event ``sending`` (content about to leave), ``accepted`` (the server
#: said 250; the row is not yet ``sent``) or ``retry`` (waiting before the next attempt).
Progress = Callable[[str, OutboxEntry], None]


def send_exactly_once(
    outbox: Outbox,
    entry: OutboxEntry,
    message: EmailMessage,
    settings: SmtpSettings,
    *,
    backoff_s: Sequence[float] = DEFAULT_BACKOFF_S,
    sleep: Callable[[float], None] = time.sleep,
    progress: Progress | None = None,
) -> OutboxEntry:
    """Deliver a queued row's message by the protocol above; return the row as it ends.

    The row ends ``sent``; ``queued`` (transient failures outlasted ``backoff_s``: the next run
    retries); ``failed`` (refused for good); or ``sending`` (the connection broke after the
    content left: possibly delivered, never resent automatically). Login, TLS and sender
    problems put the row back to ``queued`` and raise :class:`AuthError` / :class:`ConfigError`,
    since no other message can get through either.
    """
    delays = [*backoff_s, None]
    for delay in delays:

        def started() -> None:
            outbox.mark_sending(entry)
            if progress is not None:
                progress("sending", entry)

        try:
            reply = deliver(message, settings, before_content=started)
        except TransientDeliveryError as exc:
            outbox.mark_queued(entry, str(exc))
            if delay is None:
                break
            if progress is not None:
                progress("retry", outbox.get(entry.id))
            sleep(delay)
            continue
        except PermanentDeliveryError as exc:
            outbox.mark_failed(entry, str(exc))
        except UncertainDeliveryError as exc:
            outbox.note_uncertain(entry, str(exc))
        except (AuthError, ConfigError) as exc:
            outbox.mark_queued(entry, str(exc))
            raise
        else:
            if progress is not None:
                progress("accepted", entry)
            outbox.mark_sent(entry, reply)
        break
    return outbox.get(entry.id)
