"""The floor: a minimal Falcon ASGI app doing one Redis GET and one SET per message.

It takes the same webhook body as tutorlane, reads the sender, GETs and SETs one key
per student, and answers 200 with a small JSON body: the two round trips any design
of the fast lane needs, and nothing else. `bench.fast_lane` runs it under the same
gunicorn + uvicorn configuration as `tutorlane serve --workers 2`:

    gunicorn --worker-class uvicorn_worker.UvicornWorker --workers 2 \
        --no-control-socket tutorlane.bench.floor_app:app

Redis is `BENCH_REDIS_URL` (database 10 by default).
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import Any

import falcon
import falcon.asgi
import msgspec
from redis.asyncio import Redis

REDIS_URL = os.environ.get("BENCH_REDIS_URL", "redis://127.0.0.1:6379/10")
_ACCEPTED = msgspec.json.encode({"status": "accepted"})


class _Sender(msgspec.Struct):
    sender: str = msgspec.field(name="from")


_decoder = msgspec.json.Decoder(_Sender)


class FloorResource:
    """`POST /webhooks/swiftchat/{secret}`: one GET and one SET, then 200."""

    def __init__(self) -> None:
        self.redis: Redis | None = None

    async def process_startup(
        self, scope: Mapping[str, Any], event: Mapping[str, Any]
    ) -> None:
        """Connect to Redis with the server."""
        # NOTE: redis-py's default pool fails past 100 connections in use.
        self.redis = Redis.from_url(REDIS_URL, max_connections=1024)

    async def process_shutdown(
        self, scope: Mapping[str, Any], event: Mapping[str, Any]
    ) -> None:
        """Close the connections with the server."""
        if self.redis is not None:
            await self.redis.aclose()

    async def on_post(
        self, req: falcon.asgi.Request, resp: falcon.asgi.Response, secret: str
    ) -> None:
        """Read the student's key and write it back."""
        assert self.redis is not None
        body = await req.stream.read()
        key = f"floor:{_decoder.decode(body).sender}"
        await self.redis.get(key)
        await self.redis.set(key, body)
        resp.content_type = falcon.MEDIA_JSON
        resp.data = _ACCEPTED

    async def on_get_health(
        self, req: falcon.asgi.Request, resp: falcon.asgi.Response
    ) -> None:
        """Answer 200 once started."""
        resp.media = {"status": "ok"}


def create_floor_app() -> falcon.asgi.App[Any, Any]:
    """Return the floor's ASGI app."""
    resource = FloorResource()
    app: falcon.asgi.App[Any, Any] = falcon.asgi.App(middleware=[resource])
    app.add_route("/webhooks/swiftchat/{secret}", resource)
    app.add_route("/healthz", resource, suffix="health")
    return app


app = create_floor_app()
