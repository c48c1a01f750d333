"""stridewise command line: parse options, call one library function, print text or --json.

Exit codes (also in ``stridewise --help`` and the README):

* 0 — success
* 1 — an error you can fix (bad file, missing athlete, refused login): one line on stderr
* 2 — usage error (unknown option, bad argument)
* 3 — finished, but some items failed (e.g. some files in an import); details in the output
* 130 — interrupted (Ctrl-C); everything finished before the interruption is kept
"""

from __future__ import annotations

import contextlib
import json
import os
import sys
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, NoReturn

import click

from planner.errors import InvalidValueError, StridewiseError
from planner.services.choices import AREAS, connector_names, plan_formats

if TYPE_CHECKING:
    from planner.services.accounts import Connected, ConnectPrompts

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
        from planner.services.activities import open_store

        return open_store(self.db)


pass_ctx = click.make_pass_decorator(_Context)


def _print_json(value: Any) -> None:
    click.echo(json.dumps(value, indent=2, sort_keys=True, default=str))


def _fail(message: str, code: int = EXIT_ERROR) -> NoReturn:
    click.echo(f"stridewise: error: {message}", err=True)
    sys.exit(code)


def _since_date(_ctx: click.Context, _param: click.Parameter, value: str | None) -> Any:
    """Every --since takes the same format: a date (2026-01-31) or an ISO date-time, UTC."""
    if value is None:
        return None
    try:
        day = datetime.fromisoformat(value)
    except ValueError:
        raise click.BadParameter(f"{value!r} is not a date like 2026-01-31") from None
    return day if day.tzinfo else day.replace(tzinfo=UTC)


def _iso_week(_ctx: click.Context, _param: click.Parameter, value: str | None) -> Any:
    """Every --week is an ISO week such as 2026-W49, checked here (exit 2 when it is not)."""
    from planner.services.weekly import parse_week

    if value is None:
        return None
    try:
        return parse_week(value)
    except ValueError as exc:
        raise click.BadParameter(str(exc)) from None


def _since_option(help_text: str) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    return click.option("--since", callback=_since_date, metavar="DATE", help=help_text)


def _week_option(help_text: str) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    return click.option("--week", callback=_iso_week, metavar="YYYY-Www", help=help_text)


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
@click.option(
    "--decoder",
    type=click.Choice(["auto", "fitdecode"]),
    default="auto",
    show_default=True,
    help="'fitdecode' skips the fast decoder (slower).",
)
@pass_ctx
def import_(
    ctx: _Context,
    paths: tuple[Path, ...],
    athlete_id: str | None,
    as_json: bool,
    workers: int | None,
    decoder: str,
) -> None:
    """Import FIT, GPX and TCX files (also gzipped), folders, and Strava or Garmin export zips."""
    from planner.services.workers import likely_batch, warm_up

    if workers != 1 and likely_batch(paths):
        warm_up()  # decoder processes load on the other core while this one does
    from planner.services.ingest import batch_size, plan_import, run_import

    items = plan_import(paths)
    with ctx.store() as store, _progress_bar(*batch_size(items)) as tick:
        summary = run_import(
            store, items, athlete_id, progress=tick, workers=workers, decoder=decoder
        )
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
            notes.append(f"{len(summary.unsupported)} not imported (unsupported)")
        extra = f" ({'; '.join(notes)})" if notes else ""
        click.echo(
            f"imported {len(summary.imported)}, replaced {len(summary.replaced)} by a richer copy,"
            f" {summary.duplicates} already known, {len(summary.failed)} failed{extra}"
        )
    if summary.interrupted:
        click.echo(
            "interrupted: what was imported is kept; run the same command to continue", err=True
        )
        sys.exit(EXIT_INTERRUPTED)
    if summary.failed:
        sys.exit(EXIT_PARTIAL)


def _terminal_size() -> tuple[int, int]:
    # A terminal that reports 0×0 (e.g. a fresh pty) would make tqdm draw nothing.
    try:
        size = os.get_terminal_size(sys.stderr.fileno())
    except OSError:
        return 100, 24
    return size.columns or 100, size.lines or 24


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

            self.bar = tqdm(
                total=self.total_bytes,
                unit="B",
                unit_scale=True,
                file=sys.stderr,
                desc="importing",
                leave=False,
                ncols=_terminal_size()[0],
                nrows=_terminal_size()[1],
            )
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
    s = round(seconds)
    return f"{s // 3600}:{s % 3600 // 60:02d}:{s % 60:02d}"


@cli.command("activities")
@click.option("--athlete", "athlete_id", help="Only this athlete's activities.")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
@pass_ctx
def activities(ctx: _Context, athlete_id: str | None, as_json: bool) -> None:
    """List stored activities."""
    from planner.services.activities import activity_records

    with ctx.store() as store:
        records = activity_records(store, athlete_id)
    if as_json:
        _print_json(records)
        return
    if not records:
        click.echo("no activities stored yet (try 'stridewise import PATH')")
        return
    click.echo(
        f"{'id':>5}  {'athlete':<10} {'source':<7} {'sport':<18} {'start (UTC)':<17}"
        f" {'time':>8} {'km':>7}  {'decoder':<9} dynamics"
    )
    for rec in records:
        sport = rec["sport"] + (
            f"/{rec['sub_sport']}" if rec["sub_sport"] not in (None, "generic") else ""
        )
        km = "-" if rec["distance_m"] is None else f"{rec['distance_m'] / 1000:.2f}"
        start = datetime.fromisoformat(rec["start_utc"]).strftime("%Y-%m-%d %H:%M")
        dyn = ",".join(rec["dynamics"]) or "-"
        click.echo(
            f"{rec['id']:>5}  {rec['athlete']:<10} {rec['source']:<7} {sport:<18}"
            f" {start:<17} {_duration(rec['elapsed_s']):>8} {km:>7}"
            f"  {rec['decoder'] or '-':<9} {dyn}"
        )


