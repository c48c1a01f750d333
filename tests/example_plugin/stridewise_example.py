"""A tiny stridewise plugin: a connector and a plan format (docs/plugins.md walks through it).

``example`` reads FIT files a watch app drops into a folder; ``csv`` writes the week as one
line per drill. Installed through its ``entry_points.txt`` like any distribution:

    [stridewise.connectors]
    example = stridewise_example:FolderConnector

    [stridewise.renderers]
    csv = stridewise_example:CsvRenderer
"""

from __future__ import annotations

import csv
import io
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path

from connectors.fit import decode_fit
from planner.connector import (
    Connected,
    ConnectPrompts,
    Disconnected,
    FitDownload,
    ListedPage,
)
from planner.errors import AuthError, FitImportError
from planner.records import Activity, Source
from planner.renderer import PlanDocument, RenderedFile
from planner.store.config import data_dir


def _setting() -> Path:
    return data_dir() / "example-folder.txt"


class FolderSession:
    """One sync: list the folder's FIT files, hand over their bytes."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder

    def list_since(self, start: datetime) -> Iterator[ListedPage]:
        listed, unreadable = [], []
        for path in sorted(p for p in self.folder.iterdir() if p.suffix.lower() == ".fit"):
            try:
                decoded = decode_fit(path.read_bytes(), str(path))
            except FitImportError as exc:
                unreadable.append(str(exc))
                continue
            for activity, _ in decoded.activities:
                listed.append(
                    Activity(
                        source=Source.FIT,
                        source_ref=path.name,
                        sport=activity.sport,
                        sub_sport=activity.sub_sport,
                        start_utc=activity.start_utc,
                        elapsed_s=activity.elapsed_s,
                        moving_s=activity.moving_s,
                        distance_m=activity.distance_m,
                        name=path.stem,
                    )
                )
                break  # one listing per file: fetching the file brings every session
        listed.sort(key=lambda a: a.start_utc)
        yield ListedPage(tuple(a for a in listed if a.start_utc >= start), tuple(unreadable))

    def fetch(self, activity: Activity) -> FitDownload:
        path = self.folder / activity.source_ref
        return FitDownload(path.read_bytes(), str(path))

    def report(self) -> dict[str, object]:
        return {"folder": str(self.folder)}

    def notes(self) -> tuple[str, ...]:
        return ()


class FolderConnector:
    """A folder of FIT files as a source. Its (made-up) terms forbid training on the data."""

    name = "example"
    label = "Example folder"
    source = Source.FIT
    trainable = False
    per_athlete = False
    ref_key = "file"

    def connect(self, athlete_id: str, prompts: ConnectPrompts) -> Connected:
        folder = Path(prompts.ask("folder with FIT files", False)).expanduser()
        if not folder.is_dir():
            raise AuthError(f"{folder} is not a folder")
        _setting().parent.mkdir(parents=True, exist_ok=True)
        _setting().write_text(str(folder.resolve()), encoding="utf-8")
        return Connected(f"reading FIT files from {folder.resolve()}")

    def disconnect(self, athlete_id: str) -> Disconnected:
        if not _setting().exists():
            return Disconnected(False, "the example folder is not connected; nothing to do")
        _setting().unlink()
        return Disconnected(True, "forgot the example folder")

    def open(self, athlete_id: str) -> FolderSession:
        if not _setting().exists():
            raise AuthError("the example folder is not connected: run 'stridewise connect example'")
        return FolderSession(Path(_setting().read_text(encoding="utf-8")))


class CsvRenderer:
    """The week as CSV: one line per drill, for a spreadsheet."""

    name = "csv"
    needs_folder = False

    def render(self, document: PlanDocument) -> tuple[RenderedFile, ...]:
        out = io.StringIO()
        writer = csv.writer(out, lineterminator="\n")
        writer.writerow(["date", "session", "drill", "sets", "minutes"])
        for day in document.plan.days:
            for session in day.sessions:
                for drill in session.drills:
                    writer.writerow(
                        [
                            day.date.isoformat(),
                            session.title,
                            drill.name,
                            drill.dose.sets,
                            drill.minutes,
                        ]
                    )
        return (RenderedFile(f"plan-{document.plan.week}.csv", out.getvalue()),)
