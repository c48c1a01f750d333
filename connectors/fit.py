"""FIT decoding: a fast columnar path (fitfast) with a strict fitdecode fallback.

``decode_fit(data)`` is pure (bytes in, records out), so it can run in worker processes.
The fast path rejects some real files (and panics on one malformed one); every rejected file
is read again by fitdecode with ``check_crc=RAISE`` so a genuinely corrupt file is still an
error, never silently wrong data. Which decoder read a file is recorded on each activity.
"""

from __future__ import annotations

import io
import math
import os
import re
import struct
import tempfile
import warnings
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import IO, Any

import fitdecode
import fitfast
import numpy as np

from connectors.archives import Hints, content_hash
from connectors.fitcrc import adapt_zero_header_crc, segments_intact
from connectors.fitslim import slim
from planner.errors import FitImportError
from planner.grade import derive_grade_pct
from planner.records import Activity, ImportedActivity, Lap, Pause, Source
from planner.schema import (
    Col,
    StreamColumns,
    clip_values,
    dev_column,
    empty_stream,
    epoch_us,
    present_dynamics,
    validate_columns,
)

FAST = "fitfast"
FALLBACK = "fitdecode"
DECODERS = ("auto", FALLBACK)

# FIT record fields → canonical columns (same unit; see domain.md §1), from the column table.
_NATIVE: dict[Col, tuple[str, ...]] = {c: c.spec.fit for c in Col if c.spec.fit}

# Stryd's Connect IQ developer fields by declared name. Units are normalised from the
# declared unit string below (Stryd writes vertical oscillation in cm; Garmin writes mm).
_STRYD: dict[str, Col] = {c.spec.stryd: c for c in Col if c.spec.stryd}

# Multiplier from a declared unit to the canonical column's unit.
_UNIT_SCALE: dict[tuple[Col, str], float] = {
    (Col.STRYD_VERTICAL_OSCILLATION_MM, "centimeters"): 10.0,
    (Col.STRYD_VERTICAL_OSCILLATION_MM, "cm"): 10.0,
    (Col.STRYD_VERTICAL_OSCILLATION_MM, "meters"): 1000.0,
    (Col.STRYD_VERTICAL_OSCILLATION_MM, "m"): 1000.0,
    (Col.STRYD_GCT_MS, "seconds"): 1000.0,
    (Col.STRYD_GCT_MS, "s"): 1000.0,
    # Stryd cadence is strides per minute like FIT's own cadence: ×2 for steps/min.
    (Col.STRYD_CADENCE_SPM, "rpm"): 2.0,
    (Col.STRYD_CADENCE_SPM, "spm"): 1.0,
}

# ANT+ device types worth naming as sensors (FIT profile, antplus_device_type).
_ANTPLUS_TYPES = {
    120: "heart_rate",
    124: "stride_speed_distance",
    11: "bike_power",
    121: "bike_speed_cadence",
    122: "bike_cadence",
    123: "bike_speed",
    119: "weight_scale",
    127: "environment_sensor",
}

_SENSOR_SOURCES = {"antplus", "ant", "bluetooth", "bluetooth_low_energy"}


@dataclass(slots=True)
class RawFit:
    """What either decoder hands to the shared stream builder."""

    records: dict[str, np.ndarray]  # float64 columns; timestamps as Unix seconds
    messages: dict[str, list[dict[str | int, Any]]]  # non-record messages, enum names
    dev_units: dict[str, str]  # developer field name → declared units
    decoder: str
    warnings: list[str] = field(default_factory=list)


@dataclass(frozen=True, slots=True)
class DecodedFile:
    """The outcome of decoding one FIT file: activities with their streams as numpy columns."""

    content_hash: str
    decoder: str
    items: tuple[ImportedActivity, ...]
    not_activity: str | None = None  # e.g. "settings file": nothing to store


def decode_fit(
    data: bytes, path: str = "<bytes>", hints: Hints | None = None, *, decoder: str = "auto"
) -> DecodedFile:
    """Decode one FIT file into activities with validated stream columns.

    ``decoder="auto"`` takes the fast path and falls back to fitdecode for any file it
    rejects; ``decoder="fitdecode"`` skips the fast path (an escape hatch should the fast
    decoder ever misread a file: ``stridewise import --decoder fitdecode``).

    Raises
    ------
    FitImportError
        When neither decoder can read the file; the message names the path and reason.
    """
    if not data:
        raise FitImportError(path, "empty file (0 bytes)")
    if decoder not in DECODERS:
        raise ValueError(f"unknown decoder {decoder!r}")
    hints = hints or Hints()
    if decoder == "auto":
        raw = _read(data, path, hints)
    else:
        raw = _read_fallback(data, path, checked=False)
    digest = content_hash(data)
    items, not_activity = _activities(raw, digest, hints)
    return DecodedFile(digest, raw.decoder, tuple(items), not_activity)


