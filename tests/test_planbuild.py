"""The plan builder's rules, as properties over many generated athletes, analyses and weeks."""

from __future__ import annotations

import dataclasses
import itertools
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from drills.catalogue import Catalogue, Contraindication, Equipment, load_catalogue
from planner.errors import ConfigError
from planner.evidence import STAND_OUT_P
from planner.plan import IsoWeek, Plan, PlanHistoryEntry
from planner.planbuild import (
    DELOAD,
    LOADED,
    LOADED_WEEKS_BEFORE_DELOAD,
    MAX_RUN_SESSIONS,
    MAX_STEP,
    RESTART_AFTER_WEEKS,
    TECHNIQUE,
    TECHNIQUE_WEEKS,
    area_shares,
    build_plan,
    check_preferences,
    history_entry,
    key_metrics,
    metric_better,
    planned_dose,
)
from planner.records import (
    AREAS,
    GENERAL,
    WEEKDAYS,
    Activity,
    Analysis,
    Lap,
    LimiterEstimate,
    Preferences,
    Source,
)
from planner.store.database import Store
from planner.store.planstore import get_plan, load_history, save_plan
from planner.training import TrainingSummary, summarize_training

CATALOGUE: Catalogue = load_catalogue(include_plugins=False)
SETTINGS = settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
# The key metrics planner.limiters reports.
METRICS = {
    "push": "gct_resid_ms",
    "swing": "cadence_resid_spm",
    "posture_hip": "vo_resid_mm",
    "strength_balance": "balance_dev_pts",
}

# -- strategies -------------------------------------------------------------------------------

weekdays = st.sampled_from(WEEKDAYS)
day_sets = st.lists(weekdays, unique=True).map(lambda ds: tuple(sorted(ds, key=WEEKDAYS.index)))


@st.composite
def analyses(draw: st.DrawFn) -> Analysis:
    limiters = []
    for area in AREAS:
        judged = draw(st.booleans() | st.just(True))
        prob = draw(st.floats(0.0, 1.0)) if judged else None
        limiters.append(
            LimiterEstimate(
                area=area,
                probability=prob,
                rank=None,
                evidence=(f"Evidence for {area}: value {draw(st.integers(0, 99))} at 4:30/km.",),
                key_metric=METRICS[area],
                key_value=draw(st.floats(-30, 60)),
            )
        )
    return Analysis(
        athlete_id=draw(st.text("abcxyz-", min_size=1, max_size=6)),
        generated_utc=datetime(2026, 11, 1, tzinfo=UTC),
        limiters=tuple(limiters),
        runs_used=draw(st.integers(0, 50)),
        weaker_side=draw(st.sampled_from([None, "left", "right"])),
    )


@st.composite
def trainings(draw: st.DrawFn) -> TrainingSummary:
    return TrainingSummary(
        weeks=6,
        runs=0,
        runs_per_week=draw(st.sampled_from([0.0, 1.0, 2.0, 3.5, 5.0, 7.0])),
        weekly_distance_km=30.0,
        weekly_time_min=200.0,
        long_run_day=draw(st.none() | weekdays),
        quality_days=draw(day_sets.map(lambda d: d[:2])),
        run_days=draw(day_sets),
    )


@st.composite
def preferences(draw: st.DrawFn) -> Preferences:
    equipment = draw(st.lists(st.sampled_from([e.value for e in Equipment]), unique=True))
    if "none" in equipment and len(equipment) > 1:
        equipment.remove("none")
    return Preferences(
        available_days=draw(day_sets.filter(bool)),
        sessions_per_week=draw(st.integers(1, 7)),
        minutes_per_session=draw(st.sampled_from([5, 10, 15, 20, 25, 30, 45, 60])),
        equipment=tuple(equipment),
        level=draw(st.sampled_from(["beginner", "intermediate", "advanced"])),
        avoid=tuple(
            draw(st.lists(st.sampled_from([c.value for c in Contraindication]), unique=True))
        ),
        long_run_day=draw(st.none() | weekdays),
        quality_days=draw(day_sets.map(lambda d: d[:2])),
    )


