"""What runners actually have: FIT, GPX and TCX files (also gzipped), folders, export zips.

:func:`expand` turns the paths a user names into a flat list of sources to decode, reading
nothing but directory entries and zip directories. Zip members are read in memory when a
source is opened, never extracted to disk, so a hostile member name (zip-slip) cannot write
anywhere; names are still checked and refused. Zip bombs are refused by caps on the declared
and the actually inflated sizes.
"""

from __future__ import annotations

import csv
import gzip
import hashlib
import io
import tempfile
import zipfile
import zlib
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import IO, Literal, cast

from planner.errors import ArchiveError


@dataclass(frozen=True, slots=True)
class Hints:
    """What an archive knows about a file that the file does not (e.g. Strava's CSV)."""

    name: str | None = None
    sport: str | None = None


def content_hash(data: bytes) -> str:
    """A file's identity: the same bytes imported twice are recognised by it."""
    return hashlib.sha256(data).hexdigest()


@dataclass(frozen=True, slots=True)
class Limits:
    """Caps against zip bombs. Defaults are far above any real account export."""

    max_member_bytes: int = 256 * 1024 * 1024  # no FIT file comes near this
    max_total_bytes: int = 16 * 1024 * 1024 * 1024  # a decade of exports
    max_ratio: float = 200.0  # FIT compresses ~3-8x; 200x is crafted
    max_depth: int = 3  # Garmin nests zips one level; more is suspicious


TrackKind = Literal["gpx", "tcx"]
FileKind = Literal["fit", "gpx", "tcx"]


def file_kind(name: str) -> FileKind | None:
    """What a file name says it holds (``.gz`` of it too), or None for anything else."""
    lower = name.lower().removesuffix(".gz")
    kinds: tuple[FileKind, ...] = ("fit", "gpx", "tcx")
    return next((kind for kind in kinds if lower.endswith("." + kind)), None)


@dataclass(frozen=True, slots=True)
class ImportFile:
    """One payload to decode: ``open()`` returns its (decompressed) bytes, ``kind`` says
    which decoder reads it."""

    display: str
    size: int
    open: Callable[[], bytes]
    hints: Hints = field(default_factory=Hints)
    kind: FileKind = "fit"


@dataclass(frozen=True, slots=True)
class Unsupported:
    """A file we recognise but do not import, counted in the summary (none since GPX and
    TCX are imported; the summary keeps its ``unsupported`` key)."""

    display: str
    reason: str


@dataclass(frozen=True, slots=True)
class Unreadable:
    """A path or member that could not be read; reported, the rest goes on."""

    display: str
    reason: str


Item = ImportFile | Unsupported | Unreadable

_SPOOL_IN_MEMORY_BYTES = 64 * 1024 * 1024

# Strava's account export names these activity types for runs (activities.csv, "Activity Type").
_STRAVA_RUN_TYPES = {"run", "trail run", "virtual run", "treadmill run"}


def expand(paths: Iterable[Path], limits: Limits | None = None) -> list[Item]:
    """Every importable source under ``paths``, in a stable order."""
    limits = limits or Limits()
    items: list[Item] = []
    for path in paths:
        items.extend(_expand_path(Path(path), limits, explicit=True))
    return items


def _expand_path(path: Path, limits: Limits, *, explicit: bool) -> Iterator[Item]:
    display = str(path)
    try:
        if path.is_dir():
            for child in sorted(p for p in path.rglob("*") if p.is_file()):
                yield from _expand_path(child, limits, explicit=False)
            return
        if not path.exists():
            yield Unreadable(display, "no such file or folder")
            return
        size = path.stat().st_size
    except OSError as exc:
        yield Unreadable(display, exc.strerror or str(exc))
        return
    name = path.name.lower()
    if name.endswith(".zip"):
        try:
            # Opened, not read: the archive's directory is read now, members on demand.
            handle = path.open("rb")
        except OSError as exc:
            yield Unreadable(display, exc.strerror or str(exc))
            return
        yield from _expand_zip(handle, display, limits, depth=1)
    elif (kind := file_kind(name)) is not None:
        reader = _gzip_file_reader(path, limits) if name.endswith(".gz") else _file_reader(path)
        yield ImportFile(display, size, reader, kind=kind)
    elif explicit:
        yield Unreadable(
            display, "not a FIT, GPX or TCX file (or one gzipped), folder or zip archive"
        )


def _file_reader(path: Path) -> Callable[[], bytes]:
    def read() -> bytes:
        return path.read_bytes()

    return read


def _gzip_file_reader(path: Path, limits: Limits) -> Callable[[], bytes]:
    def read() -> bytes:
        return _gunzip(path.read_bytes(), str(path), limits)

    return read


def _gunzip(data: bytes, display: str, limits: Limits) -> bytes:
    try:
        with gzip.GzipFile(fileobj=io.BytesIO(data)) as fh:
            out = fh.read(limits.max_member_bytes + 1)
    except (OSError, EOFError, zlib.error) as exc:
        raise ArchiveError(f"{display}: not a valid gzip file ({exc})") from None
    if len(out) > limits.max_member_bytes:
        raise ArchiveError(f"{display}: inflates beyond {limits.max_member_bytes} bytes")
    return out


