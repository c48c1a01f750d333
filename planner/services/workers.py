"""Decoder worker processes, started before anything heavy is imported.

The import command starts the forkserver first thing: the server preloads the decoder (numpy,
pyarrow, fitfast; never pandas) on the other core while the CLI process expands paths and
hashes files, so the first worker is ready soon after the first file is. Workers fork from the
server and inherit the loaded decoder instead of importing it each.
"""

from __future__ import annotations

import multiprocessing
import multiprocessing.context
import os
from collections.abc import Iterable
from pathlib import Path

#: Below this many files a worker pool costs more to start than it saves.
POOL_THRESHOLD = 12
# Everything a worker runs: the decoder and the module whose function the pool calls.
_PRELOAD = [
    "connectors.fit",
    "connectors.tracks",
    "planner.store.streamcodec",
    "planner.services.ingest",
]


def pool_context() -> multiprocessing.context.BaseContext:
    """A forkserver with the decoder preloaded: workers start fast and inherit no threads."""
    if os.name != "posix":
        return multiprocessing.get_context("spawn")
    context = multiprocessing.get_context("forkserver")
    context.set_forkserver_preload(_PRELOAD)
    return context


def likely_batch(paths: Iterable[Path]) -> bool:
    """Whether an import of these paths will probably use the pool (folders, zips, many)."""
    paths = list(paths)
    return len(paths) >= POOL_THRESHOLD or any(
        p.is_dir() or p.suffix.lower() == ".zip" for p in paths
    )


def warm_up() -> None:
    """Start the forkserver now, in the background (POSIX only)."""
    if os.name != "posix":
        return
    pool_context()
    from multiprocessing import forkserver

    forkserver.ensure_running()
