"""The analysis shell: runs from the store → cached features → model → ranked limiters.

Per-run features are cached in the ``feature_cache`` table, keyed by activity id and
:data:`~planner.features.FEATURE_VERSION`, with a stamp of the activity's identity: a run is
recomputed only when it was replaced by a richer copy or the feature code changed. A warm
``analyze`` therefore reads one table and never decodes a stream.

Also here: coach labels (``stridewise label``), and training/evaluating the model against the
store's labelled athletes (``stridewise model train|evaluate``).
"""

from __future__ import annotations

import hashlib
import json
import math
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any

from planner import evidence as ev
from planner.errors import ConfigError, InvalidValueError
from planner.features import (
    AREA_FEATURES,
    FEATURE_VERSION,
    MODEL_FEATURES,
    AthleteFeatures,
    RunFeatures,
    athlete_features,
    run_features,
)
from planner.limiters import rank_limiters
from planner.records import (
    AREAS,
    DEFAULT_ATHLETE,
    Analysis,
    AnalysisWindow,
    DataSummary,
    DecisionRules,
    ModelInfo,
    Source,
    StoredActivity,
)
from planner.store.coach_labels import all_labels, save_labels
from planner.store.database import Store
from planner.store.feature_cache import cached_features, save_features
from planner.store.model_io import CompiledBundle, load_compiled, user_model_dir

# planner.model imports scikit-learn, which with skops takes ~2 s to import (ten times a warm
# analysis): only training and evaluation import it, inside their functions. Analysis
# evaluates the compiled model (planner.compiled) with NumPy alone.
if TYPE_CHECKING:
    from planner.model import CoachLabelled

#: Without --since/--last, analyse the runs of the 12 weeks before the newest run: recent
#: enough to describe the runner now, long enough to span easy and faster paces. Our choice.
DEFAULT_DAYS = 84


# -- feature cache ----------------------------------------------------------------------------


def activity_stamp(stored: StoredActivity) -> str:
    """Identity of the stored copy of a run: changes when a richer copy replaces it."""
    a = stored.activity
    raw = "|".join(
        str(x)
        for x in (
            a.source.value,
            a.source_ref,
            a.n_samples,
            stored.content_hash,
            stored.stream_format,
            a.height_m,
            a.weight_kg,
            a.sex,
        )
    )
    return hashlib.sha1(raw.encode()).hexdigest()


def compute_run_features(store: Store, stored: StoredActivity) -> RunFeatures:
    """Features of one stored run, from its stream (no cache)."""
    return run_features(store.load_stream(stored.id), stored.activity)


def load_run_features(
    store: Store,
    activities: Sequence[StoredActivity],
    *,
    use_cache: bool = True,
    save: bool = True,
) -> list[RunFeatures]:
    """Features for each activity, from the cache where it is current, computed otherwise.

    ``save=False`` leaves the store untouched (a preview: fresh features are not cached).
    """
    if not use_cache:
        return [compute_run_features(store, s) for s in activities]
    cached = cached_features(store, [s.id for s in activities], FEATURE_VERSION)
    out: list[RunFeatures] = []
    fresh: list[tuple[int, str, str]] = []
    for stored in activities:
        stamp = activity_stamp(stored)
        hit = cached.get(stored.id)
        if hit is not None and hit[0] == stamp:
            out.append(RunFeatures.from_json(json.loads(hit[1])))
            continue
        data = json.dumps(compute_run_features(store, stored).to_json(), separators=(",", ":"))
        fresh.append((stored.id, stamp, data))
        # Use what the cache will return, not the unrounded original: the first analysis of a
        # run and every later one must agree to the last digit, or an unchanged week would
        # look changed (a new plan revision, a new e-mail content hash).
        out.append(RunFeatures.from_json(json.loads(data)))
    if fresh and save:
        save_features(store, fresh, FEATURE_VERSION)
    return out