weeks = st.builds(IsoWeek, st.integers(2024, 2030), st.integers(1, 52))


def run_weeks(
    analysis: Analysis,
    training: TrainingSummary,
    prefs: Preferences,
    start: IsoWeek,
    n: int,
) -> list[Plan]:
    """Build ``n`` consecutive weeks, each seeing the ones before it as history."""
    history: list[PlanHistoryEntry] = []
    plans = []
    for k in range(n):
        plan = build_plan(analysis, training, prefs, start.shift(k), history, CATALOGUE)
        history.append(history_entry(plan, analysis))
        plans.append(plan)
    return plans


def key_days(prefs: Preferences, training: TrainingSummary) -> dict[str, str]:
    days = dict.fromkeys((*prefs.quality_days, *training.quality_days), "quality run")
    for day in (prefs.long_run_day, training.long_run_day):
        if day:
            days[day] = "long run"
    return days


def next_day(day: str) -> str:
    return WEEKDAYS[(WEEKDAYS.index(day) + 1) % 7]


def weights(plan: Plan) -> dict[str, float]:
    return {e.area: e.weight for e in plan.emphasis if e.weight is not None}


# -- one week ---------------------------------------------------------------------------------


@SETTINGS
@given(analyses(), trainings(), preferences(), weeks)
def test_structure_and_preferences_respected(
    analysis: Analysis, training: TrainingSummary, prefs: Preferences, week: IsoWeek
) -> None:
    plan = build_plan(analysis, training, prefs, week, [], CATALOGUE)
    assert [d.weekday for d in plan.days] == list(WEEKDAYS)
    assert [d.date for d in plan.days] == [week.monday() + timedelta(days=i) for i in range(7)]
    drill_sessions = [s for s in plan.sessions if s.kind == "drills"]
    assert len(drill_sessions) <= prefs.sessions_per_week
    assert len([s for s in plan.sessions if s.kind == "run"]) <= MAX_RUN_SESSIONS
    have = {*prefs.equipment, "none"}
    for session in plan.sessions:
        assert session.minutes == sum(d.minutes for d in session.drills)
        if session.kind == "drills":
            assert session.weekday in prefs.available_days
            assert session.minutes <= prefs.minutes_per_session
        else:
            assert session.weekday not in key_days(prefs, training)
        for drill in session.drills:
            assert set(drill.equipment) <= have
            assert not set(CATALOGUE.by_id(drill.id).contraindications) & set(prefs.avoid)
            assert drill.reason
    assert len({s.id for s in plan.sessions}) == len(plan.sessions)


@SETTINGS
@given(analyses(), trainings(), preferences(), weeks)
def test_unjudged_areas_get_no_targeted_work(
    analysis: Analysis, training: TrainingSummary, prefs: Preferences, week: IsoWeek
) -> None:
    plan = build_plan(analysis, training, prefs, week, [], CATALOGUE)
    unjudged = {lim.area for lim in analysis.limiters if lim.probability is None}
    for drill in plan.drills:
        assert drill.target not in unjudged
        primary = {a.value for a in CATALOGUE.by_id(drill.id).primary_areas}
        assert not primary & unjudged, (drill.id, unjudged)
    for em in plan.emphasis:
        if em.area in unjudged:
            assert em.role == "general"
            assert em.minutes == 0
            assert any(
                em.area.replace("_", " ") in n.lower() or "cannot be judged" in n
                for n in plan.notes
            )


