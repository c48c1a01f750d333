"""The one per-second stream type every importer ends with, and the one table of its columns.

A stream is :class:`StreamColumns`: ``time_us`` (int64 µs since the Unix epoch, UTC, strictly
increasing, one row per recorded sample — usually one second, irregular under "smart
recording") and float64 columns whose names carry their units. Every connector (FIT, GPX/TCX,
Strava, Garmin through its FIT files) builds columns, clips them (:func:`clip_values`) and
validates them once (:func:`validate_columns`); the store packs them as they are. Feature
code may then assume valid input, and reads a pandas frame (:meth:`StreamColumns.to_frame`,
or the store's decode path) with a UTC ``DatetimeIndex`` named ``time``.

Building columns never loads pandas, so an import need not pay its half second of start-up.

Adding a column is one edit: a row of :class:`Col` (name, plausible range, group, and the
FIT and Strava fields it comes from). The validator, the clipper, the canonical order, the
codec and the FIT, track and Strava builders all read that table.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from enum import StrEnum
from typing import TYPE_CHECKING

import numpy as np

from planner.errors import StreamValidationError

if TYPE_CHECKING:
    import pandas as pd


@dataclass(frozen=True, slots=True)
class Column:
    """One row of the column table.

    ``low``/``high`` bound the physically plausible values: outside them a value is a sensor
    glitch, which importers set to NaN (and count as a warning) and the validator rejects.
    Bounds are deliberately wide: they catch unit errors (mm vs cm, per-foot vs steps), not
    unusual runners.
    """

    name: str  # the suffix is the unit
    low: float
    high: float
    group: str = ""  # "dynamics" (chest strap, pod or watch) | "stryd" | ""
    fit: tuple[str, ...] = ()  # FIT record fields in this unit, preferred first (gaps filled)
    stryd: str = ""  # the Stryd Connect IQ developer field's declared name (case-insensitive)
    strava: str = ""  # the Strava stream type ...
    strava_factor: float = 1.0  # ... and the factor from its unit to ours


_DYN = "dynamics"
_STRYD = "stryd"


class Col(StrEnum):
    """Canonical stream columns, in canonical order: the one table of the stream schema.

    Columns some source fills by a rule rather than by a field (FIT cadence with its fraction,
    Strava's ``latlng`` pairs, grade derived from distance and altitude) say so beside them.
    """

    _value_: str
    spec: Column

    def __new__(cls, spec: Column) -> Col:
        member = str.__new__(cls, spec.name)
        member._value_ = spec.name
        member.spec = spec
        return member

    # world-record sprint peak is ~12.4 m/s
    SPEED_MPS = Column(
        "speed_mps", 0.0, 15.0, fit=("enhanced_speed", "speed"), strava="velocity_smooth"
    )
    # steps/min. FIT: 2 × (cadence + fractional_cadence), in connectors/fit.py. Strava reports
    # run cadence per foot (strides/min); steps/min is twice that (domain.md §1).
    CADENCE_SPM = Column("cadence_spm", 0.0, 300.0, strava="cadence", strava_factor=2.0)
    GCT_MS = Column("gct_ms", 50.0, 800.0, _DYN, fit=("stance_time",))  # ground contact time
    # share of ground contact on the left foot, %
    GCT_BALANCE_LEFT_PCT = Column(
        "gct_balance_left_pct", 20.0, 80.0, _DYN, fit=("stance_time_balance",)
    )
    VERTICAL_OSCILLATION_MM = Column(
        "vertical_oscillation_mm", 0.0, 300.0, _DYN, fit=("vertical_oscillation",)
    )
    VERTICAL_RATIO_PCT = Column("vertical_ratio_pct", 0.0, 40.0, _DYN, fit=("vertical_ratio",))
    STEP_LENGTH_MM = Column("step_length_mm", 0.0, 4000.0, _DYN, fit=("step_length",))
    STANCE_TIME_PCT = Column("stance_time_pct", 0.0, 100.0, _DYN, fit=("stance_time_percent",))
    HEART_RATE_BPM = Column("heart_rate_bpm", 20.0, 250.0, fit=("heart_rate",), strava="heartrate")
    POWER_W = Column("power_w", 0.0, 3000.0, fit=("power",), strava="watts")
    ALTITUDE_M = Column(
        "altitude_m", -500.0, 9000.0, fit=("enhanced_altitude", "altitude"), strava="altitude"
    )
    # FIT and tracks: derived from distance and altitude (planner.grade); Strava's
    # grade_smooth is already in percent.
    GRADE_PCT = Column("grade_pct", -100.0, 100.0, strava="grade_smooth")
    DISTANCE_M = Column("distance_m", 0.0, 1.0e7, fit=("distance",), strava="distance")
    # Strava: the two halves of its "latlng" stream, in connectors/strava.py.
    LAT_DEG = Column("lat_deg", -90.0, 90.0, fit=("position_lat",))
    LON_DEG = Column("lon_deg", -180.0, 180.0, fit=("position_long",))
    TEMPERATURE_C = Column("temperature_c", -60.0, 70.0, fit=("temperature",), strava="temp")
    # Stryd developer fields, units normalised from their declared units in connectors/fit.py
    # (Stryd VO is in cm, ground time in ms, cadence in strides/min).
    STRYD_POWER_W = Column("stryd_power_w", 0.0, 3000.0, _STRYD, stryd="power")
    FORM_POWER_W = Column("form_power_w", 0.0, 1000.0, _STRYD, stryd="form power")
    AIR_POWER_W = Column("air_power_w", -500.0, 500.0, _STRYD, stryd="air power")
    LEG_SPRING_STIFFNESS_KN_M = Column(
        "leg_spring_stiffness_kn_m", 0.0, 100.0, _STRYD, stryd="leg spring stiffness"
    )
    STRYD_GCT_MS = Column("stryd_gct_ms", 50.0, 800.0, _STRYD, stryd="ground time")
    STRYD_VERTICAL_OSCILLATION_MM = Column(
        "stryd_vertical_oscillation_mm", 0.0, 300.0, _STRYD, stryd="vertical oscillation"
    )
    STRYD_CADENCE_SPM = Column("stryd_cadence_spm", 0.0, 300.0, _STRYD, stryd="cadence")


#: Running-dynamics columns: present only with a chest strap, pod, or a watch that computes them.
RUNNING_DYNAMICS: tuple[Col, ...] = tuple(c for c in Col if c.spec.group == _DYN)
STRYD: tuple[Col, ...] = tuple(c for c in Col if c.spec.group == _STRYD)

#: Physically plausible ranges, by column (from the table).
PLAUSIBLE: dict[Col, tuple[float, float]] = {c: (c.spec.low, c.spec.high) for c in Col}

#: Other developer (Connect IQ) fields keep their own name, slugged, behind this prefix.
DEV_PREFIX = "dev_"
_DEV_NAME = re.compile(r"^dev_[a-z0-9_]+$")

INDEX_NAME = "time"
_BOUNDS = {c.value: bounds for c, bounds in PLAUSIBLE.items()}
_ORDER = {c.value: i for i, c in enumerate(Col)}


_UNIX_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def epoch_us(when: datetime) -> int:
    """A timezone-aware time as stream time: whole µs since the Unix epoch."""
    return (when - _UNIX_EPOCH) // timedelta(microseconds=1)


def dev_column(name: str) -> str:
    """Canonical column name for a developer field that has no canonical mapping."""
    slug = re.sub(r"[^a-z0-9]+", "_", name.lower()).strip("_")
    return DEV_PREFIX + (slug or "field")


@dataclass(frozen=True, slots=True, eq=False)  # arrays have no truth value: compare by identity
class StreamColumns:
    """A stream as numpy columns: ``time_us`` (int64 µs since the Unix epoch, UTC) and float64
    ``values`` by canonical name."""

    time_us: np.ndarray
    values: dict[str, np.ndarray]

    def __len__(self) -> int:
        return len(self.time_us)

    def rows(self, which: slice | np.ndarray) -> StreamColumns:
        """The samples a slice, a boolean mask or an index array selects, every column alike."""
        return StreamColumns(self.time_us[which], {k: v[which] for k, v in self.values.items()})

    def between(self, first_us: int, last_us: int) -> StreamColumns:
        """The samples from ``first_us`` to ``last_us``, both inclusive (time is sorted)."""
        lo = int(np.searchsorted(self.time_us, first_us, side="left"))
        hi = int(np.searchsorted(self.time_us, last_us, side="right"))
        return self.rows(slice(lo, hi))

    def to_frame(self) -> pd.DataFrame:
        """The stream as a pandas frame: UTC ``DatetimeIndex`` named ``time``, one column each."""
        import pandas as pd  # only callers that want a frame pay for pandas

        index = pd.DatetimeIndex(self.time_us.astype("datetime64[us]"), name=INDEX_NAME)
        return pd.DataFrame(self.values, index=index.tz_localize("UTC"))

    @classmethod
    def from_frame(cls, frame: pd.DataFrame) -> StreamColumns:
        """The columns of a frame shaped as :meth:`to_frame` makes them (tests, benchmarks)."""
        time_us = frame.index.to_numpy(dtype="datetime64[us]").view(np.int64)
        values = {str(c): frame[c].to_numpy(dtype=np.float64) for c in frame.columns}
        return cls(time_us, values)


def empty_stream() -> StreamColumns:
    """A valid stream with no rows and no columns (metadata-only activities)."""
    return StreamColumns(np.empty(0, dtype=np.int64), {})


def clip_values(values: dict[str, np.ndarray]) -> dict[str, int]:
    """Set values outside their plausible range to NaN, in place; return counts per column."""
    dropped: dict[str, int] = {}
    for name, column in values.items():
        bounds = _BOUNDS.get(name)
        if bounds is None:
            continue
        bad = ~np.isnan(column) & ((column < bounds[0]) | (column > bounds[1]))
        n_bad = int(bad.sum())
        if n_bad:
            column = column.copy()
            column[bad] = np.nan
            values[name] = column
            dropped[name] = n_bad
    return dict(sorted(dropped.items(), key=lambda kv: _ORDER[kv[0]]))


def validate_columns(stream: StreamColumns) -> StreamColumns:
    """Check a stream against the schema and return it with columns in canonical order.

    Raises
    ------
    StreamValidationError
        On times that are not int64 µs or not strictly increasing, a column of another
        length, an unknown column name, a non-float64 column, or a value outside its
        plausible range.
    """
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


def _check_name(name: str) -> None:
    if name not in _ORDER and not _DEV_NAME.match(name):
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


def _canonical_order(names: Iterable[str]) -> list[str]:
    return sorted(names, key=lambda c: (_ORDER.get(c, len(_ORDER)), c))


def present_dynamics(stream: StreamColumns) -> list[str]:
    """Running-dynamics and Stryd columns that hold at least one value."""
    return [
        c.value
        for c in (*RUNNING_DYNAMICS, *STRYD)
        if c.value in stream.values and not np.isnan(stream.values[c.value]).all()
    ]