def _read(data: bytes, path: str, hints: Hints, *, full: bool = False) -> RawFit:
    _check_envelope(data, path)
    try:
        return _read_fast(data, hints, full=full)
    except fitfast.FitDecodeError as exc:
        fast_reason = str(exc)
    except BaseException as exc:  # pyo3 PanicException derives from BaseException
        if isinstance(exc, KeyboardInterrupt | SystemExit | GeneratorExit | MemoryError):
            raise
        fast_reason = f"{type(exc).__name__}: {exc}"
        if getattr(exc, "__notes__", None):
            fast_reason += f" ({exc.__notes__[0]})"
    if "checksum mismatch" in fast_reason:
        adapted = adapt_zero_header_crc(data)
        if adapted is None:
            # Every header carries a valid CRC (or none), so the fast decoder's file CRC is the
            # whole-file CRC the FIT protocol defines: the file is corrupt, and fitdecode's
            # strict check would reject it for the same reason (tests assert that it does).
            raise FitImportError(path, f"bad CRC, file is corrupt ({fast_reason})")
        try:
            raw = _read_fast(adapted, hints, full=full)
        except fitfast.FitDecodeError as exc:
            fast_reason = str(exc)
        else:
            raw.warnings.append("header CRC not set (older device); file CRC verified")
            return raw
    elif not segments_intact(data):
        # The bytes are not what the device wrote; fitdecode's strict CRC check rejects such a
        # file too, so there is nothing to gain from the slow fallback.
        raise FitImportError(path, f"bad CRC, file is corrupt (fast decoder: {fast_reason})")
    raw = _read_fallback(data, path)
    raw.warnings.insert(0, f"fast decoder rejected the file ({fast_reason}); read by fitdecode")
    return raw


def _check_envelope(data: bytes, path: str) -> None:
    """Reject cheaply what no decoder can read: not FIT, or a segment cut short.

    Walks the chain of FIT segments (chained files hold several) by their headers alone. A
    segment that ends past the end of the file, or bytes after a segment that are not another
    FIT header, make the file unreadable for fitdecode too, so there is no point in the slow
    fallback.
    """
    offset = 0
    while offset < len(data):
        header = data[offset : offset + 12]
        if len(header) < 12 or header[8:12] != b".FIT" or header[0] not in (12, 14):
            what = "not a FIT file" if offset == 0 else "bytes after the last FIT segment"
            raise FitImportError(path, f"{what} (no '.FIT' header)", offset=offset)
        (data_size,) = struct.unpack_from("<I", data, offset + 4)
        end = offset + header[0] + data_size + 2
        if end > len(data):
            raise FitImportError(
                path,
                f"truncated file: a segment at byte {offset} declares {end - offset} bytes,"
                f" the file has {len(data) - offset} from there",
                offset=len(data),
            )
        if data_size == 0:
            return  # still being written (size unknown): let the decoders find the end
        offset = end


def _read_fast(data: bytes, hints: Hints, *, full: bool = False) -> RawFit:
    with _native_stderr_captured() as captured:
        try:
            parsed, records = _decode_fast(data, hints, full=full)
        except BaseException as exc:
            # A Rust panic prints "thread panicked at ..." straight to file descriptor 2;
            # it belongs in the reason for this file, not on the user's terminal.
            note = captured().strip().splitlines()
            if note and not isinstance(exc, KeyboardInterrupt | SystemExit):
                # The thread number changes from run to run; the reason should not.
                exc.add_note(_THREAD_NUMBER.sub("", note[0]))
            raise
    dev_units = {
        str(d["field_name"]): str(d.get("units") or "")
        for d in parsed.get("field_description", [])
        if d.get("field_name")
    }
    return RawFit(records, parsed, dev_units, FAST)