@SETTINGS
@given(analyses(), trainings(), preferences(), weeks)
def test_time_follows_probability(
    analysis: Analysis, training: TrainingSummary, prefs: Preferences, week: IsoWeek
) -> None:
    plan = build_plan(analysis, training, prefs, week, [], CATALOGUE)
    w = weights(plan)
    minutes = plan.minutes_by_target()
    probs = {lim.area: lim.probability for lim in analysis.limiters if lim.area in w}
    stands = any(p is not None and p >= STAND_OUT_P for p in probs.values())
    for a in w:
        # Without history nothing is "improving": the weight is the probability, unless no
        # area stands out (issue 17): then every judged area gets the same weight.
        expected = probs[a] if stands else sum(probs.values()) / len(probs)  # type: ignore[arg-type]
        assert w[a] == pytest.approx(expected, abs=1e-4)
        for b in w:
            if w[a] > w[b]:
                assert minutes.get(a, 0) >= minutes.get(b, 0), (a, b, minutes)
    roles = {e.area: e.role for e in plan.emphasis}
    ranked = sorted(w, key=lambda a: -w[a])
    if ranked and stands:
        assert roles[ranked[0]] == "focus"
        assert all(minutes.get(ranked[0], 0) >= minutes.get(a, 0) for a in w if w[a] < w[ranked[0]])
    elif ranked:
        # Nothing stands out: a balanced maintenance week that says why (issue 17).
        assert {roles[a] for a in ranked} == {"maintenance"}
        assert any("No area stands out" in n for n in plan.notes)
    for drill in plan.drills:
        assert "because" not in drill.reason or roles[drill.target] in ("focus", "second")


@SETTINGS
@given(analyses(), trainings(), preferences(), weeks)
def test_unilateral_extra_set_on_weaker_side(
    analysis: Analysis, training: TrainingSummary, prefs: Preferences, week: IsoWeek
) -> None:
    for plan in run_weeks(analysis, training, prefs, week, 4):
        for drill in plan.drills:
            eligible = (
                drill.unilateral
                and drill.target != GENERAL
                and drill.kind in ("strength", "plyometric", "technique")
            )
            if eligible and analysis.weaker_side:
                assert drill.dose.extra_set_side == analysis.weaker_side
                assert "extra set" in drill.reason.lower()
                assert f"+1 set on the {analysis.weaker_side}" in drill.dose.text()
            else:
                assert drill.dose.extra_set_side is None


@SETTINGS
@given(analyses(), trainings(), preferences(), weeks)
def test_deterministic(
    analysis: Analysis, training: TrainingSummary, prefs: Preferences, week: IsoWeek
) -> None:
    first = run_weeks(analysis, training, prefs, week, 3)
    again = run_weeks(analysis, training, prefs, week, 3)
    assert [p.to_dict() for p in first] == [p.to_dict() for p in again]
    assert Plan.from_dict(first[-1].to_dict()) == first[-1]


# -- across weeks -----------------------------------------------------------------------------


@SETTINGS
@given(analyses(), trainings(), preferences(), weeks)
def test_periodisation_and_deload(
    analysis: Analysis, training: TrainingSummary, prefs: Preferences, week: IsoWeek
) -> None:
    plans = run_weeks(analysis, training, prefs, week, 12)
    technique = TECHNIQUE_WEEKS[prefs.level]
    phases = [p.phase for p in plans]
    assert phases[:technique] == [TECHNIQUE] * technique
    assert [p.program_week for p in plans] == list(range(1, 13))
    # After the technique block: three building weeks, then a deload, again and again
    # (domain.md §5: a deload every 3–4 weeks).
    cycle = [LOADED] * LOADED_WEEKS_BEFORE_DELOAD + [DELOAD]
    assert phases[technique:] == (cycle * 4)[: 12 - technique]
    for plan in plans:
        for drill in plan.drills:
            if plan.phase == TECHNIQUE:
                # Technique and low load first.
                assert drill.kind != "plyometric"
                if drill.kind == "strength":
                    assert drill.load == "low"
            if plan.phase == DELOAD:
                assert drill.kind != "plyometric"
                assert drill.load != "high"


@SETTINGS
@given(analyses(), trainings(), preferences(), weeks)
def test_spacing_rules(
    analysis: Analysis, training: TrainingSummary, prefs: Preferences, week: IsoWeek
) -> None:
    keys = key_days(prefs, training)
    plans = run_weeks(analysis, training, prefs, week, 8)
    for k, plan in enumerate(plans):
        plyo_days = {s.weekday for s in plan.sessions if s.has_plyometrics}
        for session in plan.sessions:
            if session.hard:
                assert next_day(session.weekday) not in keys, (session.weekday, keys)
                assert keys.get(session.weekday) != "long run"
        for day in plyo_days:
            i = WEEKDAYS.index(day)
            assert i == 6 or WEEKDAYS[i + 1] not in plyo_days
        if k and "mon" in plyo_days:
            previous = {s.weekday for s in plans[k - 1].sessions if s.has_plyometrics}
            assert "sun" not in previous
        if training.runs_per_week < 2:
            assert not any(d.kind in ("plyometric", "run_workout") for d in plan.drills)


