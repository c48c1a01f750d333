"""Warm `stridewise analyze` for an athlete with 200 stored runs, against recomputing everything.

One command, one run:

    .venv/bin/python bench/analyze_speed.py            # 200 runs (the target: warm < 2 s)
    .venv/bin/python bench/analyze_speed.py --runs 50  # quicker

It stores 200 simulated runs (30–60 min, all run kinds, full running dynamics) in a fresh
database, then times, in this same process:

* cold  — the first analysis: every run's features computed and written to the cache;
* warm  — the same analysis again: features read from the cache (the target, < 2 s);
* naive — the baseline: every stream loaded and every feature recomputed, no cache.

In-process analyses share the model loaded once per process (as `send-weekly` does for a
roster). Then the whole command a user runs, `stridewise analyze --json` with the cache warm,
is timed as a fresh process — interpreter, imports and model load included — against the same
2 s target, and against a second baseline: the same process when it also imports scikit-learn
and skops and loads the skops artefact, which is what `analyze` did before it evaluated the
compiled model (planner/compiled.py).
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
TARGET_WARM_S = 2.0
ATHLETE = "bench"


def timed(fn: Callable[[], object], repeat: int) -> float:
    """Median wall time of ``repeat`` calls, in seconds."""
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def fill(n_runs: int) -> None:
    """Store ``n_runs`` simulated runs of one runner (one every day)."""
    import numpy as np

    from planner.simulate import RUN_KINDS, make_runner, simulate_run
    from planner.store.database import Store

    rng = np.random.default_rng(2024)
    runner = make_runner(rng, ATHLETE, sensors="full", stryd=False, body_known=True)
    start = datetime(2025, 1, 1, 6, 0, tzinfo=UTC)
    with Store() as store:
        for i in range(n_runs):
            kind = RUN_KINDS[i % len(RUN_KINDS)]
            item = simulate_run(
                runner, kind, rng, start + timedelta(days=i), minutes=rng.uniform(30, 60)
            )
            store.save_activity(ATHLETE, item)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=200)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as home:
        os.environ["STRIDEWISE_HOME"] = home
        from planner.services.analysis import run_analysis
        from planner.store.database import Store

        t0 = time.perf_counter()
        fill(args.runs)
        print(f"stored {args.runs} simulated runs in {time.perf_counter() - t0:.1f} s")
        with Store() as store:
            cold = timed(lambda: run_analysis(store, ATHLETE, last=args.runs), 1)
            warm = timed(lambda: run_analysis(store, ATHLETE, last=args.runs), 5)
            naive = timed(lambda: run_analysis(store, ATHLETE, last=args.runs, use_cache=False), 2)
            used = run_analysis(store, ATHLETE, last=args.runs).analysis.runs_used
        env = {**os.environ, "STRIDEWISE_HOME": home}
        argv = ["analyze", "--athlete", ATHLETE, "--last", str(args.runs), "--json"]
        command = [sys.executable, "-m", "cli", *argv]
        fresh = timed(
            lambda: subprocess.run(command, cwd=ROOT, env=env, check=True, capture_output=True), 5
        )
        # The path before the compiled model: the same command, plus scikit-learn and skops
        # imported and the skops artefact loaded (hash check and trusted-type load included).
        skops_path = (
            "import sklearn, skops.io, cli\n"
            "from planner.store.model_io import load_artefact\n"
            "load_artefact()\n"
            f"cli.main({argv!r})\n"
        )
        before = timed(
            lambda: subprocess.run(
                [sys.executable, "-c", skops_path],
                cwd=ROOT,
                env=env,
                check=True,
                capture_output=True,
            ),
            3,
        )
    print(f"analysis of {args.runs} runs ({used} with steady running), median wall time:")
    print("in one process (model loaded once):")
    print(f"  cold (compute + fill cache)   {cold:7.3f} s")
    print(f"  warm (cached features)        {warm:7.3f} s   target < {TARGET_WARM_S:.1f} s")
    print(f"  naive (recompute everything)  {naive:7.3f} s")
    print(f"  ratio naive / warm            {naive / warm:7.1f} x")
    print("fresh `stridewise analyze --json` process, warm cache (interpreter, imports, model):")
    print(f"  compiled model (NumPy only)   {fresh:7.3f} s   target < {TARGET_WARM_S:.1f} s")
    print(f"  with sklearn + skops (before) {before:7.3f} s")
    print(f"  ratio before / compiled       {before / fresh:7.1f} x")
    print(f"  ratio naive / fresh process   {naive / fresh:7.1f} x")
    ok_warm = warm < TARGET_WARM_S
    ok_fresh = fresh < TARGET_WARM_S
    for ok, what in ((ok_warm, "warm analyze"), (ok_fresh, "fresh analyze process")):
        print("PASS" if ok else "FAIL", f"{what} {'<' if ok else '>='} {TARGET_WARM_S} s")
    return 0 if ok_warm and ok_fresh else 1


if __name__ == "__main__":
    sys.exit(main())