def select_runs(
    store: Store, athlete_id: str, *, since: datetime | None = None, last: int | None = None
) -> list[StoredActivity]:
    """The athlete's running activities with a stream, per --since/--last or the default."""
    if since is not None and last is not None:
        raise ConfigError("give a start date or a number of recent runs, not both")
    if last is not None and last < 1:
        raise InvalidValueError("last", last, "must be at least 1")
    runs = [
        s
        for s in store.list_activities(athlete_id, running_only=True, since=since)
        if s.stream_format is not None
    ]
    if last is not None:
        return runs[-last:]
    if since is None and runs:
        newest = runs[-1].activity.start_utc
        runs = [s for s in runs if s.activity.start_utc >= newest - timedelta(days=DEFAULT_DAYS)]
    return runs


# -- analysis ---------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class AnalysisResult:
    """An analysis with what produced it (for plots and tests)."""

    analysis: Analysis
    features: AthleteFeatures
    runs: tuple[RunFeatures, ...]
    bundle: CompiledBundle


def predict(bundle: CompiledBundle, af: AthleteFeatures) -> dict[str, float]:
    """The model's P(limiter) per area for one athlete's features."""
    probs = bundle.model.limiter_proba(af.vector()[None, :])[0]
    return {area: float(probs[k]) for k, area in enumerate(AREAS)}


def analyse_runs(
    athlete_id: str,
    runs: Sequence[RunFeatures],
    bundle: CompiledBundle,
    *,
    now: datetime | None = None,
    window: AnalysisWindow | None = None,
) -> AnalysisResult:
    """Pure core of ``analyze``: run features → athlete features → model → estimates."""
    af = athlete_features(runs)
    probs = predict(bundle, af)
    limiters, weaker = rank_limiters(af, probs, bundle.meta.get("support"))
    analysis = Analysis(
        athlete_id=athlete_id,
        generated_utc=now or datetime.now(UTC),
        limiters=limiters,
        runs_used=af.runs_with.get("steady", 0),
        data=data_summary(af, runs, bundle, window),
        weaker_side=weaker,
        model_version=bundle.version,
    )
    return AnalysisResult(analysis, af, tuple(runs), bundle)


def _num(x: float, digits: int = 3) -> float | None:
    return None if math.isnan(x) else round(float(x), digits)


#: Sources whose runs can never carry running dynamics, named in the analysis (one run, more
#: runs) with what that means for the runner.
_SOURCES_WITHOUT_DYNAMICS: tuple[tuple[Source, str, str, str], ...] = (
    (
        Source.STRAVA,
        "Strava-sourced run",
        "Strava-sourced runs",
        "analysed for you only, never used to train the model.",
    ),
    (
        Source.GPX,
        "run from a GPX file",
        "runs from GPX files",
        "speed, cadence and heart rate only.",
    ),
    (
        Source.TCX,
        "run from a TCX file",
        "runs from TCX files",
        "speed, cadence and heart rate only.",
    ),
)


def _limits(af: AthleteFeatures, n_runs: int) -> list[str]:
    """What these runs cannot judge, and why, in runner-facing sentences."""
    limits: list[str] = []
    with_dyn = af.runs_with.get("gct", 0)
    if n_runs and with_dyn == 0:
        limits.append(
            "No running dynamics: push, posture/hip and strength balance cannot be judged;"
            " only cadence, speed and heart rate are used."
        )
    elif n_runs and with_dyn < n_runs:
        limits.append(f"Running dynamics in {with_dyn} of {n_runs} runs only.")
    if with_dyn and af.runs_with.get("balance", 0) == 0:
        limits.append("No left/right balance in these runs: strength balance cannot be judged.")
    if not (af.height_m and af.weight_kg):
        limits.append(
            "No height/weight in the watch profile: stiffness is per kg, leg stiffness and"
            " Stryd LSS cannot be compared with the spring-mass estimate."
        )
    if af.speed_range_mps is None or af.speed_range_mps[1] - af.speed_range_mps[0] < 0.5:
        limits.append(
            "All steady running at one pace: your own speed slopes (cadence, balance) cannot be"
            " fitted; comparisons use the population's slope."
        )
    if af.run_flags.get("with_drift", 0) == 0 and n_runs:
        limits.append("No run long and steady enough (30 min after warm-up) to measure drift.")
    limits.extend(_source_limits(af))
    limits.append(
        "Probabilities with evidence, not diagnoses: single mechanics variables explain only a"
        " small share of running economy (domain.md §3)."
    )
    return limits


