"""A second process with a store handle of its own, driven line by line over stdin/stdout.

Run as ``python -m tests.support.store_child`` from the repository root with the store's
settings in the environment (``MEMLAYER_DATABASE_URL``, ``MEMLAYER_REDIS_URL``,
``MEMLAYER_CACHE_KEY_PREFIX``...). It prints ``{"ready": true}`` once the store is open,
then answers each JSON command line with one JSON line:

- ``{"op": "put", "ns": [...], "key": "k", "value": {...}}`` -> ``{"ok": true}``
- ``{"op": "get", "ns": [...], "key": "k"}`` -> ``{"value": {...} or null}``
- ``{"op": "search", "ns": [...]}`` -> ``{"keys": [...]}``

and exits when stdin closes.
"""

from __future__ import annotations

import asyncio
import json
import sys
from typing import Any

from memlayer.settings import Settings
from memlayer.store import MemlayerStore, open_store


async def _answer(store: MemlayerStore, command: dict[str, Any]) -> dict[str, Any]:
    namespace = tuple(command["ns"])
    if command["op"] == "put":
        await store.aput(namespace, command["key"], command["value"])
        return {"ok": True}
    if command["op"] == "get":
        item = await store.aget(namespace, command["key"])
        return {"value": item.value if item is not None else None}
    if command["op"] == "search":
        return {"keys": [i.key for i in await store.asearch(namespace, limit=100)]}
    return {"error": f"unknown op {command['op']!r}"}


async def main() -> None:
    loop = asyncio.get_running_loop()
    async with open_store(Settings()) as store:
        print(json.dumps({"ready": True}), flush=True)
        while line := await loop.run_in_executor(None, sys.stdin.readline):
            print(json.dumps(await _answer(store, json.loads(line))), flush=True)


if __name__ == "__main__":
    asyncio.run(main())
