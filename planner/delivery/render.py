"""Renderings of a weekly plan: HTML e-mail body, plain text, Markdown, iCalendar, FIT workouts.

Templates live in the ``templates`` package and are found through :func:`template_files`
only (``importlib.resources``, so they load from a wheel). The jinja2 environment
autoescapes every template except the plain-text ones, so an athlete called ``<script>``
renders as text. The HTML gets its CSS inlined for mail clients (media queries stay in a
``<style>`` block for the clients that honour them).
"""

from __future__ import annotations

import base64
import hashlib
import re
import textwrap
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from functools import cache
from importlib import resources
from importlib.resources.abc import Traversable
from typing import Any, Final, Literal

import css_inline
import jinja2
from icalendar import Calendar, Event

from planner.delivery.workouts import plan_workouts
from planner.plan import DAY_LABELS, MetricTrend, Plan, PlannedDrill, PlanSession
from planner.progress import VERDICT_WORDS, VIEWS, metric_words, show
from planner.records import AREA_LABELS, GENERAL, Analysis, Athlete
from planner.sources import PRACTITIONER, PRACTITIONER_TEXT, Citations

TEMPLATE_PACKAGE: Final = "templates"
PRODID: Final = "-//stridewise//weekly plan//EN"
DISCLAIMER: Final = (
    "Limiters are probabilities from your own watch data, not diagnoses. Stop any exercise"
    " that hurts, and see a professional about pain that lasts."
)
_PHASES: Final = {
    "technique": "Technique block",
    "loaded": "Loaded block",
    "deload": "Deload week",
}
_ROLES: Final = {
    "focus": "main focus",
    "second": "second focus",
    "maintenance": "maintenance",
    "general": "cannot be judged: general work only",
}
_DIRECTIONS: Final = {
    "improving": "improving",
    "worsening": "getting worse",
    "flat": "about the same",
    "too_early": "too early to tell",
}
ImageMode = Literal["cid", "data", "file"]


def template_files() -> Traversable:
    """The folder of templates and CSS inside the installed ``templates`` package."""
    return resources.files(TEMPLATE_PACKAGE)


def _load(name: str) -> tuple[str, str, Any] | None:
    node = template_files()
    for part in name.split("/"):
        node = node.joinpath(part)
    if not node.is_file():
        return None
    return node.read_text(encoding="utf-8"), name, lambda: True


def _autoescape(name: str | None) -> bool:
    # HTML and Markdown escape < > & in everything inserted; plain text shows it as typed.
    return name is None or not name.endswith(".txt.j2")


_MD_SPECIAL = re.compile(r"([\\`*_\[\]#|])")


def _md(text: object) -> str:
    """Backslash-escape Markdown punctuation in text that comes from outside."""
    return _MD_SPECIAL.sub(r"\\\1", str(text))


def _pct(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.0%}"


def _wrap(text: str, width: int = 78, indent: str = "") -> str:
    return textwrap.fill(
        str(text),
        width=width,
        initial_indent=indent,
        subsequent_indent=indent,
        break_long_words=False,
        break_on_hyphens=False,
    )


def _num(value: float) -> str:
    return f"{value:.3g}" if abs(value) < 100 else f"{value:.0f}"


#: A trend longer than this shows its first point, an ellipsis and the last few.
_TREND_SHOWN: Final = 5


def _trend_points(trend: MetricTrend, arrow: str = " → ") -> str:
    """``18 (2026-W45) → 15 (2026-W46) → 12 (2026-W47)``, shortened for long plans."""
    known = trend.area in VIEWS and VIEWS[trend.area].metric == trend.metric

    def value(v: float) -> str:
        # In the units a runner reads (balance in %, oscillation in cm), as the label says.
        return show(trend.area, v) if known else _num(v)

    shown = [f"{value(p.value)} ({p.week})" for p in trend.points]
    if len(shown) > _TREND_SHOWN:
        shown = [shown[0], "…", *shown[-(_TREND_SHOWN - 2) :]]
    return arrow.join(shown)


