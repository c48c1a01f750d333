"""GPX and TCX: the older activities of a Strava export, read strictly and stored once.

The fixtures in ``tests/fixtures/tracks/`` were written from real FIT runs by
``tests/track_files.py`` (Strava's GPX export layout; Garmin's TCX with Strava's leading
blanks), so every value read back can be checked against the FIT file it came from.
"""

from __future__ import annotations

import gzip
import zipfile
from collections.abc import Callable
from dataclasses import replace
from datetime import timedelta
from pathlib import Path

import numpy as np
import pytest

from connectors.tracks import decode_track
from planner.errors import TrackImportError
from planner.records import ImportedActivity, Source
from planner.schema import Col, empty_stream
from planner.store.database import Store
from tests.conftest import FIT_DIR, FIXTURES, CliResult
from tests.track_files import GPX_SOURCE, TCX_SOURCE, fit_run, gpx_text, tcx_text

Run = Callable[..., CliResult]
TRACKS = FIXTURES / "tracks"
GPX_FILE = TRACKS / "68MK1405.gpx"
TCX_FILE = TRACKS / "fenix2-run.tcx.gz"
EXPORT = TRACKS / "strava_export.zip"


def test_gpx_gives_the_fit_run_s_stream_without_dynamics() -> None:
    fit = fit_run(GPX_SOURCE)
    [item] = decode_track(GPX_FILE.read_bytes(), "run.gpx", kind="gpx").items
    activity, stream = item.activity, item.stream
    assert activity.source is Source.GPX
    assert activity.sport == "running"  # Strava's <type>9</type>
    assert activity.name == "Evening Run"
    assert activity.start_utc == fit.activity.start_utc
    assert activity.elapsed_s == pytest.approx(fit.activity.elapsed_s, abs=1.0)
    assert activity.dynamics == ()
    assert activity.n_samples == len(stream) == len(fit.stream)
    np.testing.assert_array_equal(stream.time_us, fit.stream.time_us)
    got, want = stream.values, fit.stream.values
    np.testing.assert_allclose(got[Col.LAT_DEG], want[Col.LAT_DEG], atol=1e-7)
    np.testing.assert_allclose(got[Col.ALTITUDE_M], want[Col.ALTITUDE_M], atol=0.05)
    np.testing.assert_array_equal(got[Col.HEART_RATE_BPM], want[Col.HEART_RATE_BPM])
    # Whole strides per minute in the file (as Strava writes them): within one step/min.
    np.testing.assert_allclose(got[Col.CADENCE_SPM], want[Col.CADENCE_SPM], atol=1.0)
    # No distance or speed in a GPX: both measured along the positions, close to the watch's.
    assert got[Col.DISTANCE_M][-1] == pytest.approx(want[Col.DISTANCE_M][-1], rel=0.01)
    assert np.nanmedian(got[Col.SPEED_MPS]) == pytest.approx(
        np.nanmedian(want[Col.SPEED_MPS]), rel=0.03
    )
    assert Col.GRADE_PCT in got  # derived as for FIT
    assert not set(got) & {c.value for c in (Col.GCT_MS, Col.VERTICAL_OSCILLATION_MM)}
    assert "speed derived from distance over time (the file has none)" in activity.warnings
    # The watch paused once for 17 s: a new track segment, kept as a pause.
    assert [(p.end_utc - p.start_utc) for p in activity.pauses] == [timedelta(seconds=17)]


def test_tcx_gz_gives_laps_speed_and_distance_from_the_file() -> None:
    fit = fit_run(TCX_SOURCE)
    data = gzip.decompress(TCX_FILE.read_bytes())
    assert data.startswith(b"\n\n ")  # Strava's blanks before the XML declaration
    [item] = decode_track(data, "run.tcx", kind="tcx").items
    activity, stream = item.activity, item.stream
    assert (activity.source, activity.sport, activity.device) == (
        Source.TCX,
        "running",
        "Forerunner 920XT",
    )
    assert len(activity.laps) == len(fit.activity.laps) == 4
    assert activity.distance_m == pytest.approx(fit.activity.distance_m, abs=0.05)
    assert activity.warnings == ()  # speed and distance come from the file itself
    np.testing.assert_array_equal(stream.time_us, fit.stream.time_us)
    for col in (Col.SPEED_MPS, Col.DISTANCE_M):
        np.testing.assert_allclose(stream.values[col], fit.stream.values[col], atol=0.006)


