"""Garmin FIT *workout* files for a plan's sessions, written with garmin_fit_sdk's Encoder.

A drill/strength session becomes a ``training``/``strength_training`` workout: per drill a
work step (reps, time, or open with the distance in its name), a rest step and a repeat step
for the sets, plus one extra work step for the weaker side. A run session (strides, hill
sprints) becomes a ``running`` workout: an open warm-up, the repeats with recoveries, and an
open cool-down. Strings are folded to ASCII and shortened, as watches show little text.
"""

from __future__ import annotations

import hashlib
import unicodedata
from datetime import datetime
from typing import Any, Final

from garmin_fit_sdk import Encoder, Profile

from planner.plan import Plan, PlannedDrill, PlanSession

_MESG: Final = Profile["mesg_num"]
#: Garmin's "development" manufacturer id is for files made by tools like this one.
_MANUFACTURER: Final = "development"
_NAME_CHARS: Final = 40
_NOTE_CHARS: Final = 60

_TYPES: Final = Profile["types"]


def _ascii(text: str, limit: int) -> str:
    folded = text.replace("×", "x").replace("–", "-").replace("—", "-")
    folded = unicodedata.normalize("NFKD", folded).encode("ascii", "ignore").decode()
    return folded if len(folded) <= limit else folded[:limit].rstrip()


def exercise_fields(drill: PlannedDrill) -> dict[str, Any]:
    """``exercise_category`` and ``exercise_name`` for a drill's work step (may be empty).

    The catalogue's Garmin exercise (garminconnect's enum values, e.g. ``CALF_RAISE`` /
    ``SINGLE_LEG_STANDING_CALF_RAISE``) is the same name in lower case in the FIT profile's
    ``exercise_category`` and ``<category>_exercise_name`` types; names starting with a digit
    carry a leading ``_`` in garminconnect (``_3_WAY_CALF_RAISE``). The exercise name is a
    number whose meaning depends on the category, so it is written only when the profile
    knows it. A category-only catalogue entry (exercise ``""``) writes the category alone.
    """
    if drill.garmin_exercise is None:
        return {}
    category, exercise = (part.lower().lstrip("_") for part in drill.garmin_exercise)
    if category not in _TYPES["exercise_category"].values():
        return {}
    names = {name: number for number, name in _TYPES.get(f"{category}_exercise_name", {}).items()}
    fields: dict[str, Any] = {"exercise_category": category}
    if exercise in names:
        fields["exercise_name"] = names[exercise]
    return fields


def _intensity(drill: PlannedDrill) -> str:
    return {"warmup": "warmup", "mobility": "cooldown"}.get(drill.kind, "active")


def _duration(drill: PlannedDrill, *, running: bool) -> dict[str, Any]:
    """duration_type/value for one set: reps, time (ms) or distance (cm; open off a run)."""
    name, value = drill.dose.amount
    if name == "reps":
        return {"duration_type": "reps", "duration_value": value}
    if name == "duration_s":
        return {"duration_type": "time", "duration_value": value * 1000}
    if running:
        return {"duration_type": "distance", "duration_value": value * 100}
    # Drills over a few metres are not measurable by GPS: the athlete presses lap instead.
    return {"duration_type": "open"}


def _work_name(drill: PlannedDrill, suffix: str = "") -> str:
    name, value = drill.dose.amount
    label = drill.name
    if name == "distance_m":
        label += f" {value} m"
    if drill.dose.per_side:
        label += " each side"
    # Shorten the name, never the suffix that says which side gets the extra set.
    return _ascii(label, _NAME_CHARS - len(suffix)) + suffix


def _drill_steps(drill: PlannedDrill, start: int, *, running: bool) -> list[dict[str, Any]]:
    """The steps for one drill, numbered from ``start`` (message_index)."""
    note = _ascii(drill.cues[0], _NOTE_CHARS) if drill.cues else None
    work: dict[str, Any] = {
        "wkt_step_name": _work_name(drill),
        "target_type": "open",
        "intensity": "interval" if running else _intensity(drill),
        "notes": note,
        **_duration(drill, running=running),
    }
    if not running:
        work.update(exercise_fields(drill))
    steps = [work]
    sets, rest_s = drill.dose.sets, drill.dose.rest_s
    if sets > 1:
        if rest_s:
            steps.append(
                {
                    "wkt_step_name": "Recover" if running else "Rest",
                    "duration_type": "time",
                    "duration_value": rest_s * 1000,
                    "target_type": "open",
                    "intensity": "recovery" if running else "rest",
                }
            )
        steps.append(
            {
                "duration_type": "repeat_until_steps_cmplt",
                "duration_value": start,  # repeat from the work step
                "target_type": "open",
                "target_value": sets,  # total times through the block
            }
        )
    if drill.dose.extra_set_side:
        extra = dict(work, wkt_step_name=_work_name(drill, f" +1 {drill.dose.extra_set_side}"))
        steps.append(extra)
    return steps


def _serial(plan: Plan, session: PlanSession) -> int:
    key = f"{plan.athlete_id}|{plan.week}|{session.id}".encode()
    # uint32z: any value but 0; a stable serial lets a watch recognise the same workout again.
    return int.from_bytes(hashlib.sha256(key).digest()[:4], "big") or 1


def encode_session(plan: Plan, session: PlanSession, *, now: datetime | None = None) -> bytes:
    """One session as a FIT workout file (bytes).

    Parameters
    ----------
    plan, session
        The plan and one of its sessions.
    now
        ``time_created`` in the file id (default: when the plan revision was stored, see
        ``Plan.revision_time``).
    """
    running = session.kind == "run"
    steps: list[dict[str, Any]] = []
    if running:
        steps.append(
            {
                "wkt_step_name": "Easy running, 10 min or more",
                "duration_type": "open",
                "target_type": "open",
                "intensity": "warmup",
            }
        )
    for drill in session.drills:
        steps += _drill_steps(drill, len(steps), running=running)
    if running:
        steps.append(
            {
                "wkt_step_name": "Easy running to finish",
                "duration_type": "open",
                "target_type": "open",
                "intensity": "cooldown",
            }
        )
    encoder = Encoder()
    encoder.write_mesg(
        {
            "mesg_num": _MESG["FILE_ID"],
            "type": "workout",
            "manufacturer": _MANUFACTURER,
            "product": 0,
            "serial_number": _serial(plan, session),
            "time_created": now or plan.revision_time,
        }
    )
    encoder.write_mesg(
        {
            "mesg_num": _MESG["WORKOUT"],
            "sport": "running" if running else "training",
            "sub_sport": "generic" if running else "strength_training",
            "num_valid_steps": len(steps),
            "wkt_name": _ascii(f"{plan.week} {session.id} {session.title}", _NAME_CHARS),
        }
    )
    for index, step in enumerate(steps):
        message = {"mesg_num": _MESG["WORKOUT_STEP"], "message_index": index}
        message.update({k: v for k, v in step.items() if v is not None})
        encoder.write_mesg(message)
    data: bytes = encoder.close()
    return data


def workout_name(plan: Plan, session: PlanSession) -> str:
    """The file name of a session's workout: stable per athlete, week and session."""
    return f"stridewise-{plan.week}-{session.id}-{session.weekday}.fit"


def plan_workouts(plan: Plan, *, now: datetime | None = None) -> dict[str, bytes]:
    """Every session of the plan as a FIT workout: file name -> bytes."""
    return {workout_name(plan, s): encode_session(plan, s, now=now) for s in plan.sessions}
