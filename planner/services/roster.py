"""The roster: athletes who get a weekly plan by e-mail, and their validated settings.

The roster lives in the store's ``athletes`` table; the id is the same handle ``import
--athlete`` files activities under, so an athlete created by an import joins the roster by
``athlete add`` with the same id. Every input is checked here and a bad one ends as one
:class:`~planner.errors.ConfigError` line naming the option.
"""

from __future__ import annotations

import dataclasses
import difflib
import re
import zoneinfo
from dataclasses import dataclass
from typing import Any

from email_validator import EmailNotValidError, validate_email

from drills.catalogue import Contraindication, Equipment, Level
from planner.errors import ConfigError, InvalidValueError
from planner.planbuild import MAX_SESSION_MINUTES, MIN_SESSION_MINUTES, check_preferences
from planner.records import WEEKDAYS, Athlete, Preferences, Source
from planner.store.database import Store

#: Ids are typed on command lines and appear in file names (dry-run ``.eml``): keep them plain.
_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")
_TIME = re.compile(r"^(\d{1,2}):(\d{2})$")
_FULL_DAY_NAMES = ("monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday")


@dataclass(frozen=True, slots=True)
class AthleteChanges:
    """Settings to set on an athlete, as typed on the command line; ``None`` leaves one alone.

    List options (``days``, ``equipment``, ``avoid``, ``quality_days``) are comma-separated
    strings; ``none`` empties ``avoid`` and ``quality_days`` and clears ``long_run_day``.
    """

    name: str | None = None
    email: str | None = None
    timezone: str | None = None
    send_day: str | None = None
    send_time: str | None = None
    days: str | None = None
    sessions: int | None = None
    minutes: int | None = None
    equipment: str | None = None
    level: str | None = None
    avoid: str | None = None
    long_run_day: str | None = None
    quality_days: str | None = None
    sources: str | None = None  # where the data comes from: fit, garmin, strava, gpx, tcx
    garmin_calendar: bool | None = None  # put each week's sessions on their Garmin calendar

    def is_empty(self) -> bool:
        return all(getattr(self, f.name) is None for f in dataclasses.fields(self))


# -- validation of single values ------------------------------------------------------------


def check_athlete_id(athlete_id: str) -> str:
    """A new athlete id: letters, digits, ``.``, ``_`` and ``-``, at most 64 characters."""
    if not _ID.match(athlete_id):
        raise ConfigError(
            f"athlete id {athlete_id!r}: use letters, digits, '.', '_' or '-' (at most 64,"
            " starting with a letter or digit)"
        )
    return athlete_id


def check_email(address: str) -> str:
    """The address in its ASCII form (IDN domains punycoded); syntax only, no DNS look-up."""
    try:
        # SMTPUTF8 is off: not every relay offers it, and an ASCII address always travels.
        result = validate_email(address, check_deliverability=False, allow_smtputf8=False)
    except EmailNotValidError as exc:
        raise InvalidValueError("email", address, str(exc)) from None
    return result.ascii_email or result.normalized


def check_timezone(name: str) -> str:
    """An IANA time-zone name such as ``Europe/Paris``."""
    try:
        zoneinfo.ZoneInfo(name)
    except (zoneinfo.ZoneInfoNotFoundError, ValueError):
        close = difflib.get_close_matches(name, sorted(zoneinfo.available_timezones()), n=1)
        hint = f" (did you mean {close[0]}?)" if close else " (use an IANA name like Europe/Paris)"
        raise InvalidValueError("timezone", name, f"unknown time zone{hint}") from None
    return name


def check_day(value: str, field: str = "send_day") -> str:
    """A weekday as ``mon``..``sun`` (full English names are accepted)."""
    day = value.strip().lower()
    if day in _FULL_DAY_NAMES:
        day = WEEKDAYS[_FULL_DAY_NAMES.index(day)]
    if day not in WEEKDAYS:
        raise InvalidValueError(field, value, f"use one of {', '.join(WEEKDAYS)}")
    return day


def check_time(value: str) -> str:
    """A 24-hour local time ``HH:MM``, normalised to two-digit hours."""
    match = _TIME.match(value.strip())
    if match is None or int(match[1]) > 23 or int(match[2]) > 59:
        raise InvalidValueError("send_time", value, "use a 24-hour time like 07:00")
    return f"{int(match[1]):02d}:{match[2]}"


def _split(value: str) -> list[str]:
    return [part.strip().lower() for part in value.split(",") if part.strip()]


def _days(value: str, field: str, *, allow_none: bool) -> tuple[str, ...]:
    parts = _split(value)
    if allow_none and parts == ["none"]:
        return ()
    if not parts:
        raise InvalidValueError(field, value, "give at least one day, e.g. mon,wed,fri")
    days = {check_day(part, field) for part in parts}
    return tuple(d for d in WEEKDAYS if d in days)  # week order, no repeats


def _tags(value: str, field: str, allowed: list[str], *, allow_none: bool) -> tuple[str, ...]:
    parts = _split(value)
    if allow_none and parts == ["none"]:
        return ()
    unknown = [p for p in parts if p not in allowed]
    if unknown:
        raise InvalidValueError(
            field, value, f"unknown {', '.join(unknown)} (known: {', '.join(allowed)})"
        )
    return tuple(dict.fromkeys(parts))


# -- applying changes -----------------------------------------------------------------------


