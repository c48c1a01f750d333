"""FIT decoding on real files: the index says what each bundled file must yield."""

from __future__ import annotations

import io
import struct
import tomllib
from typing import Any

import fitdecode
import numpy as np
import pandas as pd
import pytest

from connectors.fit import (
    FALLBACK,
    FAST,
    build_stream,
    decode_fit,
    raw_columns,
)
from connectors.fitcrc import adapt_zero_header_crc, crc16, shift_through_zeros
from planner.errors import FitImportError
from planner.grade import _centred_median, derive_grade_pct
from planner.schema import Col, StreamColumns, validate_columns
from tests.conftest import BAD_DIR, FIT_DIR

INDEX: list[dict[str, Any]] = tomllib.loads((FIT_DIR / "index.toml").read_text())["file"]
RUNS_WITH_DYNAMICS = [e for e in INDEX if e["dynamics"]]


def _ids(entries: list[dict[str, Any]]) -> list[str]:
    return [e["name"] for e in entries]


def test_index_describes_every_bundled_file() -> None:
    on_disk = {p.name for p in FIT_DIR.iterdir() if p.suffix.lower() == ".fit"}
    assert on_disk == {e["name"] for e in INDEX}


@pytest.mark.parametrize("decoder", ["auto", FALLBACK])
@pytest.mark.parametrize("entry", INDEX, ids=_ids(INDEX))
def test_decodes_as_indexed(entry: dict[str, Any], decoder: str) -> None:
    data = (FIT_DIR / entry["name"]).read_bytes()
    decoded = decode_fit(data, entry["name"], decoder=decoder)
    assert decoded.decoder == (FAST if decoder == "auto" else FALLBACK)
    assert [i.activity.sport for i in decoded.items] == entry["sports"]
    assert (decoded.not_activity is not None) == entry.get("not_activity", False)
    runs = [i for i in decoded.items if i.activity.is_running]
    assert [len(r.stream) for r in runs] == entry["run_samples"]
    for run in runs:
        assert sorted(run.activity.dynamics) == sorted(entry["dynamics"])
        assert run.activity.device == entry["device"]
        assert run.activity.height_m == entry.get("height_m")
        assert run.activity.n_samples == len(run.stream)
        assert validate_columns(run.stream) is run.stream  # valid, in canonical order
        assert run.activity.source_ref.startswith(decoded.content_hash)
    # Non-running sessions are kept as metadata with no stream.
    assert all(len(i.stream) == 0 for i in decoded.items if not i.activity.is_running)
    assert len(raw_columns(data).get("timestamp", [])) == entry["records"] or entry["records"] == 0


@pytest.mark.parametrize("entry", RUNS_WITH_DYNAMICS, ids=_ids(RUNS_WITH_DYNAMICS))
def test_running_dynamics_match_fitdecode(entry: dict[str, Any]) -> None:
    """Values and scaling of the fast path equal fitdecode's on the same file."""
    data = (FIT_DIR / entry["name"]).read_bytes()
    fast = raw_columns(data, FAST)
    slow = raw_columns(data, FALLBACK)
    compared = 0
    for field in (
        "stance_time",
        "stance_time_balance",
        "vertical_oscillation",
        "vertical_ratio",
        "step_length",
        "stance_time_percent",
        "cadence",
        "fractional_cadence",
        "heart_rate",
        "timestamp",
    ):
        if field in slow:
            np.testing.assert_allclose(
                fast[field], slow[field], rtol=1e-6, equal_nan=True, err_msg=field
            )
            compared += 1
    assert compared >= 3


@pytest.mark.parametrize("entry", RUNS_WITH_DYNAMICS, ids=_ids(RUNS_WITH_DYNAMICS))
def test_both_decoders_give_the_same_frame(entry: dict[str, Any]) -> None:
    data = (FIT_DIR / entry["name"]).read_bytes()
    fast = [i.stream.to_frame() for i in decode_fit(data).items if i.activity.is_running]
    slow = [
        i.stream.to_frame()
        for i in decode_fit(data, decoder=FALLBACK).items
        if i.activity.is_running
    ]
    for a, b in zip(fast, slow, strict=True):
        # fitdecode expands enhanced_speed from speed and rounds the last digit differently
        # (4.086 vs 4.087 m/s): allow one unit of the field's 0.001 resolution.
        pd.testing.assert_frame_equal(a, b, check_exact=False, rtol=0, atol=1.01e-3)


def test_cadence_is_steps_per_minute_from_cycles_and_fraction() -> None:
    data = (FIT_DIR / "68MK1405.FIT").read_bytes()
    raw = raw_columns(data, FALLBACK)
    frame = next(i.stream.to_frame() for i in decode_fit(data).items)
    expected = 2.0 * (raw["cadence"] + np.nan_to_num(raw["fractional_cadence"]))
    # Running cadence in FIT counts strides; a runner's steps/min sits around 150-200.
    assert 140 < float(np.nanmedian(frame[Col.CADENCE_SPM.value])) < 210
    np.testing.assert_allclose(frame[Col.CADENCE_SPM.value].to_numpy(), expected[: len(frame)])