def _source_limits(af: AthleteFeatures) -> list[str]:
    """One sentence per source whose runs never carry running dynamics."""
    limits: list[str] = []
    for source, one, many, consequence in _SOURCES_WITHOUT_DYNAMICS:
        n_source = af.sources.get(source.value, 0)
        if n_source:
            what = one if n_source == 1 else many
            limits.append(f"{n_source} {what}: no running dynamics; {consequence}")
    return limits


def _decision_rules(af: AthleteFeatures, bundle: CompiledBundle) -> DecisionRules:
    return DecisionRules(
        base_rate=ev.BASE_RATE,
        stand_out_probability=ev.STAND_OUT_P,
        evidence_floor=ev.EVIDENCE_FLOOR,
        extreme_z=round(ev.EXTREME_Z, 3),
        in_line_z=ev.IN_LINE_Z,
        run_cap=round(ev.run_cap(af.runs_with.get("steady", 0)), 3),
        support_checked=bool(bundle.meta.get("support")),
    )


def _model_info(bundle: CompiledBundle) -> ModelInfo:
    return ModelInfo(
        version=bundle.version,
        trained_on=bundle.meta.get("trained_on"),
        path=str(bundle.path) if bundle.path else None,
    )


def data_summary(
    af: AthleteFeatures,
    runs: Sequence[RunFeatures],
    bundle: CompiledBundle,
    window: AnalysisWindow | None,
) -> DataSummary:
    """What data was available, and how that limits what can be said."""
    runs_with = af.runs_with
    speed_range = af.speed_range_mps
    return DataSummary(
        runs=len(runs),
        runs_with_steady_running=runs_with.get("steady", 0),
        runs_with={k: v for k, v in runs_with.items() if k != "steady"},
        running_dynamics=runs_with.get("gct", 0) > 0,
        balance=runs_with.get("balance", 0) > 0,
        stryd=runs_with.get("lss", 0) + runs_with.get("form_power", 0) > 0,
        height_weight=bool(af.height_m and af.weight_kg),
        height_m=af.height_m,
        weight_kg=af.weight_kg,
        sex=af.sex,
        sources=af.sources,
        treadmill_runs=af.run_flags.get("treadmill", 0),
        trail_runs=af.run_flags.get("trail", 0),
        interval_runs=af.run_flags.get("intervals", 0),
        runs_with_drift=af.run_flags.get("with_drift", 0),
        steady_minutes=_num(af.value("steady_min"), 1),
        flat_minutes=_num(af.value("flat_min"), 1),
        typical_speed_mps=_num(af.value("speed_mps")),
        speed_range_mps=None
        if speed_range is None
        else (round(speed_range[0], 3), round(speed_range[1], 3)),
        features={k: _num(af.value(k)) for k in MODEL_FEATURES},
        hr_decoupling_pct=_num(af.value("hr_decoupling_pct")),
        limits=tuple(_limits(af, len(runs))),
        notes=tuple(sorted({note for r in runs for note in r.notes})),
        decision=_decision_rules(af, bundle),
        window=window,
        model=_model_info(bundle),
    )


def run_analysis(
    store: Store,
    athlete_id: str,
    *,
    since: datetime | None = None,
    last: int | None = None,
    bundle: CompiledBundle | None = None,
    use_cache: bool = True,
    save: bool = True,
) -> AnalysisResult:
    """Analyse an athlete's stored runs (features cached per activity).

    Without ``bundle``, the active model is loaded (once per process, see
    :func:`planner.store.model_io.load_compiled`). ``save=False`` writes nothing (a preview).
    """
    store.get_athlete(athlete_id)
    activities = select_runs(store, athlete_id, since=since, last=last)
    runs = load_run_features(store, activities, use_cache=use_cache, save=save)
    window = AnalysisWindow(
        since=since,
        last=last,
        default_days=DEFAULT_DAYS if since is None and last is None else None,
        first_run_utc=activities[0].activity.start_utc if activities else None,
        last_run_utc=activities[-1].activity.start_utc if activities else None,
    )
    return analyse_runs(athlete_id, runs, bundle or load_compiled(), window=window)


