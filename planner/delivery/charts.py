"""PNG charts of an analysis (matplotlib, Agg backend, no display needed).

* :func:`limiter_chart_png` — per-area probabilities; the e-mail embeds it.
* :func:`metrics_vs_speed_png` — each key metric against speed: the runner's windows, their own
  fit, and the population reference with the band 90 % of runners stay in.
* :func:`run_drift_png` — balance and speed-corrected contact time and oscillation over one run.
"""

from __future__ import annotations

import io
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

import matplotlib

matplotlib.use("Agg")  # before any pyplot import anywhere: files only, no display

import numpy as np
from matplotlib.figure import Figure

from planner import reference as ref
from planner.records import AREA_LABELS, Analysis

if TYPE_CHECKING:
    from planner.features import AthleteFeatures, RunFeatures

_BAR = "#3b6ea5"
_MISSING = "#bbbbbb"
_REF = "#888888"


def png_bytes(fig: Figure) -> bytes:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=110, bbox_inches="tight")
    return buf.getvalue()


def limiter_chart_png(analysis: Analysis) -> bytes:
    """Horizontal bars of P(limiter) per area, in rank order; unjudged areas are marked."""
    fig = Figure(figsize=(6.0, 2.6))
    ax = fig.add_subplot()
    items = list(analysis.limiters)[::-1]
    labels = [AREA_LABELS.get(e.area, e.area) for e in items]
    values = [e.probability if e.probability is not None else 0.0 for e in items]
    colours = [_BAR if e.probability is not None else _MISSING for e in items]
    bars = ax.barh(labels, values, color=colours)
    for bar, est in zip(bars, items, strict=True):
        text = f"{est.probability:.0%}" if est.probability is not None else "cannot judge"
        x = bar.get_width() + 0.02 if est.probability is not None else 0.02
        ax.text(x, bar.get_y() + bar.get_height() / 2, text, va="center", fontsize=9)
    ax.set_xlim(0, 1.15)
    ax.set_xlabel("probability that this area limits you")
    ax.set_title(f"Mechanical limiters — {analysis.athlete_id}", fontsize=10)
    ax.spines[["top", "right"]].set_visible(False)
    return png_bytes(fig)


def metrics_vs_speed_png(af: AthleteFeatures) -> bytes:
    """Cadence, GCT, VO and balance against speed, with own fit and reference band."""
    fig = Figure(figsize=(9.0, 6.5))
    axes = fig.subplots(2, 2).ravel()
    speed = af.pooled.get("speed_mps", np.empty(0))
    finite = speed[~np.isnan(speed)]
    lo, hi = (float(finite.min()), float(finite.max())) if finite.size else (2.5, 4.0)
    grid = np.linspace(min(lo, 2.3) - 0.1, max(hi, 4.0) + 0.1, 50)
    sex = af.sex
    panels = [
        ("cadence_spm", "Cadence (spm) — swing", ref.cadence_ref_spm(grid), ref.CADENCE_SD_SPM),
        ("gct_ms", "Ground contact (ms) — push", ref.gct_ref_ms(grid, sex), ref.GCT_SD_MS),
        ("vo_mm", "Vertical oscillation (mm) — posture/hip", ref.vo_ref_mm(grid), ref.VO_SD_MM),
        (
            "balance_left_pct",
            "GCT balance (% left) — strength balance",
            np.full_like(grid, ref.BALANCE_CENTRE_PCT),
            ref.BALANCE_SD_PTS,
        ),
    ]
    for ax, (name, title, centre, sd) in zip(axes, panels, strict=True):
        band = ref.Z90 * sd
        ax.fill_between(
            grid * 3.6,
            centre - band,
            centre + band,
            color=_REF,
            alpha=0.15,
            label="90 % of runners",
        )
        ax.plot(grid * 3.6, centre, color=_REF, lw=1, ls="--", label="reference")
        values = af.pooled.get(name, np.empty(0))
        m = ~np.isnan(values) & ~np.isnan(speed) if values.size else np.zeros(0, dtype=bool)
        if m.any():
            ax.scatter(speed[m] * 3.6, values[m], s=6, alpha=0.35, color=_BAR, label="your minutes")
            fit = af.fits.get(name)
            if fit is not None:
                xs = np.linspace(fit.speed_lo, fit.speed_hi, 20)
                ax.plot(xs * 3.6, fit(xs), color="#c0392b", lw=2, label="your fit")
        else:
            ax.text(0.5, 0.5, "no data", transform=ax.transAxes, ha="center", color=_REF)
        ax.set_title(title, fontsize=9)
        ax.set_xlabel("speed (km/h)", fontsize=8)
        ax.tick_params(labelsize=8)
    axes[0].legend(fontsize=7, loc="best")
    fig.tight_layout()
    return png_bytes(fig)


