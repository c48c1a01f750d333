"""How a per-second stream is packed into one SQLite BLOB and back.

Chosen by measurement (``bench/stream_storage.py``, numbers in ``docs/storage.md``): an Arrow
IPC stream with zstd-compressed float64 columns reads an athlete's last 200 runs several times
faster than one SQLite row per sample, and stays inside the same transaction as the
activity row, which Parquet files beside the database would not.

Format v2 stores the time as a ``timestamp[us, UTC]`` column named ``time`` and one float64
column per stream column, written from :class:`~planner.schema.StreamColumns` without pandas
(decoder processes pack what they decode and never load pandas). Reading gives a pandas frame,
which is what feature code wants. Format v1 blobs (pandas' own index metadata) are still read.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np
import pyarrow as pa
import pyarrow.ipc

from planner.records import ImportedActivity, PackedActivity
from planner.schema import INDEX_NAME, StreamColumns

if TYPE_CHECKING:
    import pandas as pd

FORMAT = "arrow-ipc-zstd-v2"
READABLE = frozenset({"arrow-ipc-zstd-v1", FORMAT})
_WRITE_OPTIONS = pyarrow.ipc.IpcWriteOptions(compression="zstd")
_TIME = pa.timestamp("us", tz="UTC")


def encode(stream: StreamColumns) -> bytes:
    """Pack validated stream columns into bytes."""
    # Arrays are built from their buffers: pa.array() would import pandas to ask whether the
    # input is a Series, which is the start-up cost the decoder processes avoid.
    n = len(stream)
    arrays = [_array(_TIME, np.ascontiguousarray(stream.time_us, dtype=np.int64), n)]
    arrays += [
        _array(pa.float64(), np.ascontiguousarray(v, dtype=np.float64), n)
        for v in stream.values.values()
    ]
    table = pa.Table.from_arrays(arrays, names=[INDEX_NAME, *stream.values])
    sink = pa.BufferOutputStream()
    with pyarrow.ipc.new_stream(sink, table.schema, options=_WRITE_OPTIONS) as writer:
        writer.write_table(table)
    return bytes(sink.getvalue().to_pybytes())


def _array(kind: pa.DataType, values: np.ndarray, n: int) -> pa.Array:
    return pa.Array.from_buffers(kind, n, [None, pa.py_buffer(values)])


def pack(item: ImportedActivity) -> PackedActivity:
    """The activity with its stream encoded for the store (no samples: ``None``)."""
    if not len(item.stream):
        return PackedActivity(item.activity, None, None)
    return PackedActivity(item.activity, encode(item.stream), FORMAT, len(item.stream))


def decode(blob: bytes, columns: list[str] | None = None) -> pd.DataFrame:
    """Unpack bytes written by :func:`encode` (v1 or v2); ``columns`` limits what is read."""
    table = pyarrow.ipc.open_stream(pa.py_buffer(blob)).read_all()
    if columns is not None:
        keep = [c for c in columns if c in table.column_names]
        table = table.select([*keep, INDEX_NAME])
    frame = table.to_pandas()
    if INDEX_NAME in frame.columns:  # v2: time is a column
        frame = frame.set_index(INDEX_NAME)
    frame.index.name = INDEX_NAME
    return frame
