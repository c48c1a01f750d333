"""Renderings of a plan: golden files, HTML structure and escaping, ICS, FIT workouts, the CLI.

Regenerate the golden files after an intended change with
``STRIDEWISE_UPDATE_GOLDEN=1 pytest tests/test_render.py`` and review the diff.
"""

from __future__ import annotations

import dataclasses
import io
import json
import os
import re
import tomllib
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from fnmatch import fnmatch
from html.parser import HTMLParser
from pathlib import Path

import fitdecode
import pytest
from garmin_fit_sdk import Decoder, Profile, Stream
from icalendar import Calendar
from threadpoolctl import threadpool_limits

from drills.catalogue import load_catalogue
from planner.delivery import render
from planner.delivery.workouts import plan_workouts
from planner.features import MODEL_FEATURES
from planner.limiters import KEY_METRICS
from planner.plan import IsoWeek, Plan, PlanHistoryEntry
from planner.planbuild import build_plan, history_entry
from planner.progress import VIEWS, AreaProgress, PlanEvent, Progress, WeekPoint, sentence
from planner.records import Analysis, Athlete, LimiterEstimate, Preferences
from planner.training import TrainingSummary
from tests.conftest import CliResult

GOLDEN = Path(__file__).parent / "golden"
UPDATE = os.environ.get("STRIDEWISE_UPDATE_GOLDEN") == "1"
NOW = datetime(2026, 11, 23, 18, 30, tzinfo=UTC)
#: The smallest valid PNG (1 × 1 transparent pixel): stands in for the chart.
PNG = bytes.fromhex(
    "89504e470d0a1a0a0000000d4948445200000001000000010806000000"
    "1f15c4890000000d49444154789c6360000002000100e221bc330000000049454e44ae426082"
)
NASTY = "<script>alert('x')</script> & Co"


def _analysis(push: float = 20.0) -> Analysis:
    return Analysis(
        athlete_id="ann",
        generated_utc=datetime(2026, 11, 22, tzinfo=UTC),
        limiters=(
            LimiterEstimate(
                "push",
                0.78,
                1,
                (
                    "Ground contact 281 ms at 4:30/km — 14 ms longer than expected for your "
                    "speed (Weyand & Davis 2005).",
                ),
                "gct_resid_ms",
                push,
                support=(
                    "Ground contact 281 ms at 4:30/km — 14 ms longer than expected for your "
                    "speed (Weyand & Davis 2005).",
                ),
            ),
            LimiterEstimate(
                "strength_balance",
                0.52,
                2,
                (
                    "GCT balance 52.4 % L on flat ground over your last 6 runs — outside the "
                    "range 90 % of runners stay in.",
                ),
                "balance_dev_pts",
                2.4,
                support=(
                    "GCT balance 52.4 % L on flat ground over your last 6 runs — outside the "
                    "range 90 % of runners stay in.",
                ),
            ),
            LimiterEstimate(
                "swing",
                0.2,
                3,
                ("Cadence 172 spm at 4:30/km is typical for your speed.",),
                "cadence_resid_spm",
                0.5,
            ),
            LimiterEstimate(
                "posture_hip",
                None,
                4,
                ("Cannot judge: no vertical oscillation in these runs.",),
                "vo_resid_mm",
                None,
            ),
        ),
        runs_used=14,
        weaker_side="left",
    )


TRAINING = TrainingSummary(
    weeks=6,
    runs=24,
    runs_per_week=4.0,
    weekly_distance_km=41.5,
    weekly_time_min=236.0,
    long_run_day="sun",
    quality_days=("tue",),
    run_days=("tue", "thu", "sat", "sun"),
)
PREFS = Preferences(
    available_days=("mon", "wed", "thu", "fri", "sat"),
    sessions_per_week=3,
    minutes_per_session=30,
    equipment=("band", "step", "wall", "mat", "hill", "dumbbells"),
    avoid=("hamstring",),
)


