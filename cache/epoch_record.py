"""The epoch record Redis holds: ``<generation>:<run id of the server that took it>``.

Kept in its own module so the store (which reads and writes it) and the epoch watch
(which judges it) share one parser.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class EpochRecord:
    generation: int
    run_id: str  # '' when the server did not tell its run id (cluster, fakeredis)

    @classmethod
    def parse(cls, raw: object) -> EpochRecord | None:
        """None for a missing or unreadable record (both mean: Redis lost it)."""
        if isinstance(raw, bytes):
            raw = raw.decode("ascii", "replace")
        if not isinstance(raw, str):
            return None
        generation, sep, run_id = raw.partition(":")
        if not sep or not generation.isdigit():
            return None
        return cls(int(generation), run_id)

    def encode(self) -> str:
        return f"{self.generation}:{self.run_id}"