@cli.command("export")
@click.argument("activity_id", type=int)
@click.option(
    "--format", "fmt", type=click.Choice(["csv", "parquet"]), default="csv", show_default=True
)
@click.option(
    "-o",
    "--output",
    type=click.Path(dir_okay=False, path_type=Path),
    help="Output file (default: stdout for CSV).",
)
@pass_ctx
def export(ctx: _Context, activity_id: int, fmt: str, output: Path | None) -> None:
    """Write an activity's validated per-second stream with canonical column names."""
    from planner.services.activities import export_activity

    if fmt == "parquet" and output is None:
        raise click.UsageError("--format parquet needs -o FILE")
    with ctx.store() as store:
        rows = export_activity(
            store, activity_id, fmt, output if output is not None else sys.stdout
        )
    if output is not None:
        click.echo(f"wrote {rows} rows to {output}", err=True)


# -- connectors: connect, disconnect, sync (docs/strava.md, docs/garmin.md, docs/plugins.md) --


def _prompts(no_browser: bool) -> ConnectPrompts:
    """Questions go to stderr (a password hidden); stdout keeps only the outcome."""
    from planner.services.accounts import ConnectPrompts

    def ask(question: str, secret: bool) -> str:
        return str(click.prompt(question, hide_input=secret, err=True)).strip()

    return ConnectPrompts(
        show=click.echo, ask=ask, interactive=sys.stdin.isatty(), no_browser=no_browser
    )


def _connected(result: Connected) -> None:
    for note in result.notes:
        click.echo(note, err=True)
    click.echo(result.message)


def _connect(name: str, athlete_id: str | None, no_browser: bool = False) -> None:
    from planner.services.accounts import connect

    _connected(connect(name, athlete_id, _prompts(no_browser)))


def _disconnect(name: str, athlete_id: str | None) -> None:
    from planner.services.accounts import disconnect

    result = disconnect(name, athlete_id)
    if result.warning:
        click.echo(result.warning, err=True)
    click.echo(result.message)


class _Registered(click.Choice):
    """A choice among registered plugins, read when the option is parsed or shown, so a
    plugin installed into a running process (or a test) is offered too."""

    def __init__(self, names: Callable[[], tuple[str, ...]]) -> None:
        self._names = names
        super().__init__(())

    @property
    def choices(self) -> tuple[str, ...]:
        return self._names()

    @choices.setter
    def choices(self, value: object) -> None:
        pass  # always the registry's


_CONNECTOR = _Registered(connector_names)
_ATHLETE_ACCOUNT = "Whose account (default: 'me'); ignored by connectors with one account."


@cli.command("connect")
@click.argument("name", type=_CONNECTOR)
@click.option("--athlete", "athlete_id", help=_ATHLETE_ACCOUNT)
@click.option(
    "--no-browser",
    is_flag=True,
    help="Print the address only and read the pasted code or redirect address.",
)
def connect_cmd(name: str, athlete_id: str | None, no_browser: bool) -> None:
    """Let stridewise read your activities from NAME (strava, garmin or a plugin).

    Only tokens are kept (the system keyring, else a file only you can read), never a
    password. Same as 'stridewise strava connect' and 'stridewise garmin login'.
    """
    _connect(name, athlete_id, no_browser)


@cli.command("disconnect")
@click.argument("name", type=_CONNECTOR)
@click.option("--athlete", "athlete_id", help=_ATHLETE_ACCOUNT)
def disconnect_cmd(name: str, athlete_id: str | None) -> None:
    """Revoke stridewise's access where NAME allows it and delete the stored tokens."""
    _disconnect(name, athlete_id)


class _SyncProgress:
    """An activities bar on stderr when it is a terminal; silent otherwise."""

    def __init__(self, name: str) -> None:
        self.name = name
        self.bar: Any = None

    def __enter__(self) -> Callable[[int, int | None, Any], None]:
        return self.tick

    def tick(self, done: int, total: int | None, activity: Any) -> None:
        if not sys.stderr.isatty():
            return
        if self.bar is None:
            from tqdm import tqdm

            self.bar = tqdm(unit="act", file=sys.stderr, desc=self.name, leave=False)
        self.bar.total = total
        self.bar.set_postfix_str(f"{activity.start_utc:%Y-%m-%d} {activity.sport}")
        self.bar.update(done - self.bar.n)

    def __exit__(self, *exc: object) -> None:
        if self.bar is not None:
            self.bar.close()


