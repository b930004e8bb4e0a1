"""Running servers for end-to-end tests: `tutorlane serve` and a SwiftChat imitation."""

from __future__ import annotations

import time
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import httpx
import pytest
import redis

from tutorlane.tests.processes import Process, free_port, http_up

SECRET = "e2e-secret-0123456789"
BOT_ID = "bot-e2e"
API_KEY = "key-e2e"


@dataclass
class Imitation:
    """A running SwiftChat API imitation."""

    url: str

    def sent_to(self, phone: str) -> list[dict[str, Any]]:
        sent: list[dict[str, Any]] = httpx.get(f"{self.url}/_sent").json()["sent"]
        return [message for message in sent if message["to"] == phone]

    def wait_for(
        self, phone: str, count: int, seconds: float = 10
    ) -> list[dict[str, Any]]:
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            sent = self.sent_to(phone)
            if len(sent) >= count:
                return sent
            time.sleep(0.05)
        return self.sent_to(phone)

    def script(self, *responses: dict[str, Any]) -> None:
        httpx.post(f"{self.url}/_script", json={"responses": list(responses)})


@pytest.fixture(scope="session")
def imitation(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Imitation]:
    port = free_port()
    log = tmp_path_factory.mktemp("imitation") / "imitation.log"
    process = Process(["dev", "swiftchat-imitation", "--port", str(port)], {}, log)
    process.start().wait_until(http_up(f"http://127.0.0.1:{port}/_sent"))
    yield Imitation(f"http://127.0.0.1:{port}")
    process.stop()


@dataclass
class Server:
    """A running `tutorlane serve`."""

    base_url: str
    flavour: str

    @property
    def webhook(self) -> str:
        return f"{self.base_url}/webhooks/swiftchat/{SECRET}"


@pytest.fixture(scope="module", params=["embedded", "redis"])
def server(
    request: pytest.FixtureRequest,
    imitation: Imitation,
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[Server]:
    env = {
        "TUTORLANE_WEBHOOK_SECRET": SECRET,
        "TUTORLANE_SWIFTCHAT_BASE_URL": imitation.url,
        "TUTORLANE_SWIFTCHAT_BOT_ID": BOT_ID,
        "TUTORLANE_SWIFTCHAT_API_KEY": API_KEY,
        "TUTORLANE_VAR": str(tmp_path_factory.mktemp("var")),
    }
    if request.param == "redis":
        url = request.getfixturevalue("redis_url")
        redis.Redis.from_url(url).flushdb()
        env["TUTORLANE_REDIS_URL"] = url
    port = free_port()
    log = tmp_path_factory.mktemp("serve") / "serve.log"
    process = Process(["serve", "--port", str(port)], env, log)
    process.start().wait_until(http_up(f"http://127.0.0.1:{port}/healthz"))
    yield Server(f"http://127.0.0.1:{port}", request.param)
    process.stop()
