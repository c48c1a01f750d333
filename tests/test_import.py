"""`stridewise import` end to end: real files, real SQLite, the real CLI entry point."""

from __future__ import annotations

import gzip
import io
import json
import os
import sqlite3
import subprocess
import sys
import zipfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pandas as pd
import pyarrow as pa
import pyarrow.ipc

from connectors.archives import ImportFile, Limits, Unreadable, expand
from connectors.fit import decode_fit
from planner.schema import Col, StreamColumns
from planner.services.ingest import run_import
from planner.store.database import Store
from planner.store.streamcodec import pack
from tests.conftest import BAD_DIR, FIT_DIR, CliResult

Run = Callable[..., CliResult]

RUN_FILE = FIT_DIR / "68MK1405.FIT"
SMALL_RUN = FIT_DIR / "garmin-fenix-5-run.fit"
N_RUNS = 9  # running sessions among the bundled files (index.toml)
N_OTHER = 10  # non-running sessions: bike, walk, and 4 legs in each of 2 multisport files


def test_import_folder_then_again_changes_nothing(run_cli: Run, home: Path) -> None:
    first = run_cli("import", FIT_DIR, "--json")
    assert first.code == 0, first.err
    summary = first.json()
    assert summary["imported"] == N_RUNS
    assert summary["skipped_non_running"] == N_OTHER
    assert summary["failed"] == []
    assert [n["reason"] for n in summary["not_activity"]] == [
        "not an activity file (type: settings)"
    ]
    again = run_cli("import", FIT_DIR, "--json").json()
    assert again["imported"] == 0
    assert again["duplicates"] == 12
    listed = run_cli("activities", "--json").json()
    assert len(listed) == N_RUNS + N_OTHER
    assert sum(1 for a in listed if a["sport"] == "running") == N_RUNS


def test_bad_files_are_reported_and_the_rest_imports(run_cli: Run, tmp_path: Path) -> None:
    folder = tmp_path / "mixed"
    folder.mkdir()
    (folder / "good.fit").write_bytes(RUN_FILE.read_bytes())
    (folder / "empty.fit").write_bytes(b"")
    (folder / "cut.fit").write_bytes(RUN_FILE.read_bytes()[:5000])
    for bad in BAD_DIR.glob("*.fit"):
        (folder / bad.name).write_bytes(bad.read_bytes())
    result = run_cli("import", folder, tmp_path / "missing.fit")
    assert result.code == 3
    assert "Traceback" not in result.err
    failed_lines = [line for line in result.err.splitlines() if line.startswith("failed: ")]
    assert len(failed_lines) == 3 + len(list(BAD_DIR.glob("*.fit")))
    assert any("empty.fit: empty file" in line for line in failed_lines)
    assert any("cut.fit: truncated file" in line for line in failed_lines)
    assert any("missing.fit: no such file or folder" in line for line in failed_lines)
    assert "imported 1," in result.out
    assert len(run_cli("activities", "--json").json()) == 1


def test_json_summary_lists_failures_with_reasons(run_cli: Run, tmp_path: Path) -> None:
    bad = tmp_path / "bad.fit"
    bad.write_bytes(b"not a fit file at all, just text")
    result = run_cli("import", bad, "--json")
    assert result.code == 3
    assert result.json()["failed"] == [
        {"path": str(bad), "reason": "not a FIT file (no '.FIT' header) @ byte 0"}
    ]


def test_unknown_file_type_named_explicitly_is_an_error_line(run_cli: Run, tmp_path: Path) -> None:
    notes = tmp_path / "notes.txt"
    notes.write_text("hello")
    result = run_cli("import", notes)
    assert result.code == 3
    assert "not a FIT, GPX or TCX file (or one gzipped), folder or zip archive" in result.err


def test_fit_gz_and_athlete_option(run_cli: Run, tmp_path: Path) -> None:
    packed = tmp_path / "123.fit.gz"
    packed.write_bytes(gzip.compress(SMALL_RUN.read_bytes()))
    assert run_cli("import", "--athlete", "ana", packed).code == 0
    rows = run_cli("activities", "--athlete", "ana", "--json").json()
    assert [r["athlete"] for r in rows] == ["ana"]
    assert run_cli("activities", "--athlete", "nobody").code == 1


RIDE_GPX = """<?xml version="1.0" encoding="UTF-8"?>
<gpx creator="StravaGPX" version="1.1" xmlns="http://www.topografix.com/GPX/1/1">
 <trk><name>Lunch Ride</name><type>1</type><trkseg>
  <trkpt lat="46.5" lon="6.6"><ele>372.0</ele><time>2018-01-01T11:00:00Z</time></trkpt>
  <trkpt lat="46.5001" lon="6.6002"><ele>372.4</ele><time>2018-01-01T11:00:05Z</time></trkpt>
 </trkseg></trk>
</gpx>
"""


