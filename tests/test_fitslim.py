"""The slim copy of a FIT file decodes to exactly the metadata of the whole file."""

from __future__ import annotations

import struct
import tomllib
from dataclasses import replace
from typing import Any

import fitfast
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from connectors.fit import FALLBACK, decode_fit
from connectors.fitcrc import adapt_zero_header_crc, crc16
from connectors.fitslim import METADATA_MESSAGES, slim
from planner.errors import FitImportError
from tests.conftest import FIT_DIR

INDEX: list[dict[str, Any]] = tomllib.loads((FIT_DIR / "index.toml").read_text())["file"]
NAMES = [e["name"] for e in INDEX]
# fitfast's names for METADATA_MESSAGES
METADATA_NAMES = {
    "file_id",
    "user_profile",
    "sport",
    "session",
    "lap",
    "event",
    "device_info",
    "activity",
    "field_description",
    "developer_data_id",
}


def _whole_file_metadata(data: bytes) -> dict[str, Any]:
    readable = adapt_zero_header_crc(data) or data  # fitfast's zero-header-CRC quirk
    parsed = fitfast.parse(readable)
    return {kind: messages for kind, messages in parsed.items() if kind in METADATA_NAMES}


def test_names_match_the_message_numbers() -> None:
    assert len(METADATA_NAMES) == len(METADATA_MESSAGES)


@pytest.mark.parametrize("name", NAMES)
def test_slim_copy_decodes_to_the_same_metadata(name: str) -> None:
    data = (FIT_DIR / name).read_bytes()
    slimmed = slim(data)
    assert slimmed is not None
    assert fitfast.parse(slimmed) == _whole_file_metadata(data)


def test_slim_copy_of_a_run_is_a_small_fraction_of_it() -> None:
    data = (FIT_DIR / "Fenix3-Run-1321421020.fit").read_bytes()
    slimmed = slim(data)
    assert slimmed is not None
    assert len(slimmed) < len(data) / 20
    assert "record" not in fitfast.parse(slimmed)


def test_slim_copy_has_valid_header_and_file_crcs() -> None:
    slimmed = slim((FIT_DIR / "68MK1405.FIT").read_bytes())
    assert slimmed is not None
    assert slimmed[0] == 14
    assert struct.unpack_from("<H", slimmed, 12)[0] == crc16(slimmed[:12])
    assert crc16(slimmed) == 0  # a CRC over bytes followed by their own CRC leaves 0


def test_chained_file_stays_chained() -> None:
    data = (FIT_DIR / "sample_mulitple_header.fit").read_bytes()
    slimmed = slim(data)
    assert slimmed is not None
    assert slimmed.count(b".FIT") == data.count(b".FIT") > 1


def test_wanted_message_with_a_compressed_timestamp_is_left_to_the_whole_file_decode() -> None:
    # This file's records use compressed-timestamp headers: their times depend on the message
    # before them, so a copy without those messages could decode differently.
    data = (FIT_DIR / "compressed-speed-distance.fit").read_bytes()
    assert slim(data) is not None
    assert slim(data, wanted={20}) is None  # 20: record


@pytest.mark.parametrize(
    "cut",
    [
        pytest.param(lambda d: d[:-1], id="truncated"),
        pytest.param(lambda d: d[:14], id="header-only"),
        pytest.param(lambda d: d[:11], id="shorter-than-a-header"),
        pytest.param(lambda d: d[:30] + b"\xff" + d[31:], id="undefined-local-type"),
        pytest.param(lambda d: d[:4] + b"\0\0\0\0" + d[8:], id="size-unknown"),
    ],
)
def test_anything_odd_is_left_to_the_whole_file_decode(cut: Any) -> None:
    data = (FIT_DIR / "garmin-fenix-5-run.fit").read_bytes()
    assert slim(cut(data)) is None


def test_corrupt_records_of_a_non_run_are_still_caught() -> None:
    """Metadata comes from the slim copy; the whole file's CRC is still checked."""
    data = bytearray((FIT_DIR / "garmin-fenix-5-bike.fit").read_bytes())
    data[len(data) // 2] ^= 0x01
    assert slim(bytes(data)) is not None
    with pytest.raises(FitImportError, match="CRC"):
        decode_fit(bytes(data), "bike.fit")


@pytest.mark.parametrize("name", NAMES)
def test_fast_path_metadata_equals_fitdecode(name: str) -> None:
    """Laps, pauses, device, sensors and profile: the same from both decoders."""
    data = (FIT_DIR / name).read_bytes()
    fast = decode_fit(data, name)
    slow = decode_fit(data, name, decoder=FALLBACK)
    assert [_comparable(i.activity) for i in fast.items] == [
        _comparable(i.activity) for i in slow.items
    ]
    assert fast.not_activity == slow.not_activity


def _comparable(activity: Any) -> Any:
    return replace(activity, decoder="", warnings=())


# Any change to one byte after the header must be caught: CRC-16 detects every error burst of
# up to 16 bits, so whichever path reads the file (slim copy + whole-file check, whole-file
# parse, fitdecode fallback), a changed byte ends in a one-line error, never in data.
@pytest.mark.parametrize(
    "name", ["garmin-fenix-5-run.fit", "garmin-fenix-5-bike.fit", "sample_mulitple_header.fit"]
)
@settings(max_examples=40, deadline=None)
@given(where=st.floats(0.0, 1.0, exclude_max=True), xor=st.integers(1, 255))
def test_any_changed_byte_is_an_error_not_data(name: str, where: float, xor: int) -> None:
    data = bytearray((FIT_DIR / name).read_bytes())
    position = 14 + int(where * (len(data) - 14))
    data[position] ^= xor
    with pytest.raises(FitImportError) as info:
        decode_fit(bytes(data), name)
    assert "\n" not in str(info.value)
