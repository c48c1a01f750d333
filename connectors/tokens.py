"""Where Strava OAuth tokens live: the system keyring when a usable one exists, else a file.

The file is JSON, created with mode 0600 under :func:`planner.store.config.data_dir` (or where
``STRIDEWISE_STRAVA_TOKENS`` says; naming a file there always selects the file store). Every
write goes to a temporary file in the same folder and is moved into place with
:func:`os.replace`, so a crash leaves either the old tokens or the new ones, never half of
each — Strava invalidates the old refresh token as soon as it hands out a new one, so losing
the new one would mean connecting again.

Tokens are secrets: :class:`Tokens` hides them from ``repr`` and nothing here prints or logs
them.
"""

from __future__ import annotations

import contextlib
import json
import os
import stat
import tempfile
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Protocol

from planner.errors import ConfigError
from planner.store.config import data_dir

TOKENS_ENV = "STRIDEWISE_STRAVA_TOKENS"
TOKEN_FILE_NAME = "strava_tokens.json"
KEYRING_SERVICE = "stridewise-strava"
FILE_FORMAT = 1


@dataclass(frozen=True, slots=True)
class Tokens:
    """One Strava account's OAuth tokens; ``expires_at`` is the access token's expiry (epoch s)."""

    access_token: str = field(repr=False)
    refresh_token: str = field(repr=False)
    expires_at: int
    strava_athlete_id: int | None = None
    strava_athlete_name: str | None = None
    scope: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, raw: dict[str, Any]) -> Tokens:
        try:
            return cls(
                access_token=str(raw["access_token"]),
                refresh_token=str(raw["refresh_token"]),
                expires_at=int(raw["expires_at"]),
                strava_athlete_id=raw.get("strava_athlete_id"),
                strava_athlete_name=raw.get("strava_athlete_name"),
                scope=raw.get("scope"),
            )
        except (KeyError, TypeError, ValueError):
            raise ConfigError(
                "stored Strava tokens are unreadable: run 'stridewise strava connect' again"
            ) from None


class TokenStore(Protocol):
    """Load, save and delete one set of tokens per stridewise athlete id."""

    @property
    def description(self) -> str: ...

    def load(self, key: str) -> Tokens | None: ...

    def save(self, key: str, tokens: Tokens) -> None: ...

    def delete(self, key: str) -> bool: ...


class FileTokenStore:
    """Tokens in a JSON file readable only by its owner (mode 0600), replaced atomically."""

    def __init__(self, path: Path):
        self.path = path

    @property
    def description(self) -> str:
        return f"file {self.path} (mode 0600)"

    def load(self, key: str) -> Tokens | None:
        raw = self._read().get(key)
        return None if raw is None else Tokens.from_dict(raw)

    def save(self, key: str, tokens: Tokens) -> None:
        with self._locked():
            accounts = self._read()
            accounts[key] = tokens.to_dict()
            self._write(accounts)

    def delete(self, key: str) -> bool:
        with self._locked():
            accounts = self._read()
            if key not in accounts:
                return False
            del accounts[key]
            if accounts:
                self._write(accounts)
            else:
                self.path.unlink(missing_ok=True)
            return True

    def _read(self) -> dict[str, Any]:
        try:
            text = self.path.read_text(encoding="utf-8")
        except FileNotFoundError:
            return {}
        except OSError as exc:
            raise ConfigError(f"cannot read {self.path}: {exc.strerror}") from None
        self._tighten()
        try:
            data = json.loads(text)
            accounts = data["accounts"]
            if not isinstance(accounts, dict):
                raise TypeError
        except (ValueError, KeyError, TypeError):
            raise ConfigError(
                f"{self.path} is not a stridewise token file: delete it and run"
                " 'stridewise strava connect' again"
            ) from None
        return accounts

    def _tighten(self) -> None:
        # A copy or restore may have widened the mode; tokens must stay owner-only.
        mode = stat.S_IMODE(self.path.stat().st_mode)
        if mode & 0o077:
            self.path.chmod(0o600)

    def _write(self, accounts: dict[str, Any]) -> None:
        payload = json.dumps(
            {"format": FILE_FORMAT, "accounts": accounts}, indent=2, sort_keys=True
        )
        folder = self.path.parent
        try:
            folder.mkdir(parents=True, exist_ok=True)
            # mkstemp creates the file with mode 0600 before anything is written into it.
            fd, tmp = tempfile.mkstemp(prefix=f".{self.path.name}.", suffix=".tmp", dir=folder)
        except OSError as exc:
            raise ConfigError(f"cannot write tokens to {folder}: {exc.strerror}") from None
        try:
            with os.fdopen(fd, "w", encoding="utf-8") as fh:
                fh.write(payload)
                fh.flush()
                os.fsync(fh.fileno())
            Path(tmp).replace(self.path)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise
        _fsync_dir(folder)

    @contextlib.contextmanager
    def _locked(self) -> Iterator[None]:
        """Serialise read-modify-write between processes (POSIX advisory lock)."""
        try:
            import fcntl
        except ImportError:  # pragma: no cover - Windows has no fcntl; the write is still atomic
            yield
            return
        self.path.parent.mkdir(parents=True, exist_ok=True)
        # Lock the folder rather than a lock file, so nothing is left behind on disconnect.
        fd = os.open(self.path.parent, os.O_RDONLY)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            yield
        finally:
            os.close(fd)


