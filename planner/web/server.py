"""Running the web app under uvicorn on a socket we bind ourselves.

Binding first lets ``--port 0`` pick a free port and the address printed be the real one.
uvicorn's own access log is off: it would print query strings (OAuth codes, the webhook's
verify token) and calendar tokens; planner/web/security.py logs a redacted line instead.
"""

from __future__ import annotations

import logging
import socket
import sys
from collections.abc import Callable

import uvicorn

from planner.web.app import WebSettings, create_app


def bind(host: str, port: int) -> socket.socket:
    """A listening TCP socket on ``host``:``port`` (IPv6 when the host is an IPv6 address)."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind((host, port))
    sock.listen(128)
    sock.set_inheritable(True)
    return sock


def make_server(settings: WebSettings) -> uvicorn.Server:
    """The uvicorn server for ``settings`` (``run`` it on a socket from :func:`bind`)."""
    config = uvicorn.Config(
        create_app(settings),
        access_log=False,
        log_level="warning",
        server_header=False,
        lifespan="on",
        timeout_graceful_shutdown=10,
    )
    return uvicorn.Server(config)


def run(
    settings: WebSettings,
    sock: socket.socket,
    *,
    ready: Callable[[str], None] | None = None,
) -> None:
    """Serve until interrupted (Ctrl-C or SIGTERM), one log line per request on stderr."""
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("%(asctime)s %(name)s %(message)s"))
    web_log = logging.getLogger("stridewise")
    web_log.addHandler(handler)
    web_log.setLevel(logging.INFO)
    server = make_server(settings)
    host, port = sock.getsockname()[:2]
    if ready is not None:
        shown = f"[{host}]" if ":" in host else host
        ready(f"http://{shown}:{port}")
    try:
        server.run(sockets=[sock])
    finally:
        web_log.removeHandler(handler)
