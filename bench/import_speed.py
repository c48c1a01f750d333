"""Import throughput of `stridewise import` against plain fitdecode and fitparse loops.

One command, one run, same files for every tool:

    .venv/bin/python bench/import_speed.py            # whole ../shared/fixtures/fit corpus
    .venv/bin/python bench/import_speed.py --limit 30 # a quicker sample

stridewise is measured end to end as a user runs it: a fresh process, decode, validated
frame, stored in SQLite. The baselines only decode (every message of every file, strict CRC
for fitdecode), so the ratio flatters the baselines. Peak memory is that of the whole process
tree (the CLI, the forkserver and the decoder processes: the peak of their summed
proportional set size, sampled every 10 ms in separate runs so sampling does not slow the timed
ones) for the largest half of the files and for all of them: adding files must not raise it.
"""

from __future__ import annotations

import argparse
import gzip
import io
import json
import os
import subprocess
import sys
import tempfile
import threading
import time
import warnings
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
CORPUS = ROOT.parent / "shared" / "fixtures" / "fit"
BUNDLED = ROOT / "tests" / "fixtures"
TARGET_RATIO = 20.0


def corpus_files(limit: int | None) -> tuple[Path, list[Path]]:
    root = CORPUS if CORPUS.is_dir() else BUNDLED
    files = sorted(
        p for p in root.rglob("*") if p.is_file() and p.name.lower().endswith((".fit", ".fit.gz"))
    )
    if limit:
        step = max(1, len(files) // limit)
        files = files[::step][:limit]
    return root, files


def read(path: Path) -> bytes:
    data = path.read_bytes()
    return gzip.decompress(data) if path.name.lower().endswith(".gz") else data


def stridewise_import(
    files: list[Path], *, sample_memory: bool = False
) -> tuple[float, dict[str, object], int]:
    """Wall time, JSON summary and peak memory (KiB) of one `stridewise import` process.

    Memory is the peak of the process tree's summed PSS when ``sample_memory`` is set, else
    the CLI process's own max RSS (from wait4).
    """
    with tempfile.TemporaryDirectory() as home, tempfile.TemporaryDirectory() as staging:
        # Hard links keep file names unique across sub-folders without copying bytes.
        for i, path in enumerate(files):
            link = Path(staging) / f"{i:04d}_{path.name}"
            try:
                os.link(path, link)
            except OSError:
                link.write_bytes(path.read_bytes())
        env = {**os.environ, "STRIDEWISE_HOME": home}
        cmd = [str(Path(sys.executable).with_name("stridewise")), "import", "--json", staging]
        start = time.perf_counter()
        proc = subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        sampler = _TreeMemory(proc.pid) if sample_memory else None
        assert proc.stdout is not None
        assert proc.stderr is not None
        out = proc.stdout.read()  # small: a JSON summary; stderr is silent off a terminal
        err = proc.stderr.read()
        _, status, usage = os.wait4(proc.pid, 0)
        elapsed = time.perf_counter() - start
        peak = sampler.stop() if sampler is not None else usage.ru_maxrss
    if os.waitstatus_to_exitcode(status) not in (0, 3):
        raise SystemExit(f"stridewise import failed: {err.decode()}")
    return elapsed, json.loads(out), int(peak)


class _TreeMemory:
    """Samples the summed PSS (KiB) of a process and all its descendants (Linux /proc)."""

    def __init__(self, pid: int):
        self.pid = pid
        self.peak = 0
        self._done = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def stop(self) -> int:
        self._done.set()
        self._thread.join()
        return self.peak

    def _run(self) -> None:
        while not self._done.wait(0.01):
            self.peak = max(self.peak, sum(_pss_kib(pid) for pid in _tree(self.pid)))


def _tree(root: int) -> list[int]:
    children: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                stat = (entry / "stat").read_text()
            except OSError:
                continue
            ppid = int(stat.rsplit(")", 1)[1].split()[1])
            children.setdefault(ppid, []).append(int(entry.name))
    found, stack = [], [root]
    while stack:
        pid = stack.pop()
        found.append(pid)
        stack.extend(children.get(pid, []))
    return found


def _pss_kib(pid: int) -> int:
    # PSS splits pages shared by forked workers between them, so the sum is not inflated.
    try:
        for line in Path(f"/proc/{pid}/smaps_rollup").read_text().splitlines():
            if line.startswith("Pss:"):
                return int(line.split()[1])
    except OSError:
        pass
    return 0


def fitdecode_loop(files: list[Path]) -> tuple[float, int]:
    import fitdecode

    ok = 0
    start = time.perf_counter()
    for path in files:
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                reader = fitdecode.FitReader(
                    io.BytesIO(read(path)), check_crc=fitdecode.CrcCheck.RAISE
                )
                with reader:
                    for _ in reader:
                        pass
            ok += 1
        except Exception:
            pass
    return time.perf_counter() - start, ok


def fitparse_loop(files: list[Path]) -> tuple[float, int]:
    import fitparse

    ok = 0
    start = time.perf_counter()
    for path in files:
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                fitparse.FitFile(read(path)).parse()
            ok += 1
        except Exception:
            pass
    return time.perf_counter() - start, ok


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--limit", type=int, help="use an evenly spread sample of N files")
    parser.add_argument("--skip-fitparse", action="store_true", help="fitparse takes minutes")
    args = parser.parse_args()
    root, files = corpus_files(args.limit)
    n_bytes = sum(len(read(p)) for p in files)
    mb = n_bytes / 1e6
    print(f"corpus: {len(files)} files, {mb:.1f} MB decompressed ({root})")

    tree_memory = Path("/proc/self/smaps_rollup").exists()
    # Memory is set by the largest files in flight, not by how many files there are: the
    # largest half of the corpus, then all of it (the same largest files plus as many more).
    largest = sorted(files, key=lambda path: len(read(path)), reverse=True)
    _, _, half_rss = stridewise_import(largest[: len(files) // 2], sample_memory=tree_memory)
    _, _, sw_rss = stridewise_import(files, sample_memory=tree_memory)
    # The median of three runs: on a shared 2-core machine one run can be 30 % off.
    runs = sorted((stridewise_import(files) for _ in range(3)), key=lambda run: run[0])
    sw_time, summary, _ = runs[1]
    fd_time, fd_ok = fitdecode_loop(files)
    rows = [
        ("stridewise import (median of 3)", sw_time, None),
        ("fitdecode loop (decode only)", fd_time, fd_ok),
    ]
    if not args.skip_fitparse:
        fp_time, fp_ok = fitparse_loop(files)
        rows.append(("fitparse loop (decode only)", fp_time, fp_ok))

    print(f"{'tool':<32} {'seconds':>8} {'files/s':>8} {'MB/s':>7} {'vs fitdecode':>13}")
    for name, seconds, _ in rows:
        print(
            f"{name:<32} {seconds:>8.2f} {len(files) / seconds:>8.1f} {mb / seconds:>7.2f}"
            f" {fd_time / seconds:>12.1f}x"
        )
    ok = len(files) - len(summary["failed"])  # type: ignore[arg-type]
    print(
        f"files read: stridewise {ok}, fitdecode {fd_ok}"
        + (f", fitparse {rows[2][2]}" if len(rows) > 2 else "")
    )
    print(
        f"stridewise: imported {summary['imported']} runs, {summary['skipped_non_running']}"
        f" non-running, {len(summary['not_activity'])} not activity files,"  # type: ignore[arg-type]
        f" decoders {summary['decoders']}"
    )
    for failure in summary["failed"]:  # type: ignore[attr-defined]
        print(f"  failed: {Path(failure['path']).name}: {failure['reason']}")
    what = (
        "peak memory of the import's process tree (summed PSS)"
        if tree_memory
        else "peak RSS of the import process"
    )
    print(
        f"{what}: {half_rss / 1024:.0f} MB for the {len(files) // 2} largest files,"
        f" {sw_rss / 1024:.0f} MB for all {len(files)}"
    )
    ratio = fd_time / sw_time
    verdict = "meets" if ratio >= TARGET_RATIO else "MISSES"
    print(f"target: >= {TARGET_RATIO:.0f}x fitdecode end to end — {verdict} ({ratio:.1f}x)")


if __name__ == "__main__":
    main()
