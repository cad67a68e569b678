"""Typed errors of the memory tier. The API maps them to HTTP in api/errors.py.

Nothing above ``memory/`` sees a SQLAlchemy or driver exception: ``memory/dberrors.py``
translates them into these, once, at the package boundary.
"""


class MemoryLayerError(Exception):
    """Base of every error memlayer's memory tier raises on purpose."""


class UnknownUser(MemoryLayerError):
    def __init__(self, user_id: int) -> None:
        super().__init__(f"unknown user id {user_id}")
        self.user_id = user_id


class InvalidMemory(MemoryLayerError, ValueError):
    """The caller passed something the memory tier will not store or answer."""


class MemoryNotFound(MemoryLayerError):
    def __init__(self, memory_id: int) -> None:
        super().__init__(f"memory {memory_id} not found")
        self.memory_id = memory_id


class SessionNotFound(MemoryLayerError):
    """No such chat session of the caller's (someone else's reads the same: no oracle)."""

    def __init__(self) -> None:
        super().__init__("no such chat session of yours")


class StoreUnavailable(MemoryLayerError):
    """Postgres could not be reached or answered in time; the write was NOT acknowledged."""


class EmailTaken(MemoryLayerError):
    """Registration with an email that has an account. The message never echoes the email."""

    def __init__(self) -> None:
        super().__init__("an account with this email already exists")


class BadCredentials(MemoryLayerError):
    def __init__(self) -> None:
        super().__init__("email or password is wrong")