def _decode_fast(
    data: bytes, hints: Hints, *, full: bool
) -> tuple[dict[str, list[dict[str | int, Any]]], dict[str, np.ndarray]]:
    """Metadata messages and record columns; every path decodes the whole file once, CRC on.

    Metadata is parsed from the slim copy (about 1/50 of the bytes and a tenth of the time,
    since records are never turned into dictionaries); the whole file is then decoded by the
    columnar reader for a run, or just counted otherwise, which verifies its CRC and structure.
    """
    slim_data = None if full else slim(data)
    if slim_data is not None:
        try:
            parsed = fitfast.parse(slim_data)
        except fitfast.FitDecodeError:
            parsed = None  # let the whole-file decode below give the reason
        if parsed is not None and _dated(parsed):
            if _wants_stream(parsed, hints):
                return parsed, fitfast.records(data)
            fitfast.count(data)
            return parsed, {}
    parsed = fitfast.parse(data)
    record_messages = parsed.pop("record", [])
    if full or _wants_stream(parsed, hints):
        return parsed, fitfast.records(data)
    # Only a file without a session message is dated from its records.
    return parsed, {} if _dated(parsed) else _time_and_distance(record_messages)


def _dated(parsed: Mapping[str, list[dict[str | int, Any]]]) -> bool:
    return any(s.get("start_time") is not None for s in parsed.get("session", []))


def _wants_stream(parsed: Mapping[str, list[dict[str | int, Any]]], hints: Hints) -> bool:
    sessions = parsed.get("session") or parsed.get("sport") or [{}]
    sports = {s.get("sport") for s in sessions}
    return "running" in sports or (hints.sport == "running" and sports <= {"generic", None})


def _time_and_distance(messages: list[dict[str | int, Any]]) -> dict[str, np.ndarray]:
    """Just enough of the records to date a file that has no session message."""
    return {
        name: np.array([m.get(name, math.nan) for m in messages], dtype=np.float64)
        for name in ("timestamp", "distance")
    }


_THREAD_NUMBER = re.compile(r" \(\d+\)(?= panicked)")
_scratch: IO[bytes] | None = None  # one per process, reused: a temp file per call costs ~1 ms


@contextmanager
def _native_stderr_captured() -> Iterator[Callable[[], str]]:
    """Point file descriptor 2 at a scratch file while native code runs; yield a reader.

    Only Python-level writes from *other threads* during the call could be caught too; the
    decoder runs in worker processes or the CLI's main thread, where there are none.
    """
    global _scratch
    try:
        saved = os.dup(2)
    except OSError:  # no stderr at all (daemonised): nothing to protect
        yield lambda: ""
        return
    if _scratch is None:
        _scratch = tempfile.TemporaryFile()  # noqa: SIM115 - lives as long as the process
    scratch = _scratch
    scratch.seek(0)
    scratch.truncate()
    os.dup2(scratch.fileno(), 2)
    try:
        yield lambda: (scratch.seek(0), scratch.read().decode("utf-8", "replace"))[1]
    finally:
        os.dup2(saved, 2)
        os.close(saved)


_WANTED = {
    "file_id",
    "session",
    "lap",
    "event",
    "device_info",
    "user_profile",
    "sport",
    "activity",
    "field_description",
}


def _read_fallback(data: bytes, path: str, *, checked: bool = True) -> RawFit:
    if not checked:
        _check_envelope(data, path)
    columns: dict[str, list[float]] = {}
    n = 0
    messages: dict[str, list[dict[str | int, Any]]] = {}
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        try:
            reader = fitdecode.FitReader(
                io.BytesIO(data),
                check_crc=fitdecode.CrcCheck.RAISE,
                # Recoverable oddities (odd field sizes, undeclared developer fields) are
                # recorded as warnings on the activity; corruption is caught by the CRC.
                error_handling=fitdecode.ErrorHandling.WARN,
            )
            with reader:
                for frame in reader:
                    if not isinstance(frame, fitdecode.FitDataMessage):
                        continue
                    if frame.name == "record":
                        _append_record(columns, n, frame)
                        n += 1
                    elif frame.name in _WANTED:
                        messages.setdefault(frame.name, []).append(_message_dict(frame))
        except fitdecode.FitError as exc:
            raise FitImportError(path, _fitdecode_reason(exc)) from None
        except (ValueError, KeyError, IndexError, TypeError) as exc:
            # fitdecode's own guards raise plain ValueError ("size") on malformed definitions.
            raise FitImportError(
                path, f"malformed FIT data ({type(exc).__name__}: {exc})"
            ) from None
    records = {k: np.asarray(_pad(v, n), dtype=np.float64) for k, v in columns.items()}
    dev_units = {
        str(d["field_name"]): str(d.get("units") or "")
        for d in messages.get("field_description", [])
        if d.get("field_name")
    }
    seen: dict[str, int] = {}
    for w in caught:
        text = str(w.message).split(" (")[0]
        seen[text] = seen.get(text, 0) + 1
    notes = [f"{text} (x{count})" if count > 1 else text for text, count in seen.items()]
    return RawFit(records, messages, dev_units, FALLBACK, notes)


