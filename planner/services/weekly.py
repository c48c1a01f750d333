"""One athlete's week: analyse, build the plan, keep it in the plan history, write renderings.

:func:`build_week` is what ``stridewise plan`` and ``send-weekly`` call; it is idempotent for
the same week and data (the same plan, the same revision). :func:`plan_files` renders one
format to files or to text for ``stridewise plan``.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import UTC, datetime, time
from pathlib import Path
from typing import TYPE_CHECKING
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from planner.errors import ConfigError
from planner.plan import IsoWeek, Plan
from planner.planbuild import build_plan, check_preferences, key_metrics
from planner.records import DEFAULT_ATHLETE, PLAN_FORMATS, Analysis, Athlete, Preferences
from planner.store.planstore import load_history, preview_plan, save_plan
from planner.training import summarize_training

if TYPE_CHECKING:
    from drills.catalogue import Catalogue
    from planner.store.database import Store


def _zone(athlete: Athlete) -> ZoneInfo:
    try:
        return ZoneInfo(athlete.timezone)
    except (ZoneInfoNotFoundError, ValueError):
        raise ConfigError(f"athlete {athlete.id}: unknown timezone {athlete.timezone!r}") from None


def current_week(athlete: Athlete, now: datetime | None = None) -> IsoWeek:
    """The ISO week ``now`` falls in, in the athlete's timezone."""
    local = (now or datetime.now(UTC)).astimezone(_zone(athlete))
    return IsoWeek.containing(local.date())


def next_week(athlete: Athlete, now: datetime | None = None) -> IsoWeek:
    """The ISO week after the one ``now`` falls in, in the athlete's timezone."""
    return current_week(athlete, now).shift(1)


def preferences_of(athlete: Athlete) -> Preferences:
    """The athlete's plan preferences, checked; ConfigError names a bad setting."""
    try:
        prefs = Preferences.from_dict(athlete.preferences)
    except (TypeError, ValueError) as exc:
        raise ConfigError(f"athlete {athlete.id}: bad plan preferences: {exc}") from None
    try:
        return check_preferences(prefs)
    except ConfigError as exc:
        raise ConfigError(f"athlete {athlete.id}: {exc}") from None


def build_week(
    store: Store,
    athlete_id: str,
    week: IsoWeek,
    *,
    catalogue: Catalogue | None = None,
    persist: bool = True,
) -> tuple[Plan, Analysis]:
    """Analyse the athlete's runs, build ``week``'s plan and save it in the plan history.

    Two steps: draft the plan from the stored data, then keep it. With ``persist=False`` (a
    preview) the second step only works out the revision it would get, and nothing is written,
    not even the feature cache.

    Parameters
    ----------
    store
        The open store.
    athlete_id
        A stored athlete.
    week
        The ISO week.
    catalogue
        The drill catalogue (default: built-in plus registered plugins).
    persist
        Keep the plan in the history (and cache run features); False for a preview.

    Returns
    -------
    (Plan, Analysis)
        The saved plan (with its revision) and the analysis it was built from. Running this
        again with the same data returns the same plan and revision.
    """
    from drills.catalogue import load_catalogue
    from planner.services.analysis import analyze_athlete
    from planner.services.progress import progress_for_week

    athlete = store.get_athlete(athlete_id)
    prefs = preferences_of(athlete)
    analysis = analyze_athlete(store, athlete_id, save=persist)
    monday = datetime.combine(week.monday(), time(0), tzinfo=_zone(athlete))
    runs = (s.activity for s in store.list_activities(athlete_id, running_only=True))
    training = summarize_training(runs, end_utc=monday.astimezone(UTC), tz=athlete.timezone)
    history = load_history(store, athlete_id, before=week)
    progress = progress_for_week(store, athlete, week, prefs.level, history, save=persist)
    plan = build_plan(
        analysis, training, prefs, week, history, catalogue or load_catalogue(), progress
    )
    keep = save_plan if persist else preview_plan
    return keep(store, plan, key_metrics(analysis)), analysis


@dataclass(frozen=True, slots=True)
class PlanOutput:
    """What ``stridewise plan`` produced: text for stdout, or the files written."""

    plan: Plan
    text: str | None
    files: tuple[Path, ...]


def _chart(analysis: Analysis) -> bytes | None:
    from planner.delivery.charts import limiter_chart_png

    return limiter_chart_png(analysis)


def trend_chart(plan: Plan) -> bytes | None:
    """The plan's small progress chart (None before there is anything to show)."""
    from planner.delivery.progresscharts import trend_png

    return trend_png(plan)


def parse_week(text: str) -> IsoWeek:
    """An ISO week such as ``2026-W49``; ValueError says what is wrong."""
    return IsoWeek.parse(text)


def plan_files(
    store: Store,
    athlete_id: str | None,
    week: IsoWeek | None,
    fmt: str,
    out_dir: Path | None,
) -> PlanOutput:
    """Build the week and render it as ``fmt``, into ``out_dir`` or as text.

    Defaults: the default athlete, and the week after this one in their timezone.

    Without ``out_dir`` the rendering is returned as text (HTML with the chart as a data: URI);
    with it, files named after the week are written (HTML beside its chart PNG). ``fit`` needs
    ``out_dir``: one workout file per session.
    """
    from planner.delivery import render
    from planner.delivery.workouts import plan_workouts

    if fmt not in PLAN_FORMATS:
        raise ConfigError(f"unknown plan format {fmt!r}: use {', '.join(PLAN_FORMATS)}")
    athlete = store.get_athlete(athlete_id or DEFAULT_ATHLETE)
    plan, analysis = build_week(store, athlete.id, week or next_week(athlete))
    written: list[Path] = []

    def write(name: str, data: str | bytes) -> None:
        assert out_dir is not None
        path = out_dir / name
        if isinstance(data, str):
            path.write_text(data, encoding="utf-8")
        else:
            path.write_bytes(data)
        written.append(path)

    if fmt == "fit":
        if out_dir is None:
            raise ConfigError(
                "the fit format writes one file per session: it needs an output folder"
            )
        out_dir.mkdir(parents=True, exist_ok=True)
        for name, data in plan_workouts(plan).items():
            write(name, data)
        return PlanOutput(plan, None, tuple(written))
    chart: bytes | None = None
    trend: bytes | None = None
    payload: str | bytes
    if fmt == "html":
        chart, trend = _chart(analysis), trend_chart(plan)
        mode: render.ImageMode = "data" if out_dir is None else "file"
        payload = render.render_html(plan, analysis, athlete, chart, image=mode, trend_png=trend)
    elif fmt == "text":
        payload = render.render_text(plan, analysis, athlete)
    elif fmt == "md":
        payload = render.render_markdown(plan, analysis, athlete)
    elif fmt == "ics":
        payload = render.render_ics(plan, athlete)
    else:
        payload = json.dumps(plan.to_dict(), indent=2, sort_keys=True, ensure_ascii=False) + "\n"
    if out_dir is None:
        text = payload.decode("utf-8") if isinstance(payload, bytes) else payload
        return PlanOutput(plan, text, ())
    out_dir.mkdir(parents=True, exist_ok=True)
    suffix = {"html": "html", "text": "txt", "md": "md", "ics": "ics", "json": "json"}[fmt]
    write(f"plan-{plan.week}.{suffix}", payload)
    if chart is not None:
        write(render.chart_file_name(plan), chart)
    if trend is not None:
        write(render.trend_file_name(plan), trend)
    return PlanOutput(plan, None, tuple(written))
