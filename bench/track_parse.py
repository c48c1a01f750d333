"""GPX/TCX: our strict reader (connectors/tracks.py) against gpxpy and tcxreader.

    .venv/bin/python bench/track_parse.py

For each bundled running FIT file, writes the run as Strava's GPX export and as Garmin's TCX
(tests/track_files.py), then, on the same bytes:

* **speed** — bytes → raw per-point columns (time, position, altitude, distance, heart rate,
  cadence, speed), median of 5 passes, as a ratio against each library measured in the same
  run; building the validated stream afterwards is the same code for all, so it is left out;
* **agreement** — the columns each reader returns must equal ours point for point;
* **what each refuses or survives** — an entity-expansion ("billion laughs") GPX and TCX,
  and Strava's TCX with blanks before the XML declaration.
"""

from __future__ import annotations

import math
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from connectors.tracks import _gpx, _parse, _tcx  # noqa: E402
from tests.track_files import fit_run, gpx_text, tcx_text  # noqa: E402

RUNS = ["Fenix3-Run-1321421020.fit", "68MK1405.FIT", "activity-small-fenix2-run.fit"]
REPEATS = 5
Columns = dict[str, np.ndarray]

BOMB_GPX = b"""<?xml version="1.0"?>
<!DOCTYPE gpx [
 <!ENTITY a "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa">
 <!ENTITY b "&a;&a;&a;&a;&a;&a;&a;&a;&a;&a;&a;&a;&a;&a;&a;&a;&a;&a;&a;&a;">
 <!ENTITY c "&b;&b;&b;&b;&b;&b;&b;&b;&b;&b;&b;&b;&b;&b;&b;&b;&b;&b;&b;&b;">
 <!ENTITY d "&c;&c;&c;&c;&c;&c;&c;&c;&c;&c;&c;&c;&c;&c;&c;&c;&c;&c;&c;&c;">
 <!ENTITY e "&d;&d;&d;&d;&d;&d;&d;&d;&d;&d;&d;&d;&d;&d;&d;&d;&d;&d;&d;&d;">
]>
<gpx version="1.1" creator="x" xmlns="http://www.topografix.com/GPX/1/1"><trk><name>&e;</name>
<trkseg><trkpt lat="1" lon="1"><time>2020-01-01T00:00:00Z</time></trkpt></trkseg></trk></gpx>
"""


def ours_gpx(data: bytes) -> Columns:
    tracks, _ = _gpx(_parse(data, "bench.gpx"), "bench.gpx")
    return tracks[0].points.arrays()


def ours_tcx(data: bytes) -> Columns:
    tracks, _ = _tcx(_parse(data, "bench.tcx"), "bench.tcx")
    return tracks[0].points.arrays()


def gpxpy_columns(data: bytes) -> Columns:
    import gpxpy

    gpx = gpxpy.parse(data.decode("utf-8"))
    rows: dict[str, list[float]] = {k: [] for k in ("timestamp", "position_lat", "position_long")}
    rows |= {"altitude": [], "heart_rate": [], "cadence": [], "temperature": []}
    for track in gpx.tracks:
        for segment in track.segments:
            for point in segment.points:
                rows["timestamp"].append(point.time.timestamp() if point.time else math.nan)
                rows["position_lat"].append(point.latitude)
                rows["position_long"].append(point.longitude)
                rows["altitude"].append(math.nan if point.elevation is None else point.elevation)
                found = {"hr": math.nan, "cad": math.nan, "atemp": math.nan}
                # gpxpy leaves extensions as raw ElementTree elements: the caller digs.
                for extension in point.extensions:
                    for element in extension.iter():
                        name = element.tag.rpartition("}")[2]
                        if name in found and element.text:
                            found[name] = float(element.text)
                rows["heart_rate"].append(found["hr"])
                rows["cadence"].append(found["cad"])
                rows["temperature"].append(found["atemp"])
    return {k: np.array(v, dtype=np.float64) for k, v in rows.items()}


def tcxreader_columns(data: bytes) -> Columns:
    from tcxreader.tcxreader import TCXReader

    # tcxreader reads only from a path.
    with tempfile.NamedTemporaryFile(suffix=".tcx") as fh:
        fh.write(data)
        fh.flush()
        exercise = TCXReader().read(fh.name)
    names = {
        "timestamp": lambda p: p.time.timestamp(),
        "position_lat": lambda p: p.latitude,
        "position_long": lambda p: p.longitude,
        "altitude": lambda p: p.elevation,
        "distance": lambda p: p.distance,
        "heart_rate": lambda p: p.hr_value,
        "speed": lambda p: p.tpx_ext.get("Speed"),
        "cadence": lambda p: p.tpx_ext.get("RunCadence"),
    }
    return {
        name: np.array(
            [math.nan if (v := get(p)) is None else float(v) for p in exercise.trackpoints],
            dtype=np.float64,
        )
        for name, get in names.items()
    }