@SETTINGS
@given(analyses(), trainings(), preferences(), weeks)
def test_dose_progresses_week_over_week(
    analysis: Analysis, training: TrainingSummary, prefs: Preferences, week: IsoWeek
) -> None:
    plans = run_weeks(analysis, training, prefs, week, 9)
    for before, after in itertools.pairwise(plans):
        old = {d.id: d.dose for d in before.drills if d.target != GENERAL}
        for drill in after.drills:
            if drill.target == GENERAL or drill.id not in old:
                continue
            prev = old[drill.id]
            if after.phase == DELOAD:
                assert drill.dose.step == prev.step
                assert drill.dose.sets <= prev.sets
            elif before.phase != DELOAD:
                assert drill.dose.step == min(prev.step + 1, MAX_STEP)
                if prev.step < MAX_STEP:
                    assert drill.dose.volume > prev.volume, drill.id
                else:
                    assert drill.dose.volume == prev.volume


def test_general_work_keeps_the_catalogue_dose() -> None:
    analysis = _analysis(push=0.8, swing=0.3)
    plans = run_weeks(analysis, _training(), Preferences(), IsoWeek(2026, 49), 6)
    for plan in plans:
        for drill in plan.drills:
            if drill.target == GENERAL:
                base = CATALOGUE.by_id(drill.id).dose.for_level("intermediate")
                assert (drill.dose.sets, drill.dose.step) == (base.sets, 0)


# -- emphasis shift and trend -----------------------------------------------------------------


def _analysis(**probs: float | None) -> Analysis:
    return Analysis(
        athlete_id="ann",
        generated_utc=datetime(2026, 11, 1, tzinfo=UTC),
        limiters=tuple(
            LimiterEstimate(a, probs.get(a), None, (f"Your {a} numbers.",), METRICS[a], 20.0)
            for a in AREAS
        ),
        runs_used=10,
    )


def _training(runs: float = 4.0) -> TrainingSummary:
    return TrainingSummary(6, 24, runs, 40.0, 240.0, "sun", ("tue",), ("tue", "thu", "sun"))


def _with_key(analysis: Analysis, area: str, value: float) -> Analysis:
    limiters = tuple(
        dataclasses.replace(lim, key_value=value) if lim.area == area else lim
        for lim in analysis.limiters
    )
    return dataclasses.replace(analysis, limiters=limiters)


def test_improving_limiter_shifts_emphasis_and_shows_trend() -> None:
    base = _analysis(push=0.7, swing=0.6, posture_hip=0.2, strength_balance=None)
    prefs = Preferences(available_days=("mon", "wed", "fri"), minutes_per_session=40)
    start = IsoWeek(2026, 45)

    def third_week(values: list[float]) -> Plan:
        history: list[PlanHistoryEntry] = []
        for k, value in enumerate(values):
            analysis = _with_key(base, "push", value)
            plan = build_plan(analysis, _training(), prefs, start.shift(k), history, CATALOGUE)
            history.append(history_entry(plan, analysis))
        return plan

    # GCT residual falls 24 -> 18 -> 12 ms over three analysed weeks: push is improving.
    shifted = third_week([24.0, 18.0, 12.0])
    steady = third_week([24.0, 24.0, 24.0])
    trend = next(t for t in shifted.trends if t.area == "push")
    assert [p.value for p in trend.points] == [24.0, 18.0, 12.0]
    assert [p.week for p in trend.points] == ["2026-W45", "2026-W46", "2026-W47"]
    assert (trend.better, trend.direction) == ("lower", "improving")
    push = next(e for e in shifted.emphasis if e.area == "push")
    assert push.improving
    assert push.weight == pytest.approx(0.7 * 0.7)
    # Swing (0.6) now outranks push (0.49) and gets the most time.
    assert next(e for e in shifted.emphasis if e.role == "focus").area == "swing"
    minutes = shifted.minutes_by_target()
    assert minutes["swing"] >= minutes["push"]
    assert steady.minutes_by_target()["push"] > minutes["push"]
    assert any("Push is improving" in note for note in shifted.notes)


