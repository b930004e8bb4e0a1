"""`tutorlane chat`: be a student in the terminal, through the real webhook."""

from __future__ import annotations

import json
import sys
import time
import uuid
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx

REPLY_WAIT_SECONDS = 10.0
DEV_PHONE = "+919000000001"


@dataclass(frozen=True)
class ServerInfo:
    """Where a running `tutorlane serve` listens, as it wrote to var/serve.json."""

    base_url: str
    secret: str

    @property
    def webhook_path(self) -> str:
        """Return the webhook's path, secret included."""
        return f"/webhooks/swiftchat/{self.secret}"


def write_server_info(var_dir: Path, info: ServerInfo) -> Path:
    """Record where this server listens, readable by its owner only."""
    var_dir.mkdir(parents=True, exist_ok=True)
    path = var_dir / "serve.json"
    path.touch(mode=0o600, exist_ok=True)
    path.chmod(0o600)
    path.write_text(json.dumps({"base_url": info.base_url, "secret": info.secret}))
    return path


def read_server_info(var_dir: Path) -> ServerInfo | None:
    """Return the server that var/serve.json describes, if it answers."""
    path = var_dir / "serve.json"
    if not path.exists():
        return None
    data = json.loads(path.read_text())
    info = ServerInfo(data["base_url"], data["secret"])
    try:
        response = httpx.get(f"{info.base_url}/healthz", timeout=2.0)
    except httpx.HTTPError:
        return None
    return info if response.status_code == 200 else None


def inbound_body(phone: str, text: str, buttons: tuple[str, ...]) -> dict[str, Any]:
    """Return the webhook body SwiftChat would send for a typed line."""
    message_id = f"chat-{uuid.uuid4()}"
    body: dict[str, Any] = {
        "from": phone,
        "timestamp": str(int(time.time())),
        "message_id": message_id,
        "conversation_id": "terminal",
        "conversation_initiated_by": "user",
    }
    # Typing exactly a button's label is what tapping it would send.
    if text in buttons:
        body["type"] = "button_response"
        body["button_response"] = {"button_index": buttons.index(text), "body": text}
    else:
        body["type"] = "text"
        body["text"] = {"body": text}
    return body


class ChatSession:
    """Sends lines to the webhook and prints the replies from the local sink."""

    def __init__(self, http: httpx.AsyncClient, info: ServerInfo, phone: str) -> None:
        self.http = http
        self.info = info
        self.phone = phone
        self.seen = 0
        self.buttons: tuple[str, ...] = ()

    async def start(self) -> None:
        """Skip replies this phone got in earlier chats."""
        replies = await self._replies(wait=0.0)
        if replies:
            self.seen = replies[-1]["n"]

    async def say(self, text: str) -> list[dict[str, Any]]:
        """Send one line as the student; return the bot's replies to it."""
        body = inbound_body(self.phone, text, self.buttons)
        response = await self.http.post(self.info.webhook_path, json=body)
        if response.status_code != 200:
            raise ChatError(f"webhook answered {response.status_code}: {response.text}")
        replies = await self._replies(wait=REPLY_WAIT_SECONDS)
        if replies:
            self.seen = replies[-1]["n"]
            self.buttons = tuple(replies[-1]["buttons"])
        return replies

    async def _replies(self, wait: float) -> list[dict[str, Any]]:
        response = await self.http.get(
            f"/sink/{self.info.secret}/replies",
            params={"to": self.phone, "after": self.seen, "wait": wait},
            timeout=wait + 5.0,
        )
        if response.status_code == 404:
            raise ChatError(
                "the server has no reply sink for this secret: either the secret is "
                "wrong, or the server sends replies to the SwiftChat API, which chat "
                "cannot read (run `tutorlane serve` without "
                "TUTORLANE_SWIFTCHAT_BASE_URL)"
            )
        response.raise_for_status()
        replies: list[dict[str, Any]] = response.json()["replies"]
        return replies


class ChatError(RuntimeError):
    """The chat cannot go on; the message says why."""


def format_reply(reply: dict[str, Any]) -> str:
    """Return a reply as the terminal shows it."""
    lines = [f"bot> {line}" if line else "bot>" for line in reply["text"].split("\n")]
    if reply["buttons"]:
        lines.append("     " + "  ".join(f"[{label}]" for label in reply["buttons"]))
    return "\n".join(lines)


async def run_chat(
    http: httpx.AsyncClient, info: ServerInfo, phone: str, lines: Iterable[str]
) -> int:
    """Chat line by line until the input ends; return how many lines were sent."""
    session = ChatSession(http, info, phone)
    await session.start()
    sent = 0
    interactive = sys.stdin.isatty()
    for line in lines:
        text = line.strip()
        if not text:
            continue
        if not interactive:
            print(f"you> {text}")
        for reply in await session.say(text):
            print(format_reply(reply), flush=True)
        sent += 1
    return sent
