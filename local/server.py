"""Run an ASGI app with uvicorn on 127.0.0.1: in a test's thread, or announced for the CLI."""

from __future__ import annotations

import contextlib
import socket
import threading
import time
from collections.abc import Iterator

import uvicorn
from starlette.applications import Starlette

from local.errors import HostError
from local.loader import FunctionTable


def bind(port: int) -> socket.socket:
    """A socket bound to 127.0.0.1:port (0 for any free port), ready for uvicorn."""
    # Naming TCP matters: asyncio sets TCP_NODELAY only on sockets whose proto says TCP,
    # and without it every response body waits ~40 ms for the client's delayed ACK.
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    # Same option uvicorn sets, so a port lingering in TIME_WAIT is not reported as busy.
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind(("127.0.0.1", port))
    except OSError:
        sock.close()
        raise
    return sock


def uvicorn_config(app: Starlette) -> uvicorn.Config:
    """Uvicorn settings shared by the CLI and test servers: quiet, lifespan required, fast."""
    return uvicorn.Config(
        app,
        # The C event loop and HTTP parser: the host process's CPU is what limits the local
        # host's throughput, and with asyncio and h11 they took a fifth of it
        # (docs/performance.md, "Load"). Named, so a missing package fails at start.
        loop="uvloop",
        http="httptools",
        # Nothing here sits behind a proxy, and no function sees the client's address.
        proxy_headers=False,
        access_log=False,
        log_level="warning",
        lifespan="on",
        timeout_graceful_shutdown=5,
        server_header=False,
    )


@contextlib.contextmanager
def serve_in_thread(app: Starlette, port: int = 0, timeout: float = 10.0) -> Iterator[str]:
    """Serve ``app`` with uvicorn on 127.0.0.1 in a background thread; yields the base URL."""
    sock = bind(port)
    server = uvicorn.Server(uvicorn_config(app))
    thread = threading.Thread(
        target=server.run, kwargs={"sockets": [sock]}, name="local-host", daemon=True
    )
    thread.start()
    try:
        deadline = time.monotonic() + timeout
        while not server.started:
            if not thread.is_alive() or time.monotonic() > deadline:
                raise HostError("the local host did not start (see the log above)")
            time.sleep(0.01)
        yield f"http://127.0.0.1:{sock.getsockname()[1]}"
    finally:
        server.should_exit = True
        thread.join(timeout)
        sock.close()


class AnnouncingServer(uvicorn.Server):
    """A uvicorn server that prints one line once it listens."""

    def __init__(self, config: uvicorn.Config, base_url: str, table: FunctionTable) -> None:
        super().__init__(config)
        self.base_url = base_url
        self.table = table

    async def startup(self, sockets: list[socket.socket] | None = None) -> None:
        await super().startup(sockets)
        if self.started:
            print(f"local host listening on {self.base_url}; {self.table.describe()}", flush=True)
