"""Grade (%) derived from distance and altitude: pure, shared by FIT import and the simulator."""

from __future__ import annotations

import warnings

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view

# Grade is derived over a centred window of this many samples (≈10 s at 1 Hz) and only where
# the runner covered at least _GRADE_MIN_DIST_M, so GPS/barometer noise on a standstill does
# not become a 40 % "hill". Our own choice; domain.md only asks that balance and stiffness be
# judged on flat ground.
_GRADE_WINDOW = 10
_GRADE_MIN_DIST_M = 10.0
_GRADE_LIMIT_PCT = 45.0


def derive_grade_pct(distance_m: np.ndarray, altitude_m: np.ndarray) -> np.ndarray:
    """Grade in % over a centred window; NaN where too little distance was covered (pure)."""
    n = len(distance_m)
    grade = np.full(n, np.nan)
    half = _GRADE_WINDOW // 2
    if n <= 2 * half:
        return grade
    alt = _centred_median(altitude_m, 5)
    d_dist = distance_m[2 * half :] - distance_m[: -2 * half]
    d_alt = alt[2 * half :] - alt[: -2 * half]
    with np.errstate(invalid="ignore", divide="ignore"):
        inner = np.where(d_dist >= _GRADE_MIN_DIST_M, 100.0 * d_alt / d_dist, np.nan)
    grade[half : n - half] = np.clip(inner, -_GRADE_LIMIT_PCT, _GRADE_LIMIT_PCT)
    return grade


def _centred_median(values: np.ndarray, window: int) -> np.ndarray:
    """Median of each centred window, ignoring NaN, shorter at the ends (pandas'
    ``rolling(window, center=True, min_periods=1).median()``, tested equal)."""
    half = window // 2
    padded = np.pad(np.asarray(values, dtype=np.float64), half, constant_values=np.nan)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # an all-NaN window is NaN, as wanted
        return np.nanmedian(sliding_window_view(padded, window), axis=1)
