"""The one place where SQLAlchemy and driver exceptions become memlayer's typed errors.

Every module of ``memory/`` that talks to the database wraps the call in
:func:`translated`; nothing above this package ever sees a SQLAlchemy, asyncpg or socket
exception. "Postgres is unavailable" is recognised here and nowhere else.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Iterator
from contextlib import contextmanager

from sqlalchemy.exc import (
    DBAPIError,
    IntegrityError,
    InterfaceError,
    OperationalError,
    SQLAlchemyError,
)
from sqlalchemy.exc import TimeoutError as PoolTimeout

from memlayer.memory.errors import (
    InvalidMemory,
    MemoryLayerError,
    StoreUnavailable,
)

log = logging.getLogger(__name__)

# "Postgres is not answering" (down, unreachable, pool exhausted, statement timeout on
# the client side), as opposed to a bug or bad input.
UNAVAILABLE: tuple[type[BaseException], ...] = (
    OperationalError,
    InterfaceError,
    PoolTimeout,
    OSError,
    asyncio.TimeoutError,
)

UNAVAILABLE_MESSAGE = "the database is busy or unavailable; retry shortly"


def translate(
    exc: BaseException, action: str, *, conflict: Callable[[], MemoryLayerError] | None = None
) -> BaseException:
    """memlayer's typed error for a database failure; anything else comes back as it is.

    ``conflict`` builds the error for a unique or foreign-key violation when the caller
    gives one a meaning (registration: EmailTaken); otherwise it is InvalidMemory.
    The messages name the action, never the driver's text: that can carry hosts, SQL and
    the values the caller sent. The cause is logged (without parameters) for the on-call.
    """
    if isinstance(exc, MemoryLayerError):
        return exc
    if isinstance(exc, UNAVAILABLE) or (
        isinstance(exc, DBAPIError) and exc.connection_invalidated  # a dropped connection
    ):
        log.warning("database unavailable while %s: %s", action, type(exc).__name__)
        return StoreUnavailable(f"{UNAVAILABLE_MESSAGE} ({action})")
    if isinstance(exc, DBAPIError):
        # The server refused the statement (a constraint, a value it cannot store).
        kind = _kind(exc)
        log.info("database refused %s: %s", action, kind)
        if conflict is not None and isinstance(exc, IntegrityError):
            return conflict()
        return InvalidMemory(f"the database refused {action} ({kind})")
    if isinstance(exc, SQLAlchemyError):
        log.error("database error while %s: %s", action, type(exc).__name__)
        return StoreUnavailable(f"{UNAVAILABLE_MESSAGE} ({action})")
    return exc


@contextmanager
def translated(
    action: str, *, conflict: Callable[[], MemoryLayerError] | None = None
) -> Iterator[None]:
    """Run a database action; its failures leave as memlayer's typed errors (translate)."""
    try:
        yield
    except Exception as exc:
        error = translate(exc, action, conflict=conflict)
        if error is exc:
            raise
        raise error from exc


def _kind(exc: DBAPIError) -> str:
    """The driver's error class name (e.g. ForeignKeyViolationError): no values, no SQL."""
    cause = getattr(exc.orig, "__cause__", None) or exc.orig or exc
    return type(cause).__name__
