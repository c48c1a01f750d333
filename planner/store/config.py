"""Where stridewise keeps its files, and its settings file.

Everything the program stores lives under :func:`data_dir`, which the environment variable
``STRIDEWISE_HOME`` overrides (tests point it at a temporary folder).
"""

from __future__ import annotations

import os
import tomllib
from pathlib import Path
from typing import Any

from planner.errors import ConfigError

HOME_ENV = "STRIDEWISE_HOME"


def data_dir() -> Path:
    """The folder for the database, tokens, models and outbox; created on first use."""
    override = os.environ.get(HOME_ENV)
    if override:
        path = Path(override).expanduser()
    else:
        base = os.environ.get("XDG_DATA_HOME") or str(Path.home() / ".local" / "share")
        path = Path(base) / "stridewise"
    path.mkdir(parents=True, exist_ok=True)
    return path


def default_db_path() -> Path:
    return data_dir() / "stridewise.db"


def config_path() -> Path:
    return data_dir() / "config.toml"


def load_config(path: Path | None = None) -> dict[str, Any]:
    """Read the settings file; a missing file is an empty configuration."""
    path = path or config_path()
    if not path.exists():
        return {}
    try:
        with path.open("rb") as fh:
            return tomllib.load(fh)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{path}: {exc}") from None
