"""Session stores for the contract suite: fakeredis and a real Redis."""

from __future__ import annotations

from collections.abc import AsyncIterator

import fakeredis
import pytest
from redis.asyncio import Redis

from tutorlane.adapters.redis_sessions import RedisSessionStore


@pytest.fixture(params=["fakeredis", "redis"])
async def redis_client(request: pytest.FixtureRequest) -> AsyncIterator[Redis]:
    if request.param == "fakeredis":
        client: Redis = fakeredis.FakeAsyncRedis()
    else:
        client = Redis.from_url(request.getfixturevalue("redis_url"))
        await client.flushdb()
    yield client
    await client.aclose()


@pytest.fixture
async def store(redis_client: Redis) -> RedisSessionStore:
    return RedisSessionStore(redis_client, shards=4)