def _strava_export(tmp_path: Path) -> Path:
    path = tmp_path / "export_12345.zip"
    with zipfile.ZipFile(path, "w") as z:
        z.writestr(
            "activities.csv",
            "Activity ID,Activity Date,Activity Name,Activity Type,Filename\n"
            '1,"Aug 22, 2016",Tuesday tempo,Run,activities/1.fit.gz\n'
            '2,"Jun 11, 2017",Short one,Run,activities/2.fit.gz\n'
            '3,"Jan 1, 2018",Lunch Ride,Ride,activities/3.gpx\n',
        )
        z.writestr("activities/1.fit.gz", gzip.compress(RUN_FILE.read_bytes()))
        z.writestr("activities/2.fit.gz", gzip.compress(SMALL_RUN.read_bytes()))
        z.writestr("activities/3.gpx", RIDE_GPX)
        z.writestr("profile.csv", "x")
    return path


def test_strava_bulk_export(run_cli: Run, tmp_path: Path) -> None:
    result = run_cli("import", _strava_export(tmp_path), "--json")
    assert result.code == 0, result.err
    summary = result.json()
    assert summary["imported"] == 2
    assert summary["skipped_non_running"] == 1  # the ride, from its GPX
    assert summary["unsupported"] == []
    names = {a["name"] for a in run_cli("activities", "--json").json()}
    assert names == {"Tuesday tempo", "Short one", "Lunch Ride"}


def _garmin_export(tmp_path: Path) -> Path:
    inner = io.BytesIO()
    with zipfile.ZipFile(inner, "w") as z:
        z.writestr("user@example.com_1001.fit", RUN_FILE.read_bytes())
        z.writestr("user@example.com_1002.fit", (FIT_DIR / "garmin-fenix-5-bike.fit").read_bytes())
    path = tmp_path / "garmin_export.zip"
    with zipfile.ZipFile(path, "w") as z:
        z.writestr("DI_CONNECT/DI-Connect-Fitness/summary.json", "{}")
        z.writestr(
            "DI_CONNECT/DI-Connect-Uploaded-Files/UploadedFiles_0-_Part1.zip", inner.getvalue()
        )
    return path


def test_garmin_export_nested_zips(run_cli: Run, tmp_path: Path) -> None:
    summary = run_cli("import", _garmin_export(tmp_path), "--json").json()
    assert summary["imported"] == 1
    assert summary["skipped_non_running"] == 1


def test_same_run_from_strava_export_and_garmin_export_is_one_activity(
    run_cli: Run, tmp_path: Path
) -> None:
    run_cli("import", _strava_export(tmp_path))
    before = [a for a in run_cli("activities", "--json").json() if a["sport"] == "running"]
    run_cli("import", _garmin_export(tmp_path))
    after = [a for a in run_cli("activities", "--json").json() if a["sport"] == "running"]
    # Both exports hold the same bytes for 68MK1405: recognised by content hash, no new row.
    assert len(after) == len(before)


def test_richer_copy_wins_across_sources(tmp_path: Path) -> None:
    """A stream without dynamics (as from Strava) is replaced by the FIT copy of the same run."""
    from dataclasses import replace

    from connectors.fit import decode_fit
    from planner.records import ImportedActivity, Source

    decoded = decode_fit(RUN_FILE.read_bytes())
    fit_copy = decoded.items[0]
    poorer = ImportedActivity(
        replace(
            fit_copy.activity,
            source=Source.STRAVA,
            source_ref="987",
            dynamics=(),
            elapsed_s=fit_copy.activity.elapsed_s + 3,
        ),
        StreamColumns(
            fit_copy.stream.time_us,
            {c: fit_copy.stream.values[c] for c in (Col.SPEED_MPS.value, Col.HEART_RATE_BPM.value)},
        ),
    )
    with Store(tmp_path / "db.sqlite") as store:
        first = store.save_activity("me", poorer)
        assert first.outcome == "imported"
        second = store.save_file_import("me", decoded.content_hash, "x.fit", [pack(fit_copy)])[0]
        assert second.outcome == "replaced"
        assert second.activity_id == first.activity_id
        stored = store.get_activity(first.activity_id)
        assert stored.activity.source is Source.FIT
        assert Col.GCT_MS.value in store.load_stream(first.activity_id).columns
        # A later Strava sync recognises its own id without fetching again...
        assert store.find_source_ref("me", Source.STRAVA, "987") == first.activity_id
        # ...and saving the poorer copy again keeps the richer one.
        assert store.save_activity("me", poorer).outcome == "duplicate"
        assert store.get_activity(first.activity_id).activity.source is Source.FIT