def test_import_of_a_strava_export_stores_each_run_once_with_the_fit_copy(
    run_cli: Run,
) -> None:
    with zipfile.ZipFile(EXPORT) as z:
        assert sorted(n.rpartition(".")[2] for n in z.namelist()) == [
            "csv",
            "csv",
            "gpx",
            "gz",
            "gz",
        ]
    result = run_cli("import", EXPORT, "--json")
    assert result.code == 0, result.err
    summary = result.json()
    assert summary["decoders"] == {"fitfast": 1, "stridewise-gpx": 1, "stridewise-tcx": 1}
    assert summary["imported"] + summary["replaced"] == 2
    assert summary["duplicates"] == 1  # the GPX copy of the FIT run
    rows = run_cli("activities", "--json").json()
    by_name = {r["name"]: r for r in rows}
    assert set(by_name) == {"Tuesday tempo", "Saturday long"}
    assert by_name["Tuesday tempo"]["source"] == "fit"
    assert by_name["Tuesday tempo"]["dynamics"]
    assert by_name["Saturday long"]["source"] == "tcx"
    assert by_name["Saturday long"]["dynamics"] == []


@pytest.mark.parametrize("fit_first", [True, False])
def test_the_fit_copy_wins_whichever_comes_first(
    run_cli: Run, tmp_path: Path, fit_first: bool
) -> None:
    order = [FIT_DIR / GPX_SOURCE, GPX_FILE] if fit_first else [GPX_FILE, FIT_DIR / GPX_SOURCE]
    outcomes = [run_cli("import", path, "--json").json() for path in order]
    second = outcomes[1]
    assert (second["duplicates"], second["replaced"]) == ((1, 0) if fit_first else (0, 1))
    [row] = run_cli("activities", "--json").json()
    assert row["source"] == "fit"
    assert row["decoder"] == "fitfast"


def test_a_fit_copy_without_dynamics_still_wins_over_a_longer_gpx(tmp_path: Path) -> None:
    """Source rank decides between copies equally without dynamics, before sample counts."""
    fit = fit_run(GPX_SOURCE).activity
    plain_fit = replace(fit, dynamics=(), n_samples=100)
    gpx = replace(fit, source=Source.GPX, source_ref="g#0", dynamics=(), n_samples=5000)
    with Store(tmp_path / "db.sqlite") as store:
        first = store.save_activity("me", ImportedActivity(plain_fit, empty_stream()))
        second = store.save_activity("me", ImportedActivity(gpx, empty_stream()))
        assert (first.outcome, second.outcome) == ("imported", "duplicate")
        assert store.get_activity(first.activity_id).activity.source is Source.FIT


def test_analysis_says_gpx_runs_have_no_running_dynamics(run_cli: Run) -> None:
    assert run_cli("import", GPX_FILE).code == 0
    doc = run_cli("analyze", "--since", "2000-01-01", "--json").json()
    assert doc["data"]["running_dynamics"] is False
    assert "1 run from a GPX file: no running dynamics" in " ".join(doc["data"]["limits"])
    for lim in doc["limiters"]:
        if lim["area"] != "swing":
            assert lim["probability"] is None


def test_a_ride_and_an_unnamed_type_are_not_runs() -> None:
    text = gpx_text(fit_run(GPX_SOURCE))
    ride = text.replace("<type>9</type>", "<type>1</type>").encode()
    [item] = decode_track(ride, "ride.gpx", kind="gpx").items
    activity, stream = item.activity, item.stream
    assert (activity.sport, len(stream)) == ("cycling", 0)
    other = text.replace("<type>9</type>", "").encode()
    [item] = decode_track(other, "x.gpx", kind="gpx").items
    activity = item.activity
    assert activity.sport == "generic"


# -- bad files: one clean line each, the batch goes on ---------------------------------------------

