"""GPX and TCX files written from a real FIT run, as Strava's export and Garmin write them.

The bundled fixtures in ``tests/fixtures/tracks/`` come from here (run this module to make them
again), and ``bench/track_parse.py`` writes bigger ones the same way. The layouts follow real
files: Strava's GPX export (``creator="StravaGPX"``, ``<type>9</type>`` for a run, Garmin's
TrackPointExtension v1 with ``atemp``, ``hr``, ``cad``; whole seconds), and Garmin's TCX
(TrainingCenterDatabase v2, laps, ``HeartRateBpm``, ActivityExtension v2 ``Speed`` and
``RunCadence``; milliseconds) as found in a Strava export — with the blank lines before the
XML declaration that Strava's TCX files are known for.

    .venv/bin/python -m tests.track_files      # rewrites tests/fixtures/tracks/
"""

from __future__ import annotations

import csv
import gzip
import io
import math
import zipfile
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from xml.sax.saxutils import escape

import numpy as np

from connectors.fit import decode_fit
from planner.records import Activity, Lap
from planner.schema import Col, StreamColumns

FIT_DIR = Path(__file__).parent / "fixtures" / "fit"
TRACK_DIR = Path(__file__).parent / "fixtures" / "tracks"

#: The same run as 68MK1405.FIT (for "same run, FIT wins"), and a second run as TCX.
GPX_SOURCE = "68MK1405.FIT"
TCX_SOURCE = "activity-small-fenix2-run.fit"


@dataclass(frozen=True)
class Run:
    activity: Activity
    stream: StreamColumns

    def column(self, col: Col) -> np.ndarray | None:
        return self.stream.values.get(col.value)


def fit_run(name: str) -> Run:
    decoded = decode_fit((FIT_DIR / name).read_bytes(), name)
    item = next(i for i in decoded.items if i.activity.is_running)
    return Run(item.activity, item.stream)


def _iso(time_us: int, *, millis: bool) -> str:
    when = datetime.fromtimestamp(time_us / 1e6, UTC)
    if millis:
        return when.strftime("%Y-%m-%dT%H:%M:%S.") + f"{when.microsecond // 1000:03d}Z"
    return when.strftime("%Y-%m-%dT%H:%M:%SZ")


def _ok(value: float) -> bool:
    return not math.isnan(value)


def gpx_text(run: Run, *, name: str = "Evening Run", gap_s: float = 10.0) -> str:
    """Strava's GPX export of ``run``: a new ``trkseg`` wherever the FIT records pause."""
    lat, lon = run.column(Col.LAT_DEG), run.column(Col.LON_DEG)
    ele, hr = run.column(Col.ALTITUDE_M), run.column(Col.HEART_RATE_BPM)
    cad, temp = run.column(Col.CADENCE_SPM), run.column(Col.TEMPERATURE_C)
    if lat is None or lon is None:
        raise ValueError("a GPX track needs positions")
    out = io.StringIO()
    out.write(
        '<?xml version="1.0" encoding="UTF-8"?>\n'
        '<gpx creator="StravaGPX" xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance"'
        ' xsi:schemaLocation="http://www.topografix.com/GPX/1/1'
        " http://www.topografix.com/GPX/1/1/gpx.xsd"
        " http://www.garmin.com/xmlschemas/GpxExtensions/v3"
        " http://www.garmin.com/xmlschemas/GpxExtensionsv3.xsd"
        " http://www.garmin.com/xmlschemas/TrackPointExtension/v1"
        ' http://www.garmin.com/xmlschemas/TrackPointExtensionv1.xsd"'
        ' version="1.1" xmlns="http://www.topografix.com/GPX/1/1"'
        ' xmlns:gpxtpx="http://www.garmin.com/xmlschemas/TrackPointExtension/v1"'
        ' xmlns:gpxx="http://www.garmin.com/xmlschemas/GpxExtensions/v3">\n'
    )
    out.write(f" <metadata>\n  <time>{_iso(int(run.stream.time_us[0]), millis=False)}</time>\n")
    out.write(f" </metadata>\n <trk>\n  <name>{escape(name)}</name>\n  <type>9</type>\n")
    out.write("  <trkseg>\n")
    previous: int | None = None
    for i, t in enumerate(run.stream.time_us):
        if previous is not None and (t - previous) / 1e6 > gap_s:
            out.write("  </trkseg>\n  <trkseg>\n")
        previous = int(t)
        if not (_ok(lat[i]) and _ok(lon[i])):
            continue  # GPX needs a position for every point; Strava leaves such points out
        out.write(f'   <trkpt lat="{lat[i]:.7f}" lon="{lon[i]:.7f}">\n')
        if ele is not None and _ok(ele[i]):
            out.write(f"    <ele>{ele[i]:.1f}</ele>\n")
        out.write(f"    <time>{_iso(int(t), millis=False)}</time>\n")
        ext = []
        if temp is not None and _ok(temp[i]):
            ext.append(f"<gpxtpx:atemp>{temp[i]:.0f}</gpxtpx:atemp>")
        if hr is not None and _ok(hr[i]):
            ext.append(f"<gpxtpx:hr>{hr[i]:.0f}</gpxtpx:hr>")
        if cad is not None and _ok(cad[i]):
            ext.append(f"<gpxtpx:cad>{cad[i] / 2:.0f}</gpxtpx:cad>")  # per foot, as Strava
        if ext:
            out.write("    <extensions>\n     <gpxtpx:TrackPointExtension>\n")
            out.write("".join(f"      {e}\n" for e in ext))
            out.write("     </gpxtpx:TrackPointExtension>\n    </extensions>\n")
        out.write("   </trkpt>\n")
    out.write("  </trkseg>\n </trk>\n</gpx>\n")
    return out.getvalue()


