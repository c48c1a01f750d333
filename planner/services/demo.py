"""``stridewise demo``: the demo athlete's season as FIT files, imported and planned week by week.

1. :func:`write_season` simulates the twelve weeks of :mod:`planner.demo` and writes each run as
   a real FIT activity file (``planner.delivery.activityfit``), one folder per week. One
   process: a pool of two was slower here (start-up and imports outweigh 48 small files).
2. :func:`run_season` files them under the demo athlete the way a runner's weeks arrive: each
   week's folder goes through the normal import (the ``stridewise import`` service and FIT
   decoder), and once the baseline weeks are in, the next week's plan is built and kept in the
   plan history, every week in turn. The plans see only the runs imported so far, as they
   would have at the time.

Deterministic by seed: the same seed writes byte-identical files.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from planner import demo
from planner.errors import ConfigError
from planner.records import Preferences

if TYPE_CHECKING:
    from collections.abc import Callable

    from planner.store.database import Store


def write_season(out_dir: Path, *, seed: int = demo.DEMO_SEED) -> list[Path]:
    """Write the season's FIT files into ``out_dir/week-NN/``; return their paths."""
    from planner.delivery.activityfit import encode_activity

    written = []
    for run in demo.season():
        path = out_dir / f"week-{run.week + 1:02d}" / run.file_name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(encode_activity(demo.simulate_demo_run(run, seed)))
        written.append(path)
    return written


@dataclass(frozen=True, slots=True)
class SeasonWeek:
    """One step of the season: what was imported, and the plan built after it (if any)."""

    week: str
    imported: int
    failed: int
    plan_week: str | None
    focus: str | None
    shift_to: str | None


def _athlete(store: Store) -> None:
    from planner.records import Athlete

    existing = store.find_athlete(demo.DEMO_ATHLETE)
    prefs = Preferences(
        available_days=("mon", "wed", "thu", "fri"),
        sessions_per_week=3,
        minutes_per_session=30,
        equipment=("none", "band", "step", "wall", "mat", "hill", "dumbbells"),
    )
    store.save_athlete(
        Athlete(
            id=demo.DEMO_ATHLETE,
            name=demo.DEMO_NAME,
            email=demo.DEMO_EMAIL,
            timezone=demo.DEMO_TIMEZONE,
            send_day="sun",
            send_time="18:00",
            preferences=prefs.to_dict() if existing is None else existing.preferences,
        )
    )


def run_season(
    store: Store,
    fit_dir: Path,
    *,
    report: Callable[[SeasonWeek], None] | None = None,
) -> list[SeasonWeek]:
    """Import the season week by week and build each week's plan after the baseline."""
    from drills.catalogue import load_catalogue
    from planner.services.ingest import plan_import, run_import
    from planner.services.weekly import build_week

    folders = [fit_dir / f"week-{k + 1:02d}" for k in range(demo.WEEKS)]
    missing = [f for f in folders if not f.is_dir()]
    if missing:
        raise ConfigError(f"{missing[0]}: no such folder; write the season first")
    _athlete(store)
    catalogue = load_catalogue()
    steps = []
    for k, folder in enumerate(folders):
        summary = run_import(store, plan_import([folder]), demo.DEMO_ATHLETE, workers=1)
        plan_week = focus = shift = None
        if k >= demo.PLAN_START_WEEK - 1:
            week = demo.FIRST_WEEK.shift(k + 1)
            plan, _ = build_week(store, demo.DEMO_ATHLETE, week, catalogue=catalogue)
            plan_week, shift = plan.week, plan.shift_to
            focus = next((e.area for e in plan.emphasis if e.role == "focus"), None)
        step = SeasonWeek(
            week=str(demo.FIRST_WEEK.shift(k)),
            imported=len(summary.imported),
            failed=len(summary.failed),
            plan_week=plan_week,
            focus=focus,
            shift_to=shift,
        )
        steps.append(step)
        if report is not None:
            report(step)
    return steps


def demo_command(
    store: Store,
    fit_dir: Path,
    *,
    seed: int = demo.DEMO_SEED,
    report: Callable[[SeasonWeek], None] | None = None,
) -> list[SeasonWeek]:
    """``stridewise demo``: write the season's FIT files, then import and plan week by week."""
    if store.list_activities(demo.DEMO_ATHLETE):
        raise ConfigError(
            f"athlete {demo.DEMO_ATHLETE!r} already has activities: use a fresh STRIDEWISE_HOME"
        )
    write_season(fit_dir, seed=seed)
    return run_season(store, fit_dir, report=report)
