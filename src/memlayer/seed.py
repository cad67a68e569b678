"""`memlayer seed`: bulk-create users with memories for load tests and benchmarks.

Rows go in with multi-row INSERTs in batches (not one request per row). All seeded
users share one password, hashed once: this is test data, said so in the CSV's name.
"""

from __future__ import annotations

import asyncio
import csv
import random
import sys
import time
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from sqlalchemy import insert

from memlayer.memory.db import Database
from memlayer.memory.models import (
    ConversationMemory,
    EntityMemory,
    LocalAuth,
    MemoryVersion,
    User,
    UserPreference,
)
from memlayer.memory.users import hash_password
from memlayer.settings import Settings

SEED_PASSWORD = "loadtest-password"
DISTRICTS = ["강남구", "서초구", "송파구", "마포구", "용산구", "성동구", "영등포구", "분당구"]
TOPICS = [
    ("market", "{d} 아파트 시세 문의"),
    ("loan", "{d} 주택담보대출 한도 문의"),
    ("contract", "{d} 전세 계약 주의사항 문의"),
    ("risk", "{d} 깡통전세 위험 문의"),
    ("legal", "{d} 취득세 문의"),
]


@dataclass(frozen=True)
class SeedResult:
    users: int
    memories: int
    seconds: float
    credentials: Path | None
    first_user_id: int
    last_user_id: int


def _progress(done: int, total: int, started: float) -> None:
    rate = done / max(time.perf_counter() - started, 1e-9)
    sys.stderr.write(f"\r  seeding users {done:>8,}/{total:,}  ({rate:,.0f} users/s)")
    sys.stderr.flush()


async def seed(
    settings: Settings,
    *,
    users: int,
    memories: int,
    credentials: Path | None,
    batch: int = 1000,
    email_prefix: str | None = None,
) -> SeedResult:
    database = Database.from_settings(settings)
    rng = random.Random(42)
    prefix = email_prefix or f"seed-{uuid.uuid4().hex[:6]}"
    password_hash = await asyncio.to_thread(hash_password, SEED_PASSWORD)
    started = time.perf_counter()
    ids: list[int] = []
    rows: list[tuple[str, int]] = []  # (email, user id) for the credentials file
    now = datetime.now(UTC)
    try:
        for offset in range(0, users, batch):
            count = min(batch, users - offset)
            emails = [f"{prefix}-{offset + i}@loadtest.example.com" for i in range(count)]
            async with database.transaction() as db:
                new_ids = list(
                    (
                        await db.execute(
                            insert(User).returning(User.id), [{"email": e} for e in emails]
                        )
                    ).scalars()
                )
                await db.execute(
                    insert(LocalAuth),
                    [{"user_id": uid, "password_hash": password_hash} for uid in new_ids],
                )
                if memories:
                    await db.execute(
                        insert(ConversationMemory),
                        [_memory(rng, uid, m, now) for uid in new_ids for m in range(memories)],
                    )
                    await db.execute(
                        insert(UserPreference),
                        [
                            {"user_id": uid, "key": "region", "value": rng.choice(DISTRICTS)}
                            for uid in new_ids
                        ],
                    )
                    await db.execute(
                        insert(EntityMemory),
                        [
                            {
                                "user_id": uid,
                                "entity_type": "region",
                                "name": rng.choice(DISTRICTS),
                                "mention_count": memories,
                            }
                            for uid in new_ids
                        ],
                    )
                    await db.execute(
                        insert(MemoryVersion),
                        [{"user_id": uid, "version": memories + 2} for uid in new_ids],
                    )
            ids.extend(new_ids)
            rows.extend(zip(emails, new_ids, strict=True))
            _progress(len(ids), users, started)
    finally:
        await database.aclose()
    sys.stderr.write("\n")
    if credentials is not None:
        credentials.parent.mkdir(parents=True, exist_ok=True)
        with credentials.open("w", newline="") as handle:
            writer = csv.writer(handle)
            writer.writerow(["email", "password", "user_id"])
            writer.writerows((email, SEED_PASSWORD, uid) for email, uid in rows)
    return SeedResult(
        users=len(ids),
        memories=len(ids) * memories,
        seconds=time.perf_counter() - started,
        credentials=credentials,
        first_user_id=min(ids) if ids else 0,
        last_user_id=max(ids) if ids else 0,
    )


def _memory(rng: random.Random, user_id: int, index: int, now: datetime) -> dict[str, Any]:
    intent, template = rng.choice(TOPICS)
    district = rng.choice(DISTRICTS)
    return {
        "user_id": user_id,
        "summary": template.format(d=district),
        "intent": intent,
        "entities": [district],
        "message_count": 2,
        "created_at": now - timedelta(minutes=index),
    }


def print_summary(result: SeedResult) -> None:
    rate = result.users / max(result.seconds, 1e-9)
    print()
    print("  seed summary")
    print("  ─────────────────────────────────────────")
    print(f"  users             {result.users:>12,}")
    print(f"  memories          {result.memories:>12,}")
    print(f"  user ids          {result.first_user_id:>6} … {result.last_user_id}")
    print(f"  time              {result.seconds:>11.1f}s  ({rate:,.0f} users/s)")
    if result.credentials:
        print(f"  credentials       {result.credentials}  (password: {SEED_PASSWORD})")
