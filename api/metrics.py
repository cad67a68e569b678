"""Metrics of the API layer (HTTP metrics come from prometheus-fastapi-instrumentator)."""

from prometheus_client import Counter, Gauge

WS_SESSIONS_ACTIVE = Gauge("memlayer_ws_sessions_active", "Open chat WebSockets.")
WS_TURNS = Counter("memlayer_ws_turns_total", "Chat turns answered, by outcome.", ["outcome"])