def test_worsening_or_flat_metric_keeps_emphasis() -> None:
    base = _analysis(push=0.7, swing=0.6)
    history: list[PlanHistoryEntry] = []
    for k, value in enumerate([20.0, 21.0, 26.0]):
        analysis = _with_key(base, "push", value)
        plan = build_plan(
            analysis, _training(), Preferences(), IsoWeek(2026, 45).shift(k), history, CATALOGUE
        )
        history.append(history_entry(plan, analysis))
    assert next(t for t in plan.trends if t.area == "push").direction == "worsening"
    assert next(e for e in plan.emphasis if e.area == "push").role == "focus"


def test_balance_metric_improves_toward_fifty() -> None:
    assert [metric_better(m) for m in METRICS.values()] == ["lower", "higher", "lower", "toward_0"]
    assert metric_better("gct_balance_pct") == "toward_50"
    assert metric_better("mystery_index") is None
    base = _analysis(strength_balance=0.8, push=0.3)
    for key, values in (
        ("gct_balance_pct", [47.0, 48.5, 49.6]),  # left-heavy balance moving to 50 %
        ("balance_dev_pts", [-3.0, -2.0, 1.2]),  # deviation shrinking, whichever side
    ):
        history: list[PlanHistoryEntry] = []
        for k, value in enumerate(values):
            analysis = _with_key(base, "strength_balance", value)
            limiters = tuple(
                dataclasses.replace(lim, key_metric=key) if lim.area == "strength_balance" else lim
                for lim in analysis.limiters
            )
            analysis = dataclasses.replace(analysis, limiters=limiters)
            plan = build_plan(
                analysis, _training(), Preferences(), IsoWeek(2026, 10).shift(k), history, CATALOGUE
            )
            history.append(history_entry(plan, analysis))
        trend = next(t for t in plan.trends if t.area == "strength_balance")
        assert (trend.metric, trend.direction) == (key, "improving")


def test_unknown_metric_falls_back_to_probability_trend() -> None:
    history: list[PlanHistoryEntry] = []
    for k, prob in enumerate([0.8, 0.7, 0.55]):
        analysis = Analysis(
            "ann",
            datetime(2026, 1, 1, tzinfo=UTC),
            (
                LimiterEstimate("swing", prob, 1, ("x.",), "mystery_index", 3.0),
                LimiterEstimate("push", 0.5, 2, ("y.",), "gct_residual_ms", 1.0),
            ),
            5,
        )
        plan = build_plan(
            analysis, _training(), Preferences(), IsoWeek(2026, 20).shift(k), history, CATALOGUE
        )
        history.append(history_entry(plan, analysis))
    trend = next(t for t in plan.trends if t.area == "swing")
    assert (trend.better, trend.direction) == (None, "improving")


def test_long_break_restarts_with_technique() -> None:
    analysis = _analysis(push=0.8)
    plans = run_weeks(analysis, _training(), Preferences(), IsoWeek(2026, 1), 5)
    history = [history_entry(p, analysis) for p in plans]
    later = IsoWeek(2026, 5 + RESTART_AFTER_WEEKS + 1)
    plan = build_plan(analysis, _training(), Preferences(), later, history, CATALOGUE)
    assert (plan.phase, plan.program_week, plan.program_start) == (TECHNIQUE, 1, str(later))
    assert "starts again" in plan.notes[0]
    # A gap within the limit continues the program.
    soon = IsoWeek(2026, 5 + RESTART_AFTER_WEEKS)
    assert (
        build_plan(analysis, _training(), Preferences(), soon, history, CATALOGUE).program_week == 6
    )