def test_stryd_developer_fields_are_named_and_unit_normalised() -> None:
    ts = np.array([1.5e9, 1.5e9 + 1])
    raw = {
        "timestamp": ts,
        "Vertical Oscillation": np.array([7.5, 8.0]),  # Stryd writes cm
        "Ground Time": np.array([250.0, 252.0]),
        "Leg Spring Stiffness": np.array([11.2, 11.4]),
        "Cadence": np.array([85.0, 86.0]),
        "Some CIQ Field": np.array([1.0, 2.0]),
    }
    units = {
        "Vertical Oscillation": "Centimeters",
        "Ground Time": "Milliseconds",
        "Leg Spring Stiffness": "kN/m",
        "Cadence": "RPM",
        "Some CIQ Field": "x",
    }
    stream, _ = build_stream(raw, units)
    frame = stream.to_frame()
    assert frame[Col.STRYD_VERTICAL_OSCILLATION_MM.value].tolist() == [75.0, 80.0]
    assert frame[Col.STRYD_GCT_MS.value].tolist() == [250.0, 252.0]
    assert frame[Col.STRYD_CADENCE_SPM.value].tolist() == [170.0, 172.0]
    assert frame["dev_some_ciq_field"].tolist() == [1.0, 2.0]


def test_real_stryd_file_has_form_power_and_stiffness() -> None:
    decoded = decode_fit((FIT_DIR / "developer-types-sample.fit").read_bytes())
    stream = decoded.items[0].stream.to_frame()
    assert 50 < stream[Col.FORM_POWER_W.value].median() < 150
    assert 5 < stream[Col.LEG_SPRING_STIFFNESS_KN_M.value].median() < 20


def test_implausible_values_become_missing_with_a_warning() -> None:
    raw = {
        "timestamp": np.array([1.5e9, 1.5e9 + 1, 1.5e9 + 2]),
        "stance_time": np.array([250.0, 5000.0, 260.0]),
    }
    stream, notes = build_stream(raw, {})
    assert np.isnan(stream.values[Col.GCT_MS.value][1])
    assert any("implausible gct_ms" in n for n in notes)


def test_records_are_put_in_time_order_and_repeats_dropped() -> None:
    raw = {
        "timestamp": np.array([1.5e9 + 2, 1.5e9, np.nan, 1.5e9 + 1, 1.5e9 + 1]),
        "heart_rate": np.array([152.0, 150.0, 199.0, 151.0, 160.0]),
        "power": np.full(5, np.nan),  # declared, never filled: no column
    }
    stream, notes = build_stream(raw, {})
    assert stream.time_us.tolist() == [1_500_000_000_000_000 + s * 1_000_000 for s in range(3)]
    assert stream.values[Col.HEART_RATE_BPM.value].tolist() == [150.0, 151.0, 152.0]
    assert list(stream.values) == [Col.HEART_RATE_BPM.value]
    assert notes == ["1 records with a repeated timestamp dropped"]


@pytest.mark.parametrize("n", [1, 2, 3, 5, 6, 50, 400])
def test_altitude_smoothing_equals_pandas_rolling_median(n: int) -> None:
    rng = np.random.default_rng(n)
    altitude = rng.normal(100.0, 3.0, n)
    altitude[rng.random(n) < 0.3] = np.nan
    expected = pd.Series(altitude).rolling(5, center=True, min_periods=1).median().to_numpy()
    np.testing.assert_array_equal(_centred_median(altitude, 5), expected)


def test_grade_from_distance_and_altitude() -> None:
    distance = np.arange(0, 300, 3.0)  # 3 m/s
    altitude = distance * 0.05  # a steady 5 % climb
    grade = derive_grade_pct(distance, altitude)
    assert np.nanmedian(grade) == pytest.approx(5.0, abs=0.2)
    standing = derive_grade_pct(np.zeros(40), np.linspace(0, 4, 40))
    assert np.isnan(standing).all()  # no distance covered: no grade, not a 40 % "hill"


def test_multisport_keeps_only_the_run_leg_stream() -> None:
    decoded = decode_fit((FIT_DIR / "triathlon_summary_first.fit").read_bytes())
    run = next(i for i in decoded.items if i.activity.is_running)
    start = pd.Timestamp(run.activity.start_utc)
    index = run.stream.to_frame().index
    assert index.min() >= start
    assert index.max() <= start + pd.Timedelta(seconds=run.activity.elapsed_s)
    assert len({i.activity.source_ref for i in decoded.items}) == len(decoded.items)


# -- corrupt input: one clear reason each, and fitdecode agrees ------------------------------

GOOD = (FIT_DIR / "garmin-fenix-5-run.fit").read_bytes()


