"""Metrics of the API layer (HTTP metrics come from prometheus-fastapi-instrumentator).

Gauges are summed over the live workers of one ``memlayer serve --workers N`` (see
``memlayer.multiproc``).
"""

from prometheus_client import Counter, Gauge

WS_SESSIONS_ACTIVE = Gauge(
    "memlayer_ws_sessions_active", "Open chat WebSockets.", multiprocess_mode="livesum"
)
WS_TURNS = Counter("memlayer_ws_turns_total", "Chat turns answered, by outcome.", ["outcome"])
WORKERS = Gauge(
    "memlayer_api_workers",
    "API worker processes serving (1 per process; summed over the live workers).",
    multiprocess_mode="livesum",
)
