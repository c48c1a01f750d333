"""The real web server on loopback for tests, and a roster with real runs to show.

``live_server`` runs the same uvicorn server ``stridewise serve`` runs (planner.web.server),
on a free loopback port in a thread of the test process, so tests can reach the store and
the loopback fakes (Strava, SMTP) it talks to. The ``roster_db`` fixture (tests/conftest.py)
gives each test a roster with real runs to show.
"""

from __future__ import annotations

import re
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
import requests

from planner.web.app import WebSettings
from planner.web.server import bind, make_server


@contextmanager
def live_server(db: Path, *, token: str | None = None, loopback_only: bool = True) -> Iterator[str]:
    """``http://127.0.0.1:PORT`` of a running server on ``db`` for the ``with`` block."""
    sock = bind("127.0.0.1", 0)
    server = make_server(WebSettings(db, token, loopback_only))
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not server.started:
        if time.monotonic() > deadline or not thread.is_alive():
            raise RuntimeError("the web server did not start")
        time.sleep(0.02)
    try:
        yield f"http://127.0.0.1:{sock.getsockname()[1]}"
    finally:
        server.should_exit = True
        thread.join(30)
        sock.close()


def csrf_of(html: str) -> str:
    found = re.search(r'name="csrf" value="([^"]+)"', html)
    assert found is not None, "no CSRF field on the page"
    return found.group(1)


def wait_for(check: object, timeout_s: float = 60.0) -> None:
    """Poll ``check()`` until it is true (background work), failing after ``timeout_s``."""
    deadline = time.monotonic() + timeout_s
    while not check():  # type: ignore[operator]
        if time.monotonic() > deadline:
            pytest.fail("background work did not finish in time")
        time.sleep(0.05)


def page(session: requests.Session, url: str) -> str:
    answer = session.get(url, timeout=60)
    assert answer.status_code == 200, (url, answer.status_code, answer.text[:300])
    return answer.text
