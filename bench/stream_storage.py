"""How to store per-second streams: measured, not guessed.

    .venv/bin/python bench/stream_storage.py [--runs 200]

Reads "one athlete's last N runs" — the access pattern of `analyze` — from three layouts
holding the same frames, in one run:

* rows: one SQLite row per sample (a wide table with one column per stream field);
* blob: one SQLite BLOB per activity, Arrow IPC with zstd (what stridewise uses);
* parquet: one Parquet file per activity beside the database.

Prints write time, read time for all N runs and for 4 columns of them, and bytes on disk,
with ratios against the rows layout (the baseline).
"""

from __future__ import annotations

import argparse
import sqlite3
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pandas as pd

from connectors.fit import decode_fit
from planner.schema import StreamColumns
from planner.store import streamcodec

ROOT = Path(__file__).resolve().parent.parent
RUN = ROOT / "tests" / "fixtures" / "fit" / "Fenix3-Run-1321421020.fit"
FEW = ["speed_mps", "cadence_spm", "gct_ms", "gct_balance_left_pct"]


def frames(n: int) -> list[pd.DataFrame]:
    """N distinct real-looking runs: the bundled 95-minute run, shifted and jittered."""
    base = decode_fit(RUN.read_bytes()).items[0].stream.to_frame()
    rng = np.random.default_rng(7)
    out = []
    for i in range(n):
        frame = base.copy()
        frame.index = frame.index + pd.Timedelta(days=i)
        noise = rng.normal(1.0, 0.01, size=frame.shape)
        out.append(frame * noise)
    return out


def timed(fn: Callable[[], object]) -> float:
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


class Rows:
    name = "rows (one SQLite row per sample)"

    def __init__(self, folder: Path, columns: list[str]):
        self.db = sqlite3.connect(folder / "rows.db")
        self.columns = columns
        cols = ", ".join(f'"{c}" REAL' for c in columns)
        self.db.execute(f"CREATE TABLE s (activity_id INTEGER, t INTEGER, {cols})")
        self.db.execute("CREATE INDEX s_a ON s (activity_id, t)")
        self.path = folder / "rows.db"

    def write(self, frames: list[pd.DataFrame]) -> None:
        marks = ", ".join("?" for _ in range(len(self.columns) + 2))
        with self.db:
            for i, frame in enumerate(frames):
                ts = frame.index.asi8 // 1_000_000_000
                values = frame.reindex(columns=self.columns).to_numpy()
                rows = [(i, int(t), *map(_none, v)) for t, v in zip(ts, values, strict=True)]
                self.db.executemany(f"INSERT INTO s VALUES ({marks})", rows)

    def read(self, ids: list[int], columns: list[str] | None) -> list[pd.DataFrame]:
        cols = columns or self.columns
        sql = f"SELECT t, {', '.join(repr(c).replace(chr(39), chr(34)) for c in cols)} FROM s"
        return [
            pd.read_sql_query(sql + " WHERE activity_id = ? ORDER BY t", self.db, params=(i,))
            for i in ids
        ]


def _none(value: float) -> float | None:
    return None if np.isnan(value) else float(value)


class Blob:
    name = "blob (Arrow IPC + zstd in SQLite)"

    def __init__(self, folder: Path, columns: list[str]):
        self.path = folder / "blob.db"
        self.db = sqlite3.connect(self.path)
        self.db.execute("CREATE TABLE s (activity_id INTEGER PRIMARY KEY, data BLOB)")

    def write(self, frames: list[pd.DataFrame]) -> None:
        with self.db:
            for i, frame in enumerate(frames):
                self.db.execute(
                    "INSERT INTO s VALUES (?, ?)",
                    (i, streamcodec.encode(StreamColumns.from_frame(frame))),
                )

    def read(self, ids: list[int], columns: list[str] | None) -> list[pd.DataFrame]:
        out = []
        for i in ids:
            (blob,) = self.db.execute("SELECT data FROM s WHERE activity_id = ?", (i,)).fetchone()
            out.append(streamcodec.decode(blob, columns))
        return out


class Parquet:
    name = "parquet (one file per activity)"

    def __init__(self, folder: Path, columns: list[str]):
        self.path = folder / "parquet"
        self.path.mkdir()

    def write(self, frames: list[pd.DataFrame]) -> None:
        for i, frame in enumerate(frames):
            frame.to_parquet(self.path / f"{i}.parquet", compression="zstd")

    def read(self, ids: list[int], columns: list[str] | None) -> list[pd.DataFrame]:
        return [pd.read_parquet(self.path / f"{i}.parquet", columns=columns) for i in ids]


def size_of(path: Path) -> int:
    if path.is_dir():
        return sum(p.stat().st_size for p in path.iterdir())
    return path.stat().st_size


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--runs", type=int, default=200)
    args = parser.parse_args()
    data = frames(args.runs)
    columns = list(data[0].columns)
    ids = list(range(args.runs))
    samples = sum(len(f) for f in data)
    print(f"{args.runs} runs, {samples} samples, {len(columns)} columns each")
    results = []
    with tempfile.TemporaryDirectory() as tmp:
        for kind in (Rows, Blob, Parquet):
            folder = Path(tmp) / kind.__name__
            folder.mkdir()
            layout = kind(folder, columns)
            write = timed(lambda layout=layout: layout.write(data))
            read_all = min(timed(lambda layout=layout: layout.read(ids, None)) for _ in range(3))
            read_few = min(timed(lambda layout=layout: layout.read(ids, FEW)) for _ in range(3))
            results.append((layout.name, write, read_all, read_few, size_of(layout.path)))
    base = results[0]
    print(
        f"{'layout':<36} {'write s':>8} {'read all s':>11} {'read 4 cols s':>14} {'MB':>7}"
        f"  read-all vs rows"
    )
    for name, write, read_all, read_few, size in results:
        print(
            f"{name:<36} {write:>8.2f} {read_all:>11.3f} {read_few:>14.3f}"
            f" {size / 1e6:>7.1f}  {base[2] / read_all:>6.1f}x faster"
        )


if __name__ == "__main__":
    main()
