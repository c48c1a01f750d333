"""Published norms and coefficients the analysis compares a runner against, each with its source.

Every number here is either taken from a source in :data:`SOURCES` (named next to it) or derived
from such numbers by stated arithmetic, or it is marked **assumption** — our own choice where the
literature we could check gives no number. ``docs/model.md`` repeats the list.

Speed matters more than anything else for these metrics (domain.md §2: Garmin's raw zones
"mostly say this runner ran slowly"), so every reference here is a function of speed.

Population spreads are taken from Garmin's colour zones, which are percentiles over runners at
whatever speed they ran. The spread at one fixed speed is smaller, so percentiles computed with
these spreads understate how unusual a runner is: conservative on purpose.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

FloatArray = npt.NDArray[np.float64]

#: Short keys used in code comments and evidence, mapped to the full reference.
SOURCES: dict[str, str] = {
    "garmin_zones": "Garmin running-dynamics colour zones (population percentiles; domain.md §2)",
    "garmin_balance": "Garmin Enduro 3 owner's manual, GCT balance bands (domain.md §2)",
    "van_oeveren_2019": (
        "van Oeveren BT et al. Inter-individual differences in stride frequencies during running "
        "obtained from wearable data (256 Garmin users; J Sports Sci, 2019; research.vu.nl): "
        "group equation SF [strides/min] = 75.01 + 3.006·v [m/s], valid 1.64–4.68 m/s"
    ),
    "van_oeveren_2020": (
        "van Oeveren BT et al. Individual optimal step frequency during outdoor running. "
        "Eur J Sport Sci 2020;20:182 — preferred step frequency 165 ± 8 steps/min at 3.04 m/s"
    ),
    "weyand_2005": (
        "Weyand PG, Davis JA. Running performance has a structural basis. J Exp Biol "
        "2005;208:2625 — stance-averaged vertical force [body weights] men 1.27 + 0.105·v, "
        "women 1.24 + 0.106·v"
    ),
    "morin_2005": (
        "Morin JB et al. A simple method for measuring stiffness during running. "
        "J Appl Biomech 2005;21:167 (spring-mass model from contact and flight time)"
    ),
    "meyer_2023": "Meyer et al. 2023: the spring-mass estimate is invalid on inclines",
    "malisoux_2023": (
        "Malisoux L et al. Reference values and determinants of spatiotemporal and kinetic "
        "variables in recreational runners. OJSM 2023, doi 10.1177/23259671231204629 "
        "(n = 860; mean preferred speed 10.5 km/h men, 9.0 km/h women)"
    ),
    "bailey_2017": "Bailey J et al. Int J Exerc Sci 2017;10:1067 — SL = A·v² + B·v + C per runner",
    "zandbergen_2023": (
        "Zandbergen MA et al. Quantifying and correcting for speed and stride frequency effects "
        "on running mechanics in fatiguing outdoor running. Front Sports Act Living 2023;5:1085513"
    ),
    "clermont_2019": "Clermont CA et al. J Appl Biomech 2019 — late-run drift of gait composites",
    "girard_2019": "Girard O et al. Front Sports Act Living 2019;1:36 — contact-time symmetry",
    "joubert_2020": "Joubert DP et al. Int J Exerc Sci 2020;13:427 — GCT imbalance vs economy",
    "imbach_2020": (
        "Imbach F et al. Validity of the Stryd power meter in measuring running parameters at "
        "submaximal speeds (PMC7404478): Stryd ground time and leg-spring stiffness agree with "
        "force-plate references"
    ),
    "walk_run": "Walk-to-run transition near 2.0 m/s and ≈140 steps/min (PMC8629136)",
    "friel_decoupling": (
        "Friel J, aerobic decoupling (Pa:HR) under 5 % = aerobically fit for the duration "
        "(practitioner rule, TrainingPeaks; not peer reviewed)"
    ),
    "warmup": "Spatiotemporal values settle only after ~11–17 min (domain.md §3)",
}

# -- normal distribution helpers --------------------------------------------------------------

#: z for the central 90 % of a normal distribution.
Z90 = 1.6448536269514722


def percentile_of(z: float) -> float:
    """Share of a normal population below ``z`` standard deviations, in % (0–100)."""
    return 50.0 * (1.0 + math.erf(z / math.sqrt(2.0)))


# -- cadence ----------------------------------------------------------------------------------

#: Group cadence equation from 256 Garmin users (van_oeveren_2019), converted from strides/min
#: to steps/min (× 2): cadence = 150.02 + 6.012·v.
CADENCE_INTERCEPT_SPM = 2.0 * 75.01
CADENCE_SLOPE_SPM_PER_MPS = 2.0 * 3.006
#: The equation was fitted over this speed range; outside it we extrapolate linearly and say so.
CADENCE_VALID_MPS = (1.64, 4.68)
#: Between-runner SD of preferred step rate at one speed: 165 ± 8 spm at 3.04 m/s
#: (van_oeveren_2020).
CADENCE_SD_SPM = 8.0


def cadence_ref_spm(speed_mps: FloatArray | float) -> FloatArray:
    """Population cadence expected at a speed (van Oeveren 2019 group equation).

    Parameters
    ----------
    speed_mps : speed in m/s.

    Returns
    -------
    Expected cadence in steps/min.
    """
    return np.asarray(CADENCE_INTERCEPT_SPM + CADENCE_SLOPE_SPM_PER_MPS * np.asarray(speed_mps))


def step_length_ref_m(speed_mps: FloatArray | float) -> FloatArray:
    """Step length implied by the reference cadence at a speed, in m (v · 60 / cadence)."""
    v = np.asarray(speed_mps, dtype=np.float64)
    return np.asarray(v * 60.0 / cadence_ref_spm(v))


# -- where Garmin's zones sit on the speed axis ------------------------------------------------

#: Median cadence of Garmin's population: midpoint of the green zone (164–173 spm), which spans
#: the 30th–69th percentiles (garmin_zones). Midpoint ≈ median is an assumption.
GARMIN_CADENCE_MEDIAN_SPM = (164.0 + 173.0) / 2.0
#: Garmin's zones are percentiles over runners at whatever speed they ran. We place them at the
#: speed where the van Oeveren group equation gives Garmin's median cadence: 3.07 m/s
#: (11.1 km/h). Assumption, checked for plausibility against van_oeveren_2020 (comfortable
#: outdoor speed 3.04 m/s) and malisoux_2023 (preferred treadmill speed 2.5–2.9 m/s).
ANCHOR_SPEED_MPS = (GARMIN_CADENCE_MEDIAN_SPM - CADENCE_INTERCEPT_SPM) / CADENCE_SLOPE_SPM_PER_MPS


# -- ground contact time ----------------------------------------------------------------------


def stance_force_bw(speed_mps: FloatArray | float, sex: str | None = None) -> FloatArray:
    """Stance-averaged vertical force in body weights at a speed (Weyand & Davis 2005).

    Parameters
    ----------
    speed_mps : speed in m/s.
    sex : "male", "female", or None for the mean of both equations.
    """
    v = np.asarray(speed_mps, dtype=np.float64)
    men = 1.27 + 0.105 * v
    women = 1.24 + 0.106 * v
    if sex == "male":
        return np.asarray(men)
    if sex == "female":
        return np.asarray(women)
    return np.asarray((men + women) / 2.0)


def contact_fraction_ref(speed_mps: FloatArray | float, sex: str | None = None) -> FloatArray:
    """Share of each step spent on the ground, expected at a speed (dimensionless).

    Over one step the vertical impulse equals body weight × step time, so
    t_c / t_step = 1 / (stance-averaged force in body weights) — Weyand & Davis 2005 rearranged.
    """
    return np.asarray(1.0 / stance_force_bw(speed_mps, sex))


def gct_physical_ms(speed_mps: FloatArray | float, sex: str | None = None) -> FloatArray:
    """Force-plate-like contact time expected at a speed, in ms.

    Contact fraction from Weyand & Davis 2005 times the step time of the reference cadence
    (van Oeveren 2019).
    """
    step_ms = 60000.0 / cadence_ref_spm(speed_mps)
    return np.asarray(step_ms * contact_fraction_ref(speed_mps, sex))


#: Garmin population median GCT: midpoint of the green zone 249–277 ms (garmin_zones).
GARMIN_GCT_MEDIAN_MS = (249.0 + 277.0) / 2.0
#: Wrist and chest-strap GCT runs longer than force-plate contact time; we shift the physical
#: reference so it meets Garmin's median at the anchor speed (+39 ms). Assumption: the offset
#: is constant over speed; no source we could check gives it.
WATCH_GCT_OFFSET_MS = GARMIN_GCT_MEDIAN_MS - float(gct_physical_ms(ANCHOR_SPEED_MPS))
#: Spread of GCT among runners: Garmin's 5th–95th percentiles 218–308 ms → SD 27 ms
#: (garmin_zones; includes speed differences, so conservative).
GCT_SD_MS = (308.0 - 218.0) / (2.0 * Z90)


def gct_ref_ms(
    speed_mps: FloatArray | float, sex: str | None = None, *, stryd: bool = False
) -> FloatArray:
    """Ground contact time expected at a speed, in ms, on the scale of the device that measured it.

    Stryd's ground time agrees with force plates (imbach_2020), so it is compared with the
    physical reference; Garmin-style GCT with the physical reference plus the watch offset.
    """
    physical = gct_physical_ms(speed_mps, sex)
    return physical if stryd else np.asarray(physical + WATCH_GCT_OFFSET_MS)


# -- vertical oscillation and ratio -----------------------------------------------------------

#: Garmin population median vertical oscillation: midpoint of green 8.2–9.7 cm (garmin_zones;
#: domain.md marks these VO zones unverified).
VO_REF_MM = (82.0 + 97.0) / 2.0
#: No source we could check gives how VO changes with speed over endurance speeds; we assume it
#: is flat (slope 0) and say so in the evidence. Assumption.
VO_SLOPE_MM_PER_MPS = 0.0
#: 5th–95th percentiles 6.4–11.5 cm → SD 15.5 mm (garmin_zones, unverified).
VO_SD_MM = (115.0 - 64.0) / (2.0 * Z90)


def vo_ref_mm(speed_mps: FloatArray | float) -> FloatArray:
    """Vertical oscillation expected at a speed, in mm (Garmin median; speed slope assumed 0)."""
    v = np.asarray(speed_mps, dtype=np.float64)
    return np.asarray(VO_REF_MM + VO_SLOPE_MM_PER_MPS * (v - ANCHOR_SPEED_MPS))


def vr_ref_pct(speed_mps: FloatArray | float) -> FloatArray:
    """Vertical ratio expected at a speed, in %: reference VO over reference step length."""
    return np.asarray(100.0 * vo_ref_mm(speed_mps) / (1000.0 * step_length_ref_m(speed_mps)))


#: 5th–95th percentiles 6.1–10.1 % → SD 1.2 points (garmin_zones; upper band unverified).
VR_SD_PCT = (10.1 - 6.1) / (2.0 * Z90)


# -- left/right balance -----------------------------------------------------------------------

BALANCE_CENTRE_PCT = 50.0
#: Green 49.3–50.7 % holds 40 % of runners, and 90 % stay within 47.8–52.2 % (garmin_balance).
#: Both agree with a normal spread of SD 1.34 points around 50 % (0.7 / 0.524 and 2.2 / 1.645).
BALANCE_GREEN_PTS = 0.7
BALANCE_90_PTS = 2.2
BALANCE_SD_PTS = BALANCE_90_PTS / Z90


# -- spring-mass stiffness (Morin et al. 2005) ------------------------------------------------

GRAVITY_MPS2 = 9.81
#: Leg length ≈ 0.53 × standing height (morin_2005, as in domain.md §3).
LEG_LENGTH_RATIO = 0.53


@dataclass(frozen=True, slots=True)
class SpringMass:
    """Spring-mass estimates for one step (Morin et al. 2005); per kg when no mass is given."""

    f_max_n: FloatArray  # peak vertical force, N (N/kg when mass_kg = 1)
    dy_m: FloatArray  # centre-of-mass vertical displacement in stance, m
    k_vert_n_m: FloatArray  # vertical stiffness, N/m (N/m/kg when mass_kg = 1)
    k_leg_n_m: FloatArray | None  # leg stiffness, N/m; None without a leg length


def spring_mass(
    gct_ms: FloatArray | float,
    cadence_spm: FloatArray | float,
    speed_mps: FloatArray | float,
    *,
    mass_kg: float = 1.0,
    height_m: float | None = None,
) -> SpringMass:
    """Vertical and leg stiffness from contact time, cadence and speed (Morin et al. 2005).

    F_max = m·g·(π/2)·(t_f/t_c + 1); Δy = F_max·t_c²/(m·π²) − g·t_c²/8; k_vert = F_max/Δy;
    ΔL = L − √(L² − (v·t_c/2)²) + Δy; k_leg = F_max/ΔL; L = 0.53 × height;
    t_f = 60/cadence − t_c per step. Valid on flat ground only (Meyer et al. 2023).

    Parameters
    ----------
    gct_ms : contact time, ms.
    cadence_spm : steps per minute.
    speed_mps : running speed, m/s.
    mass_kg : body mass in kg; the default 1 gives mass-specific values (N/kg, N/m/kg).
    height_m : standing height in m; without it leg stiffness is None.

    Returns
    -------
    SpringMass with NaN where the step has no positive displacement (contact ≥ step time).
    """
    tc = np.asarray(gct_ms, dtype=np.float64) / 1000.0
    step_s = 60.0 / np.asarray(cadence_spm, dtype=np.float64)
    v = np.asarray(speed_mps, dtype=np.float64)
    with np.errstate(invalid="ignore", divide="ignore"):
        tf = np.clip(step_s - tc, 0.0, None)
        f_max = mass_kg * GRAVITY_MPS2 * (math.pi / 2.0) * (tf / tc + 1.0)
        dy = f_max * tc**2 / (mass_kg * math.pi**2) - GRAVITY_MPS2 * tc**2 / 8.0
        dy = np.where(dy > 0, dy, np.nan)
        k_vert = f_max / dy
        k_leg = None
        if height_m is not None:
            leg = LEG_LENGTH_RATIO * height_m
            half = v * tc / 2.0
            root = np.sqrt(np.where(leg**2 > half**2, leg**2 - half**2, np.nan))
            k_leg = np.asarray(f_max / (leg - root + dy))
    return SpringMass(np.asarray(f_max), np.asarray(dy), np.asarray(k_vert), k_leg)


def k_vert_ref_n_m_kg(speed_mps: FloatArray | float, sex: str | None = None) -> FloatArray:
    """Mass-specific vertical stiffness expected at a speed, in N/m/kg.

    Derived: the spring-mass model applied to the physical reference contact time and reference
    cadence (Weyand & Davis 2005, van Oeveren 2019, Morin et al. 2005).
    """
    return spring_mass(
        gct_physical_ms(speed_mps, sex), cadence_ref_spm(speed_mps), speed_mps
    ).k_vert_n_m


def k_leg_ref_kn_m(
    speed_mps: FloatArray | float, mass_kg: float, height_m: float, sex: str | None = None
) -> FloatArray:
    """Leg stiffness expected at a speed for a body, in kN/m (same derivation as k_vert)."""
    est = spring_mass(
        gct_physical_ms(speed_mps, sex),
        cadence_ref_spm(speed_mps),
        speed_mps,
        mass_kg=mass_kg,
        height_m=height_m,
    )
    assert est.k_leg_n_m is not None  # height was given
    return np.asarray(est.k_leg_n_m / 1000.0)


# -- segmenting a run -------------------------------------------------------------------------

#: Skip this much running before building baselines: values settle after ~11–17 min
#: (domain.md §3). 12 min is our choice inside that range: later would discard most of a
#: typical 30–45 min easy run.
WARMUP_S = 12.0 * 60.0
#: Slower than this is walking or standing: the walk–run transition sits near 2.0 m/s
#: (walk_run); we keep a margin below it. Assumption.
RUN_MIN_SPEED_MPS = 1.8
#: A window is "flat" when its median grade is within ±2 %. Balance and stiffness are judged on
#: flat ground only (garmin_balance: balance drifts on slopes; meyer_2023). Threshold: assumption.
FLAT_GRADE_PCT = 2.0
#: A window is "steady" when speed varies less than this (SD / mean) inside it. Assumption.
STEADY_SPEED_CV = 0.08
#: Aerobic decoupling above 5 % (friel_decoupling, practitioner rule).
HR_DECOUPLING_PCT = 5.0