@cli.command("sync")
@click.argument("name", type=_CONNECTOR)
@_since_option(
    "Fetch activities from this date (YYYY-MM-DD, UTC) instead of from where the"
    " last sync stopped (first sync: the last 365 days)."
)
@click.option("--athlete", "athlete_id", help="File the activities under this athlete.")
@click.option("--json", "as_json", is_flag=True, help="Print a machine-readable summary.")
@pass_ctx
def sync_cmd(
    ctx: _Context, name: str, since: datetime | None, athlete_id: str | None, as_json: bool
) -> None:
    """Fetch new activities from NAME: runs whole, other activities as metadata.

    Needs 'stridewise connect NAME' once. Resumable: run it again to continue, nothing is
    fetched twice. Exit 3 when it stopped at the service's rate limit (the output says when
    to come back) or some activities failed; exit 1 when the service refused the
    authorisation or could not list the activities; 130 when interrupted.
    """
    from planner.services.sync import sync_account

    with ctx.store() as store, _SyncProgress(name) as tick:
        summary = sync_account(store, name, athlete_id, since=since, progress=tick)
    if as_json:
        _print_json(summary.as_json())
    else:
        for note in summary.notes:
            click.echo(note, err=True)
        for ref, reason in summary.failed:
            click.echo(f"failed: {name} activity {ref}: {reason}", err=True)
        click.echo(
            f"listed {summary.listed} since {summary.since}: imported {len(summary.imported)},"
            f" replaced {len(summary.replaced)} by a richer copy, {summary.duplicates} already"
            f" known, {summary.skipped_non_running} non-running stored as metadata,"
            f" {len(summary.failed)} failed"
        )
    if summary.error:
        _fail(summary.error)
    if summary.interrupted:
        click.echo(
            "interrupted: what was synced is kept; run the same command to continue", err=True
        )
        sys.exit(EXIT_INTERRUPTED)
    if summary.rate_limited:
        message = summary.message or "the service's rate limit was reached"
        if summary.resume_at is not None:
            message += (
                ". Everything fetched is kept; run the same command after"
                f" {summary.resume_at:%Y-%m-%d %H:%M} UTC to continue."
            )
        click.echo(message, err=True)
        sys.exit(EXIT_PARTIAL)
    if summary.message:
        click.echo(summary.message, err=True)
    if summary.failed:
        sys.exit(EXIT_PARTIAL)


@cli.group("strava")
def strava() -> None:
    """Connect or disconnect your Strava account, and its webhook subscription."""


@cli.group("garmin")
def garmin() -> None:
    """Log in to or out of Garmin Connect, and put your plan on its calendar."""


@garmin.command("login")
@click.option(
    "--mfa-code",
    metavar="CODE",
    help="Finish a login that stopped for its verification code (the second call).",
)
def garmin_login(mfa_code: str | None) -> None:
    """Log in once; only the tokens are kept (a file only you can read), never the password.

    The e-mail and password are prompted (the password hidden) or read from
    STRIDEWISE_GARMIN_EMAIL and STRIDEWISE_GARMIN_PASSWORD. When Garmin asks for a
    verification code it is prompted in a terminal; elsewhere the command stops, and a
    second call with --mfa-code CODE finishes the login. Same as 'stridewise connect garmin'.
    """
    if mfa_code is None:
        _connect("garmin", None)
        return
    from planner.services.accounts import garmin_resume_login

    _connected(garmin_resume_login(mfa_code))


@garmin.command("logout")
def garmin_logout() -> None:
    """Delete the stored Garmin tokens (and a login waiting for its code)."""
    _disconnect("garmin", None)


@strava.command("connect")
@click.option(
    "--no-browser",
    is_flag=True,
    help="Print the address only and read the pasted code or redirect address.",
)
@click.option("--athlete", "athlete_id", help="Connect the Strava account of this athlete.")
def strava_connect(no_browser: bool, athlete_id: str | None) -> None:
    """Let stridewise read your Strava activities (scope activity:read_all).

    Uses your own Strava API application: STRIDEWISE_STRAVA_CLIENT_ID and
    STRIDEWISE_STRAVA_CLIENT_SECRET, or client_id and client_secret under [strava] in
    config.toml. The tokens go to the system keyring when there is one, else to a file only
    you can read; they are never printed. Same as 'stridewise connect strava'.
    """
    _connect("strava", athlete_id, no_browser)


@strava.command("disconnect")
@click.option("--athlete", "athlete_id", help="Disconnect the Strava account of this athlete.")
def strava_disconnect(athlete_id: str | None) -> None:
    """Revoke stridewise's access at Strava and delete the stored tokens.

    The tokens are deleted whatever Strava answers; the output says whether Strava confirmed.
    """
    _disconnect("strava", athlete_id)


# -- roster and weekly e-mail (docs/email.md) ----------------------------------------------