def test_every_block_says_why_with_the_evidence() -> None:
    # Issue 17: a reason cites evidence with "because" only when that evidence points towards
    # a limiter (``support``); the maintenance areas' evidence (which may call them normal)
    # is shown but never given as the reason they limit the runner.
    analysis = _analysis(push=0.75, swing=0.4, posture_hip=0.2, strength_balance=None)
    push = next(lim for lim in analysis.limiters if lim.area == "push")
    limiters = tuple(
        dataclasses.replace(lim, support=lim.evidence) if lim is push else lim
        for lim in analysis.limiters
    )
    analysis = dataclasses.replace(analysis, limiters=limiters)
    plan = build_plan(analysis, _training(), Preferences(), IsoWeek(2026, 49), [], CATALOGUE)
    for drill in plan.drills:
        if drill.target == GENERAL:
            assert drill.reason.startswith(("Warm-up:", "General mobility:"))
        else:
            assert drill.evidence == (f"Your {drill.target} numbers.",)
            assert CATALOGUE.by_id(drill.id).why in drill.reason
            if drill.target == "push":
                assert "most likely limiter (75%) because your push numbers" in drill.reason
            else:
                assert "because" not in drill.reason
                assert "less likely to limit you" in drill.reason
    for session in plan.sessions:
        assert session.reason


def test_a_focus_without_supporting_evidence_is_never_explained_by_it() -> None:
    # The case: push first at a middling probability whose evidence calls contact
    # time normal. It stands out only at STAND_OUT_P; without support there is no "because".
    analysis = _analysis(push=0.55, swing=0.1, posture_hip=0.1, strength_balance=0.1)
    plan = build_plan(analysis, _training(), Preferences(), IsoWeek(2026, 49), [], CATALOGUE)
    focus = next(e for e in plan.emphasis if e.role == "focus")
    assert focus.area == "push"
    assert not any("because" in d.reason for d in plan.drills)
    low = _analysis(push=0.18, swing=0.06, posture_hip=0.03, strength_balance=None)
    balanced = build_plan(low, _training(), Preferences(), IsoWeek(2026, 49), [], CATALOGUE)
    assert {e.role for e in balanced.emphasis if e.probability is not None} == {"maintenance"}
    assert any("No area stands out" in n for n in balanced.notes)
    shares = {e.share for e in balanced.emphasis if e.probability is not None}
    assert len(shares) == 1  # the same share for every judged area


def test_nothing_judged_gives_general_preparation() -> None:
    plan = build_plan(_analysis(), _training(), Preferences(), IsoWeek(2026, 49), [], CATALOGUE)
    assert {d.target for d in plan.drills} == {GENERAL}
    assert any("No area could be judged" in n for n in plan.notes)
    assert all(s.title == "General preparation" for s in plan.sessions)


# -- pieces -------------------------------------------------------------------------------


@given(st.dictionaries(st.sampled_from(AREAS), st.floats(0, 1), min_size=1))
def test_shares_are_monotonic_and_sum_to_one(weights_: dict[str, float]) -> None:
    shares = area_shares(weights_)
    assert sum(shares.values()) == pytest.approx(1.0)
    for a in weights_:
        for b in weights_:
            if weights_[a] > weights_[b]:
                assert shares[a] >= shares[b]


@pytest.mark.parametrize("level", ["beginner", "intermediate", "advanced"])
def test_dose_ladder_raises_volume_every_step(level: str) -> None:
    for drill in CATALOGUE:
        volumes, minutes = [], []
        for step in range(MAX_STEP + 1):
            dose, mins = planned_dose(drill, level, step, deload=False, weaker_side=None)
            volumes.append(dose.volume)
            minutes.append(mins)
            light, _ = planned_dose(drill, level, step, deload=True, weaker_side=None)
            assert 1 <= light.sets <= dose.sets
            assert light.amount == dose.amount
        assert volumes == sorted(set(volumes)), drill.id
        assert minutes == sorted(minutes), drill.id
        base = drill.dose.for_level(level)
        first, _ = planned_dose(drill, level, 0, deload=False, weaker_side=None)
        assert (first.sets, first.amount, first.rest_s) == (base.sets, base.measure, base.rest_s)