def _fsync_dir(folder: Path) -> None:
    """Make the rename durable; not every platform can open a directory."""
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


class KeyringTokenStore:
    """Tokens in the system keyring, one JSON entry per athlete; the file is the fallback.

    A keyring that exists but fails at run time (locked, no session bus) must not lose a
    freshly rotated refresh token, so every failure falls back to the 0600 file.
    """

    def __init__(self, backend: Any, fallback: FileTokenStore):
        self.backend = backend
        self.fallback = fallback

    @property
    def description(self) -> str:
        return f"system keyring ({type(self.backend).__module__})"

    def load(self, key: str) -> Tokens | None:
        from keyring.errors import KeyringError

        try:
            raw = self.backend.get_password(KEYRING_SERVICE, key)
        except KeyringError:
            raw = None
        if raw is None:
            return self.fallback.load(key)
        try:
            return Tokens.from_dict(json.loads(raw))
        except ValueError:
            raise ConfigError(
                "stored Strava tokens are unreadable: run 'stridewise strava connect' again"
            ) from None

    def save(self, key: str, tokens: Tokens) -> None:
        from keyring.errors import KeyringError

        try:
            self.backend.set_password(KEYRING_SERVICE, key, json.dumps(tokens.to_dict()))
        except KeyringError:
            self.fallback.save(key, tokens)
            return
        self.fallback.delete(key)  # an older file copy would hold a dead refresh token

    def delete(self, key: str) -> bool:
        from keyring.errors import KeyringError

        found = False
        try:
            self.backend.delete_password(KEYRING_SERVICE, key)
            found = True
        except KeyringError:  # includes PasswordDeleteError: nothing stored there
            pass
        return self.fallback.delete(key) or found


def default_token_file() -> Path:
    override = os.environ.get(TOKENS_ENV)
    return Path(override).expanduser() if override else data_dir() / TOKEN_FILE_NAME


def usable_keyring() -> Any | None:
    """The system keyring backend when a recommended one exists (``PYTHON_KEYRING_BACKEND``
    is honoured on every call, so tests can select the fail backend), else None."""
    try:
        import keyring
        import keyring.core
    except ImportError:  # pragma: no cover - keyring is a declared dependency
        return None
    try:
        backend = keyring.core.load_env() or keyring.get_keyring()
    except Exception:
        return None
    return backend if keyring.core.recommended(backend) else None


def open_token_store() -> TokenStore:
    """The token store to use: a named file, else the keyring, else the default file."""
    file_store = FileTokenStore(default_token_file())
    if os.environ.get(TOKENS_ENV):
        return file_store
    backend = usable_keyring()
    if backend is None:
        return file_store
    return KeyringTokenStore(backend, file_store)
