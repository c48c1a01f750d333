"""A plan's sessions as Garmin Connect workouts: garminconnect's typed models stop here.

A drill/strength session becomes a ``StrengthWorkout``: per drill one block of ``sets`` (a
repeat group of the exercise and its rest), with reps, a time, or the lap button for distance
drills, then one extra exercise step for the weaker side. Drills with a Garmin exercise in the
catalogue carry its ``category`` / ``exerciseName`` so the watch shows the real name and
animation (a category alone, with an empty exercise name, shows the category's name); the rest
are named custom steps (the name and cue in the step's note). A run session
(strides, hill sprints) becomes a ``RunningWorkout``: an easy warm-up until the lap button, the
repeats with recoveries, and an easy cool-down.

The result is plain JSON (what ``Garmin.upload_workout`` sends), built and validated through
garminconnect's pydantic models, so nothing from garminconnect leaves this module.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from datetime import date
from typing import Any, Final, Literal

from garminconnect.workout import (
    ConditionType,
    ExecutableStep,
    RepeatGroup,
    RunningWorkout,
    SportType,
    StepType,
    StrengthWorkout,
    TargetType,
    WorkoutSegment,
)

from planner.plan import Plan, PlannedDrill, PlanSession

#: Garmin Connect's limits as a third-party workout tool documents them (workout name 80
#: characters, notes 512; sydspost/Garmin-Connect-Workout-and-Schedule-creator README;
#: unverified against Garmin). Step notes are read on a watch: we keep them much shorter.
NAME_CHARS: Final = 80
DESCRIPTION_CHARS: Final = 512
STEP_NOTE_CHARS: Final = 120

_STEP_KEYS: Final = {
    StepType.WARMUP: "warmup",
    StepType.COOLDOWN: "cooldown",
    StepType.INTERVAL: "interval",
    StepType.RECOVERY: "recovery",
    StepType.REST: "rest",
    StepType.REPEAT: "repeat",
}
_CONDITIONS: Final = {
    "lap.button": ConditionType.LAP_BUTTON,
    "time": ConditionType.TIME,
    "distance": ConditionType.DISTANCE,
    "reps": ConditionType.REPS,
    "iterations": ConditionType.ITERATIONS,
}
_NO_TARGET: Final = {
    "workoutTargetTypeId": TargetType.NO_TARGET,
    "workoutTargetTypeKey": "no.target",
    "displayOrder": 1,
}
_STRENGTH: Final = {
    "sportTypeId": SportType.STRENGTH_TRAINING,
    "sportTypeKey": "strength_training",
    "displayOrder": 5,
}
_RUNNING: Final = {"sportTypeId": SportType.RUNNING, "sportTypeKey": "running", "displayOrder": 1}

Condition = Literal["lap.button", "time", "distance", "reps"]


@dataclass(frozen=True, slots=True)
class SessionWorkout:
    """One plan session as the workout JSON Garmin Connect takes, and where it goes."""

    session_id: str
    day: date
    kind: Literal["strength", "running"]
    name: str
    marker: str  # the line in the description that says which plan session this is
    body: dict[str, Any]

    @property
    def content_hash(self) -> str:
        """SHA-256 of the canonical JSON: equal hashes, equal workouts on the watch."""
        text = json.dumps(self.body, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
        return hashlib.sha256(text.encode()).hexdigest()


def _short(text: str, limit: int) -> str:
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit - 1].rstrip() + "…"


def session_marker(plan: Plan, session: PlanSession) -> str:
    """The description line naming the plan session: how an uncertain upload is found again."""
    return f"stridewise {plan.athlete_id} {plan.week} {session.id}"


def session_workout_name(plan: Plan, session: PlanSession) -> str:
    return _short(f"{plan.week} {session.id} {session.title}", NAME_CHARS)


class _Steps:
    """Numbers steps in order: Garmin wants every ``stepOrder`` in a workout unique."""

    def __init__(self) -> None:
        self.order = 0

    def next(self) -> int:
        self.order += 1
        return self.order

    def step(
        self,
        step_type: int,
        condition: Condition,
        value: float | None,
        *,
        note: str | None = None,
        exercise: tuple[str, str] | None = None,
    ) -> ExecutableStep:
        extra: dict[str, Any] = {}
        if exercise is not None:
            extra = {"category": exercise[0], "exerciseName": exercise[1]}
        condition_id = _CONDITIONS[condition]
        return ExecutableStep(
            stepOrder=self.next(),
            stepType={
                "stepTypeId": step_type,
                "stepTypeKey": _STEP_KEYS[step_type],
                "displayOrder": step_type,
            },
            endCondition={
                "conditionTypeId": condition_id,
                "conditionTypeKey": condition,
                "displayOrder": condition_id,
                "displayable": True,
            },
            endConditionValue=value,
            targetType=dict(_NO_TARGET),
            description=None if note is None else _short(note, STEP_NOTE_CHARS),
            **extra,
        )

    def repeat(self, sets: int, build: list[ExecutableStep]) -> RepeatGroup:
        return RepeatGroup(
            stepOrder=build[0].stepOrder - 1,
            stepType={
                "stepTypeId": StepType.REPEAT,
                "stepTypeKey": "repeat",
                "displayOrder": StepType.REPEAT,
            },
            numberOfIterations=sets,
            workoutSteps=list(build),
            endCondition={
                "conditionTypeId": ConditionType.ITERATIONS,
                "conditionTypeKey": "iterations",
                "displayOrder": ConditionType.ITERATIONS,
                "displayable": False,
            },
            endConditionValue=float(sets),
            smartRepeat=False,
        )


def _amount(drill: PlannedDrill, *, running: bool) -> tuple[Condition, float | None, str]:
    """End condition, value and a few words for one set of the drill."""
    name, value = drill.dose.amount
    side = " each side" if drill.dose.per_side else ""
    if name == "reps":
        return "reps", float(value), f"{value} reps{side}"
    if name == "duration_s":
        return "time", float(value), f"{value} s{side}"
    if running:
        return "distance", float(value), f"{value} m{side}"
    # A few metres of a drill are not measurable by GPS indoors: press lap when done.
    return "lap.button", None, f"{value} m{side}, press lap when done"


def _work_type(drill: PlannedDrill, *, running: bool) -> int:
    if running:
        return StepType.INTERVAL
    return {"warmup": StepType.WARMUP, "mobility": StepType.COOLDOWN}.get(
        drill.kind, StepType.INTERVAL
    )


def _drill_steps(
    steps: _Steps, drill: PlannedDrill, *, running: bool
) -> list[ExecutableStep | RepeatGroup]:
    condition, value, amount = _amount(drill, running=running)
    cue = drill.cues[0] if drill.cues else ""
    exercise = None if running else drill.garmin_exercise
    # Unless Garmin knows the very exercise, the watch shows no name of ours (a custom step)
    # or only the category's ("Plyo"): the note then starts with the drill's name.
    label = amount if exercise is not None and exercise[1] else f"{drill.name}: {amount}"
    note = f"{label}. {cue}" if cue else label
    sets, rest_s = drill.dose.sets, drill.dose.rest_s
    out: list[ExecutableStep | RepeatGroup] = []
    if sets > 1:
        steps.next()  # the repeat group's own order comes before its steps
        inner = [
            steps.step(
                _work_type(drill, running=running), condition, value, note=note, exercise=exercise
            )
        ]
        if rest_s:
            rest_type = StepType.RECOVERY if running else StepType.REST
            inner.append(steps.step(rest_type, "time", float(rest_s)))
        out.append(steps.repeat(sets, inner))
    else:
        out.append(
            steps.step(
                _work_type(drill, running=running), condition, value, note=note, exercise=exercise
            )
        )
    if drill.dose.extra_set_side:
        extra = f"Extra set, {drill.dose.extra_set_side} side only: {label}"
        out.append(
            steps.step(
                _work_type(drill, running=running),
                condition,
                value,
                note=extra,
                exercise=exercise,
            )
        )
    return out


def session_workout(plan: Plan, session: PlanSession) -> SessionWorkout:
    """The Garmin Connect workout for one plan session (JSON checked by garminconnect's models)."""
    running = session.kind == "run"
    steps = _Steps()
    body: list[ExecutableStep | RepeatGroup] = []
    if running:
        body.append(steps.step(StepType.WARMUP, "lap.button", None, note="Easy running, 10 min"))
    for drill in session.drills:
        body += _drill_steps(steps, drill, running=running)
    if running:
        body.append(steps.step(StepType.COOLDOWN, "lap.button", None, note="Easy running"))
    marker = session_marker(plan, session)
    description = _short(session.reason, DESCRIPTION_CHARS - len(marker) - 2) + "\n\n" + marker
    common: dict[str, Any] = {
        "workoutName": session_workout_name(plan, session),
        "estimatedDurationInSecs": session.minutes * 60,
        "description": description,
        "workoutSegments": [
            WorkoutSegment(
                segmentOrder=1,
                sportType=dict(_RUNNING if running else _STRENGTH),
                workoutSteps=body,
            )
        ],
    }
    model = RunningWorkout(**common) if running else StrengthWorkout(**common)
    return SessionWorkout(
        session_id=session.id,
        day=session.date,
        kind="running" if running else "strength",
        name=common["workoutName"],
        marker=marker,
        body=model.to_dict(),
    )


def plan_workouts(plan: Plan) -> list[SessionWorkout]:
    """Every session of the plan as a Garmin Connect workout, in plan order."""
    return [session_workout(plan, session) for session in plan.sessions]