@cache
def environment() -> jinja2.Environment:
    """The one jinja2 environment: templates from :func:`template_files`, autoescape on."""
    env = jinja2.Environment(
        loader=jinja2.FunctionLoader(_load),
        autoescape=_autoescape,
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
        keep_trailing_newline=True,
    )
    env.filters.update(
        pct=_pct,
        area=lambda a: AREA_LABELS.get(a, a),
        dayname=lambda d: DAY_LABELS.get(d, d),
        wrap=_wrap,
        md=_md,
        num=_num,
        role=lambda r: _ROLES.get(r, r),
        direction=lambda d: _DIRECTIONS.get(d, d),
        daymonth=lambda d: f"{d.day} {d:%b}",
        trendpoints=_trend_points,
        metric=metric_words,
        verdict=lambda v: VERDICT_WORDS.get(v, v),
    )
    return env


def chart_cid(plan: Plan) -> str:
    """The Content-ID of the limiter chart (without angle brackets)."""
    athlete = re.sub(r"[^A-Za-z0-9-]", "-", plan.athlete_id)[:24]
    digest = hashlib.sha256(plan.athlete_id.encode()).hexdigest()[:8]
    return f"limiter-chart.{athlete}.{digest}.{plan.week}@stridewise"


def _week_label(plan: Plan) -> str:
    monday = plan.iso_week.monday()
    sunday = monday + timedelta(days=6)
    return f"{plan.week} ({monday.day} {monday:%b} – {sunday.day} {sunday:%b %Y})"


def _training_line(training: dict[str, Any]) -> str:
    if not training.get("runs"):
        return "No runs stored before this week."
    parts = [
        f"{training['runs_per_week']:.1f} runs a week",  # "1.0 runs": a rate, not a count
        f"{training['weekly_distance_km']:.0f} km",
        f"{training['weekly_time_min']:.0f} min",
    ]
    weeks = training["weeks"]
    line = f"Your last {weeks} week{'s' if weeks != 1 else ''}: " + ", ".join(parts)
    if training.get("long_run_day"):
        line += f"; long run on {DAY_LABELS[training['long_run_day']]}"
    quality = training.get("quality_days") or []
    if quality:
        line += "; quality runs on " + " and ".join(DAY_LABELS[d] for d in quality)
    return line + "."


def _context(
    plan: Plan,
    analysis: Analysis,
    athlete: Athlete,
    chart_src: str | None,
    trend_src: str | None = None,
) -> dict[str, Any]:
    cite = Citations()
    return {
        "cite": cite,
        "drill_source": lambda drill: _drill_source(cite, drill),
        "trend_src": trend_src,
        "shift_to": plan.shift_to,
        "plan": plan,
        "athlete_name": athlete.name or athlete.id,
        "week_label": _week_label(plan),
        "phase_label": _PHASES.get(plan.phase, plan.phase),
        "chart_src": chart_src,
        "training_line": _training_line(plan.training),
        "disclaimer": DISCLAIMER,
        "runs_used": analysis.runs_used,
        "general": GENERAL,
        "has_sessions": bool(plan.sessions),
    }


def _image_src(png: bytes | None, mode: ImageMode, file_name: str, cid: str) -> str | None:
    if png is None:
        return None
    if mode == "data":
        return "data:image/png;base64," + base64.b64encode(png).decode("ascii")
    if mode == "file":
        return file_name
    return "cid:" + cid


def chart_file_name(plan: Plan) -> str:
    return f"limiter-chart-{plan.week}.png"


def trend_cid(plan: Plan) -> str:
    """The Content-ID of the progress chart (without angle brackets)."""
    return chart_cid(plan).replace("limiter-chart.", "progress-chart.", 1)


def trend_file_name(plan: Plan) -> str:
    return f"progress-chart-{plan.week}.png"


