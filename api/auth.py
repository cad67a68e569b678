"""Bearer tokens: signed JWTs verified by signature alone (no database on the hot path).

A verified token is remembered until it expires, so a warm request pays one dict
lookup instead of an HMAC and a JSON parse.
"""

from __future__ import annotations

import time
from collections import OrderedDict
from dataclasses import dataclass

import jwt


class InvalidToken(Exception):
    """The bearer token is missing, malformed, forged or expired."""


@dataclass(frozen=True, slots=True)
class IssuedToken:
    access_token: str
    expires_at: float


class TokenService:
    def __init__(
        self,
        secret: str,
        *,
        algorithm: str = "HS256",
        ttl_seconds: int = 3600,
        cache_size: int = 50_000,
    ) -> None:
        if len(secret) < 32:
            raise ValueError("MEMLAYER_JWT_SECRET must be at least 32 characters long")
        self._secret = secret
        self._algorithm = algorithm
        self._ttl = ttl_seconds
        self._verified: OrderedDict[str, tuple[int, float]] = OrderedDict()
        self._cache_size = cache_size

    def issue(self, user_id: int) -> IssuedToken:
        now = int(time.time())
        expires_at = now + self._ttl
        claims = {"sub": str(user_id), "iat": now, "exp": expires_at, "typ": "access"}
        return IssuedToken(jwt.encode(claims, self._secret, algorithm=self._algorithm), expires_at)

    def verify(self, token: str) -> int:
        """The user id the token was issued to; raises InvalidToken."""
        hit = self._verified.get(token)
        if hit is not None:
            user_id, expires_at = hit
            if time.time() < expires_at:
                return user_id
            self._verified.pop(token, None)
            raise InvalidToken("token expired")
        try:
            claims = jwt.decode(
                token,
                self._secret,
                algorithms=[self._algorithm],
                options={"require": ["sub", "exp", "iat"]},
            )
            user_id = int(claims["sub"])
        except jwt.ExpiredSignatureError as exc:
            raise InvalidToken("token expired") from exc
        except (jwt.InvalidTokenError, ValueError) as exc:
            raise InvalidToken("invalid token") from exc
        if claims.get("typ") != "access" or user_id <= 0:
            raise InvalidToken("invalid token")
        self._verified[token] = (user_id, float(claims["exp"]))
        if len(self._verified) > self._cache_size:
            self._verified.popitem(last=False)
        return user_id