def _athlete_options(adding: bool) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """The settings shared by 'athlete add' and 'athlete edit' (lists are comma-separated)."""
    options = [
        click.option("--name", required=adding, help="Name used in the greeting and To: line."),
        click.option("--email", required=adding, help="Where the weekly plan goes."),
        click.option("--timezone", help="IANA time zone, e.g. Europe/Paris (default UTC)."),
        click.option("--send-day", help="Day the plan is sent: mon..sun (default mon)."),
        click.option("--send-time", help="Local time it is sent, HH:MM (default 07:00)."),
        click.option("--days", help="Days free for sessions, e.g. mon,wed,fri."),
        click.option("--sessions", type=int, help="Drill/strength sessions a week."),
        click.option("--minutes", type=int, help="Minutes per session."),
        click.option("--equipment", help="Equipment, e.g. band,step ('none' = body weight)."),
        click.option("--level", help="beginner, intermediate or advanced."),
        click.option("--avoid", help="Complaints to keep clear of, e.g. achilles ('none' clears)."),
        click.option("--long-run-day", help="Usual long-run day ('none' clears)."),
        click.option("--quality-days", help="Usual hard-run days, e.g. tue,thu ('none' clears)."),
        click.option(
            "--sources",
            help="Where the data comes from: fit,garmin,strava,gpx,tcx ('none' clears).",
        ),
    ]

    def decorate(fn: Callable[..., Any]) -> Callable[..., Any]:
        for option in reversed(options):
            fn = option(fn)
        return fn

    return decorate


def _show_athlete(record: dict[str, Any]) -> None:
    prefs = record["preferences"]
    lines = [
        ("id", record["id"]),
        ("name", record["name"] or "-"),
        ("e-mail", record["email"] or "- (not on the mailing roster)"),
        ("sends", f"{record['send_day']} {record['send_time']} {record['timezone']}"),
        ("days", ",".join(prefs["available_days"])),
        ("sessions", f"{prefs['sessions_per_week']} x {prefs['minutes_per_session']} min"),
        ("equipment", ",".join(prefs["equipment"]) or "-"),
        ("level", prefs["level"]),
        ("avoid", ",".join(prefs["avoid"]) or "-"),
        ("long run", prefs["long_run_day"] or "-"),
        ("quality", ",".join(prefs["quality_days"]) or "-"),
        ("sources", ",".join(record["sources"]) or "-"),
    ]
    for key, value in lines:
        click.echo(f"{key + ':':<11}{value}")


@cli.group("athlete")
def athlete() -> None:
    """The roster: who gets a weekly plan by e-mail, when, and with which preferences."""


@athlete.command("add")
@click.argument("athlete_id")
@_athlete_options(adding=True)
@click.option("--json", "as_json", is_flag=True, help="Print the athlete as JSON.")
@pass_ctx
def athlete_add(ctx: _Context, athlete_id: str, as_json: bool, **settings: Any) -> None:
    """Add athlete ATHLETE_ID (the id 'import --athlete' files activities under)."""
    from planner.services.roster import AthleteChanges, add_athlete, athlete_json

    with ctx.store() as store:
        record = athlete_json(add_athlete(store, athlete_id, AthleteChanges(**settings)))
    if as_json:
        _print_json(record)
    else:
        click.echo(f"added {record['id']} <{record['email']}>")


@athlete.command("edit")
@click.argument("athlete_id")
@_athlete_options(adding=False)
@click.option("--json", "as_json", is_flag=True, help="Print the athlete as JSON.")
@pass_ctx
def athlete_edit(ctx: _Context, athlete_id: str, as_json: bool, **settings: Any) -> None:
    """Change some of an athlete's settings; the rest stay as they are."""
    from planner.services.roster import AthleteChanges, athlete_json, edit_athlete

    with ctx.store() as store:
        record = athlete_json(edit_athlete(store, athlete_id, AthleteChanges(**settings)))
    if as_json:
        _print_json(record)
    else:
        _show_athlete(record)


@athlete.command("list")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
@pass_ctx
def athlete_list(ctx: _Context, as_json: bool) -> None:
    """List athletes (those without an e-mail address get no mail)."""
    from planner.services.roster import athlete_json

    with ctx.store() as store:
        records = [athlete_json(a) for a in store.list_athletes()]
    if as_json:
        _print_json(records)
        return
    if not records:
        click.echo("no athletes yet (try 'stridewise athlete add ID --name NAME --email ADDR')")
        return
    click.echo(f"{'id':<14} {'name':<22} {'e-mail':<30} sends")
    for rec in records:
        sends = f"{rec['send_day']} {rec['send_time']} {rec['timezone']}"
        click.echo(f"{rec['id']:<14} {rec['name'] or '-':<22} {rec['email'] or '-':<30} {sends}")


@athlete.command("show")
@click.argument("athlete_id")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
@pass_ctx
def athlete_show(ctx: _Context, athlete_id: str, as_json: bool) -> None:
    """Show one athlete's settings and effective plan preferences."""
    from planner.services.roster import athlete_json

    with ctx.store() as store:
        record = athlete_json(store.get_athlete(athlete_id))
    if as_json:
        _print_json(record)
    else:
        _show_athlete(record)


@athlete.command("remove")
@click.argument("athlete_id")
@pass_ctx
def athlete_remove(ctx: _Context, athlete_id: str) -> None:
    """Remove an athlete and their activities (the record of sent mail is kept)."""
    with ctx.store() as store:
        store.delete_athlete(athlete_id)
    click.echo(f"removed {athlete_id}")