def render_html(
    plan: Plan,
    analysis: Analysis,
    athlete: Athlete,
    chart_png: bytes | None = None,
    *,
    image: ImageMode = "cid",
    image_file: str | None = None,
    trend_png: bytes | None = None,
) -> str:
    """The HTML e-mail body, CSS inlined.

    ``image`` picks how the limiter chart is referenced: ``cid`` (an inline MIME part, see
    :func:`chart_cid`), ``data`` (a self-contained data: URI) or ``file`` (``image_file``, by
    default :func:`chart_file_name`, beside the HTML file). The progress chart ``trend_png``
    follows the same mode (:func:`trend_cid`, :func:`trend_file_name`).
    """
    css = template_files().joinpath("plan.css").read_text(encoding="utf-8")
    src = _image_src(chart_png, image, image_file or chart_file_name(plan), chart_cid(plan))
    trend = _image_src(trend_png, image, trend_file_name(plan), trend_cid(plan))
    html = (
        environment()
        .get_template("plan.html.j2")
        .render(css=css, **_context(plan, analysis, athlete, src, trend))
    )
    inliner = css_inline.CSSInliner(keep_at_rules=True, load_remote_stylesheets=False)
    inlined: str = inliner.inline(html)
    return inlined


def render_text(plan: Plan, analysis: Analysis, athlete: Athlete) -> str:
    """The plain-text alternative: the same content as the HTML."""
    return (
        environment().get_template("plan.txt.j2").render(**_context(plan, analysis, athlete, None))
    )


def render_markdown(plan: Plan, analysis: Analysis, athlete: Athlete) -> str:
    """Markdown for coaches who paste plans into other tools.

    Autoescaping turns ``<``, ``>`` and ``&`` into entities, which Markdown shows as the
    characters and never as HTML; quotes and an ampersand before a space need no escaping
    there, so they are put back.
    """
    text = (
        environment().get_template("plan.md.j2").render(**_context(plan, analysis, athlete, None))
    )
    # "& " cannot start an entity either, so "Weyand & Davis" stays readable.
    return text.replace("&#39;", "'").replace("&#34;", '"').replace("&amp; ", "& ")


def event_uid(plan: Plan, session: PlanSession) -> str:
    """A UID stable for athlete, week and session slot: re-imports update, not duplicate."""
    key = f"{plan.athlete_id}|{plan.week}|{session.id}".encode()
    return f"{hashlib.sha256(key).hexdigest()[:32]}@stridewise"


def _drill_source(cite: Citations, drill: PlannedDrill) -> str:
    """`` [n]``: the number of the drill's source in ``cite`` (none without a source)."""
    if not drill.source:
        return ""
    words = PRACTITIONER_TEXT if drill.source == PRACTITIONER else drill.source
    return f" [{cite.number(words)}]"


def _event_description(session: PlanSession) -> str:
    """What a calendar shows for one session: why, the drills, then the sources of the why.

    An event is read alone, so it carries its own numbered list, as the plan does at its
    end; the drills' sources stay in the plan (a calendar entry is kept short)."""
    cite = Citations()
    lines = [cite(session.reason), ""]
    for drill in session.drills:
        lines.append(f"- {drill.name}: {drill.dose.text(times='x')} ({drill.minutes} min)")
    if cite.items:
        lines += ["", "Sources:"]
        lines += [f"[{n}] {entry}" for n, entry in enumerate(cite.entries(), start=1)]
    return "\n".join(lines)


def _calendar(athlete: Athlete) -> Calendar:
    cal = Calendar()
    cal.add("prodid", PRODID)
    cal.add("version", "2.0")
    cal.add("calscale", "GREGORIAN")
    cal.add("method", "PUBLISH")
    cal.add("x-wr-calname", f"stridewise: {athlete.name or athlete.id}")
    return cal


def render_ics(plan: Plan, athlete: Athlete, *, now: datetime | None = None) -> bytes:
    """An iCalendar file: one all-day event per session on its day (RFC 5545).

    UIDs come from :func:`event_uid`; SEQUENCE is the plan's revision − 1, so a calendar that
    re-imports an updated week replaces its events. DTSTAMP is ``now``, by default
    ``Plan.revision_time``.
    """
    cal = _calendar(athlete)
    _add_events(cal, plan, now)
    data: bytes = cal.to_ical()
    return data


