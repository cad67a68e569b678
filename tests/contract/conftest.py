"""Backends for the cache contract suite: fakeredis, a real Redis, a 3-node Redis Cluster.

Every test gets its own key prefix and deletes its keys by SCAN afterwards: the real
Redis at MEMLAYER_TEST_REDIS_URL is shared with other suites, so no FLUSHDB, ever.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator

import fakeredis
import pytest

from memlayer.cache.errors import REDIS_ERRORS
from tests.contract.cache_contract_support import Backend
from tests.support.redis_server import running_cluster
from tests.support.services import base_redis_url


@pytest.fixture(scope="session")
def redis_cluster_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """Three redis-server processes in cluster mode, owned by this test session."""
    with running_cluster(tmp_path_factory.mktemp("redis-cluster")) as url:
        yield url


@pytest.fixture(
    params=[
        "fakeredis",
        pytest.param("redis", marks=pytest.mark.external),
        pytest.param("cluster", marks=pytest.mark.external),
    ]
)
async def backend(request: pytest.FixtureRequest) -> AsyncIterator[Backend]:
    if request.param == "fakeredis":
        b = Backend("fakeredis", None, server=fakeredis.FakeServer())
    elif request.param == "redis":
        url = base_redis_url()
        b = Backend("redis", url)
        probe = b.client()
        try:
            await probe.ping()
        except REDIS_ERRORS as exc:
            await b.aclose()
            pytest.fail(
                f"no Redis at {url}: {exc}. Run `make test` (it starts the local "
                "server) or set MEMLAYER_TEST_REDIS_URL.",
                pytrace=False,
            )
    else:
        b = Backend("cluster", request.getfixturevalue("redis_cluster_url"))
    try:
        yield b
    finally:
        await b.aclose()
