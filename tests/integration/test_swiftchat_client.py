"""The SwiftChat client against a local imitation of the API, over real HTTP."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tutorlane.adapters.swiftchat_client import (
    MAX_INLINE_WAIT_SECONDS,
    DeferredSendError,
    SwiftChatClient,
)
from tutorlane.commands.ports import PermanentSendError
from tutorlane.domain.messages import Reply
from tutorlane.tests.processes import Process, free_port, http_up

PHONE = "+919800000001"


@pytest.fixture(scope="module")
def imitation(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    port = free_port()
    log = Path(tmp_path_factory.mktemp("imitation")) / "imitation.log"
    process = Process(["dev", "swiftchat-imitation", "--port", str(port)], {}, log)
    process.start().wait_until(http_up(f"http://127.0.0.1:{port}/_sent"))
    yield f"http://127.0.0.1:{port}"
    process.stop()


@pytest.fixture
def client(imitation: str) -> SwiftChatClient:
    httpx.delete(f"{imitation}/_sent")
    return SwiftChatClient(imitation, "bot-1", "key-1")


def script(imitation: str, *responses: dict[str, object]) -> None:
    httpx.post(f"{imitation}/_script", json={"responses": list(responses)})


def sent(imitation: str) -> list[dict[str, object]]:
    messages: list[dict[str, object]] = httpx.get(f"{imitation}/_sent").json()["sent"]
    return messages


async def test_a_reply_is_posted_as_swiftchat_expects(
    client: SwiftChatClient, imitation: str
) -> None:
    await client.send(PHONE, Reply("Pick one", ("12", "13")))

    (message,) = sent(imitation)
    assert message["bot_id"] == "bot-1" and message["to"] == PHONE
    assert message["type"] == "button"


async def test_server_errors_and_short_rate_limits_are_retried(
    client: SwiftChatClient, imitation: str
) -> None:
    script(
        imitation, {"status": 503}, {"status": 429, "retry_after": 1}, {"status": 502}
    )

    await client.send(PHONE, Reply("hello"))

    assert len(sent(imitation)) == 1


async def test_a_bad_request_is_not_retried(
    client: SwiftChatClient, imitation: str
) -> None:
    script(imitation, {"status": 400})

    with pytest.raises(PermanentSendError, match="HTTP 400"):
        await client.send(PHONE, Reply("hello"))
    assert sent(imitation) == []


async def test_a_long_rate_limit_defers_the_reply_and_pauses_the_whole_bot(
    client: SwiftChatClient, imitation: str
) -> None:
    script(imitation, {"status": 429, "retry_after": 60})

    with pytest.raises(DeferredSendError):
        await client.send(PHONE, Reply("hello"))

    waits = client.bucket.paused_until - time.monotonic()
    assert MAX_INLINE_WAIT_SECONDS < waits <= 60