def _fitdecode_reason(exc: Exception) -> str:
    name = type(exc).__name__
    if name == "FitCRCError":
        return f"bad CRC, file is corrupt ({exc})"
    if name == "FitEOFError":
        return f"truncated file ({exc})"
    if name == "FitHeaderError":
        return f"not a FIT file ({exc})"
    if name == "FitParseError":
        return f"corrupt or unsupported FIT data ({exc})"
    return f"{name}: {exc}"


def _pad(values: list[float], n: int) -> list[float]:
    return values + [math.nan] * (n - len(values))


# FIT date_time values count seconds from 1989-12-31T00:00Z; values below 0x10000000 are
# seconds since the device powered on, its clock not yet set (FIT profile, type date_time).
# fitfast adds the epoch to those too, and fitdecode leaves them as plain numbers: the fallback
# adds it as fitfast does, so both decoders date such a file alike (and flag it, below).
_FIT_EPOCH = fitdecode.processors.FIT_UTC_REFERENCE
_CLOCK_NOT_SET_BEFORE = _FIT_EPOCH + fitdecode.processors.FIT_DATETIME_MIN


def _fitdecode_value(fld: Any) -> Any:
    value = fld.value
    if isinstance(value, int) and fld.type is not None and fld.type.name == "date_time":
        return datetime.fromtimestamp(value + _FIT_EPOCH, UTC)
    return value


def _append_record(columns: dict[str, list[float]], row: int, frame: Any) -> None:
    for fld in frame.fields:
        name = fld.name
        value = _fitdecode_value(fld)
        if name == "timestamp" and isinstance(value, datetime):
            number = value.timestamp()
        elif name in ("position_lat", "position_long") and isinstance(value, int):
            number = value * (180.0 / 2**31)  # semicircles → degrees, as fitfast does
        elif isinstance(value, int | float) and not isinstance(value, bool):
            number = float(value)
        else:
            continue
        col = columns.setdefault(name, [])
        if len(col) < row:
            col.extend([math.nan] * (row - len(col)))
        if len(col) == row:
            col.append(number)


def _message_dict(frame: Any) -> dict[str | int, Any]:
    out: dict[str | int, Any] = {}
    for fld in frame.fields:
        value = _fitdecode_value(fld)
        if isinstance(value, datetime):
            value = int(value.timestamp())
        out[fld.name] = value
    return out


# -- from raw columns and messages to our records ---------------------------------------------


def build_stream(
    records: Mapping[str, np.ndarray], dev_units: Mapping[str, str]
) -> tuple[StreamColumns, list[str]]:
    """Canonical, validated stream columns from raw record columns (pure)."""
    notes: list[str] = []
    ts = records.get("timestamp")
    if ts is None or not len(ts):
        return empty_stream(), notes
    data: dict[str, np.ndarray] = {}
    for col, fields in _NATIVE.items():
        column = records.get(fields[0]) if len(fields) == 1 else _first(records, *fields)
        if column is not None:
            data[col.value] = column
    if "cadence" in records:
        fractional = records.get("fractional_cadence")
        frac = np.nan_to_num(fractional) if fractional is not None else 0.0
        # FIT running cadence counts cycles (one per stride): steps/min = 2 × (c + fraction).
        data[Col.CADENCE_SPM.value] = 2.0 * (records["cadence"] + frac)
    for name, units in dev_units.items():
        if name not in records:
            continue
        target = _STRYD.get(name.lower())
        if target is not None:
            scale = _UNIT_SCALE.get((target, units.strip().lower()), 1.0)
            data[target.value] = records[name] * scale
        else:
            data.setdefault(dev_column(name), records[name])
    # One row per timestamped record, in time order; of repeated timestamps the first wins.
    seconds = np.asarray(ts, dtype=np.float64)
    rows = np.flatnonzero(~np.isnan(seconds))
    time_us = np.round(seconds[rows] * 1e6).astype(np.int64)
    if len(time_us) > 1 and (time_us[1:] < time_us[:-1]).any():
        order = np.argsort(time_us, kind="stable")
        rows, time_us = rows[order], time_us[order]
    repeated = np.zeros(len(time_us), dtype=bool)
    repeated[1:] = time_us[1:] == time_us[:-1]
    if repeated.any():
        notes.append(f"{int(repeated.sum())} records with a repeated timestamp dropped")
        rows, time_us = rows[~repeated], time_us[~repeated]
    values = {}
    for name, column in data.items():
        kept = np.asarray(column, dtype=np.float64)[rows]
        if not np.isnan(kept).all():  # a field the device declared but never filled
            values[name] = kept
    if Col.ALTITUDE_M.value in values and Col.DISTANCE_M.value in values:
        values[Col.GRADE_PCT.value] = derive_grade_pct(
            values[Col.DISTANCE_M.value], values[Col.ALTITUDE_M.value]
        )
    for name, count in clip_values(values).items():
        notes.append(f"{count} implausible {name} values set to missing")
    return validate_columns(StreamColumns(time_us, values)), notes


