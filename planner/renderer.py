"""The one shape every plan renderer has: the built-in formats and plugins alike.

A renderer is registered under the ``stridewise.renderers`` entry-point group (its name is the
value of ``stridewise plan --format``; docs/plugins.md) and found only there. It turns a built
week into files; writing them, printing them and choosing the week belong to the plan service.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol, runtime_checkable

from planner.plan import Plan
from planner.records import Analysis, Athlete

__all__ = ["PlanDocument", "RenderedFile", "Renderer"]


@dataclass(frozen=True, slots=True)
class PlanDocument:
    """A built week with what it was built from.

    ``standalone`` asks for one self-contained document (printed, so pictures go inline as
    data: URIs); otherwise files are written to a folder and pictures may be files beside it.
    """

    plan: Plan
    analysis: Analysis
    athlete: Athlete
    standalone: bool


@dataclass(frozen=True, slots=True)
class RenderedFile:
    """One file of a rendering, named after the week (``plan-2026-W49.html``)."""

    name: str
    data: str | bytes


@runtime_checkable
class Renderer(Protocol):
    """A plan format. Instances are made by the entry point with no arguments.

    ``name`` is the ``--format`` value (the entry point's name is the same); ``needs_folder``
    says the format is several files (one FIT workout per session) and cannot be printed.
    The first file rendered is the main document: the one printed without ``--out``.
    """

    name: str
    needs_folder: bool

    def render(self, document: PlanDocument) -> tuple[RenderedFile, ...]: ...
