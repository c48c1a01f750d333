"""The values a face offers as choices (command-line options, web forms).

Kept light (no numpy, pandas or pydantic) because the command line builds its options from it
at start-up; the values themselves are defined once, in :mod:`planner.records`.
"""

from __future__ import annotations

from planner.records import AREAS, PLAN_FORMATS

__all__ = ["AREAS", "PLAN_FORMATS"]
