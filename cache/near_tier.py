"""The near-cache's running parts in one process: its invalidation link and lag probes.

The near-cache itself lives in the Redis tier (``ContextCache.near``: it is also the memo
of decoded values). What makes it *serve* is an invalidation link attached to it; this
module starts one (and the lag probe writer and observer that turn probe keys into the
``memlayer_near_cache_invalidation_lag_seconds`` histogram) and closes them in reverse
order. The app's lifespan runs it when :func:`~memlayer.cache.invalidation.near_availability`
says the configuration can (one extra Redis connection per process).
"""

from __future__ import annotations

from dataclasses import dataclass

from memlayer.cache.context_cache import ContextCache
from memlayer.cache.invalidation import InvalidationLink
from memlayer.cache.lag_probe import LagObserver, LagProbeWriter
from memlayer.settings import Settings


@dataclass
class NearTier:
    link: InvalidationLink
    probes: LagProbeWriter | None

    @classmethod
    def start(cls, cache: ContextCache, settings: Settings, *, url: str | None = None) -> NearTier:
        """Attach a link to ``cache``'s near-cache and start it (and the lag probes).

        ``url``: the Redis the link connects to (default: ``settings.redis_url``; tests
        put a proxy of theirs in between). Hits are served once the link is established.
        """
        redis_url = url or settings.redis_url
        if redis_url is None:
            raise ValueError("a near-cache link needs a Redis URL (see near_availability)")
        observer = LagObserver(settings.near_cache_lag_probe_lifetime_ms)
        link = InvalidationLink.for_url(redis_url, cache.key_prefix, settings, probes=observer)
        cache.attach_link(link)
        link.start()
        probes = None
        if settings.near_cache_lag_probe_ms > 0:
            probes = LagProbeWriter(
                cache.client,
                cache.key_prefix,
                interval_s=settings.near_cache_lag_probe_ms / 1000,
                lifetime_ms=settings.near_cache_lag_probe_lifetime_ms,
            )
            probes.start()
        return cls(link, probes)

    async def aclose(self) -> None:
        """Probes first, then the link (the near-cache hears "lost" and drops everything)."""
        if self.probes is not None:
            await self.probes.aclose()
        await self.link.aclose()