def render_feed(plans: list[Plan], athlete: Athlete) -> bytes:
    """A subscription feed: every session of several weeks' plans, events as in
    :func:`render_ics` (stable UIDs, SEQUENCE from each plan's revision)."""
    cal = _calendar(athlete)
    # How often a subscribing calendar should poll (RFC 7986 REFRESH-INTERVAL and the older
    # X-PUBLISHED-TTL): hourly is our own choice, as fresh as an hourly send-weekly run.
    cal.add("refresh-interval", timedelta(hours=1), parameters={"VALUE": "DURATION"})
    cal.add("x-published-ttl", "PT1H")
    for plan in plans:
        _add_events(cal, plan, None)
    data: bytes = cal.to_ical()
    return data


def _add_events(cal: Calendar, plan: Plan, now: datetime | None) -> None:
    stamp = (now or plan.revision_time).astimezone(UTC).replace(microsecond=0)
    for session in plan.sessions:
        event = Event()
        event.add("uid", event_uid(plan, session))
        event.add("dtstamp", stamp)
        event.add("dtstart", session.date)
        event.add("dtend", session.date + timedelta(days=1))
        event.add("sequence", max(0, plan.revision - 1))
        event.add("summary", f"{session.title} ({session.minutes} min)")
        event.add("description", _event_description(session))
        event.add("categories", ["stridewise"])
        event.add("transp", "TRANSPARENT")
        event.add("status", "CONFIRMED")
        cal.add_component(event)


@dataclass(frozen=True, slots=True)
class RenderedPlan:
    """Every rendering of one plan, ready for an e-mail or for files."""

    html: str  # references the chart as cid:<chart_cid> when chart_png is given
    text: str
    ics: bytes
    fit_workouts: dict[str, bytes] = field(default_factory=dict)  # file name -> bytes
    chart_png: bytes | None = None
    chart_cid: str = ""
    trend_png: bytes | None = None  # the progress chart, cid:<trend_cid> in the HTML
    trend_cid: str = ""


def render_all(
    plan: Plan,
    analysis: Analysis,
    athlete: Athlete,
    chart_png: bytes | None,
    *,
    now: datetime | None = None,
    trend_png: bytes | None = None,
) -> RenderedPlan:
    """Render a plan every way the e-mail uses (HTML, text, calendar, FIT workouts).

    ``now`` is the calendar DTSTAMP and the FIT ``time_created``; by default
    ``Plan.revision_time``, so rendering the same stored revision twice gives identical bytes.
    """
    now = now or plan.revision_time
    return RenderedPlan(
        html=render_html(plan, analysis, athlete, chart_png, image="cid", trend_png=trend_png),
        text=render_text(plan, analysis, athlete),
        ics=render_ics(plan, athlete, now=now),
        fit_workouts=plan_workouts(plan, now=now),
        chart_png=chart_png,
        chart_cid=chart_cid(plan),
        trend_png=trend_png,
        trend_cid=trend_cid(plan),
    )


# -- the coach's web pages (``stridewise serve``) --------------------------------------------


def render_plan_fragment(plan: Plan, analysis: Analysis, athlete: Athlete) -> str:
    """The week's plan as an HTML fragment for the athlete page (same partials as the e-mail)."""
    return (
        environment()
        .get_template("web/plan_fragment.html.j2")
        .render(**_context(plan, analysis, athlete, None))
    )


def render_page(name: str, **context: Any) -> str:
    """One page of ``stridewise serve`` from ``templates/web/`` (autoescaped like every
    HTML template)."""
    return environment().get_template(f"web/{name}").render(**context)


def static_file(name: str) -> bytes | None:
    """A stylesheet the web pages link to (``plan.css``, ``web/web.css``), or None."""
    if name not in ("plan.css", "web.css"):
        return None
    node = (
        template_files().joinpath(name) if name == "plan.css" else template_files() / "web" / name
    )
    return node.read_bytes()
