"""The built-in plan formats as :class:`planner.renderer.Renderer` plugins.

Each is registered under the ``stridewise.renderers`` entry-point group in ``pyproject.toml``
(``html``, ``text``, ``md``, ``ics``, ``fit``, ``json``) and reached only through it, the door a
third-party format uses too (docs/plugins.md).
"""

from __future__ import annotations

import json

from planner.delivery import render
from planner.renderer import PlanDocument, RenderedFile

__all__ = [
    "HtmlRenderer",
    "IcsRenderer",
    "JsonRenderer",
    "MarkdownRenderer",
    "TextRenderer",
    "WorkoutFitRenderer",
]


def _file(document: PlanDocument, suffix: str, data: str | bytes) -> RenderedFile:
    return RenderedFile(f"plan-{document.plan.week}.{suffix}", data)


class HtmlRenderer:
    """The e-mail's HTML page with its limiter and progress charts (inline when printed)."""

    name = "html"
    needs_folder = False

    def render(self, document: PlanDocument) -> tuple[RenderedFile, ...]:
        from planner.delivery.charts import limiter_chart_png
        from planner.delivery.progresscharts import trend_png

        plan = document.plan
        chart, trend = limiter_chart_png(document.analysis), trend_png(plan)
        page = render.render_html(
            plan,
            document.analysis,
            document.athlete,
            chart,
            image="data" if document.standalone else "file",
            trend_png=trend,
        )
        files = [_file(document, "html", page)]
        if not document.standalone:
            if chart is not None:
                files.append(RenderedFile(render.chart_file_name(plan), chart))
            if trend is not None:
                files.append(RenderedFile(render.trend_file_name(plan), trend))
        return tuple(files)


class TextRenderer:
    """Plain text: the same content as the HTML."""

    name = "text"
    needs_folder = False

    def render(self, document: PlanDocument) -> tuple[RenderedFile, ...]:
        text = render.render_text(document.plan, document.analysis, document.athlete)
        return (_file(document, "txt", text),)


class MarkdownRenderer:
    """Markdown, for coaches who paste plans into other tools."""

    name = "md"
    needs_folder = False

    def render(self, document: PlanDocument) -> tuple[RenderedFile, ...]:
        text = render.render_markdown(document.plan, document.analysis, document.athlete)
        return (_file(document, "md", text),)


class IcsRenderer:
    """An iCalendar file: one event per session, stable UIDs so re-imports update."""

    name = "ics"
    needs_folder = False

    def render(self, document: PlanDocument) -> tuple[RenderedFile, ...]:
        return (_file(document, "ics", render.render_ics(document.plan, document.athlete)),)


class WorkoutFitRenderer:
    """One FIT workout file per session, for the watch."""

    name = "fit"
    needs_folder = True

    def render(self, document: PlanDocument) -> tuple[RenderedFile, ...]:
        from planner.delivery.workouts import plan_workouts

        return tuple(RenderedFile(n, data) for n, data in plan_workouts(document.plan).items())


class JsonRenderer:
    """The plan as JSON, for scripts."""

    name = "json"
    needs_folder = False

    def render(self, document: PlanDocument) -> tuple[RenderedFile, ...]:
        text = json.dumps(document.plan.to_dict(), indent=2, sort_keys=True, ensure_ascii=False)
        return (_file(document, "json", text + "\n"),)
