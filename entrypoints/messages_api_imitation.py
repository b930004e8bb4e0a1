"""A local imitation of Anthropic's Messages API, for tests and trying the Analyst.

It accepts `POST /v1/messages` as the API does (an API key, as an `x-api-key`
header or a Bearer token, and a JSON body with `messages`) and answers a message.
What it answers next can be scripted with `POST /_script` and
`{"responses": [...]}`, one entry per request, each a mapping of:

- `text`: answer 200 with this text as the model's reply;
- `status` (and `retry_after`): answer this HTTP error in the API's error format
  (429 rate limit, 500, 529 overloaded, ...);
- `body`: answer 200 with this raw body (to imitate a broken response);
- `delay`: wait this many seconds first (to imitate a slow API).

With the script empty it answers a well-formed analysis that names the first of the
request's remediation choices. `GET /_received` lists the requests it received (the
API key only as present or not), `DELETE /_received` forgets them and the script.
"""

from __future__ import annotations

import asyncio
import json
import re
import uuid
from collections import deque
from typing import Any

import falcon
import falcon.asgi

_ERROR_TYPES = {
    400: "invalid_request_error",
    401: "authentication_error",
    404: "not_found_error",
    429: "rate_limit_error",
    500: "api_error",
    529: "overloaded_error",
}
_DATA = re.compile(r"<student_data>\s*(\{.*\})\s*</student_data>", re.DOTALL)


class MessagesImitation:
    """The imitation's state: requests received and scripted answers."""

    def __init__(self) -> None:
        self.received: list[dict[str, Any]] = []
        self.script: deque[dict[str, Any]] = deque()

    async def on_post_messages(
        self, req: falcon.asgi.Request, resp: falcon.asgi.Response
    ) -> None:
        """Answer one Messages API request, as scripted or with a default analysis."""
        body = await req.get_media()
        # SDK versions send the key as x-api-key or as a Bearer token.
        bearer = (req.get_header("Authorization") or "").removeprefix("Bearer ")
        has_key = bool(req.get_header("x-api-key") or bearer.strip())
        self.received.append(
            {
                "api_key": has_key,
                "anthropic_version": req.get_header("anthropic-version"),
                "body": body,
            }
        )
        if not has_key:
            _error(resp, 401, "an API key is required (x-api-key or Bearer)")
            return
        if not isinstance(body, dict) or not body.get("messages"):
            _error(resp, 400, "messages: field required")
            return

        scripted = self.script.popleft() if self.script else {}
        await asyncio.sleep(float(scripted.get("delay", 0)))
        if "status" in scripted:
            status = int(scripted["status"])
            _error(resp, status, "scripted error")
            if "retry_after" in scripted:
                resp.set_header("retry-after", str(scripted["retry_after"]))
            return
        if "body" in scripted:
            resp.status = falcon.HTTP_200
            resp.content_type = falcon.MEDIA_JSON
            resp.text = str(scripted["body"])
            return
        text = scripted.get("text")
        resp.media = _message(
            str(body.get("model", "")), text if text is not None else _default(body)
        )

    async def on_get_received(
        self, req: falcon.asgi.Request, resp: falcon.asgi.Response
    ) -> None:
        """Return every request received so far."""
        resp.media = {"received": self.received}

    async def on_delete_received(
        self, req: falcon.asgi.Request, resp: falcon.asgi.Response
    ) -> None:
        """Forget the requests received and whatever is still scripted."""
        self.received.clear()
        self.script.clear()
        resp.status = falcon.HTTP_204

    async def on_post_script(
        self, req: falcon.asgi.Request, resp: falcon.asgi.Response
    ) -> None:
        """Make the next requests answer as scripted."""
        body = await req.get_media()
        self.script.extend(body.get("responses", []))
        resp.status = falcon.HTTP_204


def _message(model: str, text: str) -> dict[str, Any]:
    return {
        "id": f"msg_{uuid.uuid4().hex[:24]}",
        "type": "message",
        "role": "assistant",
        "model": model,
        "content": [{"type": "text", "text": text}],
        "stop_reason": "end_turn",
        "stop_sequence": None,
        "usage": {"input_tokens": 1, "output_tokens": 1},
    }


def _error(resp: falcon.asgi.Response, status: int, message: str) -> None:
    resp.status = falcon.code_to_http_status(status)
    resp.media = {
        "type": "error",
        "error": {"type": _ERROR_TYPES.get(status, "api_error"), "message": message},
    }


def _default(body: dict[str, Any]) -> str:
    """Return an analysis naming the request's first remediation choice."""
    node = ""
    for message in body.get("messages", []):
        content = message.get("content") if isinstance(message, dict) else None
        found = _DATA.search(content) if isinstance(content, str) else None
        if found:
            choices = json.loads(found.group(1)).get("remediation_choices") or [{}]
            node = str(choices[0].get("node", ""))
    return json.dumps(
        {
            "misconception": "imitation: no model was asked",
            "evidence": "imitation: the answers were not read",
            "remediation_node": node,
        }
    )


def create_messages_imitation(
    imitation: MessagesImitation,
) -> falcon.asgi.App[Any, Any]:
    """Return an ASGI app serving `imitation`."""
    app: falcon.asgi.App[Any, Any] = falcon.asgi.App()
    app.add_route("/v1/messages", imitation, suffix="messages")
    app.add_route("/_received", imitation, suffix="received")
    app.add_route("/_script", imitation, suffix="script")
    return app
