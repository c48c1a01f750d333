"""GPX and TCX tracks (the older activities of a Strava export) → our records. Pure.

A small strict reader of our own (why not gpxpy or tcxreader: docs/import.md, "GPX and TCX").
The XML is parsed by the standard library's C parser configured to refuse any document type
declaration the moment it starts — the same rule as defusedxml's ``forbid_dtd``, at less of
a cost (docs/import.md) — so entity expansion ("billion laughs") and external entities are
refused before anything is declared, let alone expanded (XML entities exist only through a
DTD).

What a track holds — time, position, altitude, distance, speed, heart rate, cadence, power
and temperature where present — becomes the same raw columns the FIT decoder produces and
goes through the same
:func:`connectors.fit.build_stream` (implausible values cleared, grade derived, schema
validated). GPX and TCX carry no running dynamics, so ``dynamics`` stays empty.

Units: GPX ``ele`` and TCX ``AltitudeMeters`` in m, TCX ``DistanceMeters`` in m, ``Speed``
in m/s, heart rate in bpm, power in W, temperature in °C (Garmin TrackPointExtension and
ActivityExtension v2 schemas). Run cadence in both (``gpxtpx:cad``, ``RunCadence``) counts
one foot, like FIT's, so it is doubled to steps/min as for FIT (domain.md §1).
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from xml.etree.ElementTree import Element, ParseError, TreeBuilder, XMLParser

import numpy as np

from connectors.archives import Hints, TrackKind, content_hash
from connectors.fit import DecodedFile, build_stream
from planner.errors import TrackImportError
from planner.records import Activity, ImportedActivity, Lap, Pause, Source
from planner.schema import empty_stream

GPX_DECODER = "stridewise-gpx"
TCX_DECODER = "stridewise-tcx"

_GPX_NS = ("http://www.topografix.com/GPX/1/1", "http://www.topografix.com/GPX/1/0")
_TCX_NS = "http://www.garmin.com/xmlschemas/TrainingCenterDatabase/v2"

#: GPX ``<type>`` values meaning a run. Words as Garmin and others write them; Strava's own
#: GPX export writes a number, 9 for Run (seen in exports; Strava does not document it, so
#: this is an assumption, and activities.csv's "Activity Type" decides when it is there).
_GPX_RUN_TYPES = frozenset(
    {"running", "run", "9", "trail_running", "trail run", "treadmill_running", "virtualrun"}
)
_GPX_OTHER_TYPES = {"1": "cycling", "cycling": "cycling", "biking": "cycling", "walking": "walking"}
_TCX_SPORTS = {"running": "running", "biking": "cycling"}

#: Speed is derived over this many points either side when a track has none (GPX mostly):
#: ≈5 s at 1 Hz, enough to calm GPS jitter without hiding a stride change. Our own choice.
_SPEED_HALF_WINDOW = 2
#: ... and not across more than this many seconds (a pause, or sparse "smart" recording), where
#: a mean speed would be made up. Our own choice.
_SPEED_MAX_SPAN_S = 30.0
#: Mean Earth radius (IUGG), for distances between GPS points.
_EARTH_RADIUS_M = 6_371_008.8

_LEADING_JUNK = re.compile(rb"^(?:\xef\xbb\xbf)?\s+")


@dataclass
class _Points:
    """Raw per-point columns of one track, as the FIT decoder's record columns."""

    timestamp: list[float] = field(default_factory=list)
    columns: dict[str, list[float]] = field(default_factory=dict)
    undated: int = 0

    def add(self, when: float, values: dict[str, float]) -> None:
        row = len(self.timestamp)
        self.timestamp.append(when)
        for name, value in values.items():
            column = self.columns.setdefault(name, [])
            if len(column) < row:
                column.extend([math.nan] * (row - len(column)))
            column.append(value)

    def arrays(self) -> dict[str, np.ndarray]:
        n = len(self.timestamp)
        out = {"timestamp": np.array(self.timestamp, dtype=np.float64)}
        for name, column in self.columns.items():
            column.extend([math.nan] * (n - len(column)))
            out[name] = np.array(column, dtype=np.float64)
        return out