def _lap_of(laps: tuple[Lap, ...], t_us: int) -> int:
    index = 0
    for k, lap in enumerate(laps):
        if lap.start_utc.timestamp() * 1e6 <= t_us:
            index = k
    return index


def tcx_text(run: Run, *, device: str = "Forerunner 920XT") -> str:
    """Garmin's TCX of ``run``, one ``Lap`` per FIT lap, as in a Strava export."""
    lat, lon = run.column(Col.LAT_DEG), run.column(Col.LON_DEG)
    ele, hr = run.column(Col.ALTITUDE_M), run.column(Col.HEART_RATE_BPM)
    cad, dist = run.column(Col.CADENCE_SPM), run.column(Col.DISTANCE_M)
    speed = run.column(Col.SPEED_MPS)
    laps = run.activity.laps
    per_lap: dict[int, list[int]] = {}
    for i, t in enumerate(run.stream.time_us):
        per_lap.setdefault(_lap_of(laps, int(t)), []).append(i)
    out = io.StringIO()
    out.write("\n\n          ")  # Strava's TCX files start with blanks (not well-formed XML)
    out.write(
        '<?xml version="1.0" encoding="UTF-8"?>\n'
        '<TrainingCenterDatabase xsi:schemaLocation="http://www.garmin.com/xmlschemas/'
        "TrainingCenterDatabase/v2 http://www.garmin.com/xmlschemas/TrainingCenterDatabasev2.xsd"
        '" xmlns:ns5="http://www.garmin.com/xmlschemas/ActivityGoals/v1"'
        ' xmlns:ns3="http://www.garmin.com/xmlschemas/ActivityExtension/v2"'
        ' xmlns:ns2="http://www.garmin.com/xmlschemas/UserProfile/v2"'
        ' xmlns="http://www.garmin.com/xmlschemas/TrainingCenterDatabase/v2"'
        ' xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance">\n'
    )
    start = _iso(int(run.stream.time_us[0]), millis=True)
    out.write(f' <Activities>\n  <Activity Sport="Running">\n   <Id>{start}</Id>\n')
    for k, rows in sorted(per_lap.items()):
        lap = laps[k] if laps else None
        lap_start = (
            _iso(round(lap.start_utc.timestamp() * 1e6), millis=True)
            if lap
            else _iso(int(run.stream.time_us[rows[0]]), millis=True)
        )
        total = (
            lap.elapsed_s
            if lap
            else (run.stream.time_us[rows[-1]] - run.stream.time_us[rows[0]]) / 1e6
        )
        out.write(f'   <Lap StartTime="{lap_start}">\n')
        out.write(f"    <TotalTimeSeconds>{total:.1f}</TotalTimeSeconds>\n")
        if lap and lap.distance_m is not None:
            out.write(f"    <DistanceMeters>{lap.distance_m:.2f}</DistanceMeters>\n")
        out.write("    <Intensity>Active</Intensity>\n")
        out.write(f"    <TriggerMethod>{'Manual' if lap else 'Distance'}</TriggerMethod>\n")
        out.write("    <Track>\n")
        for i in rows:
            out.write("     <Trackpoint>\n")
            out.write(f"      <Time>{_iso(int(run.stream.time_us[i]), millis=True)}</Time>\n")
            if lat is not None and lon is not None and _ok(lat[i]) and _ok(lon[i]):
                out.write(
                    "      <Position>\n"
                    f"       <LatitudeDegrees>{lat[i]:.10f}</LatitudeDegrees>\n"
                    f"       <LongitudeDegrees>{lon[i]:.10f}</LongitudeDegrees>\n"
                    "      </Position>\n"
                )
            if ele is not None and _ok(ele[i]):
                out.write(f"      <AltitudeMeters>{ele[i]:.1f}</AltitudeMeters>\n")
            if dist is not None and _ok(dist[i]):
                out.write(f"      <DistanceMeters>{dist[i]:.2f}</DistanceMeters>\n")
            if hr is not None and _ok(hr[i]):
                out.write("      <HeartRateBpm>\n")
                out.write(f"       <Value>{hr[i]:.0f}</Value>\n      </HeartRateBpm>\n")
            ext = []
            if speed is not None and _ok(speed[i]):
                ext.append(f"<ns3:Speed>{speed[i]:.3f}</ns3:Speed>")
            if cad is not None and _ok(cad[i]):
                ext.append(f"<ns3:RunCadence>{cad[i] / 2:.0f}</ns3:RunCadence>")
            if ext:
                out.write("      <Extensions>\n       <ns3:TPX>\n")
                out.write("".join(f"        {e}\n" for e in ext))
                out.write("       </ns3:TPX>\n      </Extensions>\n")
            out.write("     </Trackpoint>\n")
        out.write("    </Track>\n   </Lap>\n")
    out.write(
        '   <Creator xsi:type="Device_t">\n'
        f"    <Name>{escape(device)}</Name>\n"
        "    <UnitId>3875991210</UnitId>\n    <ProductID>1765</ProductID>\n"
        "   </Creator>\n  </Activity>\n </Activities>\n</TrainingCenterDatabase>\n"
    )
    return out.getvalue()


