"""The SwiftChat send-message API over HTTP (aiohttp), with retries and a rate limit.

NOTE: aiohttp, not httpx: on this path httpx cost 2 to 4 ms of CPU per request
(connection pool bookkeeping, a failed `import sniffio` per request), more than the
whole rest of a message; aiohttp costs about 0.3 ms (`bench/fast_lane.py`).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from email.utils import parsedate_to_datetime
from typing import Any

import aiohttp
import msgspec
from tenacity import (
    AsyncRetrying,
    RetryCallState,
    retry_if_exception_type,
    stop_after_attempt,
    stop_after_delay,
    wait_exponential_jitter,
)

from tutorlane.adapters.swiftchat_wire import render_reply
from tutorlane.commands.ports import PermanentSendError
from tutorlane.domain.messages import Reply

# A Retry-After longer than this is not waited for inside one delivery: the reply
# stays in the outbox for the sweeper, and the whole bot pauses meanwhile.
MAX_INLINE_WAIT_SECONDS = 5.0


class RetryableSendError(Exception):
    """The API is busy, failing or slow; the same request may succeed later."""

    def __init__(self, reason: str, retry_after: float | None = None) -> None:
        super().__init__(reason)
        self.retry_after = retry_after


class DeferredSendError(Exception):
    """The API asked us to wait longer than a delivery may; the sweeper will retry."""


class TokenBucket:
    """Allows `rate` sends a second on average, bursts up to `burst`."""

    def __init__(
        self, rate: float, burst: float, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self.rate = rate
        self.burst = burst
        self.clock = clock
        self.tokens = burst
        self.updated = clock()
        self.paused_until = 0.0
        self._lock = asyncio.Lock()

    def pause(self, seconds: float) -> None:
        """Let no send through for `seconds` (the API said 429 Retry-After)."""
        self.paused_until = max(self.paused_until, self.clock() + seconds)

    async def take(self) -> None:
        """Wait until a send is allowed."""
        # PERF: with tokens to spare and nobody waiting, no lock is needed (nothing
        # here awaits): the lock alone was 2 % of a webhook worker's CPU.
        if not self._lock.locked() and self._take_now():
            return
        async with self._lock:
            while True:
                now = self.clock()
                if now < self.paused_until:
                    await asyncio.sleep(self.paused_until - now)
                    continue
                if self._take_now(now):
                    return
                await asyncio.sleep((1 - self.tokens) / self.rate)

    def _take_now(self, now: float | None = None) -> bool:
        """Refill by the time passed and take a token if one is there."""
        now = self.clock() if now is None else now
        if now < self.paused_until:
            return False
        self.tokens = min(self.burst, self.tokens + (now - self.updated) * self.rate)
        self.updated = now
        if self.tokens >= 1:
            self.tokens -= 1
            return True
        return False


class SwiftChatClient:
    """Sends replies through `POST {base}/api/bots/{bot_id}/messages`."""

    def __init__(
        self,
        base_url: str,
        bot_id: str,
        api_key: str,
        timeout: float = 5.0,
        attempts: int = 4,
        max_seconds: float = 20.0,
        rate_per_second: float = 1000.0,
    ) -> None:
        self.url = f"{base_url.rstrip('/')}/api/bots/{bot_id}/messages"
        self.attempts = attempts
        self.max_seconds = max_seconds
        self.bucket = TokenBucket(rate_per_second, burst=rate_per_second)
        self._headers = {
            "Authorization": f"Bearer {api_key}",
            "Content-Type": "application/json",
        }
        self._timeout = aiohttp.ClientTimeout(total=timeout, connect=min(timeout, 3.0))
        # NOTE: made on first use, inside the event loop that will use it.
        self._http: aiohttp.ClientSession | None = None

    def _session(self) -> aiohttp.ClientSession:
        if self._http is None or self._http.closed:
            self._http = aiohttp.ClientSession(
                headers=self._headers,
                cookie_jar=aiohttp.DummyCookieJar(),
                timeout=self._timeout,
                connector=aiohttp.TCPConnector(limit=200),
            )
        return self._http

    async def send(self, to: str, reply: Reply) -> None:
        """Send a reply; retry what can succeed later, raise on what cannot."""
        body = _json.encode(render_reply(to, reply))

        # PERF: nearly every send succeeds at once, and setting up tenacity costs
        # ~50 us of CPU: it takes over only after a first attempt failed.
        try:
            await self.bucket.take()
            await self._post(body)
            return
        except RetryableSendError as ex:
            failed: RetryableSendError | None = ex

        retrying = AsyncRetrying(
            retry=retry_if_exception_type(RetryableSendError),
            stop=stop_after_attempt(self.attempts) | stop_after_delay(self.max_seconds),
            wait=_wait_for_server_or_backoff,
            reraise=True,
        )
        async for attempt in retrying:
            with attempt:
                if failed is not None:
                    # Tenacity's first attempt is the one made above: it decides
                    # the wait from its error (Retry-After) and counts it.
                    error, failed = failed, None
                    raise error
                await self.bucket.take()
                await self._post(body)

    async def _post(self, data: bytes) -> None:
        try:
            async with self._session().post(self.url, data=data) as response:
                status = response.status
                retry_header = response.headers.get("Retry-After")
                # Read the whole body, so that the connection is kept for reuse.
                content = await response.read()
        except TimeoutError:
            raise RetryableSendError("timed out") from None
        except aiohttp.ClientError as ex:
            raise RetryableSendError(
                f"connection failed: {type(ex).__name__}"
            ) from None

        if 200 <= status < 300:
            return
        if status == 429 or status >= 500:
            retry_after = _retry_after(retry_header)
            if status == 429 and retry_after is not None:
                # Rate limits are per bot: every send waits, not just this one.
                self.bucket.pause(retry_after)
                if retry_after > MAX_INLINE_WAIT_SECONDS:
                    raise DeferredSendError(f"HTTP 429, retry after {retry_after:.0f}s")
            raise RetryableSendError(f"HTTP {status}", retry_after)
        # NOTE: the response text may echo the request, phone number included, so
        # only the API's error code and message go into the exception.
        raise PermanentSendError(f"HTTP {status}: {_api_error(content)}")

    async def close(self) -> None:
        """Close the connection pool."""
        if self._http is not None:
            await self._http.close()
            self._http = None


_json = msgspec.json.Encoder()


_backoff = wait_exponential_jitter(multiplier=0.2, max=5.0)


def _wait_for_server_or_backoff(state: RetryCallState) -> float:
    outcome = state.outcome
    error = outcome.exception() if outcome is not None else None
    if isinstance(error, RetryableSendError) and error.retry_after is not None:
        return min(error.retry_after, MAX_INLINE_WAIT_SECONDS)
    return _backoff(state)


def _retry_after(value: str | None) -> float | None:
    if not value:
        return None
    if value.strip().isdigit():
        return float(value)
    try:
        moment = parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(0.0, moment.timestamp() - time.time())


def _api_error(content: bytes) -> str:
    try:
        data: Any = msgspec.json.decode(content)
    except msgspec.DecodeError:
        return "no JSON body"
    if isinstance(data, dict):
        return f"code={data.get('code')!r} message={str(data.get('message'))[:200]!r}"
    return "unexpected body"
