"""PNG charts of progress: each area's key metric over the weeks, with the noise band.

* :func:`progress_png` — ``stridewise progress --plot``: one panel per area the data measures,
  the plan start and block changes marked, and the band a change must leave to count.
* :func:`trend_png` — the small chart in the weekly plan and e-mail, from the plan's own
  progress notes (so a stored plan renders the same chart every time).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from matplotlib.figure import Figure

from planner.delivery.charts import png_bytes
from planner.plan import Plan
from planner.progress import VERDICT_WORDS, VIEWS, Progress, display
from planner.records import AREA_LABELS

_LINE = "#3b6ea5"
_BAND = "#888888"
_PLAN = "#c0392b"
_VERDICT_COLOURS = {
    "improving": "#1e8449",
    "worsening": "#c0392b",
    "no_real_change": "#555555",
    "too_early": "#555555",
    "no_data": "#999999",
}


@dataclass(frozen=True, slots=True)
class Series:
    """One panel: weekly values in display units and the noise band around the baseline."""

    area: str
    title: str
    unit: str
    weeks: tuple[str, ...]  # every week on the axis
    values: dict[str, float]  # week → value (weeks without data missing)
    baseline: float | None
    noise: float
    verdict: str
    plan_start: str | None
    events: tuple[tuple[str, str], ...] = ()


def _short(week: str) -> str:
    return week.split("-")[1]  # "W41": the year is in the title


def draw(series: Sequence[Series], *, title: str, width: float = 8.0) -> bytes:
    """Panels stacked vertically; each marks the plan start and the events on its weeks."""
    n = max(1, len(series))
    fig = Figure(figsize=(width, 1.9 * n + 0.6))
    axes = fig.subplots(n, 1, squeeze=False)[:, 0]
    for ax, s in zip(axes, series, strict=False):
        x = {w: i for i, w in enumerate(s.weeks)}
        pts = [(x[w], v) for w, v in s.values.items() if w in x]
        if s.baseline is not None:
            ax.axhspan(
                s.baseline - s.noise,
                s.baseline + s.noise,
                color=_BAND,
                alpha=0.18,
                label="week-to-week noise",
            )
            ax.axhline(s.baseline, color=_BAND, lw=1, ls="--")
        if pts:
            xs, ys = zip(*sorted(pts), strict=True)
            ax.plot(xs, ys, "-o", color=_LINE, ms=4, lw=1.6)
        if s.plan_start in x:
            ax.axvline(x[s.plan_start] - 0.5, color=_PLAN, lw=1.2)
            ax.text(
                x[s.plan_start] - 0.4,
                1.0,
                "plan starts",
                color=_PLAN,
                fontsize=7,
                va="top",
                transform=ax.get_xaxis_transform(),
            )
        for week, text in s.events:
            if week in x and week != s.plan_start:
                ax.axvline(x[week] - 0.5, color=_PLAN, lw=0.6, ls=":")
                ax.text(
                    x[week] - 0.4,
                    0.02,
                    text,
                    color=_PLAN,
                    fontsize=6,
                    rotation=90,
                    va="bottom",
                    transform=ax.get_xaxis_transform(),
                )
        ax.set_xticks(range(len(s.weeks)), [_short(w) for w in s.weeks], fontsize=7)
        ax.set_xlim(-0.6, len(s.weeks) - 0.4)
        ax.tick_params(axis="y", labelsize=7)
        ax.set_ylabel(s.unit, fontsize=8)
        verdict = VERDICT_WORDS.get(s.verdict, s.verdict)
        ax.set_title(s.title, fontsize=9, loc="left")
        ax.set_title(verdict, fontsize=9, loc="right", color=_VERDICT_COLOURS.get(s.verdict))
        ax.spines[["top", "right"]].set_visible(False)
    handles, labels = axes[0].get_legend_handles_labels()
    if handles:
        fig.legend(handles, labels, fontsize=7, loc="upper right", frameon=False)
    fig.suptitle(title, fontsize=10, x=0.01, ha="left")
    fig.tight_layout(rect=(0.0, 0.0, 1.0, 0.98))
    return png_bytes(fig)


def progress_png(progress: Progress) -> bytes:
    """Every measured area over the weeks shown (``stridewise progress --plot``)."""
    series = []
    events = tuple((e.week, e.text) for e in progress.events)
    for a in progress.areas:
        if a.verdict == "no_data":
            continue
        view = VIEWS[a.area]
        series.append(
            Series(
                area=a.area,
                title=f"{AREA_LABELS[a.area]}: {view.label}",
                unit=view.unit,
                weeks=progress.weeks,
                values={p.week: display(a.area, p.value) for p in a.points if p.value is not None},
                baseline=None if a.baseline is None else display(a.area, a.baseline),
                noise=a.noise * view.scale,
                verdict=a.verdict,
                plan_start=progress.plan_start,
                events=events,
            )
        )
    year = progress.weeks[-1][:4] if progress.weeks else ""
    return draw(series, title=f"Progress of {progress.athlete_id}, week by week ({year})")


def trend_png(plan: Plan, *, areas: int = 2) -> bytes | None:
    """The plan's small trend chart: the focus area and the next (None: nothing to show yet)."""
    order = [e.area for e in plan.emphasis if e.probability is not None]
    notes = sorted(
        (n for n in plan.progress if n.points),
        key=lambda n: order.index(n.area) if n.area in order else len(order),
    )[:areas]
    if not notes:
        return None
    weeks = sorted({p.week for n in notes for p in n.points})
    series = [
        Series(
            area=n.area,
            title=f"{AREA_LABELS[n.area]}: {n.label}",
            unit=n.unit,
            weeks=tuple(weeks),
            values={p.week: p.value for p in n.points},
            baseline=n.start,
            noise=n.noise,
            verdict=n.verdict,
            plan_start=n.plan_start,
        )
        for n in notes
    ]
    return draw(series, title="Since your plan began", width=6.0)
