"""Write a validated stream frame for users' own tools (CSV or Parquet)."""

from __future__ import annotations

from pathlib import Path
from typing import TextIO

import pandas as pd

from planner.errors import ConfigError


def write_stream(frame: pd.DataFrame, fmt: str, target: Path | TextIO) -> None:
    """Write ``frame`` with its ``time`` index as the first column (ISO 8601, UTC)."""
    table = frame.reset_index()
    try:
        if fmt == "csv":
            table.to_csv(target, index=False, date_format="%Y-%m-%dT%H:%M:%SZ")
        elif fmt == "parquet":
            if not isinstance(target, Path):
                raise ConfigError("Parquet is binary: give an output file")
            table.to_parquet(target, index=False)
        else:
            raise ConfigError(f"unknown export format {fmt!r} (csv or parquet)")
    except BrokenPipeError:
        raise  # the reader went away (e.g. `| head`): not an error of ours
    except OSError as exc:
        raise ConfigError(f"cannot write {target}: {exc.strerror or exc}") from None
