"""FIT *activity* files from our own records, written with garmin_fit_sdk's Encoder.

The demo season (``planner.demo``) is written as real activity files that go through the normal
``stridewise import`` and FIT decoder, so the demo exercises the same path as a watch's files:
``file_id`` (activity), ``user_profile`` (height, weight, sex), timer events around the run, one
``record`` per sample (speed, distance, position, altitude, heart rate, cadence in cycles per
minute with its fraction, and running dynamics when the stream has them), the laps, one
``session`` and the ``activity`` summary. Missing values are left out of a record, as watches
do. Values are given in profile units; the Encoder applies each field's scale and offset.
"""

from __future__ import annotations

import hashlib
import math
from datetime import datetime, timedelta
from typing import Any, Final

import numpy as np
from garmin_fit_sdk import Encoder

from planner.delivery.workouts import MANUFACTURER, MESG
from planner.records import Activity, ImportedActivity
from planner.schema import Col

#: Degrees to FIT semicircles (FIT profile: 2^31 semicircles per 180°).
_SEMICIRCLES_PER_DEG: Final = 2.0**31 / 180.0
#: Stream column → record field, for the values written as they are (profile units).
_FIELDS: Final = (
    (Col.DISTANCE_M, "distance"),
    (Col.SPEED_MPS, "enhanced_speed"),
    (Col.ALTITUDE_M, "enhanced_altitude"),
    (Col.HEART_RATE_BPM, "heart_rate"),
    (Col.GCT_MS, "stance_time"),
    (Col.GCT_BALANCE_LEFT_PCT, "stance_time_balance"),
    (Col.STANCE_TIME_PCT, "stance_time_percent"),
    (Col.VERTICAL_OSCILLATION_MM, "vertical_oscillation"),
    (Col.VERTICAL_RATIO_PCT, "vertical_ratio"),
    (Col.STEP_LENGTH_MM, "step_length"),
)
_INTEGER_FIELDS: Final = frozenset({"heart_rate"})
_GENDER: Final = {"female": "female", "male": "male"}


def _serial(activity: Activity) -> int:
    digest = hashlib.sha256(activity.source_ref.encode()).digest()
    return int.from_bytes(digest[:4], "big") or 1  # uint32z: never 0


def _records(item: ImportedActivity) -> list[dict[str, Any]]:
    stream = item.stream.values
    # Whole seconds: FIT timestamps are seconds.
    seconds = item.stream.time_us // 1_000_000
    columns: list[tuple[str, np.ndarray]] = [
        (name, stream[col.value]) for col, name in _FIELDS if col.value in stream
    ]
    cadence = stream.get(Col.CADENCE_SPM.value)
    lat = stream.get(Col.LAT_DEG.value)
    lon = stream.get(Col.LON_DEG.value)
    out = []
    for i, ts in enumerate(seconds.tolist()):
        rec: dict[str, Any] = {"mesg_num": MESG["RECORD"], "timestamp": _datetime(ts)}
        for name, values in columns:
            value = values[i]
            if not math.isnan(value):
                rec[name] = round(value) if name in _INTEGER_FIELDS else float(value)
        if cadence is not None and not math.isnan(cadence[i]):
            # FIT running cadence counts strides (cycles) per minute, with a 1/128 fraction.
            cycles = cadence[i] / 2.0
            rec["cadence"] = int(cycles)
            rec["fractional_cadence"] = cycles - int(cycles)
        if lat is not None and lon is not None and not math.isnan(lat[i]):
            rec["position_lat"] = round(lat[i] * _SEMICIRCLES_PER_DEG)
            rec["position_long"] = round(lon[i] * _SEMICIRCLES_PER_DEG)
        out.append(rec)
    return out


def _datetime(unix_s: int) -> datetime:
    from datetime import UTC

    return datetime.fromtimestamp(unix_s, UTC)


def encode_activity(item: ImportedActivity) -> bytes:
    """One run as a FIT activity file (bytes), readable by our FIT decoder and by watches' tools.

    Parameters
    ----------
    item
        The run's metadata and validated per-second stream (e.g. from ``planner.simulate``).
    """
    a = item.activity
    records = _records(item)
    start = a.start_utc
    end = records[-1]["timestamp"] if records else start
    elapsed = (end - start).total_seconds() + 1.0
    timer = a.moving_s if a.moving_s is not None else elapsed
    distance = a.distance_m or 0.0
    encoder = Encoder()
    encoder.write_mesg(
        {
            "mesg_num": MESG["FILE_ID"],
            "type": "activity",
            "manufacturer": MANUFACTURER,
            "product": 0,
            "serial_number": _serial(a),
            "time_created": start,
        }
    )
    profile: dict[str, Any] = {"mesg_num": MESG["USER_PROFILE"]}
    if a.height_m:
        profile["height"] = a.height_m
    if a.weight_kg:
        profile["weight"] = a.weight_kg
    if a.sex in _GENDER:
        profile["gender"] = _GENDER[a.sex]
    if len(profile) > 1:
        encoder.write_mesg(profile)
    encoder.write_mesg(
        {
            "mesg_num": MESG["EVENT"],
            "timestamp": start,
            "event": "timer",
            "event_type": "start",
        }
    )
    previous: datetime | None = None
    for rec in records:
        ts = rec["timestamp"]
        if previous is not None and ts - previous > timedelta(seconds=10):
            # A gap in the samples is a paused timer: watches write stop/start events around it.
            for when, kind in ((previous, "stop_all"), (ts, "start")):
                encoder.write_mesg(
                    {"mesg_num": MESG["EVENT"], "timestamp": when, "event": "timer",
                     "event_type": kind}
                )  # fmt: skip
        encoder.write_mesg(rec)
        previous = ts
    encoder.write_mesg(
        {"mesg_num": MESG["EVENT"], "timestamp": end, "event": "timer", "event_type": "stop_all"}
    )
    laps = a.laps or ()
    for index, lap in enumerate(laps):
        encoder.write_mesg(
            {
                "mesg_num": MESG["LAP"],
                "message_index": index,
                "timestamp": lap.start_utc + timedelta(seconds=lap.elapsed_s),
                "start_time": lap.start_utc,
                "total_elapsed_time": lap.elapsed_s,
                "total_timer_time": lap.elapsed_s,
                "total_distance": lap.distance_m or 0.0,
                "intensity": lap.intensity or "active",
                "lap_trigger": "manual",
                "event": "lap",
                "event_type": "stop",
                "sport": "running",
            }
        )
    session: dict[str, Any] = {
        "mesg_num": MESG["SESSION"],
        "message_index": 0,
        "timestamp": end,
        "start_time": start,
        "total_elapsed_time": elapsed,
        "total_timer_time": timer,
        "total_distance": distance,
        "sport": "running",
        "sub_sport": a.sub_sport or "generic",
        "first_lap_index": 0,
        "num_laps": len(laps),
        "event": "session",
        "event_type": "stop",
        "trigger": "activity_end",
    }
    encoder.write_mesg(session)
    encoder.write_mesg(
        {
            "mesg_num": MESG["ACTIVITY"],
            "timestamp": end,
            "total_timer_time": timer,
            "num_sessions": 1,
            "type": "manual",
            "event": "activity",
            "event_type": "stop",
        }
    )
    data: bytes = encoder.close()
    return data
