"""One settings object, read from ``MEMLAYER_*`` environment variables."""

from __future__ import annotations

import importlib.util
import logging
import secrets
from functools import lru_cache
from pathlib import Path

from pydantic import Field, SecretStr, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

log = logging.getLogger("memlayer")


class MissingEmbeddedExtra(RuntimeError):
    """Embedded mode (an unset database or Redis URL) without the ``embedded`` extra.

    A Postgres + Redis deployment does not install SQLite's driver or the in-process
    Redis stand-in; leaving a URL unset there is a configuration mistake, said plainly.
    """


class MissingRedisUrl(RuntimeError):
    """A real database with the cache on but no Redis URL.

    An in-process stand-in per process would give every process its own cache, and they
    would disagree (one process's write never reaches another's cache).
    """


def require_embedded_extra(module: str, why: str) -> None:
    """Fail clearly unless ``module`` of the ``embedded`` extra is importable."""
    if importlib.util.find_spec(module) is None:
        raise MissingEmbeddedExtra(
            f"{why}, but {module} is not installed. Configure the real service, or install "
            "the embedded extra: pip install 'memlayer[embedded]'"
        )


class Settings(BaseSettings):
    """Every tunable of memlayer. Defaults run without set-up (embedded mode)."""

    model_config = SettingsConfigDict(env_prefix="MEMLAYER_", extra="ignore")

    # --- storage -------------------------------------------------------------------
    database_url: str | None = Field(
        default=None,
        description="postgresql+asyncpg://... ; unset means embedded SQLite in data_dir.",
    )
    database_replica_url: str | None = Field(
        default=None, description="Optional read replica used for cache fills."
    )
    database_prepared_statements: bool = Field(
        default=True, description="Turn off behind pgbouncer in transaction mode."
    )
    database_pool_size: int = 20
    database_max_overflow: int = 10
    database_pool_timeout_seconds: float = 5.0
    database_statement_timeout_ms: int = 5000
    redis_url: str | None = Field(
        default=None,
        description="redis://... or redis+cluster://... ; unset means in-process fakeredis "
        "in embedded mode only (with a database URL it is required, or cache_enabled=false).",
    )
    data_dir: Path = Path(".memlayer")

    # --- cache tier ----------------------------------------------------------------
    cache_enabled: bool = True
    cache_key_prefix: str = "memlayer"
    cache_ttl_seconds: int = 3600
    cache_ttl_jitter: float = Field(default=0.1, ge=0.0, le=0.5)
    redis_timeout_ms: int = Field(default=50, gt=0)
    redis_connect_timeout_ms: int = Field(default=100, gt=0)
    redis_max_connections: int = 64
    cache_lease_ms: int = Field(default=2000, gt=0)
    cache_fill_wait_ms: int = Field(default=250, ge=0)
    cache_fill_poll_ms: int = Field(default=10, gt=0)
    breaker_failure_threshold: int = Field(default=5, gt=0)
    breaker_cooldown_seconds: float = Field(default=2.0, gt=0)
    dirty_users_max: int = Field(default=10_000, gt=0)
    cache_max_value_bytes: int = Field(
        default=64 * 1024, gt=0, description="Encoded contexts above this are not cached."
    )
    cache_decoded_memo_size: int = Field(
        default=10_000,
        ge=0,
        description="Decoded LangGraph store namespaces kept per process when there is "
        "no near-cache (near_cache_max_entries=0), reused while Redis returns "
        "byte-identical values (0 disables). Otherwise the near-cache is the memo of every "
        "family.",
    )

    # --- coherence across processes (docs/architecture.md invariant 7; docs/coherence.md) -------
    # The bound: an acknowledged write is visible to every process within this time,
    # whatever happens to the writer or to Redis. It is composed of the settings below
    # (outbox grace + drain interval, or the epoch check), plus round trips; the
    # consistency checker calls a cached value "stale" only past it, and the alert
    # fires on any such observation.
    coherence_bound_ms: int = Field(
        default=2000,
        gt=0,
        description="Stated staleness bound across processes (checker and alert use it).",
    )
    outbox_grace_ms: int = Field(
        default=500,
        ge=0,
        description="Outbox rows younger than this are left to their writer's write-through.",
    )
    outbox_drain_interval_ms: int = Field(
        default=250, gt=0, description="How often every process drains the outbox."
    )
    outbox_drain_batch: int = Field(
        default=500, gt=0, description="Outbox rows taken per drain statement."
    )
    outbox_ack_interval_ms: int = Field(
        default=50, gt=0, description="How long acknowledgements wait to be batched."
    )
    outbox_ack_batch: int = Field(
        default=500, gt=0, description="Acknowledgements that trigger a batch delete at once."
    )
    outbox_stats_interval_seconds: float = Field(
        default=5.0, gt=0, description="How often each process counts the outbox backlog."
    )
    cache_epoch_check_ms: int = Field(
        default=500,
        gt=0,
        description="How often each process checks Redis's epoch record (restart, "
        "restore, failover, flush) and picks up newer generations.",
    )
    cache_recent_writes_max: int = Field(
        default=10_000,
        ge=0,
        description="Versions this process acknowledged, remembered per user so a "
        "lagging replica's older result is never used or cached.",
    )
    consistency_check_interval_ms: int = Field(
        default=1000,
        ge=0,
        description="How often each process samples cached versions against Postgres "
        "(0 disables the background checker).",
    )
    consistency_check_recent: int = Field(
        default=20, ge=0, description="Recently written users checked per round."
    )
    consistency_check_random: int = Field(
        default=20, ge=0, description="Randomly chosen users checked per round."
    )
    consistency_check_window_seconds: float = Field(
        default=60.0,
        gt=0,
        description="How far back 'recently written' reaches for the checker.",
    )

    # --- memory limits -------------------------------------------------------------
    memory_context_size: int = Field(
        default=5, ge=1, le=100, description="Memories kept in the cached context (the cap)."
    )
    memory_default_limit: int = Field(default=5, ge=0)
    summary_max_length: int = Field(default=2000, gt=0)
    context_max_entities: int = Field(default=20, ge=0)
    context_max_preferences: int = Field(default=50, ge=0)
    preference_value_max_bytes: int = Field(default=1024, gt=0)
    preference_key_max_length: int = Field(default=100, gt=0)

    # --- near-cache: decoded values in each process, invalidated by Redis -------------
    # (cache/near.py, cache/invalidation.py, cache/near_tier.py; docs/near-cache.md). The
    # same structure is the memo of decoded values, whether or not it may serve. Redis
    # Cluster and the embedded fakeredis have no usable client tracking: it does not
    # serve there (a log line says so), and stays the memo.
    near_cache_enabled: bool = Field(
        default=True,
        description="Serve hot contexts (and LangGraph store namespaces) from process "
        "memory, kept coherent by Redis client tracking (one extra Redis connection per "
        "process).",
    )
    near_cache_max_entries: int = Field(
        default=10_000,
        ge=0,
        description="Decoded values kept per process, contexts and store namespaces "
        "together (0: none, every Redis hit is decoded and nothing is served from process "
        "memory).",
    )
    near_cache_max_bytes: int = Field(
        default=16 * 1024 * 1024,
        gt=0,
        description="Bound on the summed encoded size of the entries. Process memory is "
        "4-10x this: each entry keeps its encoded bytes (for the decoded memo) and the "
        "decoded objects, measured at ~4x the encoded size for a 5-memory context and ~10x "
        "for small ones (1-5 short memories), where per-object overhead dominates.",
    )
    near_cache_max_age_seconds: float = Field(
        default=60.0,
        gt=0,
        description="An entry is re-read from Redis at least this often (a safety net; "
        "invalidations normally evict it long before).",
    )
    near_cache_recheck_fraction: float = Field(
        default=0.01,
        ge=0.0,
        le=1.0,
        description="Share of near hits re-read from Redis in the background and compared.",
    )
    near_cache_link_check_ms: int = Field(
        default=250,
        gt=0,
        description="An idle invalidation link is PINGed this often; with the timeout "
        "below, it bounds how long a silently dead link goes unnoticed.",
    )
    near_cache_link_timeout_ms: int = Field(
        default=250, gt=0, description="How long the link waits for a PONG or a set-up reply."
    )
    near_cache_reconnect_initial_ms: int = Field(default=50, gt=0)
    near_cache_reconnect_max_ms: int = Field(default=2000, gt=0)
    near_cache_lag_probe_ms: int = Field(
        default=1000,
        ge=0,
        description="How often each process writes a lag probe key (0: no probes).",
    )
    near_cache_lag_probe_lifetime_ms: int = Field(default=5000, gt=0)

    # --- LangGraph store (memlayer.store) --------------------------------------------
    store_default_ttl_minutes: float | None = Field(
        default=None, gt=0, description="TTL of items put without one; unset: never expire."
    )
    store_ttl_refresh_on_read: bool = True
    store_ttl_refresh_interval_seconds: float = Field(
        default=60.0,
        gt=0,
        description="Reads push a TTL item's expiry forward at most once per this interval "
        "(or half the item's TTL, if shorter).",
    )
    store_ttl_refresh_flush_seconds: float = Field(
        default=1.0,
        gt=0,
        description="TTL refreshes noted by reads are written together, at most one "
        "statement per this many seconds per process.",
    )
    store_cache_max_items: int = Field(
        default=200,
        ge=0,
        description="Namespaces with more live items than this are not cached (their gets "
        "and searches go to Postgres).",
    )
    store_cache_max_value_bytes: int = Field(
        default=256 * 1024,
        gt=0,
        description="A namespace whose cached value would be larger is not cached either.",
    )
    store_ttl_sweep_interval_minutes: float = Field(
        default=5.0,
        ge=0,
        description="How often each process deletes expired items; 0 turns the sweeper "
        "off (expired items are never returned either way).",
    )

    # --- sessions and auth ---------------------------------------------------------
    session_ttl_hours: float = Field(default=24.0, gt=0)
    jwt_secret: SecretStr | None = None
    jwt_algorithm: str = "HS256"
    jwt_ttl_seconds: int = Field(default=3600, gt=0)
    ws_auth_timeout_seconds: float = Field(
        default=10.0,
        gt=0,
        description="How long a signed-in session's socket waits for its auth frame.",
    )

    # --- abuse limits (``limits`` notation, e.g. "10/15 minutes"; empty turns one off) --
    rate_limit_login_failures: str = Field(
        default="10/15 minutes", description="Failed logins per account."
    )
    rate_limit_register: str = Field(default="20/hour", description="Registrations per IP.")
    rate_limit_anonymous_start: str = Field(
        default="60/minute", description="Anonymous POST /chat/start per IP."
    )
    rate_limit_redis_timeout_ms: int = Field(
        default=250, gt=0, description="How long a limit check waits for Redis before failing open."
    )
    max_request_body_bytes: int = Field(
        default=64 * 1024, gt=0, description="Larger request bodies are refused with 413."
    )

    # --- service -------------------------------------------------------------------
    host: str = "127.0.0.1"
    port: int = 8000
    log_level: str = "INFO"

    @field_validator("cache_key_prefix")
    @classmethod
    def _prefix_has_no_braces(cls, value: str) -> str:
        if "{" in value or "}" in value or not value:
            raise ValueError("cache_key_prefix must be non-empty and contain no braces")
        return value

    @field_validator(
        "rate_limit_login_failures", "rate_limit_register", "rate_limit_anonymous_start"
    )
    @classmethod
    def _a_rate_limit(cls, value: str) -> str:
        if value.strip():
            import limits

            try:
                limits.parse(value)
            except ValueError as exc:
                raise ValueError(
                    f"{value!r} is not a rate limit; write e.g. '10/15 minutes' or '60/minute'"
                ) from exc
        return value.strip()

    @property
    def embedded(self) -> bool:
        """True when no database URL is configured: SQLite plus in-process Redis."""
        return self.database_url is None

    def check_cache_configuration(self) -> None:
        """Refuse a real database with the cache on and no Redis URL (MissingRedisUrl)."""
        if self.cache_enabled and self.redis_url is None and not self.embedded:
            raise MissingRedisUrl(
                "MEMLAYER_DATABASE_URL is set but MEMLAYER_REDIS_URL is not: each process "
                "would keep its own in-process cache and they would disagree. Set "
                "MEMLAYER_REDIS_URL=redis://host:6379/0, or run without a cache with "
                "MEMLAYER_CACHE_ENABLED=false."
            )

    def resolved_database_url(self) -> str:
        if self.database_url:
            return self.database_url
        require_embedded_extra(
            "aiosqlite", "MEMLAYER_DATABASE_URL is not set, so memlayer would use embedded SQLite"
        )
        self.data_dir.mkdir(parents=True, exist_ok=True)
        return f"sqlite+aiosqlite:///{(self.data_dir / 'memlayer.db').resolve()}"

    def resolved_jwt_secret(self) -> str:
        """The signing secret. Outside embedded mode it must come from the environment."""
        if self.jwt_secret is not None:
            return self.jwt_secret.get_secret_value()
        if not self.embedded:
            raise RuntimeError(
                "MEMLAYER_JWT_SECRET is not set. Set it to a long random string "
                "(e.g. `python -c 'import secrets; print(secrets.token_urlsafe(48))'`)."
            )
        return _embedded_dev_secret(self.data_dir)


def _embedded_dev_secret(data_dir: Path) -> str:
    """Generate once and keep a development secret, so tokens survive restarts."""
    path = data_dir / "dev-jwt-secret"
    data_dir.mkdir(parents=True, exist_ok=True)
    if not path.exists():
        path.write_text(secrets.token_urlsafe(48))
        path.chmod(0o600)
        log.warning(
            "embedded mode: generated a development JWT secret in %s; "
            "set MEMLAYER_JWT_SECRET for anything but local use",
            path,
        )
    return path.read_text().strip()


@lru_cache
def get_settings() -> Settings:
    return Settings()