def _first(records: Mapping[str, np.ndarray], *names: str) -> np.ndarray | None:
    best = None
    for name in names:
        col = records.get(name)
        if col is not None and not np.isnan(col).all():
            if best is None:
                best = col.copy()
            else:
                # Fill gaps of the preferred field from the next one (enhanced_* vs plain).
                missing = np.isnan(best)
                best[missing] = col[missing]
    return best


def _utc(value: Any) -> datetime | None:
    if value is None:
        return None
    if isinstance(value, datetime):
        return value.astimezone(UTC)
    if isinstance(value, int | float) and not math.isnan(value):
        return datetime.fromtimestamp(float(value), UTC)
    return None


def _num(value: Any) -> float | None:
    if isinstance(value, int | float) and not isinstance(value, bool) and not math.isnan(value):
        return float(value)
    return None


def _name(value: Any) -> str | None:
    if value is None:
        return None
    return str(value)


# fitfast leaves Garmin product ids as numbers; the FIT profile (shipped with fitdecode)
# names them, so a device reads "garmin fenix3" rather than "garmin 2050".
_GARMIN_PRODUCTS: dict[int, str] = dict(fitdecode.profile.FIELD_TYPES["garmin_product"].enum)


def _device(messages: Mapping[str, list[dict[str | int, Any]]]) -> str | None:
    for msg in messages.get("file_id", []):
        maker = msg.get("manufacturer")
        product = msg.get("garmin_product") or msg.get("product_name") or msg.get("product")
        if maker in ("garmin", "dynastream", "dynastream_oem") and isinstance(product, int):
            product = _GARMIN_PRODUCTS.get(product, product)
        parts = [str(p) for p in (maker, product) if p is not None]
        if parts:
            return " ".join(parts)
    return None


def _sensors(messages: Mapping[str, list[dict[str | int, Any]]]) -> tuple[str, ...]:
    found = set()
    for msg in messages.get("device_info", []):
        if str(msg.get("source_type")) not in _SENSOR_SOURCES:
            continue
        kind = msg.get("antplus_device_type") or msg.get("device_type")
        if isinstance(kind, int):
            kind = _ANTPLUS_TYPES.get(kind, f"type_{kind}")
        maker = msg.get("manufacturer")
        found.add(" ".join(str(p) for p in (maker, kind) if p is not None))
    return tuple(sorted(found))


def _pauses(messages: Mapping[str, list[dict[str | int, Any]]]) -> list[Pause]:
    pauses: list[Pause] = []
    stopped_at: datetime | None = None
    for msg in messages.get("event", []):
        if msg.get("event") != "timer":
            continue
        when = _utc(msg.get("timestamp"))
        kind = msg.get("event_type")
        if when is None:
            continue
        if kind in ("stop", "stop_all", "stop_disable", "stop_disable_all"):
            stopped_at = when
        elif kind == "start" and stopped_at is not None:
            if when > stopped_at:
                pauses.append(Pause(stopped_at, when))
            stopped_at = None
    return pauses


