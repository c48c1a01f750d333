"""stridewise command line: parse options, call one library function, print text or --json.

Exit codes (also in ``stridewise --help`` and the README):

* 0 — success
* 1 — an error you can fix (bad file, missing athlete, refused login): one line on stderr
* 2 — usage error (unknown option, bad argument)
* 3 — finished, but some items failed (e.g. some files in an import); details in the output
* 130 — interrupted (Ctrl-C); everything finished before the interruption is kept
"""

from __future__ import annotations

import json
import sys
import time
from collections.abc import Callable
from datetime import datetime
from pathlib import Path
from typing import Any, NoReturn

import click

from planner.errors import StridewiseError

EXIT_OK = 0
EXIT_ERROR = 1
EXIT_USAGE = 2
EXIT_PARTIAL = 3
EXIT_INTERRUPTED = 130

EPILOG = """Exit codes: 0 success; 1 error (one line on stderr); 2 usage error; 3 finished but
some items failed; 130 interrupted (work finished before Ctrl-C is kept).
Data lives under $STRIDEWISE_HOME (default ~/.local/share/stridewise)."""


class _Context:
    def __init__(self, db: Path | None):
        self.db = db

    def store(self) -> Any:
        from planner.store import Store

        return Store(self.db)


pass_ctx = click.make_pass_decorator(_Context)


def _print_json(value: Any) -> None:
    click.echo(json.dumps(value, indent=2, sort_keys=True, default=str))


def _fail(message: str, code: int = EXIT_ERROR) -> NoReturn:
    click.echo(f"stridewise: error: {message}", err=True)
    sys.exit(code)


@click.group(epilog=EPILOG, context_settings={"help_option_names": ["-h", "--help"]})
@click.option(
    "--db",
    type=click.Path(dir_okay=False, path_type=Path),
    envvar="STRIDEWISE_DB",
    help="SQLite database file (default: $STRIDEWISE_HOME/stridewise.db).",
)
@click.version_option(package_name="stridewise")
@click.pass_context
def cli(ctx: click.Context, db: Path | None) -> None:
    """Turn your own watch data into a weekly plan of drills and strength work."""
    ctx.obj = _Context(db)


# -- import, activities, export -------------------------------------------------------------


@cli.command("import")
@click.argument("paths", nargs=-1, required=True, type=click.Path(path_type=Path))
@click.option("--athlete", "athlete_id", help="File the activities under this athlete.")
@click.option("--json", "as_json", is_flag=True, help="Print a machine-readable summary.")
@click.option("--workers", type=click.IntRange(1, 64), help="Decoder processes (default: auto).")
@click.option("--decoder", type=click.Choice(["auto", "fitdecode"]), default="auto",
              show_default=True, help="'fitdecode' skips the fast decoder (slower).")
@pass_ctx
def import_(ctx: _Context, paths: tuple[Path, ...], athlete_id: str | None, as_json: bool,
            workers: int | None, decoder: str) -> None:
    """Import FIT files, .fit.gz, folders, and Strava or Garmin export zips."""
    from planner.ingest import plan_import, run_import
    from planner.store import DEFAULT_ATHLETE

    items = plan_import(paths)
    total = sum(getattr(item, "size", 0) for item in items)
    n_sources = sum(1 for item in items if hasattr(item, "open"))
    with ctx.store() as store, _progress_bar(total, n_sources) as tick:
        summary = run_import(store, items, athlete_id or DEFAULT_ATHLETE, progress=tick,
                             workers=workers, decoder=decoder)
    if as_json:
        _print_json(summary.as_json())
    else:
        for path, reason in summary.failed:
            click.echo(f"failed: {path}: {reason}", err=True)
        notes = []
        if summary.non_running:
            notes.append(f"{summary.non_running} non-running stored as metadata")
        if summary.not_activity:
            notes.append(f"{len(summary.not_activity)} not activity files")
        if summary.unsupported:
            notes.append(f"{len(summary.unsupported)} GPX/TCX skipped")
        extra = f" ({'; '.join(notes)})" if notes else ""
        click.echo(
            f"imported {len(summary.imported)}, replaced {len(summary.replaced)} by a richer copy,"
            f" {summary.duplicates} already known, {len(summary.failed)} failed{extra}"
        )
    if summary.interrupted:
        click.echo("interrupted: what was imported is kept; run the same command to continue",
                   err=True)
        sys.exit(EXIT_INTERRUPTED)
    if summary.failed:
        sys.exit(EXIT_PARTIAL)