def test_zip_slip_member_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "evil.zip"
    with zipfile.ZipFile(path, "w") as z:
        z.writestr("../../escape.fit", SMALL_RUN.read_bytes())
        z.writestr("ok/run.fit", SMALL_RUN.read_bytes())
    items = expand([path])
    assert [type(i) for i in items] == [Unreadable, ImportFile]
    assert "unsafe path" in items[0].reason  # type: ignore[union-attr]
    assert not (tmp_path.parent / "escape.fit").exists()


def test_zip_bomb_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "bomb.zip"
    with zipfile.ZipFile(path, "w", compression=zipfile.ZIP_DEFLATED) as z:
        z.writestr("big.fit", b"\x00" * (8 * 1024 * 1024))  # ~1000:1
    items = expand([path])
    assert isinstance(items[0], Unreadable)
    assert "zip bomb" in items[0].reason
    small_cap = expand([path], Limits(max_total_bytes=1024))
    assert isinstance(small_cap[0], Unreadable)
    assert "inflate" in small_cap[0].reason


def test_gzip_that_inflates_past_the_cap_fails_cleanly(run_cli: Run, tmp_path: Path) -> None:
    path = tmp_path / "big.fit.gz"
    path.write_bytes(gzip.compress(b"\x00" * 4096))
    items = expand([path], Limits(max_member_bytes=1000))
    assert isinstance(items[0], ImportFile)
    with Store() as store:
        summary = run_import(store, items, "me")
    assert summary.failed
    assert "inflates beyond 1000 bytes" in summary.failed[0][1]


def test_gpx_and_tcx_are_sources_with_their_kind(tmp_path: Path) -> None:
    (tmp_path / "a.gpx").write_text("<gpx/>")
    (tmp_path / "b.tcx.gz").write_bytes(gzip.compress(b"<tcx/>"))
    (tmp_path / "c.GPX.gz").write_bytes(gzip.compress(b"<gpx/>"))
    (tmp_path / "d.TCX").write_text("<tcx/>")
    items = expand([tmp_path])
    assert [(type(i), getattr(i, "kind", None)) for i in items] == [
        (ImportFile, "gpx"),
        (ImportFile, "tcx"),
        (ImportFile, "gpx"),
        (ImportFile, "tcx"),
    ]
    assert isinstance(items[1], ImportFile)
    assert items[1].open() == b"<tcx/>"


def test_unreadable_file_is_reported(run_cli: Run, tmp_path: Path) -> None:
    if os.geteuid() == 0:
        # root reads anything; a dangling symlink is unreadable for everyone.
        target = tmp_path / "gone.fit"
        target.symlink_to(tmp_path / "nowhere.fit")
    else:
        target = tmp_path / "locked.fit"
        target.write_bytes(SMALL_RUN.read_bytes())
        target.chmod(0)
    result = run_cli("import", target)
    assert result.code == 3
    assert target.name in result.err


def test_worker_pool_gives_the_same_store_as_one_process(tmp_path: Path) -> None:
    items = expand([FIT_DIR])
    with Store(tmp_path / "one.db") as one:
        serial = run_import(one, items, "me", workers=1)
        rows_one = [(a.activity.source_ref, a.activity.n_samples) for a in one.list_activities()]
    with Store(tmp_path / "two.db") as two:
        pooled = run_import(two, expand([FIT_DIR]), "me", workers=2)
        rows_two = [(a.activity.source_ref, a.activity.n_samples) for a in two.list_activities()]
    assert serial.as_json()["imported"] == pooled.as_json()["imported"] == N_RUNS
    assert sorted(rows_one) == sorted(rows_two)


def test_interrupted_import_keeps_what_was_stored_and_resumes(tmp_path: Path) -> None:
    """Ctrl-C half-way: files stored before it stay; a re-run adds the rest, no duplicates."""
    items = expand([FIT_DIR])
    calls = 0

    def interrupt_after_three(display: str, size: int) -> None:
        nonlocal calls
        calls += 1
        if calls == 3:
            raise KeyboardInterrupt

    with Store() as store:
        first = run_import(store, items, "me", progress=interrupt_after_three, workers=1)
        assert first.interrupted
        kept = len(store.list_activities())
        assert kept > 0
    with Store() as store:
        second = run_import(store, expand([FIT_DIR]), "me", workers=1)
        assert not second.interrupted
        assert len(store.list_activities()) == N_RUNS + N_OTHER
        assert second.duplicates >= 3


