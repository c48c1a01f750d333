"""The one per-second stream schema every importer ends with.

A stream frame has a UTC ``DatetimeIndex`` named ``time`` (strictly increasing, one row per
recorded sample — usually one second, irregular under "smart recording") and float64 columns
whose names carry their units. Every importer (FIT, Strava, Garmin) calls
:func:`validate_stream` once at the end; feature code may then assume valid input.
"""

from __future__ import annotations

import re
from enum import StrEnum

import numpy as np
import pandas as pd

from planner.errors import StreamValidationError


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
_ORDER = {c.value: i for i, c in enumerate(Col)}


def dev_column(name: str) -> str:
    """Canonical column name for a developer field that has no canonical mapping."""
    slug = re.sub(r"[^a-z0-9]+", "_", name.lower()).strip("_")
    return DEV_PREFIX + (slug or "field")


def empty_stream() -> pd.DataFrame:
    """A valid stream frame with no rows and no columns (metadata-only activities)."""
    index = pd.DatetimeIndex([], tz="UTC", name=INDEX_NAME).as_unit("ns")
    return pd.DataFrame(index=index)


def clip_implausible(frame: pd.DataFrame) -> tuple[pd.DataFrame, dict[str, int]]:
    """Set values outside :data:`PLAUSIBLE` to NaN; return the frame and counts per column."""
    dropped: dict[str, int] = {}
    for col, (low, high) in PLAUSIBLE.items():
        if col.value not in frame.columns:
            continue
        values = frame[col.value].to_numpy()
        bad = ~np.isnan(values) & ((values < low) | (values > high))
        n_bad = int(bad.sum())
        if n_bad:
            values = values.copy()
            values[bad] = np.nan
            frame[col.value] = values
            dropped[col.value] = n_bad
    return frame, dropped


def validate_stream(frame: pd.DataFrame) -> pd.DataFrame:
    """Check a stream frame against the schema and return it with columns in canonical order.

    Raises
    ------
    StreamValidationError
        On a wrong index (not UTC, not strictly increasing), an unknown column name, a
        non-float64 column, or a value outside its plausible range.
    """
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
        if name not in _CANONICAL and not _DEV_NAME.match(str(name)):
            raise StreamValidationError(f"unknown stream column {name!r}")
        if frame[name].dtype != np.float64:
            raise StreamValidationError(f"column {name!r} must be float64, not {frame[name].dtype}")
    for col, (low, high) in PLAUSIBLE.items():
        if col.value in frame.columns:
            values = frame[col.value].to_numpy()
            finite = values[~np.isnan(values)]
            if finite.size and (finite.min() < low or finite.max() > high):
                raise StreamValidationError(
                    f"column {col.value!r} has values outside [{low}, {high}]"
                )
    ordered = sorted(frame.columns, key=lambda c: (_ORDER.get(str(c), len(_ORDER)), str(c)))
    if list(frame.columns) != ordered:
        frame = frame[ordered]
    return frame


def present_dynamics(frame: pd.DataFrame) -> list[str]:
    """Running-dynamics and Stryd columns that hold at least one value."""
    return [
        c.value
        for c in (*RUNNING_DYNAMICS, *STRYD)
        if c.value in frame.columns and bool(frame[c.value].notna().any())
    ]
