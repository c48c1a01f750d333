"""The one per-second stream schema every importer ends with.

A stream frame has a UTC ``DatetimeIndex`` named ``time`` (strictly increasing, one row per
recorded sample — usually one second, irregular under "smart recording") and float64 columns
whose names carry their units. Every importer (FIT, Strava, Garmin) validates once at the end
(:func:`validate_stream`, or :func:`validate_columns` for the same stream as numpy columns);
feature code may then assume valid input.

The FIT decoder builds :class:`StreamColumns` and never a DataFrame, so an import need not load
pandas (half a second of start-up); :meth:`StreamColumns.to_frame` gives the frame.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass
from enum import StrEnum
from typing import TYPE_CHECKING

import numpy as np

from planner.errors import StreamValidationError

if TYPE_CHECKING:
    import pandas as pd


class Col(StrEnum):
    """Canonical stream columns; the suffix is the unit."""

    SPEED_MPS = "speed_mps"
    CADENCE_SPM = "cadence_spm"  # steps/min = 2 × (FIT cadence + fractional_cadence)
    GCT_MS = "gct_ms"  # ground contact time (FIT stance_time)
    GCT_BALANCE_LEFT_PCT = "gct_balance_left_pct"  # FIT stance_time_balance, % left
    VERTICAL_OSCILLATION_MM = "vertical_oscillation_mm"
    VERTICAL_RATIO_PCT = "vertical_ratio_pct"
    STEP_LENGTH_MM = "step_length_mm"
    STANCE_TIME_PCT = "stance_time_pct"
    HEART_RATE_BPM = "heart_rate_bpm"
    POWER_W = "power_w"
    ALTITUDE_M = "altitude_m"
    GRADE_PCT = "grade_pct"
    DISTANCE_M = "distance_m"
    LAT_DEG = "lat_deg"
    LON_DEG = "lon_deg"
    TEMPERATURE_C = "temperature_c"
    # Stryd developer fields, units normalised (Stryd VO is in cm, ground time in ms).
    STRYD_POWER_W = "stryd_power_w"
    FORM_POWER_W = "form_power_w"
    AIR_POWER_W = "air_power_w"
    LEG_SPRING_STIFFNESS_KN_M = "leg_spring_stiffness_kn_m"
    STRYD_GCT_MS = "stryd_gct_ms"
    STRYD_VERTICAL_OSCILLATION_MM = "stryd_vertical_oscillation_mm"
    STRYD_CADENCE_SPM = "stryd_cadence_spm"


#: Running-dynamics columns: present only with a chest strap, pod, or a watch that computes them.
RUNNING_DYNAMICS: tuple[Col, ...] = (
    Col.GCT_MS,
    Col.GCT_BALANCE_LEFT_PCT,
    Col.VERTICAL_OSCILLATION_MM,
    Col.VERTICAL_RATIO_PCT,
    Col.STEP_LENGTH_MM,
    Col.STANCE_TIME_PCT,
)

STRYD: tuple[Col, ...] = (
    Col.STRYD_POWER_W,
    Col.FORM_POWER_W,
    Col.AIR_POWER_W,
    Col.LEG_SPRING_STIFFNESS_KN_M,
    Col.STRYD_GCT_MS,
    Col.STRYD_VERTICAL_OSCILLATION_MM,
    Col.STRYD_CADENCE_SPM,
)

#: Other developer (Connect IQ) fields keep their own name, slugged, behind this prefix.
DEV_PREFIX = "dev_"
_DEV_NAME = re.compile(r"^dev_[a-z0-9_]+$")

#: Physically plausible ranges. Values outside are sensor glitches; importers set them to NaN
#: and count them as a warning, and the validator rejects any that slip through.
#: Bounds are deliberately wide: they catch unit errors (mm vs cm, per-foot vs steps), not
#: unusual runners.
PLAUSIBLE: dict[Col, tuple[float, float]] = {
    Col.SPEED_MPS: (0.0, 15.0),  # world-record sprint peak is ~12.4 m/s
    Col.CADENCE_SPM: (0.0, 300.0),
    Col.GCT_MS: (50.0, 800.0),
    Col.GCT_BALANCE_LEFT_PCT: (20.0, 80.0),
    Col.VERTICAL_OSCILLATION_MM: (0.0, 300.0),
    Col.VERTICAL_RATIO_PCT: (0.0, 40.0),
    Col.STEP_LENGTH_MM: (0.0, 4000.0),
    Col.STANCE_TIME_PCT: (0.0, 100.0),
    Col.HEART_RATE_BPM: (20.0, 250.0),
    Col.POWER_W: (0.0, 3000.0),
    Col.ALTITUDE_M: (-500.0, 9000.0),
    Col.GRADE_PCT: (-100.0, 100.0),
    Col.DISTANCE_M: (0.0, 1.0e7),
    Col.LAT_DEG: (-90.0, 90.0),
    Col.LON_DEG: (-180.0, 180.0),
    Col.TEMPERATURE_C: (-60.0, 70.0),
    Col.STRYD_POWER_W: (0.0, 3000.0),
    Col.FORM_POWER_W: (0.0, 1000.0),
    Col.AIR_POWER_W: (-500.0, 500.0),
    Col.LEG_SPRING_STIFFNESS_KN_M: (0.0, 100.0),
    Col.STRYD_GCT_MS: (50.0, 800.0),
    Col.STRYD_VERTICAL_OSCILLATION_MM: (0.0, 300.0),
    Col.STRYD_CADENCE_SPM: (0.0, 300.0),
}

INDEX_NAME = "time"
_CANONICAL = frozenset(c.value for c in Col)
_BOUNDS = {c.value: bounds for c, bounds in PLAUSIBLE.items()}
_ORDER = {c.value: i for i, c in enumerate(Col)}


def dev_column(name: str) -> str:
    """Canonical column name for a developer field that has no canonical mapping."""
    slug = re.sub(r"[^a-z0-9]+", "_", name.lower()).strip("_")
    return DEV_PREFIX + (slug or "field")


@dataclass(frozen=True, slots=True, eq=False)  # arrays have no truth value: compare by identity
class StreamColumns:
    """A stream as numpy columns: ``time_us`` (int64 µs since the Unix epoch, UTC) and float64
    ``values`` by canonical name. Same content as a stream frame, without pandas."""

    time_us: np.ndarray
    values: dict[str, np.ndarray]

    def __len__(self) -> int:
        return len(self.time_us)

    def between(self, first_us: int, last_us: int) -> StreamColumns:
        """The samples from ``first_us`` to ``last_us``, both inclusive (time is sorted)."""
        lo = int(np.searchsorted(self.time_us, first_us, side="left"))
        hi = int(np.searchsorted(self.time_us, last_us, side="right"))
        return StreamColumns(self.time_us[lo:hi], {k: v[lo:hi] for k, v in self.values.items()})

    def to_frame(self) -> pd.DataFrame:
        import pandas as pd  # only callers that want a frame pay for pandas

        index = pd.DatetimeIndex(self.time_us.astype("datetime64[us]"), name=INDEX_NAME)
        return pd.DataFrame(self.values, index=index.tz_localize("UTC"))

    @classmethod
    def from_frame(cls, frame: pd.DataFrame) -> StreamColumns:
        time_us = frame.index.to_numpy(dtype="datetime64[us]").view(np.int64)
        values = {str(c): frame[c].to_numpy(dtype=np.float64) for c in frame.columns}
        return cls(time_us, values)


def empty_columns() -> StreamColumns:
    return StreamColumns(np.empty(0, dtype=np.int64), {})


def empty_stream() -> pd.DataFrame:
    """A valid stream frame with no rows and no columns (metadata-only activities)."""
    import pandas as pd

    index = pd.DatetimeIndex([], tz="UTC", name=INDEX_NAME).as_unit("ns")
    return pd.DataFrame(index=index)


def clip_values(values: dict[str, np.ndarray]) -> dict[str, int]:
    """Set values outside :data:`PLAUSIBLE` to NaN, in place; return counts per column."""
    dropped: dict[str, int] = {}
    for col, (low, high) in PLAUSIBLE.items():
        column = values.get(col.value)
        if column is None:
            continue
        bad = ~np.isnan(column) & ((column < low) | (column > high))
        n_bad = int(bad.sum())
        if n_bad:
            column = column.copy()
            column[bad] = np.nan
            values[col.value] = column
            dropped[col.value] = n_bad
    return dropped


def clip_implausible(frame: pd.DataFrame) -> tuple[pd.DataFrame, dict[str, int]]:
    """Set values outside :data:`PLAUSIBLE` to NaN; return the frame and counts per column."""
    values = {c.value: frame[c.value].to_numpy() for c in PLAUSIBLE if c.value in frame.columns}
    dropped = clip_values(values)
    for name in dropped:
        frame[name] = values[name]
    return frame, dropped


def validate_columns(stream: StreamColumns) -> StreamColumns:
    """:func:`validate_stream` for numpy columns; returns them in canonical order."""
    time_us = stream.time_us
    if time_us.dtype != np.int64:
        raise StreamValidationError("stream times must be int64 microseconds")
    if len(time_us) > 1 and not (time_us[1:] > time_us[:-1]).all():
        raise StreamValidationError("stream timestamps must be strictly increasing")
    for name, values in stream.values.items():
        if len(values) != len(time_us):
            raise StreamValidationError(
                f"column {name!r} has {len(values)} rows, not {len(time_us)}"
            )
    for name, values in stream.values.items():
        _check_name(name)
        if values.dtype != np.float64:
            raise StreamValidationError(f"column {name!r} must be float64, not {values.dtype}")
    _check_ranges(stream.values.items())
    ordered = _canonical_order(stream.values)
    if ordered == list(stream.values):
        return stream
    return StreamColumns(time_us, {name: stream.values[name] for name in ordered})


def validate_stream(frame: pd.DataFrame) -> pd.DataFrame:
    """Check a stream frame against the schema and return it with columns in canonical order.

    Raises
    ------
    StreamValidationError
        On a wrong index (not UTC, not strictly increasing), an unknown column name, a
        non-float64 column, or a value outside its plausible range.
    """
    import pandas as pd

    index = frame.index
    if not isinstance(index, pd.DatetimeIndex) or index.tz is None:
        raise StreamValidationError("stream index must be a timezone-aware DatetimeIndex")
    if str(index.tz) != "UTC":
        raise StreamValidationError(f"stream index must be in UTC, not {index.tz}")
    if index.name != INDEX_NAME:
        raise StreamValidationError(f"stream index must be named {INDEX_NAME!r}")
    if len(index) > 1 and not (index[1:] > index[:-1]).all():
        raise StreamValidationError("stream timestamps must be strictly increasing")
    for name in frame.columns:
        _check_name(str(name))
        if frame[name].dtype != np.float64:  # the frame's dtype: "Float64" is not float64
            raise StreamValidationError(f"column {name!r} must be float64, not {frame[name].dtype}")
    _check_ranges((str(name), frame[name].to_numpy()) for name in frame.columns)
    ordered = _canonical_order(frame.columns)
    if list(frame.columns) != ordered:
        frame = frame[ordered]
    return frame


def _check_name(name: str) -> None:
    if name not in _CANONICAL and not _DEV_NAME.match(name):
        raise StreamValidationError(f"unknown stream column {name!r}")


def _check_ranges(columns: Iterable[tuple[str, np.ndarray]]) -> None:
    for name, values in columns:
        bounds = _BOUNDS.get(name)
        if bounds is not None:
            finite = values[~np.isnan(values)]
            if finite.size and (finite.min() < bounds[0] or finite.max() > bounds[1]):
                raise StreamValidationError(
                    f"column {name!r} has values outside [{bounds[0]}, {bounds[1]}]"
                )


def _canonical_order(names: Iterable[object]) -> list[str]:
    return sorted((str(n) for n in names), key=lambda c: (_ORDER.get(c, len(_ORDER)), c))


def present_dynamics(stream: pd.DataFrame | StreamColumns) -> list[str]:
    """Running-dynamics and Stryd columns that hold at least one value."""
    columns = stream.values if isinstance(stream, StreamColumns) else stream
    return [
        c.value
        for c in (*RUNNING_DYNAMICS, *STRYD)
        if c.value in columns and not np.isnan(np.asarray(columns[c.value], np.float64)).all()
    ]