@cli.command("send-weekly")
@click.option(
    "--athlete",
    "athlete_ids",
    multiple=True,
    help="Only this athlete (repeatable; default: everyone with an e-mail address).",
)
@_week_option("Send this ISO week (e.g. 2026-W49) now instead of the one due.")
@click.option("--dry-run", is_flag=True, help="Write each message as an .eml file; send nothing.")
@click.option("--resend", is_flag=True, help="Send again even if the week was (maybe) sent.")
@click.option(
    "--out",
    "out_dir",
    type=click.Path(file_okay=False, path_type=Path),
    help="Folder for .eml files (dry run default: $STRIDEWISE_HOME/dry-run); on a real"
    " run, keeps a copy of each message sent.",
)
@click.option("--json", "as_json", is_flag=True, help="Print a machine-readable summary.")
@click.option(
    "--garmin", is_flag=True, help="Also put the week on the Garmin calendar of opted-in athletes."
)
@pass_ctx
def send_weekly_cmd(
    ctx: _Context,
    athlete_ids: tuple[str, ...],
    week: Any,
    dry_run: bool,
    resend: bool,
    out_dir: Path | None,
    as_json: bool,
    garmin: bool,
) -> None:
    """E-mail each athlete due now their week's plan, exactly once (safe to run hourly).

    Statuses: sent, skipped_already_sent, skipped_not_due, queued_retry (a temporary failure:
    the next run retries), failed, dry_run. Exit code 3 when any athlete is failed or
    queued_retry.
    """
    from planner.services.sendweekly import PROBLEMS, send_weekly
    from planner.store.config import data_dir

    def progress(event: str, entry: Any) -> None:
        if event == "retry":
            click.echo(f"{entry.athlete_id}: {entry.last_error}; retrying", err=True)

    if dry_run and out_dir is None:
        out_dir = data_dir() / "dry-run"
    with ctx.store() as store:
        summary = send_weekly(
            store,
            athlete_ids=athlete_ids,
            week=week,
            dry_run=dry_run,
            resend=resend,
            out_dir=out_dir,
            progress=progress if sys.stderr.isatty() else None,
        )
        pushed = _garmin_weekly(store, athlete_ids, week, dry_run) if garmin else None
    if as_json:
        _print_json({**summary.as_json(), **({"garmin": pushed.as_json()} if pushed else {})})
    else:
        for res in summary.results:
            where = f" -> {res.eml_path}" if res.eml_path is not None else ""
            click.echo(
                f"{res.athlete_id}: {res.status} {res.week or ''} {res.reason}{where}",
                err=res.status in PROBLEMS,
            )
        if not summary.results:
            click.echo("no athlete with an e-mail address (see 'stridewise athlete add')")
        if pushed is not None:
            _show_weekly_push(pushed)
    if summary.has_problems or (pushed is not None and pushed.has_problems):
        sys.exit(EXIT_PARTIAL)


# -- weekly plan (docs/plans.md) -----------------------------------------------------------


@cli.command("plan")
@click.option("--athlete", "athlete_id", help="Plan for this athlete (default: 'me').")
@_week_option("ISO week, e.g. 2026-W49 (default: next week in the athlete's timezone).")
@click.option(
    "--format",
    "fmt",
    type=_Registered(plan_formats),
    default="text",
    show_default=True,
    help="What to write.",
)
@click.option(
    "--out",
    "out_dir",
    type=click.Path(file_okay=False, path_type=Path),
    help="Write files into this folder instead of printing (needed for fit).",
)
@pass_ctx
def plan(ctx: _Context, athlete_id: str | None, week: Any, fmt: str, out_dir: Path | None) -> None:
    """Analyse, build and render the week's drill and strength plan (kept in plan history)."""
    from planner.services.weekly import plan_files

    if fmt == "fit" and out_dir is None:
        raise click.UsageError("--format fit writes one file per session: give --out DIR")
    with ctx.store() as store:
        output = plan_files(store, athlete_id, week, fmt, out_dir)
    if output.text is not None:
        click.echo(output.text, nl=False)
    for path in output.files:
        click.echo(f"wrote {path}")


# -- mechanics analysis and the limiter model (docs/model.md) -------------------------------

_AREA_CHOICE = click.Choice([str(area) for area in AREAS])  # values, not enum names


@cli.command("analyze")
@click.option("--athlete", "athlete_id", help="Analyse this athlete (default: 'me').")
@_since_option("Only runs from this date (YYYY-MM-DD, UTC).")
@click.option("--last", type=click.IntRange(min=1), metavar="N", help="Only the last N runs.")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
@click.option(
    "--plots",
    type=click.Path(file_okay=False, path_type=Path),
    help="Write PNG charts into this folder.",
)
@pass_ctx
def analyze(
    ctx: _Context,
    athlete_id: str | None,
    since: datetime | None,
    last: int | None,
    as_json: bool,
    plots: Path | None,
) -> None:
    """Which mechanical areas most limit you now, how sure we are, and why."""
    from planner.services.analysis import analysis_json, analyze_command, no_area_stands_out

    if since is not None and last is not None:
        raise click.UsageError("give --since or --last, not both")
    with ctx.store() as store:
        analysis, written = analyze_command(store, athlete_id, since=since, last=last, plots=plots)
    if as_json:
        doc = analysis_json(analysis)
        doc["plots"] = [str(p) for p in written]
        _print_json(doc)
        return
    data = analysis.data
    n_runs = 0 if data is None else data.runs
    click.echo(
        f"{analysis.athlete_id}: {n_runs} run{'' if n_runs == 1 else 's'} analysed,"
        f" {analysis.runs_used} with steady running (model {analysis.model_version})"
    )
    if no_area_stands_out(analysis):
        click.echo(
            "No area stands out: none is more likely than not to limit you, so the plan is a"
            " balanced maintenance week."
        )
    for est in analysis.limiters:
        prob = "cannot judge" if est.probability is None else f"{est.probability:.0%}"
        if est.interval is not None:
            prob += f" (90 % interval {est.interval[0]:.0%}–{est.interval[1]:.0%})"
        if est.stands_out:
            prob += ", stands out"
        click.echo(f"{est.rank}. {est.area:<17} {prob}")
        if est.summary:
            click.echo(f"   {est.summary}")
        for line in est.evidence:
            click.echo(f"   - {line}")
    if analysis.weaker_side:
        click.echo(f"Weaker side (longer ground contact): {analysis.weaker_side}")
    for line in () if data is None else data.limits:
        click.echo(f"note: {line}")
    for path in written:
        click.echo(f"wrote {path}")


