"""The wheel carries everything the program needs: templates, drill data, the shipped model."""

from __future__ import annotations

import os
import pty
import select
import subprocess
import sys
import zipfile
from pathlib import Path

from tests.conftest import FIT_DIR

ROOT = Path(__file__).resolve().parent.parent


def test_wheel_contains_code_templates_catalogue_and_model(tmp_path: Path) -> None:
    subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "wheel",
            "--no-deps",
            "--no-build-isolation",
            "-q",
            "-w",
            str(tmp_path),
            str(ROOT),
        ],
        check=True,
        capture_output=True,
    )
    (wheel,) = tmp_path.glob("stridewise-*.whl")
    names = set(zipfile.ZipFile(wheel).namelist())
    assert "cli.py" in names
    for package in ("planner", "connectors", "drills", "templates"):
        assert f"{package}/__init__.py" in names
        assert f"{package}/py.typed" in names or package == "templates"
    assert any(n.startswith("drills/catalogue/") and n.endswith(".toml") for n in names)
    assert any(n.startswith("templates/") and n.endswith(".j2") for n in names)
    for page in ("base", "roster", "athlete", "plan_fragment", "login", "error"):
        assert f"templates/web/{page}.html.j2" in names  # stridewise serve's pages
    assert "templates/web/web.css" in names
    assert "planner/web/app.py" in names
    assert any(n.startswith("planner/models/") and n.endswith(".skops") for n in names)
    assert any(n.startswith("planner/models/") and n.endswith(".npz") for n in names)
    assert not any(n.startswith(("tests/", "bench/")) for n in names)
    entry_points = next(n for n in names if n.endswith("entry_points.txt"))
    text = zipfile.ZipFile(wheel).read(entry_points).decode()
    assert "stridewise = cli:main" in text
    assert "drills:builtin_catalogue_path" in text


def test_progress_bar_on_a_terminal(tmp_path: Path) -> None:
    """On a TTY the import shows files, bytes and files/s on stderr; stdout stays clean."""
    leader, follower = pty.openpty()
    env = {**os.environ, "STRIDEWISE_HOME": str(tmp_path / "home"), "COLUMNS": "120"}
    proc = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "from cli import main; main()",
            "import",
            "--workers",
            "1",
            str(FIT_DIR),
        ],
        stdout=subprocess.PIPE,
        stderr=follower,
        env=env,
        cwd=ROOT,
    )
    os.close(follower)
    seen = b""
    while True:
        ready, _, _ = select.select([leader], [], [], 60)
        if not ready:
            break
        try:
            chunk = os.read(leader, 4096)
        except OSError:  # the child closed its end
            break
        if not chunk:
            break
        seen += chunk
    out, _ = proc.communicate(timeout=60)
    os.close(leader)
    assert proc.returncode == 0
    assert b"files/s" in seen
    assert b"/12 files" in seen
    assert b"files/s" not in out
    assert out.decode().startswith("imported ")
