"""Memory contexts and loaders for cache tests: realistic values, counted database loads."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta, timezone

from memlayer.records import ANY_SOURCE, EntityRecord, MemoryContext, MemoryRecord, ReadFloor


def make_context(user_id: int, version: int, memories: int = 2) -> MemoryContext:
    """A context with non-ASCII text, an aware non-UTC timestamp and mixed JSON values."""
    seoul = timezone(timedelta(hours=9))
    base = datetime(2024, 5, 1, 12, 30, 15, 123456, tzinfo=seoul)
    return MemoryContext(
        user_id=user_id,
        version=version,
        memories=tuple(
            MemoryRecord(
                id=version * 100 + i,
                summary=f"v{version} 대화 요약 #{i} — café ☕",
                intent="recommend" if i % 2 else None,
                entities=("서울", "Busan"),
                message_count=i + 1,
                created_at=base - timedelta(minutes=i),
                chat_session_id=f"cs-{i}" if i else None,
            )
            for i in range(memories)
        ),
        preferences={"language": "ko", "diet": ["vegan", 1, 2.5, None, True]},
        entities=(EntityRecord("city", "서울", version + 3, datetime(2024, 5, 1, tzinfo=UTC)),),
    )


class CountingLoader:
    """A loader that records how often the database would have been queried, and the
    floor each load was given."""

    def __init__(self, context: MemoryContext) -> None:
        self.context = context
        self.calls = 0
        self.floors: list[ReadFloor] = []

    async def __call__(self, floor: ReadFloor = ANY_SOURCE) -> MemoryContext:
        self.calls += 1
        self.floors.append(floor)
        await asyncio.sleep(0)  # let other loads pile up behind this one
        return self.context
