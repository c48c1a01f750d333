"""From model probabilities to ranked limiter estimates with evidence in plain words (pure).

Every evidence sentence carries the runner's number, the reference it is compared with, and
where the reference comes from. Areas the data cannot speak to get probability None and a
sentence saying what is missing. Probabilities are presented as such — never as diagnoses:
single mechanics variables explain only a small share of economy (domain.md §3).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

from planner import evidence as ev
from planner import reference as ref
from planner.evidence import AreaDecision
from planner.features import AthleteFeatures
from planner.records import AREAS, LimiterEstimate

#: The one speed-normalised number per area that plans track week over week.
KEY_METRICS: dict[str, str] = {
    "push": "gct_resid_ms",
    "swing": "cadence_resid_spm",
    "posture_hip": "vo_resid_mm",
    "strength_balance": "balance_dev_pts",
}

#: A cadence slope this far below the population's (spm per m/s) reads as "speeds up by longer
#: steps, not cadence" (domain.md §4, swing). Assumption: about half the population slope.
SLOPE_NOTE_SPM_PER_MPS = 3.0
#: Drifts smaller than these are reported as "steady". Assumption: about noise level.
DRIFT_NOTE = {"gct_drift_ms": 3.0, "vo_drift_mm": 2.0, "balance_drift_pts": 0.3}


class _Lines(list[tuple[str, str]]):
    """Evidence sentences, each with the feature it is about (for citing it as a reason)."""

    def append(self, feature: str, sentence: str) -> None:  # type: ignore[override]
        super().append((feature, sentence))


def _kmh(speed_mps: float) -> str:
    pace_s = 1000.0 / speed_mps
    return f"{speed_mps * 3.6:.1f} km/h ({int(pace_s // 60)}:{int(pace_s % 60):02d} /km)"


def _runs(n: int) -> str:
    return f"{n} run" + ("" if n == 1 else "s")


def _isnan(x: float | None) -> bool:
    return x is None or math.isnan(x)


def _push(af: AthleteFeatures) -> _Lines:
    out = _Lines()
    v = af.value("speed_mps")
    gct, r = af.value("gct_ms"), af.value("gct_resid_ms")
    if not _isnan(r):
        pct = ref.percentile_of(r / ref.GCT_SD_MS)
        word = "longer" if r > 0 else "shorter"
        out.append(
            "gct_resid_ms",
            f"Ground contact {gct:.0f} ms at {_kmh(v)} over your last {_runs(af.runs_with['gct'])}"
            f" — {abs(r):.0f} ms {word} than the {gct - r:.0f} ms expected at that speed"
            f" (Weyand & Davis 2005 force–speed relation on Garmin's population scale);"
            f" longer than about {pct:.0f} % of runners.",
        )
    k_kn, k_kg, k_r = af.value("kvert_kn_m"), af.value("kvert_n_m_kg"), af.value("kvert_resid_pct")
    if not _isnan(k_r):
        level = f"{k_kn:.1f} kN/m" if not _isnan(k_kn) else f"{k_kg:.0f} N/m per kg body mass"
        word = "below" if k_r < 0 else "above"
        out.append(
            "kvert_resid_pct",
            f"Vertical stiffness {level} on flat ground (Morin et al. 2005 spring-mass model),"
            f" {abs(k_r):.0f} % {word} what the model gives for a typical runner at your speed.",
        )
    vr, vr_r = af.value("vr_pct"), af.value("vr_resid_pct")
    if not _isnan(vr_r):
        out.append(
            "vr_resid_pct",
            f"Vertical ratio {vr:.1f} % against {vr - vr_r:.1f} % expected at that speed"
            " (Garmin's median oscillation over the reference step length).",
        )
    lss, lss_r = af.value("lss_kn_m"), af.value("lss_resid_pct")
    if not _isnan(lss_r):
        word = "below" if lss_r < 0 else "above"
        out.append(
            "lss_resid_pct",
            f"Stryd leg-spring stiffness {lss:.1f} kN/m, {abs(lss_r):.0f} % {word} the spring-mass"
            " estimate for your height, weight and speed (Stryd agrees with force plates,"
            " Imbach et al. 2020).",
        )
    elif not _isnan(lss):
        out.append(
            "lss_kn_m",
            f"Stryd leg-spring stiffness {lss:.1f} kN/m; add height and weight to your watch"
            " profile to compare it with the spring-mass estimate.",
        )
    return out


def _swing(af: AthleteFeatures) -> _Lines:
    out = _Lines()
    v = af.value("speed_mps")
    cad, r = af.value("cadence_spm"), af.value("cadence_resid_spm")
    if not _isnan(r):
        higher = 100.0 - ref.percentile_of(r / ref.CADENCE_SD_SPM)
        word = "below" if r < 0 else "above"
        out.append(
            "cadence_resid_spm",
            f"Cadence {cad:.0f} spm at {_kmh(v)} over your last {_runs(af.runs_with['cadence'])}"
            f" — {abs(r):.0f} spm {word} the {cad - r:.0f} spm expected at that speed"
            f" (van Oeveren et al. 2019, 256 Garmin users); about {higher:.0f} % of runners use"
            " a higher cadence at that speed.",
        )
    slope = af.value("cadence_slope_spm_per_mps")
    if not _isnan(slope) and af.speed_range_mps is not None:
        lo, hi = af.speed_range_mps
        population = ref.CADENCE_SLOPE_SPM_PER_MPS
        if slope < population - SLOPE_NOTE_SPM_PER_MPS:
            verdict = "you speed up mostly with longer steps, not quicker ones"
        elif slope > population + SLOPE_NOTE_SPM_PER_MPS:
            verdict = "you speed up more with quicker steps than most runners"
        else:
            verdict = "in line with the population"
        out.append(
            "cadence_slope_resid",
            f"Between {lo * 3.6:.1f} and {hi * 3.6:.1f} km/h your cadence rises"
            f" {slope / 3.6:.1f} spm per km/h against {population / 3.6:.1f} in the population"
            f" — {verdict}.",
        )
    sl, sl_r = af.value("step_length_m"), af.value("step_length_resid_m")
    if not _isnan(sl_r):
        out.append(
            "step_length_resid_m",
            f"Step length {sl:.2f} m at {_kmh(v)} against {sl - sl_r:.2f} m expected at that"
            " speed (speed ÷ reference cadence).",
        )
    return out


def _posture(af: AthleteFeatures) -> _Lines:
    out = _Lines()
    v = af.value("speed_mps")
    vo, r = af.value("vo_mm"), af.value("vo_resid_mm")
    if not _isnan(r):
        pct = ref.percentile_of(r / ref.VO_SD_MM)
        out.append(
            "vo_resid_mm",
            f"Vertical oscillation {vo / 10:.1f} cm at {_kmh(v)} over your last"
            f" {_runs(af.runs_with['vo'])} — {r / 10:+.1f} cm against Garmin's population median"
            f" {(vo - r) / 10:.1f} cm (no published speed correction for oscillation, so none is"
            f" applied); higher than about {pct:.0f} % of runners.",
        )
    gd, vd = af.value("gct_drift_ms"), af.value("vo_drift_mm")
    n_drift = af.run_flags.get("with_drift", 0)
    if not (_isnan(gd) and _isnan(vd)) and n_drift:
        parts = []
        if not _isnan(vd):
            parts.append(f"oscillation {vd / 10:+.1f} cm")
        if not _isnan(gd):
            parts.append(f"ground contact {gd:+.0f} ms")
        rising = (not _isnan(gd) and gd >= DRIFT_NOTE["gct_drift_ms"]) or (
            not _isnan(vd) and vd >= DRIFT_NOTE["vo_drift_mm"]
        )
        tail = (
            "— a late-run rise, the watch's window on hip endurance (J Athl Train 2020)"
            if rising
            else "— no late-run rise: little sign of fading hip control"
        )
        out.append(
            "vo_drift_mm" if not _isnan(vd) else "gct_drift_ms",
            f"In the last third of your {_runs(n_drift)} long enough to tell, after speed"
            f" correction: {', '.join(parts)} {tail}.",
        )
    fpr = af.value("form_power_ratio")
    if not _isnan(fpr):
        out.append(
            "form_power_ratio",
            f"Stryd form-power ratio {fpr:.2f}; Stryd publishes no norm we could verify, so it"
            " only weighs in through the simulated cohort.",
        )
    return out


def _balance(af: AthleteFeatures) -> _Lines:
    out = _Lines()
    b, dev = af.value("balance_left_pct"), af.value("balance_dev_pts")
    if _isnan(dev):
        return out
    side = "L" if b >= ref.BALANCE_CENTRE_PCT else "R"
    shown = b if side == "L" else 100.0 - b
    lo, hi = (
        ref.BALANCE_CENTRE_PCT - ref.BALANCE_90_PTS,
        ref.BALANCE_CENTRE_PCT + ref.BALANCE_90_PTS,
    )
    if dev <= ref.BALANCE_GREEN_PTS:
        band = "inside Garmin's green band 49.3–50.7 %, where 40 % of runners are"
    elif dev <= ref.BALANCE_90_PTS:
        band = f"inside {lo:.1f}–{hi:.1f} %, the range 90 % of runners stay in (Garmin)"
    else:
        band = f"outside {lo:.1f}–{hi:.1f} %, the range 90 % of runners stay in (Garmin)"
    sentence = (
        f"GCT balance {shown:.1f} % {side} on flat ground over your last"
        f" {_runs(af.runs_with['balance'])} — {band}"
    )
    drift = af.value("balance_drift_pts")
    if not _isnan(drift) and abs(drift) >= DRIFT_NOTE["balance_drift_pts"]:
        sentence += (
            f"; it {'widens' if drift > 0 else 'narrows'} by {abs(drift):.1f} points in the last"
            " third of your longer runs"
        )
    out.append("balance_dev_pts", sentence + ".")
    slope = af.value("balance_speed_slope")
    if not _isnan(slope) and abs(slope) >= 0.3:
        out.append(
            "balance_speed_slope",
            f"The imbalance {'grows' if slope > 0 else 'shrinks'} by {abs(slope) / 3.6:.2f} points"
            " per km/h faster (healthy runners' symmetry does not change with speed, Girard"
            " et al. 2019).",
        )
    return out


_EVIDENCE = {
    "push": _push,
    "swing": _swing,
    "posture_hip": _posture,
    "strength_balance": _balance,
}


def cannot_judge(area: str, af: AthleteFeatures) -> str:
    """Why an area cannot be judged from these runs."""
    if af.runs == 0:
        return "Cannot judge: no runs in the period analysed."
    if af.runs_with.get("speed", 0) == 0:
        return (
            "Cannot judge: these runs hold no speed, so nothing can be compared at the same speed."
        )
    if af.runs_with.get("steady", 0) == 0:
        return "Cannot judge: no steady running after the warm-up in these runs."
    needs = {
        "push": (
            "ground contact time",
            "a chest strap (HRM-Run/HRM-Pro), a Running Dynamics Pod, a Stryd, or a watch that"
            " measures running dynamics",
        ),
        "swing": ("cadence with speed", "any watch that records cadence"),
        "posture_hip": (
            "vertical oscillation",
            "a chest strap, a Running Dynamics Pod, a Stryd, or a watch that measures it",
        ),
        "strength_balance": (
            "ground contact time balance",
            "a chest strap (HRM-Run/HRM-Pro) or a Running Dynamics Pod; wrist-based dynamics and"
            " Strava streams do not record it",
        ),
    }
    what, how = needs[area]
    return f"Cannot judge: no {what} on steady flat running in these runs (needs {how})."


#: How each area's key metric is worse, in words (for the one-sentence summary).
_WORSE: dict[str, str] = {
    "push": "longer",
    "swing": "lower",
    "posture_hip": "higher",
    "strength_balance": "further from 50 %",
}


def summary(decision: AreaDecision) -> str:
    """One plain sentence: where the key metric sits, and what that means for the estimate."""
    area = decision.area
    key = ev.SIGNALS[area][0]
    if decision.in_line:
        return "Every measurement for this area is in line with most runners."
    if decision.key_z is None:
        lead = f"Your {key.label} was not measured"
    elif decision.verdict == "in_line":
        lead = f"Your {key.label} is in line with most runners"
    else:
        word = "unusual" if decision.verdict == "extreme" else "on the weak side"
        pct = min(ref.percentile_of(decision.key_z), 99.9)
        share = f"{pct:.1f}" if pct > 99.0 else f"{pct:.0f}"
        return f"Your {key.label} is {word}: {_WORSE[area]} than for about {share} % of runners."
    others = [s.label for s in ev.SIGNALS[area] if s.feature in decision.supporting]
    if others:
        return f"{lead}, but the {others[0]} points this way."
    return f"{lead}; the estimate rests on signals without a verified norm."


def rank_limiters(
    af: AthleteFeatures,
    probabilities: Mapping[str, float],
    support: Mapping[str, Any] | None = None,
) -> tuple[tuple[LimiterEstimate, ...], str | None]:
    """Ranked estimates (judged areas by evidence, then the unjudged) and the weaker side.

    Parameters
    ----------
    af : the athlete's pooled features.
    probabilities : the model's P(limiter) per area (0–1); ignored for areas that cannot be
        judged from ``af``.
    support : the training cohort's per-area support (``planner.evidence.fit_support``), from
        the model's metadata; None skips the out-of-support check.

    Returns
    -------
    The four :class:`LimiterEstimate` in rank order (:func:`planner.evidence.rank_key`), and
    "left"/"right" (the side with longer ground contact) when balance was judged and sits
    outside Garmin's green band, else None.
    """
    judged = [a for a in AREAS if af.judgeable(a)]
    decisions = ev.decide(
        af.values,
        probabilities,
        judged,
        runs=af.runs_with.get("steady", 0),
        steady_min=af.value("steady_min"),
        support=support,
    )
    out = []
    for rank, d in enumerate(decisions, start=1):
        lines = _EVIDENCE[d.area](af)
        evidence = [sentence for _, sentence in lines]
        adjustments = []
        if d.out_of_support:
            adjustments.append("rule_fallback")
            evidence.append(
                "Your numbers for this area lie outside the range of the runners the model"
                " learned from, so this estimate uses the plain rule on how far each number is"
                " from the population instead."
            )
        if d.floor_applied:
            adjustments.append("evidence_floor")
        if d.capped == "in_line":
            adjustments.append("in_line_cap")
        elif d.capped == "runs":
            adjustments.append("run_cap")
        value = af.value(KEY_METRICS[d.area])
        out.append(
            LimiterEstimate(
                area=d.area,
                probability=round(d.probability, 3),
                rank=rank,
                evidence=tuple(evidence),
                key_metric=KEY_METRICS[d.area],
                key_value=None if _isnan(value) else round(value, 3),
                interval=(round(d.interval[0], 3), round(d.interval[1], 3)),
                stands_out=d.stands_out,
                verdict=d.verdict,
                summary=summary(d),
                support=tuple(sentence for f, sentence in lines if f in d.supporting),
                z={k: round(v, 2) for k, v in d.z.items()},
                out_of_support=d.out_of_support,
                model_probability=round(d.model_probability, 3),
                adjustments=tuple(adjustments),
            )
        )
    for rank, area in enumerate([a for a in AREAS if a not in judged], start=len(out) + 1):
        key = KEY_METRICS[area]
        value = af.value(key)
        out.append(
            LimiterEstimate(
                area=area,
                probability=None,
                rank=rank,
                evidence=(cannot_judge(area, af),),
                key_metric=key,
                key_value=None if _isnan(value) else round(value, 3),
            )
        )
    weaker = None
    dev = af.value("balance_dev_pts")
    if "strength_balance" in judged and dev > ref.BALANCE_GREEN_PTS:
        # Longer contact on one side is read as the weaker side: GCT imbalance tracks leg
        # lean-mass imbalance (Joubert et al. 2020). The direction is our reading.
        weaker = af.side
    return tuple(out), weaker
