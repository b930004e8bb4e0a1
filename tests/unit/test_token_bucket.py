"""The SwiftChat client's token bucket, on a clock the test moves."""

from __future__ import annotations

import asyncio

import pytest

from tutorlane.adapters.swiftchat_client import TokenBucket
from tutorlane.entrypoints.cli import worker_environment
from tutorlane.entrypoints.settings import Settings


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


async def test_a_burst_goes_at_once_and_then_tokens_come_back_at_the_rate() -> None:
    clock = Clock()
    bucket = TokenBucket(rate=10, burst=3, clock=clock)

    for _ in range(3):
        await asyncio.wait_for(bucket.take(), 1.0)
    assert not bucket._take_now()

    clock.now += 0.1  # one token at 10 a second
    assert bucket._take_now()
    assert not bucket._take_now()


async def test_a_send_waits_while_the_bucket_is_empty() -> None:
    clock = Clock()
    bucket = TokenBucket(rate=1000, burst=1, clock=clock)
    await bucket.take()

    waiting = asyncio.create_task(bucket.take())
    await asyncio.sleep(0.02)
    assert not waiting.done()

    clock.now += 0.0015
    await asyncio.wait_for(waiting, 1.0)


async def test_nobody_jumps_the_queue_of_sends_waiting_for_a_token() -> None:
    clock = Clock()
    bucket = TokenBucket(rate=1000, burst=1, clock=clock)
    await bucket.take()
    first = asyncio.create_task(bucket.take())
    await asyncio.sleep(0.005)

    clock.now += 0.0015  # a token, owed to the first waiter
    newcomer = bucket.take()
    try:
        newcomer.send(None)  # runs it up to its first wait, no further
    except StopIteration:
        pytest.fail("a newcomer took the token the first waiter is owed")
    newcomer.close()

    await asyncio.wait_for(first, 1.0)


async def test_a_paused_bucket_lets_nothing_through_until_the_pause_ends() -> None:
    clock = Clock()
    bucket = TokenBucket(rate=1000, burst=5, clock=clock)
    bucket.pause(2.0)

    assert not bucket._take_now()
    waiting = asyncio.create_task(bucket.take())
    await asyncio.sleep(0.01)
    assert not waiting.done()
    waiting.cancel()

    clock.now += 2.0
    assert bucket._take_now()


def test_serve_gives_each_worker_its_share_of_the_api_rate() -> None:
    settings = Settings(swiftchat_rate_per_second=1000)

    env = worker_environment(settings, "the-secret", workers=4)

    assert env["TUTORLANE_SWIFTCHAT_RATE_PER_SECOND"] == "250.0"
    assert env["TUTORLANE_WEBHOOK_SECRET"] == "the-secret"
    assert (
        Settings(
            swiftchat_rate_per_second=env["TUTORLANE_SWIFTCHAT_RATE_PER_SECOND"]
        ).swiftchat_rate_per_second
        == 250
    )