@cli.command("progress")
@click.option("--athlete", "athlete_id", help="Whose progress (default: 'me').")
@click.option(
    "--weeks",
    type=click.IntRange(min=2),
    metavar="N",
    help="Show the last N weeks (default: the plan's weeks and 4 before it).",
)
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
@click.option(
    "--plot",
    type=click.Path(dir_okay=False, path_type=Path),
    help="Write a PNG chart of every area over the weeks.",
)
@pass_ctx
def progress(
    ctx: _Context, athlete_id: str | None, weeks: int | None, as_json: bool, plot: Path | None
) -> None:
    """Is the plan working? Each area week by week, and whether it moved beyond noise."""
    from planner.services.progress import progress_command, progress_text

    with ctx.store() as store:
        output = progress_command(store, athlete_id, weeks=weeks, plot=plot)
    if as_json:
        doc = output.progress.to_dict()
        doc["plot"] = None if output.plot is None else str(output.plot)
        _print_json(doc)
        return
    click.echo(progress_text(output.progress), nl=False)
    if output.plot is not None:
        click.echo(f"wrote {output.plot}")


@cli.command("demo")
@click.option(
    "--fit-dir",
    type=click.Path(file_okay=False, path_type=Path),
    default=Path("out/demo-fit"),
    show_default=True,
    help="Where the season's FIT files are written.",
)
@click.option("--seed", type=int, default=12, show_default=True, help="Seed of the season.")
@pass_ctx
def demo(ctx: _Context, fit_dir: Path, seed: int) -> None:
    """Create the demo athlete: 12 simulated weeks as FIT files, imported and planned weekly."""
    from planner.services.demo import SeasonWeek, demo_command

    def report(step: SeasonWeek) -> None:
        line = f"{step.week}: imported {step.imported} runs"
        if step.failed:
            line += f", {step.failed} failed"
        if step.plan_week:
            line += f"; plan for {step.plan_week} aims at {step.focus or 'general work'}"
        if step.shift_to:
            line += f", time moves to {step.shift_to}"
        click.echo(line)

    with ctx.store() as store:
        steps = demo_command(store, fit_dir, seed=seed, report=report)
    if any(step.failed for step in steps):
        sys.exit(EXIT_PARTIAL)


@cli.command("label")
@click.option("--athlete", "athlete_id", required=True, help="The athlete judged.")
@click.option(
    "--limiter",
    "limiters",
    type=_AREA_CHOICE,
    multiple=True,
    help="An area that limits this runner (repeatable).",
)
@click.option(
    "--not",
    "not_limiters",
    type=_AREA_CHOICE,
    multiple=True,
    help="An area that does not limit this runner (repeatable).",
)
@click.option("--json", "as_json", is_flag=True, help="Print the athlete's labels as JSON.")
@pass_ctx
def label(
    ctx: _Context,
    athlete_id: str,
    limiters: tuple[str, ...],
    not_limiters: tuple[str, ...],
    as_json: bool,
) -> None:
    """Store a coach's judgement; 'model train' then learns from it."""
    from planner.services.analysis import set_coach_labels

    if not limiters and not not_limiters:
        raise click.UsageError("give --limiter AREA and/or --not AREA")
    with ctx.store() as store:
        labels = set_coach_labels(store, athlete_id, limiters=limiters, not_limiters=not_limiters)
    if as_json:
        _print_json({"athlete_id": athlete_id, "athlete": athlete_id, "labels": labels})
        return
    shown = ", ".join(f"{a}={'limiter' if v else 'not'}" for a, v in sorted(labels.items()))
    click.echo(f"{athlete_id}: {shown}")


@cli.group("model")
def model() -> None:
    """Train and evaluate the limiter model."""


