"""A local imitation of the SwiftChat send-message API, for tests and benchmarks.

It accepts `POST /api/bots/{bot_id}/messages` as SwiftChat does (201 with an id),
keeps what it received (`GET /_sent`, `DELETE /_sent`), and can be told to fail the
next requests (`POST /_script` with `{"responses": [{"status": 503}, ...]}`).
"""

from __future__ import annotations

import asyncio
import uuid
from collections import deque
from typing import Any

import falcon
import falcon.asgi

_MESSAGE_TYPES = frozenset({"text", "button", "image", "template"})


class Imitation:
    """The imitation's state: messages received and scripted failures."""

    def __init__(self, api_key: str | None = None, delay: float = 0.0) -> None:
        self.api_key = api_key
        self.delay = delay
        self.sent: list[dict[str, Any]] = []
        self.script: deque[dict[str, Any]] = deque()

    async def on_post_messages(
        self, req: falcon.asgi.Request, resp: falcon.asgi.Response, bot_id: str
    ) -> None:
        """Take a message as SwiftChat would."""
        expected = f"Bearer {self.api_key}"
        if self.api_key is not None and req.get_header("Authorization") != expected:
            resp.status = falcon.HTTP_401
            resp.media = {"code": 401, "message": "invalid api key"}
            return
        if self.script:
            scripted = self.script.popleft()
            await asyncio.sleep(float(scripted.get("delay", 0)))
            resp.status = falcon.code_to_http_status(int(scripted.get("status", 500)))
            if "retry_after" in scripted:
                resp.set_header("Retry-After", str(scripted["retry_after"]))
            resp.media = {"code": scripted.get("status", 500), "message": "scripted"}
            return
        if self.delay:
            await asyncio.sleep(self.delay)

        body = await req.get_media()
        if not isinstance(body, dict) or body.get("type") not in _MESSAGE_TYPES:
            resp.status = falcon.HTTP_400
            resp.media = {"code": 1001, "message": "type missing or unknown"}
            return
        if not isinstance(body.get("to"), str):
            resp.status = falcon.HTTP_400
            resp.media = {"code": 1002, "message": "to missing"}
            return
        self.sent.append({"bot_id": bot_id, **body})
        resp.status = falcon.HTTP_201
        resp.media = {"id": str(uuid.uuid4())}

    async def on_get_sent(
        self, req: falcon.asgi.Request, resp: falcon.asgi.Response
    ) -> None:
        """Return every message received so far."""
        resp.media = {"sent": self.sent}

    async def on_delete_sent(
        self, req: falcon.asgi.Request, resp: falcon.asgi.Response
    ) -> None:
        """Forget the messages received so far."""
        self.sent.clear()
        resp.status = falcon.HTTP_204

    async def on_post_script(
        self, req: falcon.asgi.Request, resp: falcon.asgi.Response
    ) -> None:
        """Make the next requests answer as scripted."""
        body = await req.get_media()
        self.script.extend(body.get("responses", []))
        resp.status = falcon.HTTP_204


def create_imitation(imitation: Imitation) -> falcon.asgi.App[Any, Any]:
    """Return an ASGI app serving `imitation`."""
    app: falcon.asgi.App[Any, Any] = falcon.asgi.App()
    app.add_route("/api/bots/{bot_id}/messages", imitation, suffix="messages")
    app.add_route("/_sent", imitation, suffix="sent")
    app.add_route("/_script", imitation, suffix="script")
    return app