class _progress_bar:  # noqa: N801 - used like a function in a with statement
    """A files/MB/files-per-second bar on stderr when it is a terminal; silent otherwise."""

    def __init__(self, total_bytes: int, n_files: int):
        self.total_bytes = total_bytes
        self.n_files = n_files
        self.bar: Any = None
        self.done = 0
        self.start = time.monotonic()

    def __enter__(self) -> Callable[[str, int], None]:
        if sys.stderr.isatty() and self.n_files > 1:
            from tqdm import tqdm

            self.bar = tqdm(total=self.total_bytes, unit="B", unit_scale=True, file=sys.stderr,
                            desc="importing", leave=False)
        return self.tick

    def tick(self, display: str, size: int) -> None:
        self.done += 1
        if self.bar is not None:
            rate = self.done / max(time.monotonic() - self.start, 1e-6)
            self.bar.set_postfix_str(f"{self.done}/{self.n_files} files, {rate:.1f} files/s")
            self.bar.update(size)

    def __exit__(self, *exc: object) -> None:
        if self.bar is not None:
            self.bar.close()


def _duration(seconds: float | None) -> str:
    if seconds is None:
        return "-"
    s = int(round(seconds))
    return f"{s // 3600}:{s % 3600 // 60:02d}:{s % 60:02d}"


@cli.command("activities")
@click.option("--athlete", "athlete_id", help="Only this athlete's activities.")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
@pass_ctx
def activities(ctx: _Context, athlete_id: str | None, as_json: bool) -> None:
    """List stored activities."""
    with ctx.store() as store:
        if athlete_id is not None:
            store.get_athlete(athlete_id)
        rows = store.list_activities(athlete_id)
    records = [
        {
            "id": r.id,
            "athlete": r.athlete_id,
            "source": r.activity.source.value,
            "sport": r.activity.sport,
            "sub_sport": r.activity.sub_sport,
            "start_utc": r.activity.start_utc.isoformat(),
            "elapsed_s": r.activity.elapsed_s,
            "distance_m": r.activity.distance_m,
            "name": r.activity.name,
            "dynamics": list(r.activity.dynamics),
            "decoder": r.activity.decoder,
            "samples": r.activity.n_samples,
        }
        for r in rows
    ]
    if as_json:
        _print_json(records)
        return
    if not records:
        click.echo("no activities stored yet (try 'stridewise import PATH')")
        return
    click.echo(f"{'id':>5}  {'athlete':<10} {'source':<7} {'sport':<18} {'start (UTC)':<17}"
               f" {'time':>8} {'km':>7}  {'decoder':<9} dynamics")
    for rec in records:
        sport = rec["sport"] + (f"/{rec['sub_sport']}" if rec["sub_sport"] not in (None, "generic")
                                else "")
        km = "-" if rec["distance_m"] is None else f"{rec['distance_m'] / 1000:.2f}"
        start = datetime.fromisoformat(rec["start_utc"]).strftime("%Y-%m-%d %H:%M")
        dyn = ",".join(rec["dynamics"]) or "-"
        click.echo(f"{rec['id']:>5}  {rec['athlete']:<10} {rec['source']:<7} {sport:<18}"
                   f" {start:<17} {_duration(rec['elapsed_s']):>8} {km:>7}"
                   f"  {rec['decoder'] or '-':<9} {dyn}")


@cli.command("export")
@click.argument("activity_id", type=int)
@click.option("--format", "fmt", type=click.Choice(["csv", "parquet"]), default="csv",
              show_default=True)
@click.option("-o", "--output", type=click.Path(dir_okay=False, path_type=Path),
              help="Output file (default: stdout for CSV).")
@pass_ctx
def export(ctx: _Context, activity_id: int, fmt: str, output: Path | None) -> None:
    """Write an activity's validated per-second stream with canonical column names."""
    from planner.export import write_stream

    with ctx.store() as store:
        frame = store.load_stream(activity_id)
    if fmt == "parquet" and output is None:
        raise click.UsageError("--format parquet needs -o FILE")
    write_stream(frame, fmt, output if output is not None else sys.stdout)
    if output is not None:
        click.echo(f"wrote {len(frame)} rows to {output}", err=True)


# -- Strava, Garmin Connect and sync (subcommands are added below each group) ----------------


@cli.group("sync")
def sync() -> None:
    """Fetch new activities from a connected service."""


@cli.group("strava")
def strava() -> None:
    """Connect or disconnect your Strava account."""


@cli.group("garmin")
def garmin() -> None:
    """Log in to or out of Garmin Connect."""


def main(argv: list[str] | None = None) -> None:
    """Console entry point: our errors become one line and exit 1; bugs keep tracebacks."""
    try:
        cli.main(args=argv, prog_name="stridewise", standalone_mode=False)
    except click.exceptions.Abort:
        click.echo("interrupted", err=True)
        sys.exit(EXIT_INTERRUPTED)
    except click.ClickException as exc:
        exc.show()
        sys.exit(exc.exit_code)
    except StridewiseError as exc:
        _fail(str(exc))
    except KeyboardInterrupt:
        click.echo("interrupted: work finished before Ctrl-C is kept", err=True)
        sys.exit(EXIT_INTERRUPTED)
    except BrokenPipeError:
        sys.exit(EXIT_OK)
    sys.exit(EXIT_OK)


if __name__ == "__main__":
    main()