@model.command("train")
@click.option(
    "--out",
    "output",
    type=click.Path(file_okay=False, path_type=Path),
    help="Write the model into this folder (default: $STRIDEWISE_HOME/models).",
)
@click.option(  # the old spelling, kept working (CHANGELOG: renamed to --out)
    "--output", "output_old", type=click.Path(file_okay=False, path_type=Path), hidden=True
)
@click.option("--athletes", type=click.IntRange(min=20), help="Simulated athletes (default 700).")
@click.option("--seed", type=int, help="Seed of the simulated cohort.")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
@pass_ctx
def model_train(
    ctx: _Context,
    output: Path | None,
    output_old: Path | None,
    athletes: int | None,
    seed: int | None,
    as_json: bool,
) -> None:
    """Train on the simulated cohort plus coach-labelled athletes (seeded, reproducible)."""
    output = output or output_old
    from planner.services.analysis import train_model

    with ctx.store() as store:
        report = train_model(store, output_dir=output, n_athletes=athletes, seed=seed)
    if as_json:
        _print_json(report)
        return
    click.echo(
        f"trained {report['version']} on {report['simulated_athletes']} simulated and"
        f" {report['coach_labelled_athletes']} coach-labelled athletes → {report['path']}"
    )
    cv = report["grouped_cv"]
    if cv and cv.get("areas"):
        for area, m in cv["areas"].items():
            auc = "-" if m["roc_auc"] is None else f"{m['roc_auc']:.2f}"
            if m.get("roc_auc_90"):
                auc += f" (90 % interval {m['roc_auc_90'][0]:.2f}–{m['roc_auc_90'][1]:.2f})"
            click.echo(
                f"  athlete-grouped CV {area:<17} n={m['n']:<3} pos={m['positives']:<3}"
                f" ROC-AUC {auc}"
            )
        if cv.get("note"):
            click.echo(f"  note: {cv['note']}")


def _fmt(value: float | None, spec: str = ".3f") -> str:
    return "-" if value is None else format(value, spec)


@model.command("evaluate")
@click.option("--athletes", type=click.IntRange(min=20), help="Held-out athletes (default 400).")
@click.option("--seed", type=int, help="Seed of the held-out cohort (not the training seed).")
@click.option(
    "--generator",
    default="training",
    show_default=True,
    metavar="NAME",
    help="Simulated runners to score on: training, single_signal, effects_half,"
    " effects_double, coupled_gct_cadence, noise_1.5, or all.",
)
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
def model_evaluate(athletes: int | None, seed: int | None, generator: str, as_json: bool) -> None:
    """Score the model, the rules and the largest key-metric z on held-out simulated athletes."""
    from planner.services.analysis import evaluate_model

    report = evaluate_model(n_athletes=athletes, seed=seed, generator=generator)
    if as_json:
        _print_json(report)
        return
    for one in report.get("generators", [report]):
        _print_evaluation(one)


_SCORERS = (("model", "model"), ("baseline", "rules"), ("key_z", "key z"))


def _print_evaluation(report: dict[str, Any]) -> None:
    click.echo(f"{report['model_version']} on {report['held_out']}")
    click.echo(f"{'area':<17} {'':<9} {'n':>4} {'pos':>4} {'ROC-AUC':>8} {'Brier':>7} {'ECE':>7}")
    for area in report["model"]["areas"]:
        for name, label in _SCORERS:
            m = report[name]["areas"][area]
            click.echo(
                f"{area:<17} {label:<9} {m['n']:>4} {m['positives']:>4}"
                f" {_fmt(m['roc_auc']):>8} {_fmt(m['brier']):>7}"
                f" {_fmt(m['calibration_error']):>7}"
            )
    for name, label in _SCORERS:
        r = report[name]
        click.echo(
            f"top-1 limiter accuracy, {label:<8}: {_fmt(r['top1_accuracy'])}"
            f" (n={r['top1_n']} athletes with all four areas judged);"
            f" {_fmt(r['top1_one_clear'])} on the {r['top1_one_clear_n']} with one clear"
            f" limiter; false flags {_fmt(r['false_flag_rate'])} of {r['limiter_free_n']}"
            f" limiter-free; extreme evidence below 0.2: {r['extreme_below_0_2']}"
            f" of {r['extreme_n']}"
        )


# -- Garmin Connect calendar: push-plan, --garmin-calendar, send-weekly --garmin -----------
# (docs/garmin.md). One block while cli.py is being restructured: it adds the roster option
# to 'athlete add/edit' and holds what 'send-weekly --garmin' prints.

for _roster_command in (athlete_add, athlete_edit):
    _roster_command.params.append(
        click.Option(
            ["--garmin-calendar/--no-garmin-calendar"],
            default=None,
            help="Put each week's sessions on this athlete's Garmin Connect calendar"
            " (send-weekly --garmin).",
        )
    )


def _show_push(summary: Any) -> None:
    """One line per session and one for the week; a stop reason on stderr."""
    for session in summary.sessions:
        click.echo(
            f"{summary.athlete_id} {summary.week} {session.session_id} {session.day}:"
            f" {session.action} ({session.name})"
        )
    done = summary.as_json()["requests"]
    shown = ", ".join(f"{k} {v}" for k, v in done.items())
    click.echo(f"{summary.athlete_id} {summary.week} (plan revision {summary.revision}): {shown}")


def _garmin_weekly(store: Any, athlete_ids: tuple[str, ...], week: Any, dry: bool) -> Any:
    from planner.services.garmin_push import push_weekly

    return push_weekly(store, athlete_ids=athlete_ids, week=week, dry_run=dry)


def _show_weekly_push(pushed: Any) -> None:
    for summary in pushed.pushed:
        _show_push(summary)
        if summary.message:
            click.echo(f"{summary.athlete_id}: garmin stopped: {summary.message}", err=True)
    for athlete_id, reason in pushed.skipped:
        click.echo(f"{athlete_id}: garmin skipped: {reason}")
    for athlete_id, reason in pushed.failed:
        click.echo(f"{athlete_id}: garmin failed: {reason}", err=True)