def _area(area: str, values: list[float | None], verdict: str) -> AreaProgress:
    """One area's weeks 2026-W43 … W48 (the plan began in W47), noise 2 units."""
    weeks = [str(IsoWeek(2026, 43).shift(k)) for k in range(len(values))]
    points = tuple(
        WeekPoint(w, v, None, None, 4 if v is not None else 0, 120.0, w >= "2026-W47")
        for w, v in zip(weeks, values, strict=True)
    )
    known = [v for v in values if v is not None]
    area_progress = AreaProgress(
        area=area,
        metric=VIEWS[area].metric,
        better=VIEWS[area].better,
        points=points,
        typical_error=1.0,
        typical_error_basis="baseline_weeks",
        smallest_worthwhile_change=0.5,
        noise=2.0 if area != "strength_balance" else 0.4,
        noise_basis="typical_error",
        baseline=sum(known[:4]) / 4 if len(known) > 4 else None,
        current=sum(known[-2:]) / 2 if len(known) > 4 else None,
        weeks=2,
        verdict=verdict,
        sentence="",
    )
    return dataclasses.replace(area_progress, sentence=sentence(area_progress))


def _progress() -> Progress:
    """What the weeks before 2026-W49 showed: push improved, balance did not move."""
    return Progress(
        athlete_id="ann",
        weeks=tuple(str(IsoWeek(2026, 43).shift(k)) for k in range(6)),
        plan_start="2026-W47",
        focus="push",
        events=(PlanEvent("2026-W47", "plan starts"),),
        areas=(
            _area("push", [20.0, 21.0, 19.0, 20.0, 16.0, 12.0], "improving"),
            _area("swing", [0.5, 0.4, 0.6, 0.5, 0.5, 0.6], "no_real_change"),
            _area("posture_hip", [None] * 6, "no_data"),
            _area("strength_balance", [4.8, 4.7, 4.9, 4.8, 4.8, 4.7], "no_real_change"),
        ),
    )


def _plan(weeks: int = 3) -> tuple[Plan, Analysis]:
    """Week ``weeks`` of a plan begun in 2026-W47; the push metric improves each week.

    The last week is built with the weekly progress, as ``build_week`` does.
    """
    catalogue = load_catalogue(include_plugins=False)
    history: list[PlanHistoryEntry] = []
    for k in range(weeks):
        analysis = _analysis(push=20.0 - 4.0 * k)
        progress = _progress() if k == weeks - 1 else None
        week = IsoWeek(2026, 47).shift(k)
        plan = build_plan(analysis, TRAINING, PREFS, week, history, catalogue, progress)
        history.append(history_entry(plan, analysis))
    return plan, analysis


ATHLETE = Athlete(id="ann", name=f"Ann {NASTY}")


@pytest.fixture(scope="module")
def rendered() -> tuple[Plan, render.RenderedPlan]:
    plan, analysis = _plan()
    return plan, render.render_all(plan, analysis, ATHLETE, PNG, now=NOW, trend_png=PNG)


@pytest.fixture(scope="module")
def markdown() -> str:
    plan, analysis = _plan()
    return render.render_markdown(plan, analysis, ATHLETE)


def _golden(name: str, actual: str) -> None:
    path = GOLDEN / name
    if UPDATE:
        path.parent.mkdir(exist_ok=True)
        path.write_bytes(actual.encode("utf-8"))
    expected = path.read_bytes().decode("utf-8")  # bytes: keep the calendar's CRLF
    assert actual == expected, f"{name} changed; STRIDEWISE_UPDATE_GOLDEN=1 to accept"


def _fit_dump(files: dict[str, bytes]) -> str:
    """A readable dump of the decoded workouts, for the golden file."""
    lines = []
    for name, data in sorted(files.items()):
        messages, errors = Decoder(Stream.from_byte_array(bytearray(data))).read()
        assert errors == []
        lines.append(f"== {name} ({len(data)} bytes)")
        for kind in ("file_id_mesgs", "workout_mesgs", "workout_step_mesgs"):
            for message in messages.get(kind, []):
                fields = ", ".join(f"{k}={v}" for k, v in message.items())
                lines.append(f"{kind[:-6]}: {fields}")
    return "\n".join(lines) + "\n"


# -- golden files -----------------------------------------------------------------------------


def test_golden_html(rendered: tuple[Plan, render.RenderedPlan]) -> None:
    _golden("plan.html", rendered[1].html)