def analyze_athlete(
    store: Store,
    athlete_id: str,
    *,
    since: datetime | None = None,
    last: int | None = None,
    save: bool = True,
) -> Analysis:
    """Which mechanical areas most limit this runner now, how sure we are, and why.

    The library entry point for other modules (plans, e-mail); ``save=False`` writes nothing.
    """
    return run_analysis(store, athlete_id, since=since, last=last, save=save).analysis


def no_area_stands_out(analysis: Analysis) -> bool:
    """True when areas were judged but none reached the stand-out probability."""
    judged = [e for e in analysis.limiters if e.probability is not None]
    return bool(judged) and not any(e.stands_out for e in judged)


def analysis_json(analysis: Analysis) -> dict[str, Any]:
    """The ``analyze --json`` document."""
    return {
        "athlete_id": analysis.athlete_id,
        "athlete": analysis.athlete_id,  # the old key, kept for scripts (CHANGELOG)
        "generated_utc": analysis.generated_utc.isoformat(timespec="seconds"),
        "limiters": [
            {
                "area": est.area,
                "probability": est.probability,
                "rank": est.rank,
                "evidence": list(est.evidence),
                "key_metric": est.key_metric,
                "key_value": est.key_value,
                "interval": None if est.interval is None else list(est.interval),
                "stands_out": est.stands_out,
                "verdict": est.verdict,
                "summary": est.summary,
                "support": list(est.support),
                "z": est.z,
                "out_of_support": est.out_of_support,
                "model_probability": est.model_probability,
                "adjustments": list(est.adjustments),
            }
            for est in analysis.limiters
        ],
        "no_area_stands_out": no_area_stands_out(analysis),
        "weaker_side": analysis.weaker_side,
        "runs_used": analysis.runs_used,
        "model_version": analysis.model_version,
        "data": {} if analysis.data is None else analysis.data.to_json(),
    }


def analyze_command(
    store: Store,
    athlete_id: str | None,
    *,
    since: datetime | None = None,
    last: int | None = None,
    plots: Path | None = None,
) -> tuple[Analysis, list[Path]]:
    """``stridewise analyze``: the analysis, and the PNG files written when ``plots`` is set."""
    result = run_analysis(store, athlete_id or DEFAULT_ATHLETE, since=since, last=last)
    written: list[Path] = []
    if plots is not None:
        from planner.delivery.charts import write_plots

        written = write_plots(result.analysis, result.features, result.runs, plots)
    return result.analysis, written


# -- coach labels -----------------------------------------------------------------------------


def set_coach_labels(
    store: Store, athlete_id: str, *, limiters: Sequence[str] = (), not_limiters: Sequence[str] = ()
) -> dict[str, int]:
    """Store a coach's judgement for an athlete; return all their labels."""
    store.get_athlete(athlete_id)
    both = set(limiters) & set(not_limiters)
    if both:
        raise ConfigError(f"an area cannot be both a limiter and not: {', '.join(sorted(both))}")
    if not limiters and not not_limiters:
        raise ConfigError("give at least one area that limits this runner, or one that does not")
    for area in (*limiters, *not_limiters):
        if area not in AREAS:
            raise InvalidValueError("area", area, f"choose from {', '.join(AREAS)}")
    save_labels(store, athlete_id, [(a, 1) for a in limiters] + [(a, 0) for a in not_limiters])
    return all_labels(store).get(athlete_id, {})


def training_runs(store: Store, athlete_id: str) -> list[RunFeatures]:
    """An athlete's runs that may be used for training: never Strava-sourced ones, nor any
    from a connector whose terms forbid training (``Activity.trainable``)."""
    from planner.model import check_no_strava

    activities = [s for s in select_runs(store, athlete_id) if s.activity.trainable]
    runs = load_run_features(store, activities)
    check_no_strava(runs)
    return runs


def labelled_athletes(store: Store) -> list[CoachLabelled]:
    """Coach-labelled athletes with their trainable runs."""
    from planner.model import CoachLabelled

    out = []
    for athlete_id, labels in all_labels(store).items():
        runs = training_runs(store, athlete_id)
        if runs:
            out.append(CoachLabelled(athlete_id, tuple(runs), labels))
    return out