def strava_export(gpx: bytes, tcx_gz: bytes, fit: bytes) -> bytes:
    """A Strava account export: activities.csv naming one FIT, one GPX and one TCX activity
    (the GPX is the same run as the FIT file)."""
    rows = [
        ["Activity ID", "Activity Date", "Activity Name", "Activity Type", "Filename"],
        ["1001", "Aug 22, 2016, 5:14:05 PM", "Tuesday tempo", "Run", "activities/1001.fit.gz"],
        ["1002", "Aug 22, 2016, 5:14:05 PM", "Tuesday tempo", "Run", "activities/1002.gpx"],
        ["1003", "Aug 15, 2015, 2:45:08 PM", "Saturday long", "Run", "activities/1003.tcx.gz"],
    ]
    text = io.StringIO()
    csv.writer(text, lineterminator="\n").writerows(rows)
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as z:
        z.writestr("activities.csv", text.getvalue())
        z.writestr("activities/1001.fit.gz", gzip.compress(fit, mtime=0))
        z.writestr("activities/1002.gpx", gpx)
        z.writestr("activities/1003.tcx.gz", tcx_gz)
        z.writestr("profile.csv", "Athlete ID,Email Address\n1,ann@example.org\n")
    return buffer.getvalue()


def main() -> None:
    TRACK_DIR.mkdir(parents=True, exist_ok=True)
    gpx = gpx_text(fit_run(GPX_SOURCE)).encode()
    tcx_gz = gzip.compress(tcx_text(fit_run(TCX_SOURCE)).encode(), mtime=0)
    (TRACK_DIR / "68MK1405.gpx").write_bytes(gpx)
    (TRACK_DIR / "fenix2-run.tcx.gz").write_bytes(tcx_gz)
    fit = (FIT_DIR / GPX_SOURCE).read_bytes()
    (TRACK_DIR / "strava_export.zip").write_bytes(strava_export(gpx, tcx_gz, fit))


if __name__ == "__main__":
    main()