@dataclass
class _Track:
    """One activity of a GPX (a ``trk``) or TCX file (an ``Activity``)."""

    sport: str
    name: str | None = None
    points: _Points = field(default_factory=_Points)
    gaps: list[tuple[float, float]] = field(default_factory=list)  # between segments
    laps: list[Lap] = field(default_factory=list)
    moving_s: float | None = None
    distance_m: float | None = None


def decode_track(
    data: bytes, path: str = "<bytes>", hints: Hints | None = None, *, kind: TrackKind
) -> DecodedFile:
    """Decode one GPX or TCX file into activities with validated stream columns.

    Raises
    ------
    TrackImportError
        The file is empty, not well-formed XML, declares a DTD (refused: entity expansion),
        is not GPX/TCX, or a point's time, position or value is not what the schema allows.
    """
    if not data.strip():
        raise TrackImportError(path, "empty file")
    hints = hints or Hints()
    root = _parse(data, path)
    if kind == "gpx":
        tracks, device = _gpx(root, path)
        decoder = GPX_DECODER
    else:
        tracks, device = _tcx(root, path)
        decoder = TCX_DECODER
    digest = content_hash(data)
    if not tracks:
        return DecodedFile(digest, decoder, (), f"no track with timed points ({kind.upper()})")
    source = Source.GPX if kind == "gpx" else Source.TCX
    items = [
        _activity(track, index, digest, source, decoder, device, hints, len(tracks))
        for index, track in enumerate(tracks)
    ]
    return DecodedFile(digest, decoder, tuple(items))


# -- XML ------------------------------------------------------------------------------------------


class _DoctypeRefusedError(Exception):
    """A document type declaration started: refused before any entity can be declared."""


class _NoDoctype(TreeBuilder):
    """The C tree builder, except that expat's start of a DOCTYPE is an error.

    Subclassing costs a little more than the bare C builder (the parser then calls its
    methods through Python), far less than defusedxml's pure-Python parser (docs/import.md)."""

    def doctype(self, name: str, pubid: str | None, system: str | None) -> None:
        raise _DoctypeRefusedError(name)


def _parse(data: bytes, path: str) -> Element:
    # Strava's TCX export starts with blanks before the XML declaration, which XML forbids;
    # every reader of those files strips them, and so do we (nothing else is forgiven).
    data = _LEADING_JUNK.sub(b"", data, count=1)
    parser = XMLParser(target=_NoDoctype())
    try:
        parser.feed(data)
        root: Element = parser.close()
    except _DoctypeRefusedError:
        raise TrackImportError(
            path, "declares a DTD (refused: its entities could expand without bound)"
        ) from None
    except ParseError as exc:
        raise TrackImportError(path, f"not well-formed XML ({exc})") from None
    return root


def _local(tag: str) -> str:
    return tag.rpartition("}")[2]


def _ns(tag: str) -> str:
    return tag[1:].partition("}")[0] if tag.startswith("{") else ""


def _child(element: Element, name: str) -> Element | None:
    for child in element:
        if _local(child.tag) == name:
            return child
    return None


def _children(element: Element, name: str) -> Iterator[Element]:
    return (child for child in element if _local(child.tag) == name)


def _text(element: Element | None) -> str | None:
    if element is None or element.text is None:
        return None
    return element.text.strip() or None


def _number(text: str | None, what: str, path: str, where: str) -> float:
    if text is None:
        return math.nan
    try:
        value = float(text)
    except ValueError:
        raise TrackImportError(path, f"{where}: {what} {text[:40]!r} is not a number") from None
    if not math.isfinite(value):
        raise TrackImportError(path, f"{where}: {what} {text[:40]!r} is not a number")
    return value


