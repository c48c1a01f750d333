"""The values a face offers as choices (command-line options, web forms).

Kept light (no numpy, pandas or pydantic) because the command line builds its options from it
at start-up. Areas are defined once, in :mod:`planner.records`; plan formats and connectors are
whatever is registered under their entry-point groups (:mod:`planner.services.registry`), read
from the installed metadata without importing any plugin.
"""

from __future__ import annotations

from planner.records import AREAS
from planner.services.registry import connector_names, renderer_names

__all__ = ["AREAS", "connector_names", "plan_formats"]


def plan_formats() -> tuple[str, ...]:
    """The ``--format`` choices of ``stridewise plan``: every registered renderer."""
    return renderer_names()
