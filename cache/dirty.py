"""Users whose committed write could not be installed in Redis.

While Redis is unreachable (or a write-through failed), Redis may still hold an older
context for these users. Loads for them bypass Redis, and on recovery each one gets a
versioned invalidation marker before the breaker closes (invariant 7). The set is
bounded: past ``max_users`` it stops remembering individual users and records that the
whole cache must be invalidated instead (a generation bump).
"""

from __future__ import annotations

from collections.abc import Hashable
from typing import Generic, TypeVar

K = TypeVar("K", bound=Hashable)


class DirtyKeys(Generic[K]):
    """key -> highest version written while Redis could not be told (any key family)."""

    __slots__ = ("_max", "_versions", "overflowed", "pending")

    def __init__(self, max_users: int) -> None:
        self._max = max_users
        self._versions: dict[K, int] = {}
        self.overflowed = False
        # Read on every load: True while anything is remembered (a plain attribute).
        self.pending = False

    def __len__(self) -> int:
        return len(self._versions)

    def __contains__(self, user_id: object) -> bool:
        return self.overflowed or user_id in self._versions

    def add(self, user_id: K, version: int) -> None:
        self.pending = True
        if self.overflowed:
            return  # the pending generation bump covers this user
        current = self._versions.get(user_id)
        if current is not None:
            if version > current:
                self._versions[user_id] = version
            return
        if len(self._versions) >= self._max:
            # Too many to track one by one: forget them all, bump the generation later.
            self._versions.clear()
            self.overflowed = True
            return
        self._versions[user_id] = version

    def version_of(self, user_id: K) -> int:
        """The highest version remembered for the user (0 when none, or overflowed)."""
        return self._versions.get(user_id, 0)

    def snapshot(self) -> list[tuple[K, int]]:
        return list(self._versions.items())

    def discard(self, user_id: K, version: int) -> None:
        """Forget a user once invalidated at ``version``, unless a newer write came since."""
        current = self._versions.get(user_id)
        if current is not None and current <= version:
            del self._versions[user_id]
        self._refresh()

    def take_overflow(self) -> bool:
        """Claim the pending generation bump (call ``mark_overflow`` again if it fails)."""
        was = self.overflowed
        self.overflowed = False
        self._refresh()
        return was

    def mark_overflow(self) -> None:
        self.overflowed = True
        self.pending = True

    def _refresh(self) -> None:
        self.pending = self.overflowed or bool(self._versions)


class DirtyUsers(DirtyKeys[int]):
    """user id -> highest memory version written while Redis could not be told."""

    __slots__ = ()