def _sessions(raw: RawFit) -> list[dict[str | int, Any]]:
    sessions = [s for s in raw.messages.get("session", []) if _utc(s.get("start_time"))]
    if sessions:
        return sorted(sessions, key=lambda s: _num(s.get("start_time")) or 0.0)
    # No session message (some older or third-party devices): one session over all records.
    ts = raw.records.get("timestamp")
    if ts is None or not len(ts) or np.isnan(ts).all():
        return []
    sport_msg = (raw.messages.get("sport") or [{}])[0]
    lo, hi = float(np.nanmin(ts)), float(np.nanmax(ts))
    dist = raw.records.get("distance")
    total = float(np.nanmax(dist)) if dist is not None and not np.isnan(dist).all() else None
    return [
        {
            "start_time": lo,
            "total_elapsed_time": hi - lo,
            "total_distance": total,
            "sport": sport_msg.get("sport", "generic"),
            "sub_sport": sport_msg.get("sub_sport"),
        }
    ]


def _activities(
    raw: RawFit, digest: str, hints: Hints
) -> tuple[list[ImportedActivity], str | None]:
    sessions = _sessions(raw)
    if not sessions:
        kinds = {str(m.get("type")) for m in raw.messages.get("file_id", []) if m.get("type")}
        kind = ", ".join(sorted(kinds)) or "unknown"
        return [], f"not an activity file (type: {kind})"
    profile = (raw.messages.get("user_profile") or [{}])[0]
    height = _num(profile.get("height"))
    weight = _num(profile.get("weight"))
    sex = _name(profile.get("gender"))
    device = _device(raw.messages)
    sensors = _sensors(raw.messages)
    pauses = _pauses(raw.messages)
    full_stream: StreamColumns | None = None
    stream_notes: list[str] = []
    items = []
    for index, session in enumerate(sessions):
        start = _utc(session.get("start_time"))
        assert start is not None  # _sessions keeps only sessions with a start time
        elapsed = _num(session.get("total_elapsed_time")) or 0.0
        end = start.timestamp() + elapsed
        sport = _name(session.get("sport")) or "generic"
        if hints.sport and len(sessions) == 1 and sport == "generic":
            sport = hints.sport
        stream = empty_stream()
        if sport == "running":
            if full_stream is None:
                full_stream, stream_notes = build_stream(raw.records, raw.dev_units)
            # Inclusive of the session's last second; multisport legs are cut apart here.
            first_us = epoch_us(start)
            stream = full_stream.between(first_us, first_us + round(elapsed * 1e6))
        laps = tuple(
            Lap(
                start_utc=lap_start,
                elapsed_s=_num(lap.get("total_elapsed_time")) or 0.0,
                distance_m=_num(lap.get("total_distance")),
                intensity=_name(lap.get("intensity")),
                trigger=_name(lap.get("lap_trigger")),
            )
            for lap in raw.messages.get("lap", [])
            if (lap_start := _utc(lap.get("start_time"))) is not None
            and start.timestamp() - 1 <= lap_start.timestamp() <= end
        )
        activity = Activity(
            source=Source.FIT,
            source_ref=f"{digest}#{index}",
            sport=sport,
            sub_sport=_name(session.get("sub_sport")),
            start_utc=start,
            elapsed_s=elapsed,
            moving_s=_num(session.get("total_timer_time")),
            distance_m=_num(session.get("total_distance")),
            name=hints.name,
            device=device,
            sensors=sensors,
            laps=laps,
            pauses=tuple(
                p for p in pauses if start <= p.start_utc and p.end_utc.timestamp() <= end
            ),
            height_m=height,
            weight_kg=weight,
            sex=sex,
            decoder=raw.decoder,
            warnings=tuple(
                raw.warnings + _clock_notes(start) + (stream_notes if sport == "running" else [])
            ),
            dynamics=tuple(present_dynamics(stream)),
            n_samples=len(stream),
        )
        items.append(ImportedActivity(activity, stream))
    return items, None


def _clock_notes(start: datetime) -> list[str]:
    if start.timestamp() >= _CLOCK_NOT_SET_BEFORE:
        return []
    return [
        "device clock was not set: times count from power-on, so the date"
        f" ({start:%Y-%m-%d}) is not when the activity happened"
    ]


def raw_columns(data: bytes, decoder: str = FAST) -> dict[str, np.ndarray]:
    """Raw record columns from one decoder (for tests and benchmarks comparing decoders)."""
    if decoder == FAST:
        raw = _read(data, "<bytes>", Hints(), full=True)
    else:
        raw = _read_fallback(data, "<bytes>")
    if raw.decoder != decoder:
        raise FitImportError("<bytes>", f"{decoder} could not read this file")
    return raw.records