# -- training and evaluation ------------------------------------------------------------------


def train_model(
    store: Store,
    *,
    output_dir: Path | None = None,
    n_athletes: int | None = None,
    seed: int | None = None,
    workers: int = 2,
) -> dict[str, Any]:
    """Train on the simulated prior plus coach-labelled athletes; save; return a report."""
    from planner.model import (
        TRAIN_ATHLETES,
        TRAIN_SEED,
        coach_training_set,
        fit_models,
        grouped_cv,
        simulated_training_set,
    )
    from planner.store.model_io import save_artefact

    n_athletes = n_athletes or TRAIN_ATHLETES
    seed = TRAIN_SEED if seed is None else seed
    simulated, _ = simulated_training_set(n_athletes, seed, workers=workers)
    coach = coach_training_set(labelled_athletes(store))
    # Where the cohort lies, per area: analyze falls back to the rule outside it.
    support = ev.fit_support(
        simulated.X, MODEL_FEATURES, {a: list(f) for a, f in AREA_FEATURES.items()}
    )
    train = simulated.concat(coach)
    pipeline, baseline = fit_models(train, random_state=seed % (2**31))
    cv = grouped_cv(simulated, coach, random_state=seed % (2**31)) if len(coach) else None
    digest = train.digest()
    directory = output_dir or user_model_dir()
    bundle = save_artefact(
        pipeline,
        baseline,
        directory,
        training_data_sha256=digest,
        extra={
            "seed": seed,
            "simulated_athletes": len(simulated),
            "coach_labelled_athletes": len(coach),
            "trained_on": (
                f"{len(simulated)} simulated athletes"
                + (f" + {len(coach)} coach-labelled athletes" if len(coach) else "")
            ),
            "coach_weight": float(coach.weights[0]) if len(coach) else None,
            "grouped_cv": cv,
            "support": support,
        },
    )
    return {
        "path": str(bundle.path),
        "version": bundle.version,
        "simulated_athletes": len(simulated),
        "coach_labelled_athletes": len(coach),
        "training_data_sha256": digest,
        "grouped_cv": cv,
    }


def evaluate_model(
    *,
    directory: Path | None = None,
    n_athletes: int | None = None,
    seed: int | None = None,
    workers: int = 2,
    generator: str = "training",
) -> dict[str, Any]:
    """Score the active model, the rules and the key-metric z on held-out simulated athletes.

    ``generator`` names one of :data:`planner.simulate.GENERATORS` (the training prior or a
    shifted one), or ``all``: then one report per generator, worst model top-1 first.
    """
    from planner.model import EVAL_ATHLETES, EVAL_SEED, evaluate, simulated_training_set
    from planner.simulate import GENERATORS
    from planner.store.model_io import load_artefact

    if generator != "all" and generator not in GENERATORS:
        raise InvalidValueError(
            "generator", generator, f"unknown generator; choose from {', '.join(GENERATORS)}, all"
        )
    n_athletes = n_athletes or EVAL_ATHLETES
    seed = EVAL_SEED if seed is None else seed
    bundle = load_artefact(directory)
    if seed == bundle.meta.get("seed"):
        raise ConfigError("the evaluation seed equals the training seed: not held out")
    if generator == "all":
        reports = [
            evaluate_model(
                directory=directory, n_athletes=n_athletes, seed=seed, workers=workers, generator=g
            )
            for g in GENERATORS
        ]
        reports.sort(key=lambda r: r["model"]["top1_one_clear"] or 0.0)
        return {"model_version": bundle.version, "seed": seed, "generators": reports}
    test, _ = simulated_training_set(n_athletes, seed, workers=workers, generator=generator)
    report = evaluate(bundle.pipeline, bundle.baseline, test, support=bundle.meta.get("support"))
    report["model_version"] = bundle.version
    report["seed"] = seed
    report["generator"] = generator
    report["generator_description"] = GENERATORS[generator].description
    report["held_out"] = (
        f"{n_athletes} simulated athletes (seed {seed}, generator {generator}, not used in"
        " training)"
    )
    return report
