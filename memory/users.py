"""Users and local (password) authentication. Only argon2 hashes are stored."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerifyMismatchError
from sqlalchemy import select

from memlayer.memory.db import Database
from memlayer.memory.dberrors import translated
from memlayer.memory.errors import (
    BadCredentials,
    EmailTaken,
    InvalidMemory,
)
from memlayer.memory.models import LocalAuth, User

# argon2id at OWASP's recommended minimum (19 MiB, 2 passes, 1 lane): about 20 ms of one
# core per hash here, against about 120 ms of four lanes for argon2-cffi's defaults, which
# starved the event loop when hundreds of users signed in at once. Existing hashes carry
# their own parameters and still verify.
_hasher = PasswordHasher(time_cost=2, memory_cost=19_456, parallelism=1)


@dataclass(frozen=True, slots=True)
class UserInfo:
    id: int
    email: str
    type: str
    is_active: bool


def _secret(password: str) -> bytes:
    """The bytes argon2 hashes: any text, NUL and lone surrogates included (a password is
    never stored, only its hash, so nothing in it can be refused)."""
    return password.encode("utf-8", "surrogatepass")


def hash_password(password: str) -> str:
    return _hasher.hash(_secret(password))


def _encodable(text: str) -> bool:
    """False for strings UTF-8 cannot carry (lone surrogates): argon2 and Postgres refuse them."""
    try:
        text.encode()
    except UnicodeEncodeError:
        return False
    return True


def _verify(password_hash: str, password: str) -> bool:
    try:
        return _hasher.verify(password_hash, _secret(password))
    except (VerifyMismatchError, InvalidHashError):
        return False


class UserStore:
    def __init__(self, database: Database) -> None:
        self._db = database

    async def register(self, email: str, password: str) -> UserInfo:
        email = email.strip().lower()
        if not _encodable(email) or "\x00" in email:
            raise InvalidMemory("the email must be text without NUL characters")
        # Slow on purpose: in a thread, outside the transaction, off the event loop.
        password_hash = await asyncio.to_thread(hash_password, password)
        with translated("registration", conflict=EmailTaken):  # the unique email
            async with self._db.transaction() as db:
                user = User(email=email)
                db.add(user)
                await db.flush()
                db.add(LocalAuth(user_id=user.id, password_hash=password_hash))
                return UserInfo(user.id, user.email, user.type, user.is_active)

    async def authenticate(self, email: str, password: str) -> UserInfo:
        email = email.strip().lower()
        # Text no account can have (NUL, lone surrogates) is just a wrong password, at
        # the same cost as a real check so timing reveals nothing.
        usable = _encodable(email) and "\x00" not in email
        row = None
        if usable:
            with translated("login"):
                async with self._db.sessionmaker() as db:
                    row = (
                        await db.execute(
                            select(User, LocalAuth.password_hash)
                            .join(LocalAuth, LocalAuth.user_id == User.id)
                            .where(User.email == email)
                        )
                    ).first()
        if row is None:
            await asyncio.to_thread(hash_password, password)
            raise BadCredentials()
        user, password_hash = row
        if not await asyncio.to_thread(_verify, password_hash, password):
            raise BadCredentials()
        if not user.is_active:
            raise BadCredentials()
        return UserInfo(user.id, user.email, user.type, user.is_active)

    async def get(self, user_id: int) -> UserInfo | None:
        with translated("reading a user"):
            async with self._db.sessionmaker() as db:
                user = await db.get(User, user_id)
                return UserInfo(user.id, user.email, user.type, user.is_active) if user else None
