"""The API suites' fixtures: a live server on real Postgres and Redis (tests/support)."""

from tests.support.api_server import api_settings, client, pg_proxy, redis_proxy, server

__all__ = ["api_settings", "client", "pg_proxy", "redis_proxy", "server"]
