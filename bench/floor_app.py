"""The floor: a minimal Falcon ASGI app doing one Redis GET and one SET per message.

It takes the same webhook body as tutorlane, reads the sender, GETs and SETs one key
per student, and answers 200 with a small JSON body: the two round trips any design
of the fast lane needs, and nothing else.

With `BENCH_FLOOR_REPLY_URL` set it also POSTs a fixed reply there after answering,
in the background and with aiohttp, as the fast lane does: the floor of a design
that must also send each reply to the SwiftChat API.

`bench.fast_lane` runs it under the same gunicorn + uvicorn configuration as
`tutorlane serve --workers 2`:

    gunicorn --worker-class uvicorn_worker.UvicornWorker --workers 2 \
        --no-control-socket tutorlane.bench.floor_app:app

Redis is `BENCH_REDIS_URL` (database 10 by default).
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import Mapping
from typing import Any

import aiohttp
import falcon
import falcon.asgi
import msgspec
from redis.asyncio import Redis

REDIS_URL = os.environ.get("BENCH_REDIS_URL", "redis://127.0.0.1:6379/10")
REPLY_URL = os.environ.get("BENCH_FLOOR_REPLY_URL")
_ACCEPTED = msgspec.json.encode({"status": "accepted"})
_REPLY = msgspec.json.encode({"to": "floor", "type": "text", "text": {"body": "ok"}})


class _Sender(msgspec.Struct):
    sender: str = msgspec.field(name="from")


_decoder = msgspec.json.Decoder(_Sender)


class FloorResource:
    """`POST /webhooks/swiftchat/{secret}`: one GET and one SET, then 200."""

    def __init__(self) -> None:
        self.redis: Redis | None = None
        self.http: aiohttp.ClientSession | None = None
        self.sending: set[asyncio.Task[None]] = set()

    async def process_startup(
        self, scope: Mapping[str, Any], event: Mapping[str, Any]
    ) -> None:
        """Connect to Redis with the server."""
        # NOTE: redis-py's default pool fails past 100 connections in use.
        self.redis = Redis.from_url(REDIS_URL, max_connections=1024)
        if REPLY_URL is not None:
            self.http = aiohttp.ClientSession(
                headers={"Content-Type": "application/json"},
                cookie_jar=aiohttp.DummyCookieJar(),
                connector=aiohttp.TCPConnector(limit=200),
            )

    async def process_shutdown(
        self, scope: Mapping[str, Any], event: Mapping[str, Any]
    ) -> None:
        """Close the connections with the server."""
        if self.redis is not None:
            await self.redis.aclose()
        if self.http is not None:
            await self.http.close()

    async def on_post(
        self, req: falcon.asgi.Request, resp: falcon.asgi.Response, secret: str
    ) -> None:
        """Read the student's key and write it back."""
        assert self.redis is not None
        body = await req.stream.read()
        key = f"floor:{_decoder.decode(body).sender}"
        await self.redis.get(key)
        await self.redis.set(key, body)
        if self.http is not None:
            task = asyncio.create_task(self.reply(self.http))
            self.sending.add(task)
            task.add_done_callback(self.sending.discard)
        resp.content_type = falcon.MEDIA_JSON
        resp.data = _ACCEPTED

    async def reply(self, http: aiohttp.ClientSession) -> None:
        """Send the fixed reply and read the answer, as a reply to SwiftChat."""
        assert REPLY_URL is not None
        async with http.post(REPLY_URL, data=_REPLY) as response:
            await response.read()

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
