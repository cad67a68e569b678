"""``memlayer serve`` as a real second process, configured from a Settings object.

For tests where processes matter: a session's next turn or its end landing on another API
process; a writer killed with SIGKILL right after an acknowledged write. One launcher, in
the package (``memlayer.chaos.server``; the chaos run and the workers tests use it too):
started on a free port, stopped (SIGTERM) or killed (SIGKILL) by PID, never by name.
"""

from __future__ import annotations

from typing import Any

from memlayer.chaos import server
from memlayer.chaos.server import settings_env
from memlayer.settings import Settings

__all__ = ["ServerProcess", "settings_env"]


class ServerProcess(server.ServerProcess):
    def __init__(
        self, settings: Settings, *, ready_path: str = "/healthz", **overrides: Any
    ) -> None:
        self.settings = settings.model_copy(update=overrides)
        super().__init__(
            {**settings_env(self.settings), "MEMLAYER_LOG_LEVEL": "WARNING"},
            ready_path=ready_path,
        )

    async def stop(self, grace: float = server.STOP_SECONDS) -> int | None:
        try:
            return await super().stop(grace)
        finally:
            self.close_log()
