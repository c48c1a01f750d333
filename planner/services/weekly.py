"""One athlete's week: analyse, build the plan, keep it in the plan history, write renderings.

:func:`build_week` is what ``stridewise plan`` and ``send-weekly`` call; it is idempotent for
the same week and data (the same plan, the same revision). :func:`plan_files` renders one
format to files or to text for ``stridewise plan``.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, time
from pathlib import Path
from typing import TYPE_CHECKING
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from planner.errors import ConfigError
from planner.plan import IsoWeek, Plan
from planner.planbuild import build_plan, check_preferences, key_metrics
from planner.records import DEFAULT_ATHLETE, Analysis, Athlete, Preferences
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
    """Build the week and render it with the ``fmt`` renderer, into ``out_dir`` or as text.

    Defaults: the default athlete, and the week after this one in their timezone.

    Without ``out_dir`` the main document is returned as text (HTML with its charts as data:
    URIs); with it, every file of the rendering is written there. A format of several files
    (``fit``: one workout per session) needs ``out_dir``.
    """
    from planner.renderer import PlanDocument
    from planner.services.registry import load_renderer

    renderer = load_renderer(fmt)
    if renderer.needs_folder and out_dir is None:
        raise ConfigError(
            f"the {fmt} format writes one file per session: it needs an output folder"
        )
    athlete = store.get_athlete(athlete_id or DEFAULT_ATHLETE)
    plan, analysis = build_week(store, athlete.id, week or next_week(athlete))
    files = renderer.render(PlanDocument(plan, analysis, athlete, standalone=out_dir is None))
    if out_dir is None:
        data = files[0].data if files else ""
        return PlanOutput(plan, data.decode("utf-8") if isinstance(data, bytes) else data, ())
    out_dir.mkdir(parents=True, exist_ok=True)
    written = []
    for file in files:
        path = out_dir / file.name
        if isinstance(file.data, str):
            path.write_text(file.data, encoding="utf-8")
        else:
            path.write_bytes(file.data)
        written.append(path)
    return PlanOutput(plan, None, tuple(written))
