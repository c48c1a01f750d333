"""Connectors and plan renderers, found only through their entry-point groups.

The built-in ones are registered in stridewise's own ``pyproject.toml`` exactly as a plugin
registers its own (docs/plugins.md), so there is one door: ``stridewise.connectors`` for
sources of activities (:class:`planner.connector.Connector`) and ``stridewise.renderers`` for
plan formats (:class:`planner.renderer.Renderer`). The drill catalogue has its own group,
``stridewise.catalogues``, read by :mod:`drills.catalogue`.

Names are read from the installed metadata without importing anything, so the command line
can offer them as choices at start-up; a plugin's code is imported only when it is used.
"""

from __future__ import annotations

from functools import cache
from importlib.metadata import EntryPoint, entry_points
from typing import TYPE_CHECKING, Final, cast

from planner.errors import ConfigError

if TYPE_CHECKING:
    from connectors.garmin import GarminService
    from connectors.strava import StravaService
    from planner.connector import Connector
    from planner.delivery import renderers as builtin
    from planner.renderer import Renderer

    # The built-ins keep the protocols: mypy checks these assignments (never run).
    _CHECKED_CONNECTORS: tuple[Connector, ...] = (StravaService(), GarminService())
    _CHECKED_RENDERERS: tuple[Renderer, ...] = (
        builtin.HtmlRenderer(),
        builtin.TextRenderer(),
        builtin.MarkdownRenderer(),
        builtin.IcsRenderer(),
        builtin.WorkoutFitRenderer(),
        builtin.JsonRenderer(),
    )

CONNECTORS_GROUP: Final = "stridewise.connectors"
RENDERERS_GROUP: Final = "stridewise.renderers"

#: The distribution whose entry points are the built-in ones: listed first.
_OWN_DISTRIBUTION: Final = "stridewise"

#: What every registered object must have, per group (the protocols' attributes).
_CONNECTOR_ATTRIBUTES: Final = (
    "name",
    "label",
    "source",
    "trainable",
    "per_athlete",
    "ref_key",
    "connect",
    "disconnect",
    "open",
)
_RENDERER_ATTRIBUTES: Final = ("name", "needs_folder", "render")


@cache
def _registered(group: str) -> tuple[EntryPoint, ...]:
    """The group's entry points: stridewise's own first, then plugins, each by name. A name
    registered twice is a broken installation: one clear error."""

    def plugin_then_name(ep: EntryPoint) -> tuple[bool, str]:
        own = ep.dist is not None and ep.dist.name == _OWN_DISTRIBUTION
        return (not own, ep.name)

    ordered = sorted(entry_points(group=group), key=plugin_then_name)
    seen: dict[str, EntryPoint] = {}
    for ep in ordered:
        if ep.name in seen:
            raise ConfigError(
                f"{group}: {ep.name!r} is registered twice ({seen[ep.name].value} and"
                f" {ep.value}); uninstall one of the plugins"
            )
        seen[ep.name] = ep
    return tuple(ordered)


def connector_names() -> tuple[str, ...]:
    """The ``stridewise sync NAME`` choices."""
    return tuple(ep.name for ep in _registered(CONNECTORS_GROUP))


def renderer_names() -> tuple[str, ...]:
    """The ``stridewise plan --format`` choices."""
    return tuple(ep.name for ep in _registered(RENDERERS_GROUP))


def load_connector(name: str) -> Connector:
    """The registered connector called ``name``; ConfigError names the choices otherwise."""
    return cast("Connector", _load(CONNECTORS_GROUP, name, _CONNECTOR_ATTRIBUTES))


def load_renderer(name: str) -> Renderer:
    """The registered plan format called ``name``; ConfigError names the choices otherwise."""
    return cast("Renderer", _load(RENDERERS_GROUP, name, _RENDERER_ATTRIBUTES))


def all_connectors() -> list[Connector]:
    return [load_connector(name) for name in connector_names()]


def all_renderers() -> list[Renderer]:
    return [load_renderer(name) for name in renderer_names()]


def _load(group: str, name: str, attributes: tuple[str, ...]) -> object:
    by_name = {ep.name: ep for ep in _registered(group)}
    entry_point = by_name.get(name)
    if entry_point is None:
        raise ConfigError(f"no {group} plugin called {name!r}: choose from {', '.join(by_name)}")
    label = f"{group} plugin {name!r} ({entry_point.value})"
    try:
        factory = entry_point.load()
        obj = factory()
    except Exception as exc:  # a broken plugin is its installer's to fix: one line, not ours
        raise ConfigError(f"{label} cannot be loaded: {type(exc).__name__}: {exc}") from exc
    missing = [a for a in attributes if not hasattr(obj, a)]
    if missing:
        raise ConfigError(f"{label} lacks {', '.join(missing)} (see docs/plugins.md)")
    if getattr(obj, "name") != name:  # noqa: B009 - checked by hasattr above
        raise ConfigError(f"{label} calls itself {obj.name!r}; the names must match")
    return obj


def forget_registrations() -> None:
    """Read the entry points again (after installing a plugin into a running process)."""
    _registered.cache_clear()
