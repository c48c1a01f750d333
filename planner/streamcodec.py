"""How a per-second stream frame is packed into one SQLite BLOB and back.

Chosen by measurement (``bench/stream_storage.py``, numbers in ``docs/storage.md``): an Arrow
IPC stream with zstd-compressed float64 columns reads an athlete's last 200 runs several times
faster than one SQLite row per sample, and stays inside the same transaction as the
activity row, which Parquet files beside the database would not.
"""

from __future__ import annotations

import pandas as pd
import pyarrow as pa

from planner.records import ImportedActivity, PackedActivity
from planner.schema import INDEX_NAME

FORMAT = "arrow-ipc-zstd-v1"
_WRITE_OPTIONS = pa.ipc.IpcWriteOptions(compression="zstd")


def encode(frame: pd.DataFrame) -> bytes:
    """Pack a validated stream frame (UTC index ``time``) into bytes."""
    table = pa.Table.from_pandas(frame, preserve_index=True)
    sink = pa.BufferOutputStream()
    with pa.ipc.new_stream(sink, table.schema, options=_WRITE_OPTIONS) as writer:
        writer.write_table(table)
    return bytes(sink.getvalue().to_pybytes())


def pack(item: ImportedActivity) -> PackedActivity:
    """The activity with its stream encoded for the store (no stream: ``None``)."""
    if not len(item.stream.index):
        return PackedActivity(item.activity, None, None)
    return PackedActivity(item.activity, encode(item.stream), FORMAT, len(item.stream))


def decode(blob: bytes, columns: list[str] | None = None) -> pd.DataFrame:
    """Unpack bytes written by :func:`encode`; ``columns`` limits what is materialised."""
    table = pa.ipc.open_stream(pa.py_buffer(blob)).read_all()
    if columns is not None:
        keep = [c for c in columns if c in table.column_names]
        table = table.select([*keep, INDEX_NAME])
    frame = table.to_pandas()
    frame.index.name = INDEX_NAME
    return frame
