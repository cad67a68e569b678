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


@contextmanager
def translated(
    action: str, *, conflict: Callable[[], MemoryLayerError] | None = None
) -> Iterator[None]:
    """Run a database action; its failures leave as StoreUnavailable or InvalidMemory.

    ``conflict`` builds the error for a unique or foreign-key violation when the caller
    gives one a meaning (registration: EmailTaken); otherwise it is InvalidMemory.

    The messages name the action, never the driver's text: that can carry hosts, SQL and
    the values the caller sent. The cause is logged (without parameters) for the on-call.
    """
    try:
        yield
    except MemoryLayerError:
        raise
    except UNAVAILABLE as exc:
        log.warning("database unavailable while %s: %s", action, type(exc).__name__)
        raise StoreUnavailable(f"{UNAVAILABLE_MESSAGE} ({action})") from exc
    except DBAPIError as exc:
        if exc.connection_invalidated:  # the dialect saw a dropped connection
            log.warning("database connection lost while %s: %s", action, _kind(exc))
            raise StoreUnavailable(f"{UNAVAILABLE_MESSAGE} ({action})") from exc
        # The server refused the statement (a constraint, a value it cannot store).
        kind = _kind(exc)
        log.info("database refused %s: %s", action, kind)
        if conflict is not None and isinstance(exc, IntegrityError):
            raise conflict() from exc
        raise InvalidMemory(f"the database refused {action} ({kind})") from exc
    except SQLAlchemyError as exc:
        log.error("database error while %s: %s", action, type(exc).__name__)
        raise StoreUnavailable(f"{UNAVAILABLE_MESSAGE} ({action})") from exc


def _kind(exc: DBAPIError) -> str:
    """The driver's error class name (e.g. ForeignKeyViolationError): no values, no SQL."""
    cause = getattr(exc.orig, "__cause__", None) or exc.orig or exc
    return type(cause).__name__
