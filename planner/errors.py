"""The one root exception and its small family.

Every error a user can cause or fix ends as a :class:`StridewiseError`; the CLI prints
its message as one line and exits 1. Third-party exceptions are translated into these
at the connector boundary, nowhere else. Anything that is not a ``StridewiseError`` is
a bug and keeps its traceback.
"""

from __future__ import annotations

from datetime import datetime


class StridewiseError(Exception):
    """Root of every error stridewise raises on purpose."""


class ConfigError(StridewiseError):
    """Settings, paths or options that cannot work as given."""


class InvalidValueError(ConfigError):
    """One setting's value is not allowed; ``field`` names the setting, never a command flag.

    A face translates ``field`` into its own words: the CLI into its option (and exit code 2,
    like any other bad option value), the web server into its form field.
    """

    def __init__(self, field: str, value: object, hint: str):
        super().__init__(f"{field.replace('_', ' ')} {value!r}: {hint}")
        self.field = field
        self.value = value
        self.hint = hint


class NotFoundError(StridewiseError):
    """A named athlete, activity, plan or file does not exist."""


class AuthError(StridewiseError):
    """Credentials missing, expired or refused by a service."""


class RateLimitedError(StridewiseError):
    """A service asked us to stop; ``retry_after_s`` says for how long."""

    def __init__(self, message: str, *, retry_after_s: float, reset_at: datetime | None = None):
        super().__init__(message)
        self.retry_after_s = retry_after_s
        self.reset_at = reset_at


class ServiceError(StridewiseError):
    """A remote service failed in a way retrying did not fix."""


class ServiceUnavailableError(ServiceError):
    """A service (or the network to it) kept failing after every retry: it may come back.

    Connectors raise this for outages, so a sync holds its cursor before the activity and the
    next run tries it again; any other error about one activity is permanent.
    """


class FitImportError(StridewiseError):
    """One FIT file could not be read; the batch goes on without it."""

    def __init__(self, path: str, reason: str, *, offset: int | None = None):
        where = f" @ byte {offset}" if offset is not None else ""
        super().__init__(f"{path}: {reason}{where}")
        self.path = path
        self.reason = reason
        self.offset = offset


class TrackImportError(StridewiseError):
    """One GPX or TCX file could not be read; the batch goes on without it."""

    def __init__(self, path: str, reason: str):
        super().__init__(f"{path}: {reason}")
        self.path = path
        self.reason = reason


class ArchiveError(StridewiseError):
    """An archive is unsafe (zip-slip, zip bomb) or unreadable."""


class StreamValidationError(StridewiseError):
    """A per-second stream frame broke the canonical schema."""


class CatalogueError(StridewiseError):
    """A drill catalogue file is malformed; the message names the file and the field."""


class ModelMismatchError(StridewiseError):
    """A saved model artefact does not match this version of stridewise."""


class DeliveryError(StridewiseError):
    """An e-mail could not be delivered."""