def _preference_changes(changes: AthleteChanges) -> dict[str, Any]:
    out: dict[str, Any] = {}
    if changes.days is not None:
        out["available_days"] = list(_days(changes.days, "days", allow_none=False))
    if changes.sessions is not None:
        if not 1 <= changes.sessions <= len(WEEKDAYS):
            raise InvalidValueError("sessions", changes.sessions, "use 1 to 7 sessions a week")
        out["sessions_per_week"] = changes.sessions
    if changes.minutes is not None:
        if not MIN_SESSION_MINUTES <= changes.minutes <= MAX_SESSION_MINUTES:
            raise InvalidValueError(
                "minutes",
                changes.minutes,
                f"use {MIN_SESSION_MINUTES} to {MAX_SESSION_MINUTES} minutes a session",
            )
        out["minutes_per_session"] = changes.minutes
    if changes.equipment is not None:
        known = [e.value for e in Equipment]
        out["equipment"] = list(_tags(changes.equipment, "equipment", known, allow_none=False))
        if not out["equipment"]:
            raise InvalidValueError(
                "equipment", changes.equipment, "give at least one item ('none' = body weight only)"
            )
    if changes.level is not None:
        levels = [lv.value for lv in Level]
        level = changes.level.strip().lower()
        if level not in levels:
            raise InvalidValueError("level", changes.level, f"use one of {', '.join(levels)}")
        out["level"] = level
    if changes.avoid is not None:
        known = [c.value for c in Contraindication]
        out["avoid"] = list(_tags(changes.avoid, "avoid", known, allow_none=True))
    if changes.long_run_day is not None:
        none = changes.long_run_day.strip().lower() == "none"
        out["long_run_day"] = None if none else check_day(changes.long_run_day, "long_run_day")
    if changes.quality_days is not None:
        out["quality_days"] = list(_days(changes.quality_days, "quality_days", allow_none=True))
    if changes.sources is not None:
        known = [source.value for source in Source]
        out["sources"] = list(_tags(changes.sources, "sources", known, allow_none=True))
    if changes.garmin_calendar is not None:
        out["garmin_calendar"] = changes.garmin_calendar
    return out


def apply_changes(athlete: Athlete, changes: AthleteChanges) -> Athlete:
    """The athlete with ``changes`` validated and applied; unknown preference keys are kept."""
    fields: dict[str, Any] = {}
    if changes.name is not None:
        name = " ".join(changes.name.split())
        if not name:
            raise InvalidValueError("name", changes.name, "give a name")
        fields["name"] = name
    if changes.email is not None:
        fields["email"] = check_email(changes.email)
    if changes.timezone is not None:
        fields["timezone"] = check_timezone(changes.timezone)
    if changes.send_day is not None:
        fields["send_day"] = check_day(changes.send_day)
    if changes.send_time is not None:
        fields["send_time"] = check_time(changes.send_time)
    preferences = {**athlete.preferences, **_preference_changes(changes)}
    # The plan builder's own check covers anything stored before this validation existed.
    effective = check_preferences(Preferences.from_dict(preferences))
    if effective.sessions_per_week > len(effective.available_days):
        raise ConfigError(
            f"{effective.sessions_per_week} sessions a week need at least as many available days"
            f" (now {','.join(effective.available_days)}): change the sessions or the days"
        )
    return dataclasses.replace(athlete, **fields, preferences=preferences)


def add_athlete(store: Store, athlete_id: str, changes: AthleteChanges) -> Athlete:
    """Put a new athlete on the roster (name and e-mail required).

    An athlete that exists only because activities were imported under its id (no name, no
    e-mail yet) is completed rather than refused, so ``import --athlete ana`` then ``athlete add
    ana`` works in either order.
    """
    if changes.name is None or changes.email is None:
        raise ConfigError("a new athlete needs a name and an e-mail address")
    existing = store.find_athlete(athlete_id)
    if existing is not None and (existing.name or existing.email):
        raise ConfigError(f"athlete {athlete_id!r} already exists (use 'stridewise athlete edit')")
    base = existing if existing is not None else Athlete(id=check_athlete_id(athlete_id))
    athlete = apply_changes(base, changes)
    _one_garmin_calendar(store, athlete)
    store.save_athlete(athlete)
    return athlete


def edit_athlete(store: Store, athlete_id: str, changes: AthleteChanges) -> Athlete:
    """Change some of an athlete's settings; everything not given stays as it was."""
    athlete = store.get_athlete(athlete_id)
    if changes.is_empty():
        raise ConfigError("nothing to change: give at least one option (see --help)")
    updated = apply_changes(athlete, changes)
    _one_garmin_calendar(store, updated)
    store.save_athlete(updated)
    return updated


def _one_garmin_calendar(store: Store, athlete: Athlete) -> None:
    """Refuse a second athlete on the Garmin calendar: stridewise holds one Garmin login.

    With two, ``send-weekly --garmin`` would put both plans on that one account's calendar.
    """
    if not athlete.preferences.get("garmin_calendar"):
        return
    others = [
        a.id
        for a in store.list_athletes()
        if a.id != athlete.id and a.preferences.get("garmin_calendar")
    ]
    if others:
        raise ConfigError(
            f"{others[0]} already uses the Garmin calendar, and stridewise"
            " holds one Garmin login, so both plans would land on one calendar; first run"
            f" 'stridewise athlete edit {others[0]} --no-garmin-calendar'"
        )


def athlete_json(athlete: Athlete) -> dict[str, Any]:
    """The athlete as JSON, with the effective plan preferences (defaults filled in)."""
    return {
        "id": athlete.id,
        "athlete_id": athlete.id,
        "name": athlete.name,
        "email": athlete.email,
        "timezone": athlete.timezone,
        "send_day": athlete.send_day,
        "send_time": athlete.send_time,
        "preferences": Preferences.from_dict(athlete.preferences).to_dict(),
        "sources": list(athlete.preferences.get("sources", [])),
        "garmin_calendar": bool(athlete.preferences.get("garmin_calendar", False)),
    }
