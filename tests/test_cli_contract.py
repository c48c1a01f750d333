"""The command line speaks one language: the same mistake gets the same exit code everywhere,
options mean the same thing in every command, and scripts find the athlete under one JSON key."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from tests.conftest import FIT_DIR, CliResult

Run = Callable[..., CliResult]
RUN_FILE = FIT_DIR / "activity-small-fenix2-run.fit"


@pytest.mark.parametrize(
    "args",
    [
        ["plan", "--week", "2026-W99"],
        ["send-weekly", "--week", "2026-W99", "--dry-run"],
        ["send-weekly", "--week", "2025-W53", "--dry-run"],  # 2025 has 52 ISO weeks
        ["analyze", "--since", "last tuesday"],
        ["sync", "garmin", "--since", "last tuesday"],
        ["sync", "strava", "--since", "31/01/2026"],
        ["athlete", "add", "ann", "--name", "Ann", "--email", "a@example.org", "--level", "expert"],
        ["label", "--athlete", "ann", "--limiter", "feet"],
        ["plan", "--format", "pdf"],
    ],
)
def test_a_bad_option_value_is_a_usage_error_everywhere(run_cli: Run, args: list[str]) -> None:
    result = run_cli(*args)
    assert result.code == 2, (result.out, result.err)
    last = result.err.strip().splitlines()[-1]  # click's usage lines, then one message
    assert last.startswith(("Error: Invalid value", "stridewise: error: --")), result.err
    assert "Traceback" not in result.err


def test_since_takes_the_same_format_in_every_command(run_cli: Run) -> None:
    """A plain date works for analyze and both syncs (they fail later, for want of a login)."""
    assert run_cli("analyze", "--since", "2026-01-31").code == 1  # no athlete 'me' yet: exit 1
    for service in ("garmin", "strava"):
        result = run_cli("sync", service, "--since", "2026-01-31")
        assert result.code == 1, result.err  # parsed; then: not logged in / not connected
        assert "Invalid value" not in result.err


def test_old_option_spellings_still_work_but_are_hidden(run_cli: Run) -> None:
    helped = run_cli("model", "train", "--help")
    assert "--out" in helped.out
    assert "--output" not in helped.out
    # --output is still accepted: the only complaint is about the deliberately bad --athletes.
    result = run_cli("model", "train", "--output", "somewhere", "--athletes", "3")
    assert result.code == 2
    assert "--athletes" in result.err
    assert "No such option" not in result.err


def test_one_json_key_for_the_athlete(
    run_cli: Run, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("STRIDEWISE_SMTP_FROM", "coach@example.org")  # a dry run needs a sender
    added = run_cli("athlete", "add", "ann", "--name", "Ann", "--email", "a@example.org", "--json")
    assert added.code == 0, added.err
    assert added.json()["athlete_id"] == "ann"
    assert run_cli("import", RUN_FILE, "--athlete", "ann", "--json").code == 0
    documents = {
        "athlete show": run_cli("athlete", "show", "ann", "--json").json(),
        "activities": run_cli("activities", "--athlete", "ann", "--json").json()[0],
        "analyze": run_cli("analyze", "--athlete", "ann", "--json").json(),
        "label": run_cli("label", "--athlete", "ann", "--limiter", "push", "--json").json(),
        "plan": run_cli(
            "plan", "--athlete", "ann", "--week", "2026-W49", "--format", "json"
        ).json(),
        "send-weekly": run_cli(
            "send-weekly", "--athlete", "ann", "--week", "2026-W49", "--dry-run", "--out",
            str(tmp_path), "--json",
        ).json()["results"][0],
    }  # fmt: skip
    for command, doc in documents.items():
        assert doc.get("athlete_id") == "ann", command


@pytest.mark.parametrize("service", ["strava", "garmin"])
def test_syncs_respect_the_athletes_sources(run_cli: Run, service: str) -> None:
    """'athlete --sources' is obeyed: a sync from a service the athlete left out is refused."""
    added = run_cli(
        "athlete", "add", "ann", "--name", "Ann", "--email", "a@example.org", "--sources", "fit"
    )
    assert added.code == 0, added.err
    result = run_cli("sync", service, "--athlete", "ann")
    assert result.code == 1
    [line] = result.err.strip().splitlines()
    assert f"athlete ann takes data only from fit; add {service} to their sources" in line
    # With the service among the sources the sync gets as far as the missing login.
    assert run_cli("athlete", "edit", "ann", "--sources", f"fit,{service}").code == 0
    again = run_cli("sync", service, "--athlete", "ann")
    assert again.code == 1
    assert "takes data only" not in again.err
