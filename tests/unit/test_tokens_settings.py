"""Bearer tokens and settings: pure logic, no services."""

from __future__ import annotations

import time

import jwt
import pytest

from memlayer.api.auth import InvalidToken, TokenService
from memlayer.settings import Settings

SECRET = "unit-test-secret-" + "x" * 32


def test_issued_token_verifies_to_its_user():
    tokens = TokenService(SECRET)
    issued = tokens.issue(42)
    assert tokens.verify(issued.access_token) == 42
    assert tokens.verify(issued.access_token) == 42  # the remembered path


def test_remembered_token_is_refused_once_it_expires(monkeypatch):
    tokens = TokenService(SECRET, ttl_seconds=60)
    issued = tokens.issue(7)
    assert tokens.verify(issued.access_token) == 7
    later = time.time() + 120
    monkeypatch.setattr(time, "time", lambda: later)
    with pytest.raises(InvalidToken, match="expired"):
        tokens.verify(issued.access_token)


@pytest.mark.parametrize(
    "claims",
    [
        {"sub": "1", "iat": 0, "exp": 4102444800, "typ": "refresh"},
        {"sub": "abc", "iat": 0, "exp": 4102444800, "typ": "access"},
        {"sub": "0", "iat": 0, "exp": 4102444800, "typ": "access"},
        {"sub": "1", "exp": 4102444800, "typ": "access"},
    ],
)
def test_tokens_with_wrong_claims_are_refused(claims):
    with pytest.raises(InvalidToken):
        TokenService(SECRET).verify(jwt.encode(claims, SECRET, algorithm="HS256"))


def test_token_signed_with_none_algorithm_is_refused():
    token = jwt.encode({"sub": "1", "iat": 0, "exp": 4102444800, "typ": "access"}, None, "none")
    with pytest.raises(InvalidToken):
        TokenService(SECRET).verify(token)


def test_short_secrets_are_refused():
    with pytest.raises(ValueError, match="32"):
        TokenService("short")


def test_settings_come_from_memlayer_environment(monkeypatch):
    monkeypatch.setenv("MEMLAYER_REDIS_TIMEOUT_MS", "25")
    monkeypatch.setenv("MEMLAYER_DATABASE_URL", "postgresql+asyncpg://u@h/db")
    settings = Settings()
    assert settings.redis_timeout_ms == 25 and not settings.embedded


def test_jwt_secret_is_required_outside_embedded_mode(monkeypatch):
    monkeypatch.delenv("MEMLAYER_JWT_SECRET", raising=False)
    settings = Settings(database_url="postgresql+asyncpg://u@h/db")
    with pytest.raises(RuntimeError, match="MEMLAYER_JWT_SECRET"):
        settings.resolved_jwt_secret()


def test_embedded_mode_generates_a_dev_secret_once(tmp_path, monkeypatch):
    monkeypatch.delenv("MEMLAYER_JWT_SECRET", raising=False)
    monkeypatch.delenv("MEMLAYER_DATABASE_URL", raising=False)
    settings = Settings(data_dir=tmp_path)
    first = settings.resolved_jwt_secret()
    assert len(first) >= 32 and first == Settings(data_dir=tmp_path).resolved_jwt_secret()
    assert (tmp_path / "dev-jwt-secret").stat().st_mode & 0o077 == 0
