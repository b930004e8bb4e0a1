"""The event outbox in Redis: one stream per shard, read by the relay's group."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, cast

from redis.exceptions import ResponseError

from tutorlane.adapters.codecs import outbox_entry
from tutorlane.adapters.redis_sessions import DEFAULT_SHARDS, RedisClient, shard_tag
from tutorlane.commands.ports import OutboxEntry

GROUP = "relay"


class RedisEventOutbox:
    """Reads the `tl:{sNN}:e` streams with a consumer group; trims what is relayed."""

    def __init__(self, redis: RedisClient, shards: int = DEFAULT_SHARDS) -> None:
        self.redis = redis
        self.shards = shards

    def key(self, shard: int) -> str:
        """Return the stream key of one shard."""
        return f"{shard_tag(shard)}:e"

    async def ensure_groups(self) -> None:
        """Create the relay's consumer group on every shard, once."""
        for shard in range(self.shards):
            await self.ensure_group(shard)

    async def ensure_group(self, shard: int) -> None:
        """Create the relay's consumer group on one shard, if it is not there."""
        try:
            await self.redis.xgroup_create(self.key(shard), GROUP, "0", mkstream=True)
        except ResponseError as ex:
            if "BUSYGROUP" not in str(ex):
                raise

    async def read(
        self, shard: int, consumer: str, count: int, block_ms: int, pending: bool
    ) -> list[OutboxEntry]:
        """Return this consumer's unacknowledged entries, or new ones."""
        streams: dict[Any, Any] = {self.key(shard): "0" if pending else ">"}
        block = None if pending else block_ms
        try:
            response: Any = await self.redis.xreadgroup(
                GROUP, consumer, streams, count=count, block=block
            )
        except ResponseError as ex:
            if "UNBLOCKED" in str(ex):
                # A flush deleted the stream this read waited on: the next read
                # finds the group gone, and makes it again.
                return []
            if "NOGROUP" not in str(ex):
                raise
            # NOTE: Redis lost the stream and its group (a flush, a failover to a
            # replica without them): make the group again, from the stream's start,
            # so that what the fast lane committed since is relayed.
            await self.ensure_group(shard)
            response = await self.redis.xreadgroup(
                GROUP, consumer, streams, count=count, block=block
            )
        if not response:
            return []
        rows = cast(list[tuple[bytes, dict[bytes, bytes]]], response[0][1])
        return [
            # A missing payload reads as an unreadable entry, parked by the relay.
            outbox_entry(entry_id.decode(), fields.get(b"e", b""))
            for entry_id, fields in rows
            if fields  # NOTE: a pending entry deleted meanwhile comes back empty
        ]

    async def reclaim(self, shard: int, consumer: str, idle_ms: int, count: int) -> int:
        """Take over entries that another consumer has left idle for `idle_ms`."""
        # NOTE: with justid, redis-py returns just the list of claimed ids.
        try:
            claimed: Any = await self.redis.xautoclaim(
                self.key(shard), GROUP, consumer, idle_ms, "0-0", count, justid=True
            )
        except ResponseError as ex:
            if "NOGROUP" not in str(ex):
                raise
            await self.ensure_group(shard)  # see read(): nothing to claim then
            return 0
        return len(claimed)

    async def acknowledge(self, shard: int, entry_ids: Sequence[str]) -> None:
        """Acknowledge and delete relayed entries, so the stream stays short."""
        if not entry_ids:
            return
        pipe = self.redis.pipeline(transaction=True)
        pipe.xack(self.key(shard), GROUP, *entry_ids)
        pipe.xdel(self.key(shard), *entry_ids)
        await pipe.execute()

    async def length(self) -> int:
        """Return how many entries wait in every shard together."""
        pipe = self.redis.pipeline(transaction=False)
        for shard in range(self.shards):
            pipe.xlen(self.key(shard))
        return sum(await pipe.execute())