def test_export_csv_and_parquet(run_cli: Run, tmp_path: Path) -> None:
    run_cli("import", RUN_FILE)
    activity_id = run_cli("activities", "--json").json()[0]["id"]
    csv_result = run_cli("export", activity_id)
    assert csv_result.code == 0
    header = csv_result.out.splitlines()[0].split(",")
    assert header[0] == "time"
    assert {"speed_mps", "cadence_spm", "gct_ms", "gct_balance_left_pct"} <= set(header)
    out = tmp_path / "run.parquet"
    assert run_cli("export", activity_id, "--format", "parquet", "-o", out).code == 0
    frame = pd.read_parquet(out)
    assert len(frame) == 2162
    assert str(frame["time"].dt.tz) == "UTC"
    assert run_cli("export", 9999).code == 1
    assert run_cli("export", activity_id, "--format", "parquet").code == 2


def test_db_option_and_home_variable(run_cli: Run, tmp_path: Path, home: Path) -> None:
    db = tmp_path / "elsewhere.db"
    assert run_cli("--db", db, "import", SMALL_RUN).code == 0
    with sqlite3.connect(db) as conn:
        assert conn.execute("SELECT COUNT(*) FROM activities").fetchone()[0] == 1
    assert not (home / "stridewise.db").exists()
    run_cli("import", SMALL_RUN)
    assert (home / "stridewise.db").exists()


def test_usage_error_exits_2(run_cli: Run) -> None:
    result = run_cli("import")
    assert result.code == 2
    assert "Traceback" not in result.err


def _modules_loaded_by_import(*paths: Path) -> tuple[dict[str, Any], list[str]]:
    """Run the real CLI's import in a fresh interpreter: its JSON summary, heavy modules."""
    script = (
        "import sys, json, cli\n"
        "try:\n"
        "    cli.main(['import', '--json', *sys.argv[1:]])\n"
        "except SystemExit:\n"
        "    pass\n"
        "heavy = sorted(m for m in ('numpy', 'pandas', 'pyarrow', 'fitfast') if m in sys.modules)\n"
        "print(json.dumps(heavy), file=sys.stderr)\n"
    )
    proc = subprocess.run(
        [sys.executable, "-c", script, *map(str, paths)],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    return json.loads(proc.stdout), json.loads(proc.stderr.strip().splitlines()[-1])


def test_batch_import_stores_from_a_process_without_pandas() -> None:
    """Workers decode and pack; the process that writes the database stays light.

    Start-up of the CLI process is on the critical path of every batch import: it must not
    load numpy, pyarrow or the decoder, let alone pandas.
    """
    summary, heavy = _modules_loaded_by_import(FIT_DIR)
    assert summary["imported"] >= 8  # the batch really ran through the decoder processes
    assert heavy == []


def test_importing_one_file_never_loads_pandas() -> None:
    """Decode, validate and pack in numpy and pyarrow: pandas alone costs ~0.4 s to load."""
    summary, heavy = _modules_loaded_by_import(FIT_DIR / "Fenix3-Run-1321421020.fit")
    assert summary["imported"] == 1
    assert heavy == ["fitfast", "numpy", "pyarrow"]


def test_streams_stored_by_format_v1_are_still_read(tmp_path: Path) -> None:
    """v1 blobs (pandas index metadata, written before 0.1.0's numpy packing) stay readable."""
    frame = decode_fit((FIT_DIR / "garmin-fenix-5-run.fit").read_bytes()).items[0].stream.to_frame()
    table = pa.Table.from_pandas(frame, preserve_index=True)  # how v1 was written
    sink = pa.BufferOutputStream()
    options = pa.ipc.IpcWriteOptions(compression="zstd")
    with pa.ipc.new_stream(sink, table.schema, options=options) as writer:
        writer.write_table(table)
    v1 = sink.getvalue().to_pybytes()
    with Store(tmp_path / "db.sqlite") as store:
        run_import(store, expand([FIT_DIR / "garmin-fenix-5-run.fit"]), "me")
        store.db.execute("UPDATE streams SET format = 'arrow-ipc-zstd-v1', data = ?", (v1,))
        store.db.commit()
        (activity_id,) = store.db.execute("SELECT activity_id FROM streams").fetchone()
        pd.testing.assert_frame_equal(store.load_stream(activity_id), frame)