_GOOD_GPX = GPX_FILE.read_text()
_POINT = '<trkpt lat="67.2363537" lon="54.6525802">'
_BOMB = """<?xml version="1.0"?>
<!DOCTYPE gpx [
 <!ENTITY a "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa">
 <!ENTITY b "&a;&a;&a;&a;&a;&a;&a;&a;&a;&a;&a;&a;&a;&a;&a;&a;&a;&a;&a;&a;&a;&a;">
 <!ENTITY c "&b;&b;&b;&b;&b;&b;&b;&b;&b;&b;&b;&b;&b;&b;&b;&b;&b;&b;&b;&b;&b;&b;">
 <!ENTITY d "&c;&c;&c;&c;&c;&c;&c;&c;&c;&c;&c;&c;&c;&c;&c;&c;&c;&c;&c;&c;&c;&c;">
]>
<gpx version="1.1" xmlns="http://www.topografix.com/GPX/1/1"><trk><name>&d;</name>
<trkseg><trkpt lat="1" lon="1"><time>2020-01-01T00:00:00Z</time></trkpt></trkseg></trk></gpx>
"""
_EXTERNAL = """<?xml version="1.0"?>
<!DOCTYPE gpx [<!ENTITY secret SYSTEM "file:///etc/passwd">]>
<gpx version="1.1" xmlns="http://www.topografix.com/GPX/1/1"><trk><name>&secret;</name>
<trkseg><trkpt lat="1" lon="1"><time>2020-01-01T00:00:00Z</time></trkpt></trkseg></trk></gpx>
"""

BAD_TRACKS: dict[str, tuple[bytes, str]] = {
    "empty.gpx": (b"", "empty file"),
    "text.gpx": (b"just some notes", "not well-formed XML (syntax error: line 1, column 0)"),
    "cut.gpx": (_GOOD_GPX[:5000].encode(), "not well-formed XML (unclosed token"),
    "bomb.gpx": (_BOMB.encode(), "declares a DTD (refused: its entities could expand"),
    "bomb16.gpx": (
        _BOMB.replace('version="1.0"?', 'version="1.0" encoding="UTF-16"?').encode("utf-16"),
        "declares a DTD (refused",
    ),
    "external.gpx": (_EXTERNAL.encode(), "declares a DTD (refused"),
    "kml.gpx": (b'<kml xmlns="http://www.opengis.net/kml/2.2"/>', "not a GPX file"),
    "nolat.gpx": (
        _GOOD_GPX.replace(_POINT, '<trkpt lon="54.6525802">', 1).encode(),
        "track 1, segment 1, point 1: a track point needs lat and lon (GPX schema)",
    ),
    "badhr.gpx": (
        _GOOD_GPX.replace("<gpxtpx:hr>79</gpxtpx:hr>", "<gpxtpx:hr>high</gpxtpx:hr>", 1).encode(),
        "track 1, segment 1, point 1: hr 'high' is not a number",
    ),
    "badtime.gpx": (
        _GOOD_GPX.replace("2016-08-22T17:14:06Z", "yesterday", 1).encode(),
        "track 1, segment 1, point 2: time 'yesterday' is not ISO 8601",
    ),
    "gpx-as.tcx": (_GOOD_GPX.encode(), "not a TCX file"),
    "notgzip.tcx.gz": (b"plain text, not gzip", "not a valid gzip file"),
}


def test_bad_gpx_and_tcx_get_one_line_each_and_the_rest_imports(
    run_cli: Run, tmp_path: Path
) -> None:
    folder = tmp_path / "tracks"
    folder.mkdir()
    for name, (data, _) in BAD_TRACKS.items():
        (folder / name).write_bytes(data)
    (folder / "good.tcx.gz").write_bytes(TCX_FILE.read_bytes())
    result = run_cli("import", folder)
    assert result.code == 3
    assert "Traceback" not in result.err
    lines = result.err.splitlines()
    assert len(lines) == len(BAD_TRACKS)
    for name, (_, reason) in BAD_TRACKS.items():
        [line] = [ln for ln in lines if ln.startswith(f"failed: {folder / name}: ")]
        assert reason in line, line
    assert "imported 1," in result.out
    assert [r["source"] for r in run_cli("activities", "--json").json()] == ["tcx"]


def test_a_track_without_times_is_not_an_activity(run_cli: Run, tmp_path: Path) -> None:
    undated = tmp_path / "route.gpx"
    undated.write_text(
        '<gpx version="1.1" creator="x" xmlns="http://www.topografix.com/GPX/1/1"><trk><trkseg>'
        '<trkpt lat="1" lon="1"/><trkpt lat="1.001" lon="1"/></trkseg></trk></gpx>'
    )
    summary = run_cli("import", undated, "--json").json()
    assert summary["not_activity"] == [
        {"path": str(undated), "reason": "no track with timed points (GPX)"}
    ]
    assert summary["failed"] == []


def test_decode_errors_name_the_file() -> None:
    with pytest.raises(TrackImportError, match=r"^x\.tcx: not a TCX file"):
        decode_track(
            tcx_text(fit_run(TCX_SOURCE)).encode().replace(b"v2", b"v9"), "x.tcx", kind="tcx"
        )