def test_weaker_side_adds_time_only_to_unilateral_work() -> None:
    split = CATALOGUE.by_id("split-squat")
    both = CATALOGUE.by_id("glute-bridge")
    plain, m1 = planned_dose(split, "intermediate", 0, deload=False, weaker_side=None)
    extra, m2 = planned_dose(split, "intermediate", 0, deload=False, weaker_side="right")
    assert extra.extra_set_side == "right"
    assert m2 > m1
    assert extra.sets == plain.sets
    bridge, _ = planned_dose(both, "intermediate", 0, deload=False, weaker_side="right")
    assert bridge.extra_set_side is None


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"level": "elite"}, "level 'elite'"),
        ({"available_days": ()}, "available_days is empty"),
        ({"available_days": ("monday",)}, "unknown weekday 'monday'"),
        ({"sessions_per_week": 0}, "sessions_per_week 0"),
        ({"minutes_per_session": 2}, "minutes_per_session 2"),
        ({"equipment": ("trampoline",)}, "unknown equipment 'trampoline'"),
        ({"avoid": ("elbow",)}, "unknown 'avoid' entry 'elbow'"),
    ],
)
def test_bad_preferences_are_config_errors(change: dict[str, object], message: str) -> None:
    prefs = dataclasses.replace(Preferences(), **change)  # type: ignore[arg-type]
    with pytest.raises(ConfigError, match=message):
        check_preferences(prefs)
    with pytest.raises(ConfigError):
        build_plan(_analysis(push=0.5), _training(), prefs, IsoWeek(2026, 1), [], CATALOGUE)


def test_iso_week() -> None:
    week = IsoWeek.parse("2026-W49")
    assert str(week) == "2026-W49"
    assert IsoWeek.parse("2026w49") == week
    assert week.monday().isoformat() == "2026-11-30"
    assert week.day("sun").isoformat() == "2026-12-06"
    assert str(IsoWeek(2026, 53).shift(1)) == "2027-W01"
    assert IsoWeek(2027, 1).weeks_since(IsoWeek(2026, 52)) == 2
    for bad in ("2026-49", "W49", "2025-W53"):
        with pytest.raises(ValueError, match="ISO week"):
            IsoWeek.parse(bad)


# -- training summary -------------------------------------------------------------------------


def _run(start: datetime, minutes: float, km: float, laps: tuple[Lap, ...] = ()) -> Activity:
    return Activity(
        source=Source.FIT,
        source_ref=start.isoformat(),
        sport="running",
        sub_sport=None,
        start_utc=start,
        elapsed_s=minutes * 60,
        moving_s=minutes * 60,
        distance_m=km * 1000,
        laps=laps,
    )


def test_training_summary_finds_long_and_quality_days() -> None:
    monday = datetime(2026, 10, 5, 7, tzinfo=UTC)  # a Monday
    runs = []
    for w in range(6):
        week = monday + timedelta(weeks=w)
        runs.append(_run(week + timedelta(days=1), 45, 10.0))  # Tue: fast (tempo)
        runs.append(_run(week + timedelta(days=3), 40, 7.0))  # Thu: easy
        runs.append(_run(week + timedelta(days=6), 100, 18.0))  # Sun: long
        runs.append(_run(week + timedelta(days=4), 40, 7.0))  # Fri: easy
    walk = dataclasses.replace(runs[0], sport="walking", source_ref="walk")
    summary = summarize_training([*runs, walk], end_utc=monday + timedelta(weeks=6))
    assert summary.runs == 24
    assert summary.weeks == 6
    assert summary.runs_per_week == 4.0
    assert summary.long_run_day == "sun"
    assert summary.quality_days == ("tue",)
    assert set(summary.run_days) == {"tue", "thu", "fri", "sun"}
    assert summary.weekly_distance_km == pytest.approx(42.0)


def test_training_summary_interval_laps_and_stale_data() -> None:
    start = datetime(2019, 3, 5, 7, tzinfo=UTC)  # a Tuesday, long ago
    laps = tuple(
        Lap(start + timedelta(minutes=4 * i), 120, 600 if i % 2 else 300) for i in range(8)
    )
    runs = [_run(start + timedelta(weeks=w), 40, 7.0, laps) for w in range(3)]
    summary = summarize_training(runs, end_utc=datetime(2026, 11, 30, tzinfo=UTC))
    assert summary.quality_days == ("tue",)
    assert summary.weeks == 3
    assert summary.runs_per_week == 1.0
    assert summary.notes
    assert "2019-03-19" in summary.notes[0]
    empty = summarize_training([], end_utc=datetime(2026, 11, 30, tzinfo=UTC))
    assert empty.runs == 0
    assert empty.runs_per_week == 0.0


