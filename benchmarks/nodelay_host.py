"""`python -m local.host`, but with TCP_NODELAY on the connections it accepts (benchmark only).

`local.host._bind` makes its listening socket with `socket.socket(AF_INET, SOCK_STREAM)`,
whose `proto` is 0. asyncio sets TCP_NODELAY only on sockets whose `proto` is IPPROTO_TCP,
so the accepted connections keep Nagle's algorithm: uvicorn writes the response head and
body separately, the body waits for the client's delayed ACK, and every answer takes about
40 ms more (measured in docs/performance.md, "Load"). This runs the same host with the
socket made as `socket.socket(AF_INET, SOCK_STREAM, IPPROTO_TCP)` to show what the app
itself costs. If local.host makes its socket that way already, this changes nothing.
"""

from __future__ import annotations

import socket
import sys

from local import host


def _bind_tcp(port: int) -> socket.socket:
    """As `local.host._bind`, with the protocol named so asyncio disables Nagle on accepts."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind(("127.0.0.1", port))
    except OSError:
        sock.close()
        raise
    return sock


if __name__ == "__main__":
    host._bind = _bind_tcp
    sys.exit(host.main())