def _time(text: str | None, path: str, where: str) -> float | None:
    if text is None:
        return None
    try:
        when = datetime.fromisoformat(text)
    except ValueError:
        raise TrackImportError(path, f"{where}: time {text[:40]!r} is not ISO 8601") from None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)  # GPX and TCX times are UTC by their schemas
    return when.timestamp()


# -- GPX ------------------------------------------------------------------------------------------

#: Extension elements (any namespace: Garmin TrackPointExtension v1/v2, Strava's bare
#: ``power``) → the FIT record column they fill.
_GPX_EXTENSIONS = {
    "hr": "heart_rate",
    "heartrate": "heart_rate",
    "cad": "cadence",
    "cadence": "cadence",
    "atemp": "temperature",
    "temp": "temperature",
    "power": "power",
    "speed": "speed",
}


def _gpx(root: Element, path: str) -> tuple[list[_Track], str | None]:
    if _local(root.tag) != "gpx" or _ns(root.tag) not in _GPX_NS:
        raise TrackImportError(path, "not a GPX file (no GPX 1.0/1.1 <gpx> root)")
    ns = "{" + _ns(root.tag) + "}"
    tags = {ns + "time": "time", ns + "ele": "ele", ns + "speed": "speed"}
    tags[ns + "extensions"] = "extensions"
    tracks = []
    for t_index, trk in enumerate(_children(root, "trk")):
        kind = (_text(_child(trk, "type")) or "").lower()
        sport = "running" if kind in _GPX_RUN_TYPES else _GPX_OTHER_TYPES.get(kind, "generic")
        track = _Track(sport=sport, name=_text(_child(trk, "name")))
        for s_index, segment in enumerate(_children(trk, "trkseg")):
            first_in_segment = len(track.points.timestamp)
            for p_index, point in enumerate(_children(segment, "trkpt")):
                where = f"track {t_index + 1}, segment {s_index + 1}, point {p_index + 1}"
                _gpx_point(track.points, point, tags, path, where)
            _note_gap(track, first_in_segment)
        if track.points.timestamp:
            tracks.append(track)
    return tracks, root.get("creator") or None


def _gpx_point(
    points: _Points, point: Element, tags: dict[str, str], path: str, where: str
) -> None:
    lat = _number(point.get("lat"), "lat", path, where)
    lon = _number(point.get("lon"), "lon", path, where)
    if math.isnan(lat) or math.isnan(lon):
        raise TrackImportError(path, f"{where}: a track point needs lat and lon (GPX schema)")
    values = {"position_lat": lat, "position_long": lon}
    when = None
    for child in point:
        name = tags.get(child.tag)
        if name == "time":
            when = _time(_text(child), path, where)
        elif name == "ele":
            values["altitude"] = _number(_text(child), "ele", path, where)
        elif name == "speed":  # GPX 1.0
            values["speed"] = _number(_text(child), "speed", path, where)
        elif name == "extensions":
            for element in child.iter():
                column = _GPX_EXTENSIONS.get(_local(element.tag).lower())
                if column is not None and len(element) == 0:
                    values[column] = _number(_text(element), _local(element.tag), path, where)
    if when is None:
        points.undated += 1
        return
    points.add(when, values)


def _note_gap(track: _Track, first_in_segment: int) -> None:
    """A new segment (GPX) or track (TCX) after the first starts after a timer stop."""
    ts = track.points.timestamp
    if 0 < first_in_segment < len(ts) and ts[first_in_segment] > ts[first_in_segment - 1]:
        track.gaps.append((ts[first_in_segment - 1], ts[first_in_segment]))


# -- TCX ------------------------------------------------------------------------------------------

_TCX_VALUES = {
    "AltitudeMeters": "altitude",
    "DistanceMeters": "distance",
    # The schema's Trackpoint Cadence is for bikes (rpm); some devices put run cadence there,
    # per foot like RunCadence. Assumption: read it as RunCadence (RunCadence wins when both
    # are present, being later in the point).
    "Cadence": "cadence",
}
_TCX_EXTENSIONS = {"Speed": "speed", "RunCadence": "cadence", "Watts": "power"}