@garmin.command("push-plan")
@click.option("--athlete", "athlete_id", help="Whose plan (default: 'me').")
@_week_option("ISO week, e.g. 2026-W49 (default: next week in the athlete's timezone).")
@click.option("--dry-run", is_flag=True, help="Print the JSON that would be sent; change nothing.")
@click.option("--json", "as_json", is_flag=True, help="Print a machine-readable summary.")
@pass_ctx
def garmin_push_plan(
    ctx: _Context, athlete_id: str | None, week: Any, dry_run: bool, as_json: bool
) -> None:
    """Put the week's sessions on your Garmin Connect calendar, exactly once.

    Drill and strength sessions become strength workouts, run sessions running workouts,
    each scheduled on its day. Re-running changes nothing; after a revised plan it updates
    the week and removes sessions the plan dropped. Only workouts stridewise created are
    ever changed. Needs 'stridewise garmin login' once; resumable after an interruption.
    """
    from planner.services.garmin_push import push_plan

    with ctx.store() as store:
        summary = push_plan(store, athlete_id, week, dry_run=dry_run)
    if as_json or dry_run:
        _print_json(summary.as_json())
    else:
        _show_push(summary)
    if summary.rate_limited:
        _fail(summary.message or "Garmin Connect answered HTTP 429 (too many requests)")
    if not summary.complete:
        click.echo(summary.message, err=True)
        sys.exit(EXIT_PARTIAL)


# -- the coach's web dashboard, calendar feeds and Strava webhooks (docs/serve.md) ----------


@cli.command("serve")
@click.option("--host", default="127.0.0.1", show_default=True, help="Address to listen on.")
@click.option(
    "--port",
    type=click.IntRange(0, 65535),
    default=8765,
    show_default=True,
    help="0: any free port.",
)
@pass_ctx
def serve(ctx: _Context, host: str, port: int) -> None:
    """Serve the coach's dashboard, calendar feeds and Strava's webhook until Ctrl-C.

    Listens on loopback by default; any other address needs an access token in
    STRIDEWISE_SERVE_TOKEN, which every page but the feeds and the webhook then asks for.
    """
    from planner.services.serving import serve as run_server

    def ready(url: str) -> None:
        click.echo(f"serving on {url} (Ctrl-C stops)", err=True)

    # uvicorn stops gracefully on Ctrl-C and then re-raises it: a normal end for a server.
    with contextlib.suppress(KeyboardInterrupt):
        run_server(ctx.db, host, port, ready=ready)
    click.echo("stopped", err=True)


@athlete.command("calendar-url")
@click.argument("athlete_id")
@click.option("--rotate", is_flag=True, help="Issue a new address; the old one stops working.")
@click.option("--revoke", is_flag=True, help="Withdraw the address (no feed until asked again).")
@click.option(
    "--base-url",
    metavar="URL",
    help="Public address of 'stridewise serve' (default: [serve] base_url in config.toml,"
    " else http://127.0.0.1:8765).",
)
@pass_ctx
def athlete_calendar_url(
    ctx: _Context, athlete_id: str, rotate: bool, revoke: bool, base_url: str | None
) -> None:
    """Print the athlete's calendar subscription address (this week and next, kept current).

    The address holds an unguessable token, the only credential it carries: share it with
    the athlete only. --rotate replaces it and revokes the old one.
    """
    from planner.services.calendar import calendar_url, revoke_calendar

    if rotate and revoke:
        raise click.UsageError("give --rotate or --revoke, not both")
    with ctx.store() as store:
        if revoke:
            had = revoke_calendar(store, athlete_id)
            click.echo(
                f"{athlete_id}: calendar address revoked"
                if had
                else f"{athlete_id}: no calendar address"
            )
            return
        result = calendar_url(store, athlete_id, rotate=rotate, base=base_url)
    click.echo(result.url)
    if rotate:
        click.echo(f"{athlete_id}: new address; the previous one no longer works", err=True)


@strava.command("subscribe")
@click.option(
    "--callback", metavar="URL", help="Public address of 'stridewise serve' + /strava/webhook."
)
@click.option("--delete", "delete", is_flag=True, help="Delete the subscription.")
@pass_ctx
def strava_subscribe(ctx: _Context, callback: str | None, delete: bool) -> None:
    """Manage the Strava webhook subscription: new runs then sync by themselves.

    With --callback, creates the application's one subscription (replacing one to another
    address); 'stridewise serve' must be running behind that address, since Strava checks it
    at once. Without options, shows the subscription; --delete removes it.
    """
    from planner.services import strava_webhook

    if callback and delete:
        raise click.UsageError("give --callback URL or --delete, not both")
    with ctx.store() as store:
        if delete:
            result = strava_webhook.unsubscribe(store)
        elif callback:
            result = strava_webhook.subscribe(store, callback)
        else:
            result = strava_webhook.subscriptions()
    if not result.subscriptions:
        click.echo("no Strava push subscription" if result.status != "deleted" else "deleted")
        return
    for sub in result.subscriptions:
        click.echo(f"{result.status}: subscription {sub.id} -> {sub.callback_url}")


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
    except InvalidValueError as exc:
        # A bad option value is a usage error (exit 2) whichever layer noticed it; the library
        # names its field, the command line names the option.
        _fail(f"--{exc.field.replace('_', '-')} {exc.value!r}: {exc.hint}", EXIT_USAGE)
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