def _safe_member_name(name: str) -> bool:
    pure = PurePosixPath(name.replace("\\", "/"))
    return not pure.is_absolute() and ".." not in pure.parts and ":" not in pure.parts[0]


def _expand_zip(fileobj: IO[bytes], display: str, limits: Limits, depth: int) -> Iterator[Item]:
    if depth > limits.max_depth:
        yield Unreadable(display, f"zip archives nested deeper than {limits.max_depth} levels")
        return
    try:
        archive = zipfile.ZipFile(fileobj)
        members = [m for m in archive.infolist() if not m.is_dir()]
    except (zipfile.BadZipFile, OSError, ValueError) as exc:
        yield Unreadable(display, f"not a readable zip archive ({exc})")
        return
    declared = sum(m.file_size for m in members)
    if declared > limits.max_total_bytes:
        yield Unreadable(
            display, f"archive would inflate to {declared} bytes (limit {limits.max_total_bytes})"
        )
        return
    strava = _strava_hints(archive)
    for member in sorted(members, key=lambda m: m.filename):
        inner = f"{display}!{member.filename}"
        if not _safe_member_name(member.filename):
            yield Unreadable(inner, "unsafe path inside the archive (refused)")
            continue
        lower = member.filename.lower()
        is_archive = lower.endswith(".zip")
        if (not is_archive and member.file_size > limits.max_member_bytes) or (
            member.compress_size
            and member.file_size > 1024 * 1024
            and member.file_size / member.compress_size > limits.max_ratio
        ):
            yield Unreadable(inner, "member inflates too much (zip bomb guard)")
            continue
        if is_archive:
            try:
                nested = _spool_member(archive, member, inner, limits)
            except ArchiveError as exc:
                yield Unreadable(inner, str(exc).split(": ", 1)[-1])
                continue
            yield from _expand_zip(nested, inner, limits, depth + 1)
        elif (kind := file_kind(lower)) is not None:
            hints = strava.get(member.filename, Hints())
            reader = _member_reader(archive, member, inner, limits)
            yield ImportFile(inner, member.file_size, reader, hints, kind)


def _read_member(
    archive: zipfile.ZipFile, member: zipfile.ZipInfo, display: str, limits: Limits
) -> bytes:
    try:
        with archive.open(member) as fh:
            data = fh.read(limits.max_member_bytes + 1)
    except (zipfile.BadZipFile, OSError, zlib.error, EOFError) as exc:
        raise ArchiveError(f"{display}: cannot read from the archive ({exc})") from None
    # The declared size can lie; what matters is what actually inflates.
    if len(data) > limits.max_member_bytes:
        raise ArchiveError(f"{display}: inflates beyond {limits.max_member_bytes} bytes")
    if member.filename.lower().endswith(".gz"):
        data = _gunzip(data, display, limits)
    return data


def _spool_member(
    archive: zipfile.ZipFile, member: zipfile.ZipInfo, display: str, limits: Limits
) -> IO[bytes]:
    """A nested archive as a seekable file: in memory when small, else a private temp file."""
    spool = tempfile.SpooledTemporaryFile(max_size=_SPOOL_IN_MEMORY_BYTES)  # noqa: SIM115
    copied = 0
    try:
        with archive.open(member) as fh:
            while chunk := fh.read(1024 * 1024):
                copied += len(chunk)
                if copied > limits.max_total_bytes:
                    raise ArchiveError(f"{display}: inflates beyond {limits.max_total_bytes} bytes")
                spool.write(chunk)
    except (zipfile.BadZipFile, OSError, zlib.error, EOFError) as exc:
        raise ArchiveError(f"{display}: cannot read from the archive ({exc})") from None
    spool.seek(0)
    return cast(IO[bytes], spool)


def _member_reader(
    archive: zipfile.ZipFile, member: zipfile.ZipInfo, display: str, limits: Limits
) -> Callable[[], bytes]:
    def read() -> bytes:
        return _read_member(archive, member, display, limits)

    return read


def _strava_hints(archive: zipfile.ZipFile) -> dict[str, Hints]:
    """Names and types from a Strava account export's ``activities.csv``, by member name."""
    csv_member = next(
        (n for n in archive.namelist() if PurePosixPath(n).name == "activities.csv"), None
    )
    if csv_member is None:
        return {}
    prefix = str(PurePosixPath(csv_member).parent)
    prefix = "" if prefix == "." else prefix + "/"
    try:
        text = archive.read(csv_member).decode("utf-8-sig", errors="replace")
    except (zipfile.BadZipFile, OSError, zlib.error):
        return {}
    hints: dict[str, Hints] = {}
    for row in csv.DictReader(io.StringIO(text)):
        filename = (row.get("Filename") or "").strip()
        if not filename:
            continue
        kind = (row.get("Activity Type") or "").strip().lower()
        hints[prefix + filename] = Hints(
            name=(row.get("Activity Name") or "").strip() or None,
            sport="running" if kind in _STRAVA_RUN_TYPES else None,
        )
    return hints