def test_golden_text(rendered: tuple[Plan, render.RenderedPlan]) -> None:
    _golden("plan.txt", rendered[1].text)


def test_golden_markdown(markdown: str) -> None:
    _golden("plan.md", markdown)


def test_golden_ics(rendered: tuple[Plan, render.RenderedPlan]) -> None:
    _golden("plan.ics", rendered[1].ics.decode("utf-8"))


def test_golden_json(rendered: tuple[Plan, render.RenderedPlan]) -> None:
    plan = rendered[0]
    _golden("plan.json", json.dumps(plan.to_dict(), indent=2, sort_keys=True) + "\n")


def test_golden_fit_workouts(rendered: tuple[Plan, render.RenderedPlan]) -> None:
    _golden("workouts.txt", _fit_dump(rendered[1].fit_workouts))


def test_the_fixture_plan_covers_the_interesting_cases(
    rendered: tuple[Plan, render.RenderedPlan],
) -> None:
    """The golden plan is a loaded week with a run session, an extra set and a trend."""
    plan = rendered[0]
    assert plan.phase == "loaded"
    kinds = {d.kind for d in plan.drills}
    assert {"plyometric", "run_workout", "strength", "warmup"} <= kinds
    assert any(d.dose.extra_set_side == "left" for d in plan.drills)
    assert any(t.direction == "improving" for t in plan.trends)
    assert plan.shift_to == "strength_balance"  # push improved beyond noise: time moves on
    assert [n.verdict for n in plan.progress] == ["improving", "no_real_change", "no_real_change"]


#: Internal names runners must never read: the model's features and the tracked key metrics.
_INTERNAL_KEYS = {*MODEL_FEATURES, *KEY_METRICS.values(), "strength_balance", "posture_hip"}


def test_runner_facing_words(rendered: tuple[Plan, render.RenderedPlan]) -> None:
    """No internal keys; references gathered in a numbered Sources list at the end."""
    plan, out = rendered
    body_text = out.text.split("\nSOURCES\n")[0]
    markdown = render.render_markdown(plan, _plan()[1], ATHLETE)
    for name, text in (("text", out.text), ("markdown", markdown), ("html", out.html)):
        leaked = {key for key in _INTERNAL_KEYS if key in text}
        assert not leaked, f"{name}: {leaked}"
    assert "gct_resid_ms" in json.dumps(plan.to_dict())  # the JSON keeps the keys
    assert "(Weyand & Davis 2005)" not in body_text
    assert "Weyand & Davis 2005" in out.text.split("\nSOURCES\n")[1]
    sources = out.text.split("\nSOURCES\n")[1]
    numbers = [int(n) for n in re.findall(r"^\[(\d+)\]", sources, flags=re.M)]
    assert numbers == list(range(1, len(numbers) + 1))
    assert numbers
    for n in numbers:
        assert f"[{n}]" in body_text  # every source is cited in the plan
    assert "IS THE PLAN WORKING?" in out.text
    assert "part of its time moves to strength balance this week" in " ".join(out.text.split())
    assert f'src="cid:{render.trend_cid(plan)}"' in out.html
    assert out.html.index("Is the plan working?") < out.html.index("What limits you")


# -- HTML -------------------------------------------------------------------------------------

_VOID = {
    "area",
    "base",
    "br",
    "col",
    "embed",
    "hr",
    "img",
    "input",
    "link",
    "meta",
    "source",
    "track",
    "wbr",
}


