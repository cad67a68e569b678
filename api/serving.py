"""How the app is served: the uvicorn options `memlayer serve` and the tests' servers share.

Kept apart from ``app`` so the serve command can read them without importing the app (and
prometheus_client) in the parent of several workers.
"""

from __future__ import annotations

from typing import Any

UVICORN_OPTIONS: dict[str, Any] = {
    "proxy_headers": True,
    "ws_max_size": 64 * 1024,
    # Longer than clients and load balancers keep idle connections (60 s is common): the
    # server must not close one at the moment a client reuses it (the client sees a reset).
    "timeout_keep_alive": 65,
}