def _tcx(root: Element, path: str) -> tuple[list[_Track], str | None]:
    if _local(root.tag) != "TrainingCenterDatabase" or _ns(root.tag) != _TCX_NS:
        raise TrackImportError(path, "not a TCX file (no TrainingCenterDatabase v2 root)")
    activities = _child(root, "Activities")
    tracks: list[_Track] = []
    device = None
    for a_index, activity in enumerate(
        () if activities is None else _children(activities, "Activity")
    ):
        sport = _TCX_SPORTS.get((activity.get("Sport") or "").lower(), "generic")
        track = _Track(sport=sport)
        creator = _child(activity, "Creator")
        device = device or _text(_child(creator, "Name") if creator is not None else None)
        moving = 0.0
        distance = 0.0
        for l_index, lap in enumerate(_children(activity, "Lap")):
            where = f"activity {a_index + 1}, lap {l_index + 1}"
            lap_start = _time(lap.get("StartTime"), path, where)
            lap_time = _number(
                _text(_child(lap, "TotalTimeSeconds")), "TotalTimeSeconds", path, where
            )
            lap_dist = _number(_text(_child(lap, "DistanceMeters")), "DistanceMeters", path, where)
            moving += 0.0 if math.isnan(lap_time) else lap_time
            distance += 0.0 if math.isnan(lap_dist) else lap_dist
            if lap_start is not None:
                track.laps.append(
                    Lap(
                        start_utc=datetime.fromtimestamp(lap_start, UTC),
                        elapsed_s=0.0 if math.isnan(lap_time) else lap_time,
                        distance_m=None if math.isnan(lap_dist) else lap_dist,
                        intensity=(_text(_child(lap, "Intensity")) or "").lower() or None,
                        trigger=_text(_child(lap, "TriggerMethod")),
                    )
                )
            for k_index, segment in enumerate(_children(lap, "Track")):
                first_in_segment = len(track.points.timestamp)
                for p_index, point in enumerate(_children(segment, "Trackpoint")):
                    spot = f"{where}, track {k_index + 1}, point {p_index + 1}"
                    _tcx_point(track.points, point, path, spot)
                _note_gap(track, first_in_segment)
        track.moving_s = moving or None
        track.distance_m = distance or None
        if track.points.timestamp:
            tracks.append(track)
    return tracks, device


def _tcx_point(points: _Points, point: Element, path: str, where: str) -> None:
    values: dict[str, float] = {}
    when = None
    for child in point:
        name = _local(child.tag)
        if name == "Time":
            when = _time(_text(child), path, where)
        elif name == "Position":
            values["position_lat"] = _number(
                _text(_child(child, "LatitudeDegrees")), "LatitudeDegrees", path, where
            )
            values["position_long"] = _number(
                _text(_child(child, "LongitudeDegrees")), "LongitudeDegrees", path, where
            )
        elif name == "HeartRateBpm":
            values["heart_rate"] = _number(
                _text(_child(child, "Value")), "HeartRateBpm", path, where
            )
        elif name in _TCX_VALUES:
            values[_TCX_VALUES[name]] = _number(_text(child), name, path, where)
        elif name == "Extensions":
            for element in child.iter():
                column = _TCX_EXTENSIONS.get(_local(element.tag))
                if column is not None:
                    values[column] = _number(_text(element), _local(element.tag), path, where)
    if when is None:
        points.undated += 1
        return
    points.add(when, values)


# -- from points to our records -------------------------------------------------------------------