class _Structure(HTMLParser):
    """Checks that every element closes in order; records tags, attributes and text."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.stack: list[str] = []
        self.errors: list[str] = []
        self.starts: list[tuple[str, dict[str, str | None]]] = []
        self.text: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.starts.append((tag, dict(attrs)))
        if tag not in _VOID:
            self.stack.append(tag)

    def handle_startendtag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.starts.append((tag, dict(attrs)))

    def handle_endtag(self, tag: str) -> None:
        if not self.stack or self.stack[-1] != tag:
            self.errors.append(f"</{tag}> closes {self.stack[-1:]}")
        else:
            self.stack.pop()

    def handle_data(self, data: str) -> None:
        self.text.append(data)


def _parse(html: str) -> _Structure:
    parser = _Structure()
    parser.feed(html)
    parser.close()
    return parser


def test_html_is_well_formed_responsive_and_inlined(
    rendered: tuple[Plan, render.RenderedPlan],
) -> None:
    plan, out = rendered
    parsed = _parse(out.html)
    assert parsed.errors == []
    assert parsed.stack == []
    tags = [t for t, _ in parsed.starts]
    for tag in ("html", "head", "body", "title"):
        assert tags.count(tag) == 1
    metas = [a for t, a in parsed.starts if t == "meta"]
    assert {"name": "viewport", "content": "width=device-width, initial-scale=1"} in metas
    # CSS inlined for mail clients; the phone media query kept for the ones that read it.
    body = next(a for t, a in parsed.starts if t == "body")
    assert "font-size: 16px" in (body.get("style") or "")
    assert all(a.get("style") for t, a in parsed.starts if t == "div")
    assert "@media (max-width: 480px)" in out.html
    assert "<link" not in out.html
    trend, img = [a for t, a in parsed.starts if t == "img"]
    assert img["src"] == f"cid:{out.chart_cid}"
    assert trend["src"] == f"cid:{out.trend_cid}"
    assert out.trend_cid != out.chart_cid
    assert out.chart_cid == render.chart_cid(plan)
    assert "@" in out.chart_cid
    assert out.chart_png == PNG
    text = " ".join(parsed.text)
    for session in plan.sessions:
        assert session.title in text
        for drill in session.drills:
            assert drill.name in text
            # Citations become numbers ([1]); the words before the first one are as written.
            assert drill.reason.split(" (")[0] in text


def test_an_athlete_called_script_renders_as_text(
    rendered: tuple[Plan, render.RenderedPlan], markdown: str
) -> None:
    out = rendered[1]
    parsed = _parse(out.html)
    assert "script" not in [t for t, _ in parsed.starts]
    assert any(NASTY in chunk for chunk in parsed.text)
    assert "&lt;script&gt;alert('x')&lt;/script&gt; &amp; Co" in out.html
    assert NASTY in out.text
    assert "<script>" not in markdown
    assert "&lt;script&gt;alert('x')&lt;/script&gt; & Co" in markdown


def test_image_modes_for_files() -> None:
    plan, analysis = _plan(1)
    data = render.render_html(plan, analysis, ATHLETE, PNG, image="data")
    assert 'src="data:image/png;base64,iVBORw0KGgo' in data
    named = render.render_html(plan, analysis, ATHLETE, PNG, image="file")
    assert f'src="{render.chart_file_name(plan)}"' in named
    none = render.render_html(plan, analysis, ATHLETE, None)
    assert "<img" not in none


def test_text_and_markdown_carry_the_same_content(
    rendered: tuple[Plan, render.RenderedPlan], markdown: str
) -> None:
    plan, out = rendered
    flat_text = " ".join(out.text.split())
    flat_md = " ".join(markdown.replace("\\", "").split())
    for drill in plan.drills:
        assert drill.name in flat_text
        assert drill.dose.text() in flat_text
        assert drill.name in flat_md
    for note in plan.notes:
        assert " ".join(note.split()) in flat_text
    assert all(len(line) <= 100 for line in out.text.splitlines())


# -- calendar ---------------------------------------------------------------------------------


def test_ics_is_valid_and_has_one_event_per_session(
    rendered: tuple[Plan, render.RenderedPlan],
) -> None:
    plan, out = rendered
    raw = out.ics
    assert raw.endswith(b"\r\n")
    assert all(len(line) <= 75 for line in raw.split(b"\r\n")), "lines fold at 75 octets"
    cal = Calendar.from_ical(raw)
    assert str(cal["VERSION"]) == "2.0"
    assert str(cal["PRODID"]) == render.PRODID
    events = cal.walk("VEVENT")
    assert len(events) == len(plan.sessions)
    for event, session in zip(events, plan.sessions, strict=True):
        for prop in ("UID", "DTSTAMP", "DTSTART", "SUMMARY"):
            assert prop in event
        assert event.decoded("DTSTART") == session.date
        assert event.decoded("DTSTAMP") == NOW
        assert str(event["UID"]) == render.event_uid(plan, session)
        assert session.title in str(event["SUMMARY"])
        # Each event cites like the plan: numbers in the text, its own list at the end.
        description = str(event["DESCRIPTION"])
        body, _, sources = description.partition("\nSources:\n")
        assert "(Weyand & Davis 2005)" not in body
        numbers = [int(n) for n in re.findall(r"^\[(\d+)\]", sources, flags=re.M)]
        assert numbers == list(range(1, len(numbers) + 1))
        assert all(f"[{n}]" in body for n in numbers)
    assert len({str(e["UID"]) for e in events}) == len(events)
    assert "Weyand & Davis 2005" in raw.decode("utf-8").replace("\r\n ", "")


def test_rerendered_week_keeps_its_uids_and_raises_sequence() -> None:
    plan, analysis = _plan(1)
    first = Calendar.from_ical(render.render_ics(plan, ATHLETE, now=NOW))
    # The same week rebuilt from new data: different minutes, a new revision.
    changed = build_plan(
        dataclasses.replace(analysis, weaker_side=None),
        TRAINING,
        PREFS,
        plan.week,
        [],
        load_catalogue(include_plugins=False),
    )
    changed = dataclasses.replace(changed, revision=2)
    second = Calendar.from_ical(render.render_ics(changed, ATHLETE, now=NOW))
    uids = [str(e["UID"]) for e in first.walk("VEVENT")]
    assert uids == [str(e["UID"]) for e in second.walk("VEVENT")]
    assert [int(e["SEQUENCE"]) for e in second.walk("VEVENT")] == [1] * len(uids)
    other = dataclasses.replace(plan, athlete_id="bob")
    assert not set(uids) & {render.event_uid(other, s) for s in other.sessions}


def test_default_timestamps_come_from_the_revision() -> None:
    plan, analysis = _plan(1)
    a = render.render_all(plan, analysis, ATHLETE, PNG)
    b = render.render_all(plan, analysis, ATHLETE, PNG)
    assert (a.ics, a.fit_workouts) == (b.ics, b.fit_workouts)
    assert b"DTSTAMP:20261116T000000Z" in a.ics  # Monday of 2026-W47, plan not yet stored
    stored = dataclasses.replace(plan, revised_utc=NOW)
    assert b"DTSTAMP:20261123T183000Z" in render.render_ics(stored, ATHLETE)


# -- FIT workouts -----------------------------------------------------------------------------


def test_fit_workouts_decode_back(rendered: tuple[Plan, render.RenderedPlan]) -> None:
    plan, out = rendered
    assert len(out.fit_workouts) == len(plan.sessions)
    for session in plan.sessions:
        data = out.fit_workouts[f"stridewise-{plan.week}-{session.id}-{session.weekday}.fit"]
        stream = Stream.from_byte_array(bytearray(data))
        decoder = Decoder(stream)
        assert decoder.is_fit()
        assert decoder.check_integrity()
        messages, errors = Decoder(Stream.from_byte_array(bytearray(data))).read()
        assert errors == []
        (file_id,) = messages["file_id_mesgs"]
        assert file_id["type"] == "workout"
        assert file_id["time_created"] == NOW
        (workout,) = messages["workout_mesgs"]
        steps = messages["workout_step_mesgs"]
        assert workout["num_valid_steps"] == len(steps)
        assert workout["sport"] == ("running" if session.kind == "run" else "training")
        assert [s["message_index"] for s in steps] == list(range(len(steps)))
        work = [s for s in steps if s.get("wkt_step_name") and s["intensity"] != "rest"]
        repeats = [s for s in steps if s["duration_type"] == "repeat_until_steps_cmplt"]
        for rep in repeats:
            target = steps[rep["duration_step"]]
            assert target["message_index"] < rep["message_index"]
            assert target.get("wkt_step_name")
        sets = sorted(r["repeat_steps"] for r in repeats)
        assert sets == sorted(d.dose.sets for d in session.drills if d.dose.sets > 1)
        for drill in session.drills:
            name, value = drill.dose.amount
            step = next(s for s in work if s["wkt_step_name"].startswith(drill.name[:20]))
            if name == "reps":
                assert step["duration_reps"] == value
            elif name == "duration_s":
                assert step["duration_time"] == value
            elif session.kind == "run":
                assert step["duration_distance"] == value
            else:
                assert step["duration_type"] == "open"
            extra = [s for s in work if s["wkt_step_name"].endswith("+1 left")]
            if drill.dose.extra_set_side:
                assert any(s["wkt_step_name"].startswith(drill.name[:20]) for s in extra)


def test_fit_workouts_read_by_fitdecode(rendered: tuple[Plan, render.RenderedPlan]) -> None:
    for data in rendered[1].fit_workouts.values():
        names = []
        with fitdecode.FitReader(
            io.BytesIO(data),
            check_crc=fitdecode.CrcCheck.RAISE,
            error_handling=fitdecode.ErrorHandling.RAISE,
        ) as reader:
            for frame in reader:
                if isinstance(frame, fitdecode.FitDataMessage):
                    names.append(frame.name)
                    assert not any(f.name.startswith("unknown") for f in frame.fields)
        assert names[:2] == ["file_id", "workout"]
        assert set(names[2:]) == {"workout_step"}


def test_run_session_workout_shape() -> None:
    plan, _ = _plan()
    (run,) = [s for s in plan.sessions if s.kind == "run"]
    messages, _ = Decoder(
        Stream.from_byte_array(
            bytearray(plan_workouts(plan)[f"stridewise-{plan.week}-{run.id}-{run.weekday}.fit"])
        )
    ).read()
    intensities = [s.get("intensity") for s in messages["workout_step_mesgs"]]
    assert intensities[0] == "warmup"
    assert intensities[-1] == "cooldown"
    assert "interval" in intensities
    assert "recovery" in intensities


# -- templates come from the package ----------------------------------------------------------


def test_templates_are_package_data() -> None:
    """Every template file is shipped in the wheel (pyproject package-data) and found there."""
    root = Path(__file__).parent.parent
    config = tomllib.loads((root / "pyproject.toml").read_text())
    patterns = config["tool"]["setuptools"]["package-data"]["templates"]
    folder = Path(str(render.template_files()))
    assert folder == root / "templates"
    files = [p.relative_to(folder).as_posix() for p in folder.rglob("*") if p.is_file()]
    shipped = [f for f in files if f != "__init__.py" and "__pycache__" not in f]
    assert {"plan.html.j2", "plan.txt.j2", "plan.md.j2", "plan.css"} <= set(shipped)
    for name in shipped:
        assert any(fnmatch(name, pattern) for pattern in patterns), name
    env = render.environment()
    for name in shipped:
        if name.endswith(".j2"):
            assert env.get_template(name) is not None
    assert env.autoescape("plan.html.j2")
    assert env.autoescape("plan.md.j2")
    assert not env.autoescape("plan.txt.j2")  # type: ignore[operator]


# -- the command ------------------------------------------------------------------------------

RunCli = Callable[..., CliResult]


@pytest.fixture(autouse=True)
def _one_openmp_thread() -> Iterator[None]:
    """The analysis model predicts with OpenMP; on a busy 2-core runner (pytest -n 2) its
    threads contend and one prediction takes seconds instead of a fraction of one."""
    with threadpool_limits(limits=1, user_api="openmp"):
        yield


@pytest.fixture
def sample_home(run_cli: RunCli) -> None:
    from tests.conftest import FIT_DIR

    imported = run_cli("import", FIT_DIR)
    assert imported.code in (0, 3), imported.err


def test_plan_command_every_format(run_cli: RunCli, sample_home: None, tmp_path: Path) -> None:
    text = run_cli("plan", "--week", "2026-W49")
    assert text.code == 0, text.err
    assert text.out.startswith("YOUR DRILLS AND STRENGTH FOR 2026-W49")
    data = run_cli("plan", "--week", "2026-W49", "--format", "json").json()
    assert data["week"] == "2026-W49"
    assert data["phase"] == "technique"
    assert data["program_week"] == 1
    assert [d["weekday"] for d in data["days"]] == ["mon", "tue", "wed", "thu", "fri", "sat", "sun"]
    drills = [d for day in data["days"] for s in day["sessions"] for d in s["drills"]]
    assert drills
    for drill in drills:
        assert {"id", "areas", "kind", "dose", "minutes", "reason"} <= set(drill)
    out = tmp_path / "out"
    for fmt in ("html", "md", "ics", "fit"):
        result = run_cli("plan", "--week", "2026-W49", "--format", fmt, "--out", out)
        assert result.code == 0, result.err
        assert result.out.startswith("wrote ")
    names = sorted(p.name for p in out.iterdir())
    assert "plan-2026-W49.html" in names
    assert "plan-2026-W49.ics" in names
    assert "limiter-chart-2026-W49.png" in names
    assert (out / "limiter-chart-2026-W49.png").read_bytes().startswith(b"\x89PNG")
    html = (out / "plan-2026-W49.html").read_text()
    assert 'src="limiter-chart-2026-W49.png"' in html
    assert any(n.endswith(".fit") for n in names)
    assert (out / "plan-2026-W49.md").read_text().startswith("# Drills and strength for 2026-W49")


def test_plan_command_errors(run_cli: RunCli) -> None:
    bad_week = run_cli("plan", "--week", "2026-49")
    assert bad_week.code == 2
    assert "ISO week" in bad_week.err
    fit = run_cli("plan", "--format", "fit")
    assert fit.code == 2
    assert "--out" in fit.err
    nobody = run_cli("plan", "--athlete", "nobody")
    assert nobody.code == 1
    assert "nobody" in nobody.err


def test_build_week_stores_history_and_is_idempotent(sample_home: None) -> None:
    from planner.services.weekly import build_week
    from planner.store.database import Store
    from planner.store.planstore import get_plan, load_history

    with Store() as store:
        # The first build computes the features, the second reads them from the cache: both
        # must give the same plan, or an unchanged week would get a second revision.
        plan, analysis = build_week(store, "me", IsoWeek(2026, 49))
        again, _ = build_week(store, "me", IsoWeek(2026, 49))
        assert again == plan
        assert again.revision == 1
        assert get_plan(store, "me", IsoWeek(2026, 49)) == plan
        following, _ = build_week(store, "me", IsoWeek(2026, 50))
        assert following.program_week == 2
        history = load_history(store, "me")
        assert [str(h.week) for h in history] == ["2026-W49", "2026-W50"]
        judged = {lim.area for lim in analysis.limiters if lim.key_value is not None}
        assert set(history[0].key_metrics) >= judged
        # New preferences change the plan: same week, next revision, same calendar UIDs.
        athlete = store.get_athlete("me")
        store.save_athlete(
            dataclasses.replace(
                athlete, preferences={**Preferences().to_dict(), "minutes_per_session": 15}
            )
        )
        changed, _ = build_week(store, "me", IsoWeek(2026, 49))
        assert changed.revision == 2
        assert changed != plan
        assert [render.event_uid(changed, s) for s in changed.sessions][:1] == [
            render.event_uid(plan, s) for s in plan.sessions
        ][:1]


def test_fit_steps_use_the_catalogues_garmin_exercises() -> None:
    """The same mapping as the Garmin Connect push, as FIT exercise_category/exercise_name."""
    plan, _ = _plan()
    types = Profile["types"]
    seen = 0
    for session in plan.sessions:
        name = f"stridewise-{plan.week}-{session.id}-{session.weekday}.fit"
        messages, _ = Decoder(Stream.from_byte_array(bytearray(plan_workouts(plan)[name]))).read()
        work = [s for s in messages["workout_step_mesgs"] if s.get("wkt_step_name")]
        for drill in session.drills:
            step = next(s for s in work if s["wkt_step_name"].startswith(drill.name[:20]))
            if drill.garmin_exercise is None or session.kind == "run":
                assert "exercise_category" not in step, drill.id
                continue
            category, exercise = drill.garmin_exercise
            assert step["exercise_category"] == category.lower(), drill.id
            if exercise:
                number = step["exercise_name"]
                assert types[f"{category.lower()}_exercise_name"][number] == exercise.lower()
                seen += 1
            else:
                assert "exercise_name" not in step, drill.id
    assert seen >= 3