def xml_costs(data: bytes) -> tuple[float, float, float]:
    """Seconds to build the element tree: plain C parser (unsafe), ours, defusedxml."""
    import xml.etree.ElementTree as ET

    from defusedxml.ElementTree import fromstring as defused_fromstring

    return (
        median_s(ET.fromstring, data),
        median_s(lambda d: _parse(d, "bench"), data),
        median_s(lambda d: defused_fromstring(d, forbid_dtd=True), data),
    )


def median_s(fn: Callable[[bytes], Any], data: bytes) -> float:
    times = []
    for _ in range(REPEATS):
        start = time.perf_counter()
        fn(data)
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def agree(ours: Columns, theirs: Columns) -> str:
    bad = []
    for name, values in theirs.items():
        mine = ours.get(name)
        if mine is None or len(mine) != len(values):
            bad.append(f"{name}: {'missing' if mine is None else f'{len(mine)} vs {len(values)}'}")
        elif not np.allclose(mine, values, equal_nan=True, rtol=0, atol=1e-6):
            bad.append(f"{name}: values differ")
    return "identical" if not bad else "; ".join(bad)


def outcome(fn: Callable[[bytes], Any], data: bytes) -> str:
    start = time.perf_counter()
    try:
        fn(data)
    except Exception as exc:  # a bench reports whatever happens
        took = time.perf_counter() - start
        return f"refused ({type(exc).__name__}: {str(exc)[:70]}) in {took:.3f} s"
    return f"accepted in {time.perf_counter() - start:.3f} s"


def main() -> None:
    head = f"{'file':32} {'points':>6} {'KB':>6}  {'ours ms':>8} {'lib ms':>8} {'lib/ours':>8}"
    print(head + "  agreement")
    totals: dict[str, list[float]] = {"gpxpy": [0.0, 0.0], "tcxreader": [0.0, 0.0]}
    for name in RUNS:
        run = fit_run(name)
        gpx = gpx_text(run).encode()
        tcx = tcx_text(run).encode().lstrip()  # tcxreader cannot read Strava's blanks: below
        for kind, data, mine, lib, theirs in (
            ("gpx", gpx, ours_gpx, "gpxpy", gpxpy_columns),
            ("tcx", tcx, ours_tcx, "tcxreader", tcxreader_columns),
        ):
            t_ours, t_lib = median_s(mine, data), median_s(theirs, data)
            totals[lib][0] += t_ours
            totals[lib][1] += t_lib
            points = len(mine(data)["timestamp"])
            same = agree(mine(data), theirs(data))
            print(
                f"{name + '.' + kind:32} {points:6d} {len(data) / 1024:6.0f}  {t_ours * 1e3:8.1f}"
                f" {t_lib * 1e3:8.1f} {t_lib / t_ours:7.1f}×  {lib}: {same}"
            )
    for lib, (t_ours, t_lib) in totals.items():
        print(f"all files: {lib} takes {t_lib / t_ours:.1f}× as long as ours")
    plain, ours, defused = xml_costs(gpx_text(fit_run(RUNS[0])).encode())
    print(
        f"XML tree of {RUNS[0]}.gpx: ours (DOCTYPE refused) {ours / plain:.2f}× the bare C"
        f" parser, defusedxml (forbid_dtd) {defused / plain:.2f}×"
    )
    strava_tcx = tcx_text(fit_run(RUNS[2])).encode()
    bomb_tcx = BOMB_GPX.replace(b"<gpx", b"<!-- -->\n<gpx")  # any root: the DTD is the attack
    print("\nentity expansion (a 'billion laughs' GPX, ~10 MB once expanded):")
    print(f"  ours:      {outcome(ours_gpx, BOMB_GPX)}")
    print(f"  gpxpy:     {outcome(gpxpy_columns, BOMB_GPX)}")
    print(f"  tcxreader: {outcome(tcxreader_columns, bomb_tcx)}")
    print("Strava's TCX (blanks before the XML declaration):")
    print(f"  ours:      {outcome(ours_tcx, strava_tcx)}")
    print(f"  tcxreader: {outcome(tcxreader_columns, strava_tcx)}")


if __name__ == "__main__":
    main()