def _activity(
    track: _Track,
    index: int,
    digest: str,
    source: Source,
    decoder: str,
    device: str | None,
    hints: Hints,
    n_tracks: int,
) -> ImportedActivity:
    notes: list[str] = []
    sport = track.sport
    if hints.sport and n_tracks == 1:
        sport = hints.sport  # a Strava export's activities.csv knows the type for sure
    records = track.points.arrays()
    if track.points.undated:
        notes.append(f"{track.points.undated} points without a time dropped")
    ts = records["timestamp"]
    start = datetime.fromtimestamp(float(ts.min()), UTC)
    elapsed = float(ts.max() - ts.min())
    if "distance" not in records and "position_lat" in records:
        records["distance"] = _path_distance(ts, records["position_lat"], records["position_long"])
        notes.append("distance measured along the GPS positions (the file has none)")
    if "speed" not in records and "distance" in records:
        records["speed"] = _speed(ts, records["distance"])
        notes.append("speed derived from distance over time (the file has none)")
    stream = empty_stream()
    if sport == "running":
        stream, stream_notes = build_stream(records, {})
        notes.extend(stream_notes)
    pauses = tuple(
        Pause(datetime.fromtimestamp(a, UTC), datetime.fromtimestamp(b, UTC)) for a, b in track.gaps
    )
    moving = track.moving_s
    if moving is None:
        moving = elapsed - sum(b - a for a, b in track.gaps)
    distance = track.distance_m
    if distance is None and "distance" in records and not np.isnan(records["distance"]).all():
        distance = float(np.nanmax(records["distance"]))
    activity = Activity(
        source=source,
        source_ref=f"{digest}#{index}",
        sport=sport,
        sub_sport=None,
        start_utc=start,
        elapsed_s=elapsed,
        moving_s=moving,
        distance_m=distance,
        name=hints.name or track.name,
        device=device,
        laps=tuple(track.laps),
        pauses=pauses,
        decoder=decoder,
        warnings=tuple(notes),
        dynamics=(),  # GPX and TCX have no running dynamics
        n_samples=len(stream),
    )
    return ImportedActivity(activity, stream)


def _path_distance(ts: np.ndarray, lat: np.ndarray, lon: np.ndarray) -> np.ndarray:
    """Cumulative great-circle distance (m) along the points in time order; a point without
    a position adds nothing and the next one measures from the last known position."""
    order = np.argsort(ts, kind="stable")
    la, lo = np.radians(lat[order]), np.radians(lon[order])
    known = ~(np.isnan(la) | np.isnan(lo))
    cumulative = np.full(len(ts), np.nan)
    idx = np.flatnonzero(known)
    if len(idx):
        a_lat, b_lat = la[idx[:-1]], la[idx[1:]]
        d_lat = b_lat - a_lat
        d_lon = lo[idx[1:]] - lo[idx[:-1]]
        h = np.sin(d_lat / 2) ** 2 + np.cos(a_lat) * np.cos(b_lat) * np.sin(d_lon / 2) ** 2
        steps = 2 * _EARTH_RADIUS_M * np.arcsin(np.sqrt(np.clip(h, 0.0, 1.0)))
        cumulative[idx] = np.concatenate(([0.0], np.cumsum(steps)))
    out = np.empty(len(ts))
    out[order] = cumulative
    return out


def _speed(ts: np.ndarray, distance: np.ndarray) -> np.ndarray:
    """Speed (m/s) as distance over time across a few points either side (centred)."""
    order = np.argsort(ts, kind="stable")
    t, d = ts[order], distance[order]
    k = _SPEED_HALF_WINDOW
    speed = np.full(len(t), np.nan)
    if len(t) > 2 * k:
        dt = t[2 * k :] - t[: -2 * k]
        dd = d[2 * k :] - d[: -2 * k]
        with np.errstate(invalid="ignore", divide="ignore"):
            inner = np.where((dt > 0) & (dt <= _SPEED_MAX_SPAN_S), dd / dt, np.nan)
        speed[k : len(t) - k] = inner
    out = np.empty(len(ts))
    out[order] = speed
    return out
