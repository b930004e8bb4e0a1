"""The Falcon ASGI app: SwiftChat's webhook, a health check, and the local sink."""

from __future__ import annotations

import asyncio
import hmac
import logging
from collections.abc import Mapping
from typing import Any

import falcon
import falcon.asgi
import msgspec
from redis.exceptions import RedisError

from tutorlane.adapters.swiftchat_wire import BadPayload, parse_inbound
from tutorlane.bootstrap import Runtime, start_runtime
from tutorlane.commands.handle_message import HistoryUnavailable, TooMuchContention
from tutorlane.commands.ports import SessionFromNewerRelease
from tutorlane.entrypoints.settings import Settings

logger = logging.getLogger(__name__)

MAX_BODY_BYTES = 64 * 1024
# How long SwiftChat is asked to wait before retrying while the event store is away.
HISTORY_RETRY_SECONDS = 30
_json = msgspec.json.Encoder()


class RuntimeHolder:
    """Starts the runtime with the server (ASGI lifespan) and stops it after."""

    def __init__(self, settings: Settings, secret: str | None = None) -> None:
        self.settings = settings
        self.secret = secret
        self._runtime: Runtime | None = None

    @property
    def runtime(self) -> Runtime:
        """Return the running runtime."""
        if self._runtime is None:
            raise falcon.HTTPServiceUnavailable(description="starting up")
        return self._runtime

    async def start(self) -> Runtime:
        """Start the runtime, once."""
        if self._runtime is None:
            self._runtime = await start_runtime(self.settings, self.secret)
        return self._runtime

    async def stop(self) -> None:
        """Stop the runtime, if started."""
        if self._runtime is not None:
            await self._runtime.close()
            self._runtime = None

    async def process_startup(
        self, scope: Mapping[str, Any], event: Mapping[str, Any]
    ) -> None:
        """Start with the server."""
        await self.start()

    async def process_shutdown(
        self, scope: Mapping[str, Any], event: Mapping[str, Any]
    ) -> None:
        """Stop with the server."""
        await self.stop()


def _check_secret(runtime: Runtime, secret: str) -> None:
    # NOTE: a wrong secret looks exactly like a missing route.
    if not hmac.compare_digest(secret.encode(), runtime.secret.encode()):
        raise falcon.HTTPNotFound()


class WebhookResource:
    """`POST /webhooks/swiftchat/{secret}`: one student message in, 200 out."""

    def __init__(self, holder: RuntimeHolder) -> None:
        self.holder = holder

    async def on_post(
        self, req: falcon.asgi.Request, resp: falcon.asgi.Response, secret: str
    ) -> None:
        """Handle one SwiftChat message; the reply goes out in the background."""
        runtime = self.holder.runtime
        _check_secret(runtime, secret)

        if (req.content_length or 0) > MAX_BODY_BYTES:
            raise falcon.HTTPContentTooLarge(
                description=f"a SwiftChat message is at most {MAX_BODY_BYTES} bytes"
            )
        body = await req.stream.read(MAX_BODY_BYTES + 1)
        if len(body) > MAX_BODY_BYTES:
            raise falcon.HTTPContentTooLarge(
                description=f"a SwiftChat message is at most {MAX_BODY_BYTES} bytes"
            )
        try:
            phone, message = parse_inbound(body)
        except BadPayload as ex:
            logger.warning("rejected webhook body: %s", ex)
            raise falcon.HTTPBadRequest(
                title="Not a SwiftChat message", description=str(ex)
            ) from None

        try:
            handled = await runtime.handler.handle(phone, message)
        except (RedisError, OSError):
            logger.exception("session store unavailable")
            raise falcon.HTTPServiceUnavailable(
                description="session store unavailable; retry later"
            ) from None
        except TooMuchContention as ex:
            raise falcon.HTTPServiceUnavailable(description=str(ex)) from None
        except HistoryUnavailable as ex:
            raise falcon.HTTPServiceUnavailable(
                description=str(ex), retry_after=HISTORY_RETRY_SECONDS
            ) from None
        except SessionFromNewerRelease as ex:
            # NOTE: during a rolling upgrade; a newer process will take it.
            logger.warning("not handled here: %s", ex)
            raise falcon.HTTPServiceUnavailable(
                description="this student's session belongs to a newer release",
                retry_after=HISTORY_RETRY_SECONDS,
            ) from None

        if handled.reply is not None and handled.entry_id is not None:
            runtime.delivery.dispatch(
                handled.student, handled.entry_id, phone, handled.reply
            )
        resp.content_type = falcon.MEDIA_JSON
        status = "duplicate" if handled.reply is None else "accepted"
        resp.data = _json.encode({"status": status})


class HealthResource:
    """`GET /healthz`: 200 when the session store answers."""

    def __init__(self, holder: RuntimeHolder) -> None:
        self.holder = holder

    async def on_get(
        self, req: falcon.asgi.Request, resp: falcon.asgi.Response
    ) -> None:
        """Tell whether this process can serve messages."""
        runtime = self.holder.runtime
        try:
            async with asyncio.timeout(runtime.store.timeout):
                await runtime.redis.ping()
        except (RedisError, OSError):
            resp.status = falcon.HTTP_503
            resp.media = {"status": "unavailable", "sessions": "not answering"}
            return
        resp.media = {"status": "ok", "course": runtime.course.id}


class SinkResource:
    """`GET /sink/{secret}/replies`: replies kept by the embedded default's sink."""

    def __init__(self, holder: RuntimeHolder) -> None:
        self.holder = holder

    async def on_get(
        self, req: falcon.asgi.Request, resp: falcon.asgi.Response, secret: str
    ) -> None:
        """Return replies to `to` numbered above `after`, waiting up to `wait` s."""
        runtime = self.holder.runtime
        _check_secret(runtime, secret)
        if runtime.sink is None:
            raise falcon.HTTPNotFound(
                description="replies go to the SwiftChat API, not to the local sink"
            )
        to = req.get_param("to", required=True)
        after = req.get_param_as_int("after", default=0)
        wait = req.get_param_as_float("wait", default=0.0, min_value=0, max_value=30)
        replies = await runtime.sink.read(to, after or 0, wait or 0.0)
        resp.media = {
            "replies": [
                {"n": n, "text": reply.text, "buttons": list(reply.buttons)}
                for n, reply in replies
            ]
        }


def create_app(holder: RuntimeHolder) -> falcon.asgi.App[Any, Any]:
    """Return the ASGI app; `holder` starts the runtime with the server's lifespan."""
    app: falcon.asgi.App[Any, Any] = falcon.asgi.App(middleware=[holder])
    app.add_route("/webhooks/swiftchat/{secret}", WebhookResource(holder))
    app.add_route("/healthz", HealthResource(holder))
    app.add_route("/sink/{secret}/replies", SinkResource(holder))
    return app
