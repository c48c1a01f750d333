"""Warm `stridewise progress` for 200 stored runs over 16 weeks, against recomputing everything.

One command, one run:

    .venv/bin/python bench/progress_speed.py             # 200 runs over 16 weeks (target < 1 s)
    .venv/bin/python bench/progress_speed.py --runs 60   # quicker

It stores 200 simulated runs (30–60 min, all run kinds, full running dynamics) spread over 16
ISO weeks in a fresh database and builds a plan for each of the last 8 weeks (so the plan history
has a start, blocks and a deload), then times, in this same process:

* warm  — ``progress`` with every run's features in the cache (the target, < 1 s): 16 weekly
  poolings, the model on each week, noise and verdicts;
* naive — the baseline: the same progress with every stream loaded and every feature
  recomputed (no feature cache).

Then the command a user runs, ``stridewise progress --json``, is timed as a fresh process
(interpreter, imports and model load included).
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

from analyze_speed import timed  # same folder: bench scripts run as `python bench/NAME.py`

ROOT = Path(__file__).resolve().parent.parent
TARGET_WARM_S = 1.0
ATHLETE = "bench"
WEEKS = 16
PLAN_WEEKS = 8


def fill(n_runs: int) -> None:
    """Store ``n_runs`` simulated runs over WEEKS weeks, then plan the last PLAN_WEEKS weeks."""
    import numpy as np

    from planner.plan import IsoWeek
    from planner.services.weekly import build_week
    from planner.simulate import RUN_KINDS, make_runner, simulate_run
    from planner.store.database import Store

    rng = np.random.default_rng(2024)
    runner = make_runner(rng, ATHLETE, sensors="full", stryd=False, body_known=True)
    first = IsoWeek(2026, 30)
    start = datetime.combine(first.monday(), datetime.min.time(), tzinfo=UTC)
    step = timedelta(days=7 * WEEKS) / n_runs
    with Store() as store:
        for i in range(n_runs):
            kind = RUN_KINDS[i % len(RUN_KINDS)]
            when = start + i * step + timedelta(hours=6)
            item = simulate_run(runner, kind, rng, when, minutes=rng.uniform(30, 60))
            store.save_activity(ATHLETE, item)
        for k in range(WEEKS - PLAN_WEEKS, WEEKS):
            # Plans see every run stored; only the history (start, blocks) matters here.
            build_week(store, ATHLETE, first.shift(k))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=200)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as home:
        os.environ["STRIDEWISE_HOME"] = home
        from planner.services.progress import progress_command
        from planner.store.database import Store

        t0 = time.perf_counter()
        fill(args.runs)
        print(
            f"stored {args.runs} simulated runs and {PLAN_WEEKS} plans in"
            f" {time.perf_counter() - t0:.1f} s"
        )
        with Store() as store:
            progress_command(store, ATHLETE, weeks=WEEKS)  # features cached (plans did most)
            warm = timed(lambda: progress_command(store, ATHLETE, weeks=WEEKS), 5)
            naive = timed(lambda: progress_command(store, ATHLETE, weeks=WEEKS, use_cache=False), 2)
            result = progress_command(store, ATHLETE, weeks=WEEKS).progress
        env = {**os.environ, "STRIDEWISE_HOME": home}
        argv = ["progress", "--athlete", ATHLETE, "--weeks", str(WEEKS), "--json"]
        fresh = timed(
            lambda: subprocess.run(
                [sys.executable, "-m", "cli", *argv],
                cwd=ROOT,
                env=env,
                check=True,
                capture_output=True,
            ),
            3,
        )
    runs = sum(p.runs for p in result.area("swing").points)
    print(f"progress over {len(result.weeks)} weeks ({runs} runs with cadence), median wall time:")
    print("in one process (model loaded once):")
    print(f"  warm (cached features)        {warm:7.3f} s   target < {TARGET_WARM_S:.1f} s")
    print(f"  naive (recompute everything)  {naive:7.3f} s")
    print(f"  ratio naive / warm            {naive / warm:7.1f} x")
    print("fresh `stridewise progress --json` process (interpreter, imports, model):")
    print(f"  fresh process                 {fresh:7.3f} s")
    print(f"  ratio naive / fresh process   {naive / fresh:7.1f} x")
    ok = warm < TARGET_WARM_S
    print("PASS" if ok else "FAIL", f"warm progress {'<' if ok else '>='} {TARGET_WARM_S} s")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
