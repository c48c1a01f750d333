"""The coach's roster page for 200 athletes, over real HTTP, against two named baselines.

One command, one run:

    .venv/bin/python bench/roster_speed.py               # 200 athletes (target: < 0.5 s)
    .venv/bin/python bench/roster_speed.py --athletes 50

It fills a fresh database with ``--athletes`` athletes, each with a year of stored runs
(metadata: the roster reads only the newest), a few weeks of stored plans with their key
metrics (one real plan, built from simulated runs, copied to everyone), and this week's plan
e-mailed for every other athlete. Then it starts the real server (uvicorn on loopback, as
``stridewise serve`` does) and times, in this same run, the median of several requests:

* roster  — ``GET /``: the page a coach opens (planner/services/dashboard.py ``roster``);
* floor   — ``GET /login``: a page through the same stack (guard, jinja2, HTTP) with no data,
  the cost no roster can go below;
* per-athlete — the baseline a roster built from the existing per-athlete calls would cost:
  for every athlete its runs, its plan history, this week's plan and its outbox row, one
  query set at a time (the same data the page shows, without rendering).
"""

from __future__ import annotations

import argparse
import dataclasses
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

from analyze_speed import timed  # same folder: bench scripts run as `python bench/NAME.py`

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

TARGET_S = 0.5  # our own target: a page that opens without a wait on a busy 2-core machine
REPEAT = 7


def fill(db: Path, n_athletes: int) -> None:
    import numpy as np

    from planner.plan import IsoWeek
    from planner.records import Athlete, ImportedActivity
    from planner.schema import empty_stream
    from planner.services.weekly import build_week
    from planner.simulate import make_runner, simulate_run
    from planner.store.database import Store

    rng = np.random.default_rng(14)
    now = datetime.now(UTC)
    week = IsoWeek.containing(now.date())
    with Store(db) as store:
        # One real athlete with simulated runs and four weeks of real plans...
        runner = make_runner(rng, "a000", sensors="full", stryd=False, body_known=True)
        store.save_athlete(Athlete(id="a000", name="Athlete 000", email="a000@example.org"))
        for day in range(12):
            start = now - timedelta(days=40 - 3 * day)
            item = simulate_run(runner, "easy", rng, start, minutes=35)
            with store.transaction():
                store.save_activity("a000", item)
        for back in (3, 2, 1, 0):
            build_week(store, "a000", week.shift(-back))
        plans = store.db.execute("SELECT * FROM plans WHERE athlete_id = 'a000'").fetchall()
        template = next(iter(store.list_activities("a000")))
        # ...copied to everyone else, with a year of runs as metadata.
        for i in range(1, n_athletes):
            athlete_id = f"a{i:03d}"
            store.save_athlete(
                Athlete(id=athlete_id, name=f"Athlete {i:03d}", email=f"{athlete_id}@example.org")
            )
            with store.transaction() as sql:
                for row in plans:
                    sql.execute(
                        "INSERT INTO plans (athlete_id, week, revision, phase, plan, key_metrics,"
                        " content_hash, created_at, updated_at) VALUES (?,?,?,?,?,?,?,?,?)",
                        (athlete_id, *tuple(row)[1:]),
                    )
                for day in range(0, 365, 7):
                    activity = dataclasses.replace(
                        template.activity,
                        source_ref=f"{athlete_id}-{day}",
                        start_utc=now - timedelta(days=day, hours=i % 24),
                        n_samples=0,
                    )
                    store.save_activity(athlete_id, ImportedActivity(activity, empty_stream()))
                if i % 2:
                    sql.execute(
                        "INSERT INTO outbox (athlete_id, week, content_hash, message_id,"
                        " recipient, state, created_at, updated_at, sent_at)"
                        " VALUES (?, ?, 'h', ?, ?, 'sent', ?, ?, ?)",
                        (
                            athlete_id,
                            str(week),
                            f"<{athlete_id}@bench>",
                            f"{athlete_id}@example.org",
                            *(now.isoformat(),) * 3,
                        ),
                    )


def per_athlete(db: Path) -> None:
    """The baseline: the same data through the per-athlete calls, one athlete at a time."""
    from planner.services.weekly import current_week
    from planner.store.database import Store
    from planner.store.outbox import Outbox
    from planner.store.planstore import get_plan, load_history

    with Store(db) as store:
        outbox = Outbox(store)
        for athlete in store.list_athletes():
            week = current_week(athlete)
            store.list_activities(athlete.id, running_only=True, last=1)
            load_history(store, athlete.id)
            get_plan(store, athlete.id, week)
            outbox.latest(athlete.id, str(week))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--athletes", type=int, default=200)
    args = parser.parse_args()

    import requests

    from tests.web_helpers import live_server

    with tempfile.TemporaryDirectory() as tmp:
        db = Path(tmp) / "stridewise.db"
        t0 = time.perf_counter()
        fill(db, args.athletes)
        print(f"stored {args.athletes} athletes in {time.perf_counter() - t0:.1f} s")
        with live_server(db) as base:
            session = requests.Session()
            page = session.get(base + "/", timeout=120)
            assert page.status_code == 200
            shown = page.text.count('class="athlete"')
            assert shown == args.athletes, shown
            roster = timed(lambda: session.get(base + "/", timeout=120).raise_for_status(), REPEAT)
            floor = timed(
                lambda: session.get(base + "/login", timeout=120).raise_for_status(), REPEAT
            )
        naive = timed(lambda: per_athlete(db), REPEAT)
    print(f"roster page for {args.athletes} athletes, median of {REPEAT} requests:")
    print(f"  roster       GET /            {roster:7.3f} s   target < {TARGET_S:.1f} s")
    print(f"  floor        GET /login       {floor:7.3f} s")
    print(f"  per-athlete  baseline queries {naive:7.3f} s")
    print(f"  ratio roster / floor          {roster / floor:7.1f} x")
    print(f"  ratio per-athlete / roster    {naive / roster:7.1f} x")
    ok = roster < TARGET_S
    print("PASS" if ok else "FAIL", f"roster {'<' if ok else '>='} {TARGET_S} s")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
