"""Import files into the store: expand paths, skip known files, decode, store each atomically.

Decoding is pure and CPU-bound, so large batches decode in worker processes while the main
process hashes, stores and reports. Workers also pack each stream into the store's BLOB
format, so for a batch the main process never imports the decoder, numpy or pyarrow and
leaves both cores to the workers. At most a few files are in flight at once, so memory does
not grow with the size of the batch. Each file is stored in its own transaction: an
interruption loses nothing already stored and a re-run skips it by content hash.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import ALL_COMPLETED, FIRST_COMPLETED, Future, ProcessPoolExecutor, wait
from dataclasses import dataclass, field
from pathlib import Path

from connectors.archives import (
    FileKind,
    Hints,
    ImportFile,
    Limits,
    Unreadable,
    Unsupported,
    content_hash,
    expand,
)
from planner.errors import StridewiseError
from planner.records import DEFAULT_ATHLETE, PackedActivity
from planner.services.workers import POOL_THRESHOLD, pool_context
from planner.store.database import Store


@dataclass
class ImportSummary:
    """What one ``stridewise import`` did; ``failed`` lists (path, reason)."""

    files: int = 0
    bytes: int = 0
    imported: list[int] = field(default_factory=list)
    replaced: list[int] = field(default_factory=list)
    duplicates: int = 0
    non_running: int = 0
    not_activity: list[tuple[str, str]] = field(default_factory=list)
    unsupported: list[tuple[str, str]] = field(default_factory=list)
    failed: list[tuple[str, str]] = field(default_factory=list)
    decoders: dict[str, int] = field(default_factory=dict)
    interrupted: bool = False

    def as_json(self) -> dict[str, object]:
        return {
            "files": self.files,
            "bytes": self.bytes,
            "imported": len(self.imported),
            "imported_ids": self.imported,
            "replaced": len(self.replaced),
            "replaced_ids": self.replaced,
            "duplicates": self.duplicates,
            "skipped_non_running": self.non_running,
            "not_activity": [{"path": p, "reason": r} for p, r in self.not_activity],
            "unsupported": [{"path": p, "reason": r} for p, r in self.unsupported],
            "failed": [{"path": p, "reason": r} for p, r in self.failed],
            "decoders": self.decoders,
            "interrupted": self.interrupted,
        }


Progress = Callable[[str, int], None]  # (display name, bytes done for this file)


@dataclass(frozen=True, slots=True)
class PackedFile:
    """One decoded file as it crosses from a decoder process: metadata and packed streams."""

    content_hash: str
    decoder: str
    items: tuple[PackedActivity, ...]
    not_activity: str | None = None


@dataclass(frozen=True, slots=True)
class _Job:
    display: str
    size: int
    digest: str
    data: bytes
    hints: Hints
    decoder: str
    kind: FileKind = "fit"


def plan_import(
    paths: Iterable[Path], limits: Limits | None = None
) -> list[ImportFile | Unreadable | Unsupported]:
    """Expand paths into what will be imported (reads directories, not files)."""
    return expand(paths, limits)


def batch_size(items: Iterable[ImportFile | Unreadable | Unsupported]) -> tuple[int, int]:
    """(bytes, files) that will be decoded: what a progress bar counts."""
    sources = [item for item in items if isinstance(item, ImportFile)]
    return sum(source.size for source in sources), len(sources)


def run_import(
    store: Store,
    items: list[ImportFile | Unreadable | Unsupported],
    athlete_id: str | None,
    *,
    progress: Progress | None = None,
    workers: int | None = None,
    decoder: str = "auto",
) -> ImportSummary:
    """Import every source; per-file failures are collected, never raised."""
    summary = ImportSummary()
    athlete_id = athlete_id or DEFAULT_ATHLETE
    store.ensure_athlete(athlete_id)
    sources: list[ImportFile] = []
    for item in items:
        if isinstance(item, Unreadable):
            summary.failed.append((item.display, item.reason))
        elif isinstance(item, Unsupported):
            summary.unsupported.append((item.display, item.reason))
        else:
            sources.append(item)
    workers = _workers(workers, len(sources))
    if workers > 1:
        # Largest first: the batch then ends on small files instead of one worker finishing
        # a big file while the other idles.
        sources.sort(key=lambda source: source.size, reverse=True)
    jobs = _jobs(store, sources, athlete_id, summary, progress, decoder)
    try:
        if workers <= 1:
            for job in jobs:
                _finish(store, athlete_id, job, _decode(job), summary, progress)
        else:
            _run_pool(store, athlete_id, jobs, workers, summary, progress)
    except KeyboardInterrupt:
        summary.interrupted = True
    return summary


def _workers(requested: int | None, n_sources: int) -> int:
    if requested is not None:
        return max(1, requested)
    if n_sources < POOL_THRESHOLD:
        return 1
    return max(1, min(os.cpu_count() or 1, 4))


def _jobs(
    store: Store,
    sources: list[ImportFile],
    athlete_id: str,
    summary: ImportSummary,
    progress: Progress | None,
    decoder: str,
) -> Iterator[_Job]:
    seen: set[str] = set()
    for source in sources:
        summary.files += 1
        try:
            data = source.open()
        except (OSError, StridewiseError) as exc:
            summary.failed.append((source.display, _reason(exc)))
            _tick(progress, source.display, source.size)
            continue
        summary.bytes += len(data)
        digest = content_hash(data)
        if digest in seen or store.has_file(athlete_id, digest):
            summary.duplicates += 1
            _tick(progress, source.display, source.size)
            continue
        seen.add(digest)
        yield _Job(source.display, source.size, digest, data, source.hints, decoder, source.kind)


def _reason(exc: BaseException) -> str:
    if isinstance(exc, OSError):
        return exc.strerror or str(exc)
    text = str(exc)
    return text.split(": ", 1)[1] if ": " in text else text


def _decode(job: _Job) -> PackedFile | str:
    """Decode and pack in whichever process runs this; a failure comes back as its reason."""
    # Imported here, not at the top: the decoder processes have these preloaded
    # (planner.services.workers), and the main process of a batch import never needs them.
    from connectors.fit import decode_fit
    from connectors.tracks import decode_track
    from planner.store.streamcodec import pack

    try:
        if job.kind == "fit":
            decoded = decode_fit(job.data, job.display, job.hints, decoder=job.decoder)
        else:
            decoded = decode_track(job.data, job.display, job.hints, kind=job.kind)
    except StridewiseError as exc:
        return _reason(exc)
    items = tuple(pack(item) for item in decoded.items)
    return PackedFile(decoded.content_hash, decoded.decoder, items, decoded.not_activity)


def _run_pool(
    store: Store,
    athlete_id: str,
    jobs: Iterator[_Job],
    workers: int,
    summary: ImportSummary,
    progress: Progress | None,
) -> None:
    context = pool_context()
    in_flight: dict[Future[PackedFile | str], _Job] = {}
    with ProcessPoolExecutor(max_workers=workers, mp_context=context) as pool:
        try:
            for job in jobs:
                in_flight[pool.submit(_decode, job)] = job
                # Bounded: the bytes of at most 2 × workers files are held at once. Results
                # are stored as they complete, so one slow file does not stall the others.
                if len(in_flight) >= 2 * workers:
                    _drain(store, athlete_id, in_flight, summary, progress, FIRST_COMPLETED)
            _drain(store, athlete_id, in_flight, summary, progress, ALL_COMPLETED)
        except BaseException:
            pool.shutdown(wait=False, cancel_futures=True)
            raise


def _drain(
    store: Store,
    athlete_id: str,
    in_flight: dict[Future[PackedFile | str], _Job],
    summary: ImportSummary,
    progress: Progress | None,
    until: str,
) -> None:
    done, _ = wait(in_flight, return_when=until)
    for future in done:
        job = in_flight.pop(future)
        _finish(store, athlete_id, job, future.result(), summary, progress)


def _finish(
    store: Store,
    athlete_id: str,
    job: _Job,
    decoded: PackedFile | str,
    summary: ImportSummary,
    progress: Progress | None,
) -> None:
    if isinstance(decoded, str):
        summary.failed.append((job.display, decoded))
    else:
        summary.decoders[decoded.decoder] = summary.decoders.get(decoded.decoder, 0) + 1
        results = store.save_file_import(
            athlete_id, decoded.content_hash, job.display, list(decoded.items)
        )
        if decoded.not_activity:
            summary.not_activity.append((job.display, decoded.not_activity))
        for item, result in zip(decoded.items, results, strict=True):
            if result.outcome == "duplicate":
                summary.duplicates += 1
                continue
            if not item.activity.is_running:
                # Stored as metadata (it counts for training load) but not analysed.
                summary.non_running += 1
                continue
            target = summary.imported if result.outcome == "imported" else summary.replaced
            target.append(result.activity_id)
    _tick(progress, job.display, job.size)


def _tick(progress: Progress | None, display: str, size: int) -> None:
    if progress is not None:
        progress(display, size)
