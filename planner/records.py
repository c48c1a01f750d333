"""Typed records that cross module borders. Units live in the field names."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum
from typing import Any

import pandas as pd


class Source(StrEnum):
    """Where an activity came from. Strava-sourced data is never used to train a model."""

    FIT = "fit"
    GARMIN = "garmin"
    STRAVA = "strava"


#: FIT ``sport`` values we analyse. Trail, treadmill, track and virtual runs are sub-sports of
#: ``running`` in the FIT profile, so they are included.
RUNNING_SPORTS = frozenset({"running"})

#: Sources ranked for the "richer copy wins" rule when their streams are equally rich: an
#: original FIT file beats the same file fetched from Garmin Connect, which beats Strava's
#: resampled streams (no running dynamics).
SOURCE_RANK = {Source.FIT: 3, Source.GARMIN: 2, Source.STRAVA: 1}


@dataclass(frozen=True, slots=True)
class Lap:
    """One lap as the device recorded it."""

    start_utc: datetime
    elapsed_s: float
    distance_m: float | None
    intensity: str | None = None
    trigger: str | None = None


@dataclass(frozen=True, slots=True)
class Pause:
    """A stretch where the timer was stopped."""

    start_utc: datetime
    end_utc: datetime


@dataclass(frozen=True, slots=True)
class Activity:
    """One activity's metadata; its per-second stream travels beside it as a DataFrame.

    ``source_ref`` identifies it within its source (file content hash and session index for
    FIT, activity id for Strava and Garmin); ``fingerprint`` recognises the same run coming
    from two sources.
    """

    source: Source
    source_ref: str
    sport: str
    sub_sport: str | None
    start_utc: datetime
    elapsed_s: float
    moving_s: float | None
    distance_m: float | None
    name: str | None = None
    device: str | None = None
    sensors: tuple[str, ...] = ()
    laps: tuple[Lap, ...] = ()
    pauses: tuple[Pause, ...] = ()
    height_m: float | None = None
    weight_kg: float | None = None
    sex: str | None = None
    decoder: str | None = None
    warnings: tuple[str, ...] = ()
    dynamics: tuple[str, ...] = ()  # running-dynamics / Stryd columns present in the stream
    n_samples: int = 0
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def is_running(self) -> bool:
        return self.sport in RUNNING_SPORTS


@dataclass(frozen=True, slots=True)
class ImportedActivity:
    """What a connector hands to the store: metadata plus the validated stream frame."""

    activity: Activity
    stream: pd.DataFrame


@dataclass(frozen=True, slots=True)
class StoredActivity:
    """An activity as the store knows it."""

    id: int
    athlete_id: str
    activity: Activity
    content_hash: str | None
    stream_format: str | None


@dataclass(frozen=True, slots=True)
class Athlete:
    """A runner in the roster. ``id`` is the short handle used on the command line."""

    id: str
    name: str | None = None
    email: str | None = None
    timezone: str = "UTC"
    send_day: str = "mon"
    send_time: str = "07:00"
    preferences: dict[str, Any] = field(default_factory=dict)
