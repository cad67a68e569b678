"""Reading the cache the way a test checks it: the current generation, a user's value."""

from __future__ import annotations

from memlayer.cache import RedisClient
from memlayer.cache.codec import decode, value_version
from memlayer.cache.epoch_record import EpochRecord
from memlayer.cache.keys import context_key, epoch_key


async def epoch_generation(client: RedisClient, prefix: str) -> int | None:
    """The generation Redis's epoch record names (None: no record)."""
    record = EpochRecord.parse(await client.get(epoch_key(prefix)))
    return None if record is None else record.generation


async def raw_value(client: RedisClient, prefix: str, user_id: int) -> bytes | None:
    """The user's value at the generation the epoch record names (None: nothing)."""
    generation = await epoch_generation(client, prefix)
    if generation is None:
        return None
    raw: bytes | None = await client.get(context_key(prefix, user_id, generation))
    return raw


async def cached_version(client: RedisClient, prefix: str, user_id: int) -> int | None:
    """The version of the user's COMPLETE cached context (None: absent or a marker)."""
    raw = await raw_value(client, prefix, user_id)
    context = decode(raw) if raw else None
    return None if context is None else context.version


async def header_version(client: RedisClient, prefix: str, user_id: int) -> int | None:
    """The version in the user's value header, complete or marker (None: absent)."""
    raw = await raw_value(client, prefix, user_id)
    return None if raw is None else value_version(raw)