def test_training_summary_of_a_young_data_set_averages_over_the_weeks_it_covers() -> None:
    end = datetime(2026, 11, 30, tzinfo=UTC)  # a Monday
    # Two weeks of data: Wed and Sat, with a 50-minute Saturday (long for this athlete, but
    # under the hour a long run needs).
    runs = [
        _run(end - timedelta(days=d), minutes, km)
        for d, minutes, km in ((12, 30, 5.0), (9, 50, 9.0), (5, 30, 5.0), (2, 50, 9.0))
    ]
    summary = summarize_training(runs, end_utc=end, weeks=6)
    assert summary.weeks == 2
    assert summary.runs_per_week == 2.0
    assert summary.weekly_distance_km == 14.0
    assert summary.weekly_time_min == 80.0
    assert summary.long_run_day is None
    assert summary.run_days == ("wed", "sat")
    assert summary.latest_run_utc == end - timedelta(days=2)
    assert summary.window_end_utc == end
    assert summary.notes == ()


# -- plan history in the store ----------------------------------------------------------------


def test_plans_table_columns(tmp_path: Path) -> None:
    with Store(tmp_path / "db.sqlite") as store:
        columns = [row[1] for row in store.db.execute("PRAGMA table_info(plans)")]
        keys = [row[5] for row in store.db.execute("PRAGMA table_info(plans)")]
    assert columns == [
        "athlete_id",
        "week",
        "revision",
        "phase",
        "plan",
        "key_metrics",
        "content_hash",
        "created_at",
        "updated_at",
    ]
    assert keys[:2] == [1, 2]  # primary key (athlete_id, week)


def test_saved_history_drives_the_next_week(tmp_path: Path) -> None:
    analysis = _analysis(push=0.8, swing=0.4)
    prefs = Preferences()
    with Store(tmp_path / "db.sqlite") as store:
        store.ensure_athlete("ann")
        first = build_plan(analysis, _training(), prefs, IsoWeek(2026, 49), [], CATALOGUE)
        saved = save_plan(store, first, key_metrics(analysis))
        assert saved.revision == 1
        assert saved.revised_utc is not None
        # Saving the same plan again is a no-op: same revision, same time.
        assert save_plan(store, first, key_metrics(analysis)) == saved
        history = load_history(store, "ann", before=IsoWeek(2026, 50))
        assert [h.plan for h in history] == [saved]
        assert history[0].key_metrics["push"].value == 20.0
        assert load_history(store, "ann", before=IsoWeek(2026, 49)) == []
        second = build_plan(analysis, _training(), prefs, IsoWeek(2026, 50), history, CATALOGUE)
        assert second.program_week == 2
        steps = {d.id: d.dose.step for d in second.drills if d.target != GENERAL}
        carried = {d.id for d in first.drills if d.target != GENERAL}
        assert any(steps[i] == 1 for i in carried if i in steps)
        # A changed plan for the same week becomes the next revision.
        changed = dataclasses.replace(first, notes=(*first.notes, "A coach's note."))
        assert save_plan(store, changed, key_metrics(analysis)).revision == 2
        assert get_plan(store, "ann", IsoWeek(2026, 49)).notes[-1] == "A coach's note."
        store.delete_athlete("ann")
        assert load_history(store, "ann") == []


def test_stored_plan_of_another_format_is_a_clear_error(tmp_path: Path) -> None:
    analysis = _analysis(push=0.8)
    with Store(tmp_path / "db.sqlite") as store:
        store.ensure_athlete("ann")
        plan = build_plan(analysis, _training(), Preferences(), IsoWeek(2026, 49), [], CATALOGUE)
        save_plan(store, dataclasses.replace(plan, format_version=99), {})
        with pytest.raises(ConfigError, match="format 99"):
            load_history(store, "ann")
