"""Progress week over week (planner.progress): typical error, verdicts, sentences, plan notes.

The runs are simulated streams through the real feature code (planner.demo / planner.simulate),
grouped by ISO week; nothing is mocked.
"""

from __future__ import annotations

import itertools
import math
import statistics
from collections.abc import Callable
from dataclasses import replace
from functools import cache
from pathlib import Path

import numpy as np
import pytest

from planner import demo
from planner.features import RunFeatures, run_features
from planner.plan import IsoWeek
from planner.progress import (
    IMPROVING,
    NO_CHANGE,
    NOISE_FACTOR,
    SWC_SHARE,
    TOO_EARLY,
    VIEWS,
    WORSENING,
    compute_progress,
    notes_for_plan,
    typical_error,
)
from planner.simulate import simulate_run
from tests.conftest import CliResult

START = demo.FIRST_WEEK.shift(demo.PLAN_START_WEEK)


@cache
def _season(direction: int) -> dict[IsoWeek, tuple[RunFeatures, ...]]:
    """The demo runner's 12 weeks; the imbalance shrinks (+1), stays (0) or grows (-1)."""
    runner = demo.demo_runner()
    out: dict[IsoWeek, list[RunFeatures]] = {}
    for run in demo.season():
        rng = np.random.default_rng([7, run.index])
        change = demo.BALANCE_START_PTS - demo.balance_pts(run.week)
        pts = demo.BALANCE_START_PTS - direction * change + rng.normal(0.0, 0.2)
        today = replace(runner, balance_pts=max(0.3, pts))
        item = simulate_run(today, "easy", rng, run.start_utc, minutes=35.0)
        week = IsoWeek.containing(run.day)
        out.setdefault(week, []).append(run_features(item.stream, item.activity))
    return {w: tuple(r) for w, r in out.items()}


def _progress(direction: int, plan_start: IsoWeek | None = START):  # type: ignore[no-untyped-def]
    return compute_progress("ann", _season(direction), [], plan_start=plan_start)


@pytest.mark.parametrize(
    ("direction", "verdict"), [(1, IMPROVING), (0, NO_CHANGE), (-1, WORSENING)]
)
def test_verdict_follows_the_real_change_of_the_limiter(direction: int, verdict: str) -> None:
    progress = _progress(direction)
    balance = progress.area("strength_balance")
    assert balance.verdict == verdict
    # Nothing else changed in this runner: no other area may claim a real change.
    for other in ("push", "swing", "posture_hip"):
        assert progress.area(other).verdict == NO_CHANGE, other
    assert balance.sentence.startswith("Your left–right balance moved from")
    if verdict == IMPROVING:
        assert balance.sentence.endswith("more than week-to-week noise.")
        assert balance.current is not None
        assert balance.baseline is not None
        assert balance.baseline - balance.current > balance.noise


def test_weeks_shown_and_baseline_split() -> None:
    progress = _progress(1)
    # Default window: the plan's weeks and four before it.
    assert progress.weeks[0] == str(START.shift(-4))
    assert progress.weeks[-1] == str(demo.FIRST_WEEK.shift(demo.WEEKS - 1))
    points = progress.area("strength_balance").points
    assert [p.in_plan for p in points] == [IsoWeek.parse(p.week) >= START for p in points]
    assert all(p.runs == 4 and p.steady_min > 60 for p in points)
    assert len(compute_progress("ann", _season(1), [], plan_start=START, weeks=3).weeks) == 3


def test_typical_error_is_hopkins_from_baseline_weeks() -> None:
    progress = _progress(0)
    balance = progress.area("strength_balance")
    before = [p.value for p in balance.points if not p.in_plan]
    assert balance.typical_error_basis == "baseline_weeks"
    diffs = [b - a for a, b in itertools.pairwise(before)]
    assert balance.typical_error == pytest.approx(statistics.stdev(diffs) / math.sqrt(2))
    swc = SWC_SHARE * VIEWS["strength_balance"].between_sd
    assert balance.noise == pytest.approx(max(swc, NOISE_FACTOR * balance.typical_error))


def test_typical_error_falls_back_to_runs_within_weeks() -> None:
    weeks = list(_season(0).values())
    te, basis = typical_error("strength_balance", [4.0, 4.1], weeks)
    assert basis == "runs_within_weeks"
    values = [[abs(r.scalar("balance_left_pct")) for r in runs] for runs in weeks]
    pooled = math.sqrt(
        sum((v - statistics.mean(w)) ** 2 for w in values for v in w)
        / sum(len(w) - 1 for w in values)
    )
    assert te == pytest.approx(pooled / 2.0)  # four runs a week: √4


def test_too_early_without_plan_weeks() -> None:
    assert _progress(1, plan_start=None).area("strength_balance").verdict == TOO_EARLY
    late = demo.FIRST_WEEK.shift(demo.WEEKS - 1)
    balance = _progress(1, plan_start=late).area("strength_balance")
    assert balance.verdict == TOO_EARLY
    assert "too early to tell" in balance.sentence


def test_plan_notes_speak_in_runner_units() -> None:
    progress = _progress(1)
    notes = {n.area: n for n in notes_for_plan(progress)}
    balance = notes["strength_balance"]
    assert balance.unit == "%"
    assert all(50.0 < p.value < 60.0 for p in balance.points)  # % on the longer side
    assert balance.start is not None
    assert balance.now is not None
    assert balance.now < balance.start
    assert f"{balance.start:.1f} %" in balance.sentence
    for note in notes.values():
        assert "_" not in note.sentence  # no internal keys such as balance_dev_pts
        assert note.plan_start == str(START)
    doc = progress.to_dict()
    assert doc["areas"]["strength_balance"]["metric"] == "balance_dev_pts"  # JSON keeps keys
    assert doc["areas"]["strength_balance"]["verdict"] == IMPROVING


def test_progress_cli_errors_are_one_line(run_cli: Callable[..., CliResult]) -> None:
    missing = run_cli("progress", "--athlete", "nobody")
    assert missing.code == 1
    assert missing.err.count("\n") == 1
    assert "nobody" in missing.err
    assert "Traceback" not in missing.err
    run_cli("athlete", "add", "ann", "--name", "Ann", "--email", "ann@example.org")
    empty = run_cli("progress", "--athlete", "ann")
    assert empty.code == 1
    assert "no runs" in empty.err
    assert run_cli("progress", "--athlete", "ann", "--weeks", "1").code == 2


def test_progress_without_a_plan_is_all_baseline(
    run_cli: Callable[..., CliResult], tmp_path: Path
) -> None:
    from planner.store.database import Store

    with Store() as store:
        for run in demo.season()[:8]:
            store.save_activity("ann", demo.simulate_demo_run(run))
    result = run_cli("progress", "--athlete", "ann", "--json")
    assert result.code == 0, result.err
    doc = result.json()
    assert doc["plan_start"] is None
    assert doc["areas"]["strength_balance"]["verdict"] == TOO_EARLY
    assert all(not p["in_plan"] for p in doc["areas"]["strength_balance"]["points"])
    assert "no plan yet" in run_cli("progress", "--athlete", "ann").out
