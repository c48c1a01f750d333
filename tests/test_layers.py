"""The layers of the house, read from the source: who may import whom.

``planner/`` holds the pure core; ``planner/store`` (SQLite and files), ``planner/delivery``
(rendering, charts, mail) and ``planner/services`` (the use cases every face calls) touch the
world; ``connectors/`` talk to vendors and return our records. These tests parse every module's
imports (including those inside functions and ``TYPE_CHECKING`` blocks) so that a change cannot
quietly break the direction of the layers.
"""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent

#: Libraries that touch disk, network, clock-driven scheduling, SMTP or a display: the core must
#: not import them (matplotlib and jinja2 render to files and belong to delivery).
IO_LIBRARIES = frozenset(
    {
        "sqlite3",
        "smtplib",
        "ssl",
        "socket",
        "http",
        "urllib",
        "requests",
        "email",
        "shutil",
        "tempfile",
        "subprocess",
        "fcntl",
        "zipfile",
        "gzip",
        "keyring",
        "fitdecode",
        "fitfast",
        "garmin_fit_sdk",
        "stravalib",
        "garminconnect",
        "matplotlib",
        "jinja2",
        "css_inline",
        "icalendar",
        "pyarrow",
        "skops",
        "tqdm",
        "click",
        "webbrowser",
    }
)

#: What connectors may read of the application: core types, and where our files live
#: (``planner.store.config``: the data directory and config.toml, never the database).
CONNECTOR_ALLOWED_SHELL = frozenset({"planner.store.config"})

#: What ``cli.py`` may import of ours: the services, the error root, and the configuration.
CLI_ALLOWED_PREFIXES = ("planner.services.", "planner.errors", "planner.store.config")


def _module_name(path: Path) -> str:
    parts = path.relative_to(ROOT).with_suffix("").parts
    if parts[-1] == "__init__":
        parts = parts[:-1]
    return ".".join(parts)


def _our_modules() -> dict[str, Path]:
    found = {"cli": ROOT / "cli.py"}
    for package in ("planner", "connectors", "drills", "templates"):
        for path in sorted((ROOT / package).rglob("*.py")):
            found[_module_name(path)] = path
    return found


MODULES = _our_modules()


def _imports(module: str) -> Iterator[str]:
    """Every module name ``module`` imports, resolved to the longest name that exists."""
    tree = ast.parse(MODULES[module].read_text(encoding="utf-8"))
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                yield alias.name
        elif isinstance(node, ast.ImportFrom) and node.module is not None:
            if node.level:  # relative imports are not used in this code base
                pytest.fail(f"{module}: relative import of {node.module}")
            for alias in node.names:
                candidate = f"{node.module}.{alias.name}"
                yield candidate if candidate in MODULES else node.module


def _ours(name: str) -> bool:
    return name in MODULES or name.split(".")[0] in {"planner", "connectors", "drills", "cli"}


def _layer(module: str) -> str:
    parts = module.split(".")
    if parts[0] == "planner" and len(parts) > 2 and parts[1] in {"store", "delivery", "services"}:
        return f"planner.{parts[1]}"
    if parts[0] == "planner" and len(parts) == 2 and parts[1] in {"store", "delivery", "services"}:
        return module
    return "planner" if parts[0] == "planner" else parts[0]


CORE = sorted(m for m in MODULES if _layer(m) == "planner")
CONNECTORS = sorted(m for m in MODULES if _layer(m) == "connectors")


def test_the_tree_has_the_layers() -> None:
    """The core sits directly in planner/; the shell in named subpackages."""
    assert {"planner.store", "planner.delivery", "planner.services"} <= set(MODULES)
    for core in ("planner.features", "planner.model", "planner.planbuild", "planner.training"):
        assert core in CORE
    assert "planner.services.weekly" in MODULES
    assert "planner.store.database" in MODULES


@pytest.mark.parametrize("module", CORE)
def test_core_imports_no_shell_and_no_io_library(module: str) -> None:
    for name in _imports(module):
        top = name.split(".")[0]
        assert top not in IO_LIBRARIES, f"{module} (pure core) imports {name}"
        if _ours(name):
            assert _layer(name) in {"planner", "drills"}, f"{module} (pure core) imports {name}"


@pytest.mark.parametrize("module", CONNECTORS)
def test_connectors_import_only_core_types(module: str) -> None:
    for name in _imports(module):
        if not _ours(name) or name.startswith("connectors"):
            continue
        allowed = _layer(name) == "planner" or name in CONNECTOR_ALLOWED_SHELL
        assert allowed, f"{module} imports {name}: connectors return records, never use the shell"


def test_cli_imports_services_errors_and_config_only() -> None:
    for name in _imports("cli"):
        if _ours(name):
            assert name.startswith(CLI_ALLOWED_PREFIXES), f"cli.py imports {name}"


def test_delivery_and_store_do_not_call_services() -> None:
    """Services wire store + core + delivery; the layers below never reach back up."""
    for module in MODULES:
        if _layer(module) in {"planner.store", "planner.delivery"}:
            for name in _imports(module):
                assert not name.startswith("planner.services"), f"{module} imports {name}"


def test_store_does_not_render_or_send() -> None:
    for module in MODULES:
        if _layer(module) == "planner.store":
            for name in _imports(module):
                assert not name.startswith("planner.delivery"), f"{module} imports {name}"


def test_no_import_cycles() -> None:
    graph = {m: {n for n in _imports(m) if n in MODULES and n != m} for m in MODULES}
    # A package's __init__ is imported on the way to its modules: not an edge of interest.
    for edges in graph.values():
        edges.difference_update({"planner", "connectors", "drills", "templates"})
    state: dict[str, int] = {}
    stack: list[str] = []

    def visit(node: str) -> None:
        state[node] = 1
        stack.append(node)
        for nxt in sorted(graph[node]):
            if state.get(nxt) == 1:
                cycle = [*stack[stack.index(nxt) :], nxt]
                pytest.fail("import cycle: " + " -> ".join(cycle))
            if nxt not in state:
                visit(nxt)
        stack.pop()
        state[node] = 2

    for module in sorted(graph):
        if module not in state:
            visit(module)


def test_the_checks_see_a_violation() -> None:
    """The reader itself works: it finds the imports a module really has."""
    assert "planner.store.database" in set(_imports("planner.services.weekly"))
    assert "planner.errors" in set(_imports("cli"))
    assert _layer("planner.services.weekly") == "planner.services"
    assert _layer("planner.features") == "planner"