def _showcase_run(runs: Sequence[RunFeatures]) -> RunFeatures | None:
    """The longest steady run, preferring one with balance data."""
    best = None
    for run in runs:
        if not run.n_windows:
            continue
        has_balance = bool(np.isfinite(run.windows["balance_left_pct"]).any())
        key = (has_balance, run.steady_s)
        if best is None or key > best[0]:
            best = (key, run)
    return None if best is None else best[1]


def run_drift_png(run: RunFeatures) -> bytes:
    """Balance, and speed-corrected GCT and VO, minute by minute over one run."""
    fig = Figure(figsize=(8.0, 6.0))
    axes = fig.subplots(3, 1, sharex=True)
    t = run.windows["t_s"] / 60.0
    for ax, (name, label, centre) in zip(
        axes,
        (
            ("balance_left_pct", "GCT balance (% left)", ref.BALANCE_CENTRE_PCT),
            ("gct_resid_ms", "GCT vs expected at speed (ms)", 0.0),
            ("vo_resid_mm", "VO vs expected at speed (mm)", 0.0),
        ),
        strict=True,
    ):
        values = run.windows.get(name, np.full(len(t), np.nan))
        m = ~np.isnan(values)
        ax.axhline(centre, color=_REF, lw=1, ls="--")
        if name == "balance_left_pct":
            ax.axhspan(
                centre - ref.BALANCE_90_PTS, centre + ref.BALANCE_90_PTS, color=_REF, alpha=0.12
            )
        if m.any():
            ax.plot(t[m], values[m], ".", color=_BAR, ms=4)
            if m.sum() >= 5:
                smooth = np.convolve(values[m], np.ones(5) / 5, mode="valid")
                ax.plot(t[m][2:-2], smooth, color="#c0392b", lw=2)
        else:
            ax.text(0.5, 0.5, "no data", transform=ax.transAxes, ha="center", color=_REF)
        ax.set_ylabel(label, fontsize=8)
        ax.tick_params(labelsize=8)
    axes[-1].set_xlabel("moving time (min), steady minutes after the warm-up", fontsize=8)
    day = run.start_utc.strftime("%Y-%m-%d")
    axes[0].set_title(
        f"Drift over the run of {day} ({run.steady_s / 60:.0f} steady min)", fontsize=10
    )
    fig.tight_layout()
    return png_bytes(fig)


def write_plots(
    analysis: Analysis,
    features: AthleteFeatures,
    runs: Sequence[RunFeatures],
    directory: Path,
) -> list[Path]:
    """Write the analysis charts as PNG files into ``directory``; return their paths."""
    directory.mkdir(parents=True, exist_ok=True)
    out = []
    files = [
        ("limiters.png", limiter_chart_png(analysis)),
        ("metrics_vs_speed.png", metrics_vs_speed_png(features)),
    ]
    run = _showcase_run(runs)
    if run is not None:
        files.append(("run_drift.png", run_drift_png(run)))
    for name, data in files:
        path = directory / name
        path.write_bytes(data)
        out.append(path)
    return out


def progress_chart_png(history: Sequence[tuple[str, dict[str, float | None]]]) -> bytes:
    """Each area's P(limiter) week by week, from the plan history (oldest first)."""
    fig = Figure(figsize=(6.0, 2.8))
    ax = fig.add_subplot()
    weeks = [week for week, _ in history]
    x = np.arange(len(weeks))
    for area, label in AREA_LABELS.items():
        values = np.array([p.get(area) for _, p in history], dtype=float)  # None -> nan
        if not np.isfinite(values).any():
            continue
        ax.plot(x, values, marker="o", ms=3, lw=1.5, label=label)
    ax.set_xticks(x, [w.split("-")[1] for w in weeks], fontsize=8)
    ax.set_ylim(0, 1)
    ax.set_ylabel("probability it limits", fontsize=8)
    ax.set_title("How likely each area limits, week by week", fontsize=10)
    ax.spines[["top", "right"]].set_visible(False)
    ax.legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.0, 1.0), frameon=False)
    return png_bytes(fig)
