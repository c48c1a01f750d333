"""The one stream type: the column table in planner.schema drives the validator, the clipper,
the canonical order, the store's codec and the FIT, track and Strava builders.

Every test here runs over the table (``Col``), so a column added to it is checked everywhere
without another edit.
"""

from __future__ import annotations

import numpy as np
import pytest

from connectors.fit import build_stream
from connectors.strava import STREAM_TYPES, streams_to_columns
from planner.errors import StreamValidationError
from planner.records import ImportedActivity
from planner.schema import (
    INDEX_NAME,
    PLAUSIBLE,
    Col,
    StreamColumns,
    clip_values,
    empty_stream,
    validate_columns,
)
from planner.store import streamcodec
from tests.test_strava import START
from tests.track_files import fit_run

N = 5
T0_US = 1_700_000_000 * 1_000_000
TIMES = T0_US + 1_000_000 * np.arange(N, dtype=np.int64)
DEV = "dev_some_ciq_field"


def _inside(col: Col) -> float:
    low, high = PLAUSIBLE[col]
    return (low + high) / 2.0


def _every_column() -> StreamColumns:
    """One column per table row plus a developer field, in reverse order, values in range."""
    rng = np.random.default_rng(3)
    values = {DEV: rng.normal(size=N)}
    for i, col in enumerate(reversed(Col)):
        column = np.full(N, _inside(col)) + 0.01 * rng.random(N)
        column[i % N] = np.nan  # missing samples travel too
        values[col.value] = column
    return StreamColumns(TIMES.copy(), values)


def test_the_table_orders_the_columns_and_the_frame() -> None:
    stream = validate_columns(_every_column())
    assert list(stream.values) == [c.value for c in Col] + [DEV]
    frame = stream.to_frame()
    assert list(frame.columns) == [c.value for c in Col] + [DEV]
    assert frame.index.name == INDEX_NAME
    assert str(frame.index.tz) == "UTC"
    assert frame.index.as_unit("us").asi8.tolist() == TIMES.tolist()
    again = StreamColumns.from_frame(frame)
    assert again.time_us.tolist() == TIMES.tolist()
    for name, column in stream.values.items():
        np.testing.assert_array_equal(again.values[name], column)


def test_every_table_column_round_trips_through_the_store_codec() -> None:
    stream = validate_columns(_every_column())
    frame = streamcodec.decode(streamcodec.encode(stream))
    assert list(frame.columns) == list(stream.values)
    assert frame.index.name == INDEX_NAME
    np.testing.assert_array_equal(frame.index.as_unit("us").asi8, stream.time_us)
    for name, column in stream.values.items():
        np.testing.assert_array_equal(frame[name].to_numpy(), column)
    few = streamcodec.decode(streamcodec.encode(stream), [Col.GCT_MS.value, "not_stored"])
    assert list(few.columns) == [Col.GCT_MS.value]


def test_one_packer_for_every_stream_and_none_for_no_samples() -> None:
    run = fit_run("Fenix3-Run-1321421020.fit")
    packed = streamcodec.pack(ImportedActivity(run.activity, run.stream))
    assert (packed.stream_format, packed.n_rows) == (streamcodec.FORMAT, len(run.stream))
    empty = streamcodec.pack(ImportedActivity(run.activity, empty_stream()))
    assert (empty.stream, empty.stream_format, empty.n_rows) == (None, None, 0)
    assert validate_columns(empty_stream()).to_frame().empty


@pytest.mark.parametrize("col", list(Col), ids=str)
def test_the_validator_and_the_clipper_use_each_column_s_range(col: Col) -> None:
    low, high = PLAUSIBLE[col]
    column = np.array([low, high, low - 1.0, high + 1.0, np.nan])
    with pytest.raises(StreamValidationError, match=f"column '{col.value}' has values outside"):
        validate_columns(StreamColumns(TIMES, {col.value: column}))
    values = {col.value: column, DEV: np.full(N, 1e12)}  # developer fields have no range
    assert clip_values(values) == {col.value: 2}
    assert np.isnan(values[col.value][2:]).all()
    assert values[col.value][:2].tolist() == [low, high]
    assert column[2] == low - 1.0  # the caller's array is untouched
    validate_columns(StreamColumns(TIMES, values))  # clipped columns pass


def test_clip_counts_come_in_table_order() -> None:
    values = {c.value: np.full(N, PLAUSIBLE[c][1] + 1.0) for c in reversed(Col)}
    assert list(clip_values(values)) == [c.value for c in Col]


@pytest.mark.parametrize(
    ("stream", "message"),
    [
        (StreamColumns(TIMES.astype(np.float64), {}), "int64 microseconds"),
        (StreamColumns(TIMES[::-1].copy(), {}), "strictly increasing"),
        (StreamColumns(np.repeat(TIMES[:1], 2), {}), "strictly increasing"),
        (StreamColumns(TIMES, {"gct_ms": np.ones(N - 1)}), "has 4 rows, not 5"),
        (StreamColumns(TIMES, {"gct_seconds": np.ones(N)}), "unknown stream column"),
        (StreamColumns(TIMES, {"dev_Bad Name": np.ones(N)}), "unknown stream column"),
        (StreamColumns(TIMES, {"gct_ms": np.full(N, 200, dtype=np.int64)}), "must be float64"),
    ],
    ids=["float-times", "backwards", "repeated", "ragged", "unknown", "bad-dev", "int-column"],
)
def test_the_validator_rejects_what_the_schema_forbids(stream: StreamColumns, message: str) -> None:
    with pytest.raises(StreamValidationError, match=message):
        validate_columns(stream)


FIT_FIELDS = [(c, field) for c in Col for field in c.spec.fit]


@pytest.mark.parametrize(("col", "field"), FIT_FIELDS, ids=[f for _, f in FIT_FIELDS])
def test_the_fit_and_track_builder_reads_every_field_the_table_names(col: Col, field: str) -> None:
    raw = {"timestamp": TIMES / 1e6, field: np.full(N, _inside(col))}
    stream, notes = build_stream(raw, {})
    assert notes == []
    assert list(stream.values) == [col.value]
    assert stream.values[col.value].tolist() == [_inside(col)] * N


STRYD_FIELDS = [c for c in Col if c.spec.stryd]


@pytest.mark.parametrize("col", STRYD_FIELDS, ids=str)
def test_the_fit_builder_names_every_stryd_field_the_table_names(col: Col) -> None:
    declared = col.spec.stryd.title()  # declared names are matched case-insensitively
    raw = {"timestamp": TIMES / 1e6, declared: np.full(N, _inside(col))}
    stream, _ = build_stream(raw, {declared: ""})
    assert list(stream.values) == [col.value]


STRAVA_FIELDS = [c for c in Col if c.spec.strava]


@pytest.mark.parametrize("col", STRAVA_FIELDS, ids=str)
def test_strava_requests_and_converts_every_stream_the_table_names(col: Col) -> None:
    assert col.spec.strava in STREAM_TYPES
    raw = _inside(col) / col.spec.strava_factor
    stream, notes = streams_to_columns(START, {"time": list(range(N)), col.spec.strava: [raw] * N})
    assert notes == ()
    assert list(stream.values) == [col.value]
    assert stream.values[col.value].tolist() == pytest.approx([_inside(col)] * N)
    assert stream.time_us[0] == START.timestamp() * 1e6