def _corrupt_variants() -> dict[str, tuple[bytes, str]]:
    flipped = bytearray(GOOD)
    for i in range(len(GOOD) // 2, len(GOOD) // 2 + 16):
        flipped[i] ^= 0x5A
    bad_crc = bytearray(GOOD)
    bad_crc[-1] ^= 0xFF
    return {
        "zero-length": (b"", "empty file"),
        "header-only": (GOOD[:14], "truncated"),
        "truncated-half": (GOOD[: len(GOOD) // 2], "truncated"),
        "truncated-last-byte": (GOOD[:-1], "truncated"),
        "bad-file-crc": (bytes(bad_crc), "bad CRC, file is corrupt"),
        "flipped-bytes": (bytes(flipped), "corrupt"),
        "not-fit": (b"<?xml version='1.0'?><gpx></gpx>" * 3, "not a FIT file"),
    }


CORRUPT = _corrupt_variants()


@pytest.mark.parametrize("name", list(CORRUPT))
def test_corrupt_files_fail_with_one_line_reason(name: str) -> None:
    data, reason = CORRUPT[name]
    with pytest.raises(FitImportError) as info:
        decode_fit(data, f"{name}.fit")
    message = str(info.value)
    assert message.startswith(f"{name}.fit: ")
    assert reason in message
    assert "\n" not in message


@pytest.mark.parametrize("name", [n for n in CORRUPT if n != "zero-length"])
def test_fitdecode_strict_rejects_the_same_files(name: str) -> None:
    """Files rejected without the slow fallback are ones fitdecode's strict mode rejects too."""
    data, _ = CORRUPT[name]
    reader = fitdecode.FitReader(io.BytesIO(data), check_crc=fitdecode.CrcCheck.RAISE)
    with pytest.raises((fitdecode.FitError, ValueError)), reader:
        for _ in reader:
            pass


@pytest.mark.parametrize("path", sorted(BAD_DIR.glob("*.fit")), ids=lambda p: p.name)
def test_bundled_bad_files_fail(path: Any) -> None:
    with pytest.raises(FitImportError, match=path.name):
        decode_fit(path.read_bytes(), path.name)


# -- zero header CRC ---------------------------------------------------------------------------


def test_crc_is_crc16_arc() -> None:
    assert crc16(b"123456789") == 0xBB3D  # the catalogued check value of CRC-16/ARC


def test_crc_shift_equals_feeding_zero_bytes() -> None:
    for start in (0, 1, 0x1234, 0xFFFF):
        for n in (0, 1, 7, 100):
            assert shift_through_zeros(start, n) == crc16(b"\x00" * n, start)


def test_zero_header_crc_file_is_read_by_the_fast_path_and_still_verified() -> None:
    data = (FIT_DIR / "2013-02-06-12-11-14.fit").read_bytes()
    assert data[12:14] == b"\x00\x00"
    decoded = decode_fit(data)
    assert decoded.decoder == FAST
    assert any("header CRC not set" in w for w in decoded.items[0].activity.warnings)
    tampered = bytearray(data)
    tampered[len(data) // 2] ^= 0x01
    assert adapt_zero_header_crc(bytes(tampered)) is not None
    with pytest.raises(FitImportError, match="CRC"):
        decode_fit(bytes(tampered), "tampered.fit")


def test_adapt_leaves_files_with_a_header_crc_alone() -> None:
    assert struct.unpack_from("<H", GOOD, 12)[0] != 0
    assert adapt_zero_header_crc(GOOD) is None


# -- device clock not set ----------------------------------------------------------------------


@pytest.mark.parametrize("decoder", ["auto", FALLBACK])
def test_file_without_a_set_clock_is_dated_alike_and_flagged(decoder: str) -> None:
    # An FR70 run whose date_time values are seconds since power-on (below 0x10000000).
    data = (FIT_DIR / "compressed-speed-distance.fit").read_bytes()
    activity = decode_fit(data, decoder=decoder).items[0].activity
    assert activity.start_utc.year == 1990  # FIT epoch + seconds since power-on, as fitfast does
    assert activity.laps[0].start_utc == activity.start_utc
    assert any("device clock was not set" in w for w in activity.warnings)


def test_file_with_a_set_clock_is_not_flagged() -> None:
    activity = decode_fit(GOOD).items[0].activity
    assert not any("clock" in w for w in activity.warnings)


def test_stream_columns_slice_inclusively_and_round_trip_through_a_frame() -> None:
    seconds = 1.5e9 + np.arange(10.0)
    stream, _ = build_stream({"timestamp": seconds, "heart_rate": 100.0 + np.arange(10.0)}, {})
    part = stream.between(int(stream.time_us[2]), int(stream.time_us[5]))
    assert part.values[Col.HEART_RATE_BPM.value].tolist() == [102.0, 103.0, 104.0, 105.0]
    frame = part.to_frame()
    assert str(frame.index.dtype) == "datetime64[us, UTC]"
    again = StreamColumns.from_frame(frame)
    assert again.time_us.tolist() == part.time_us.tolist()
    pd.testing.assert_frame_equal(again.to_frame(), frame)
