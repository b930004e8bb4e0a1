"""A lean HTTP/1.1 load generator on raw asyncio sockets (uvloop when installed).

Two ways to load a server with pre-rendered requests over keep-alive connections:

- `closed_loop`: N connections, each sends its next request as soon as the last one
  is answered: the server's maximum throughput.
- `open_loop`: requests start at a constant rate, whether or not earlier ones are
  answered (a late request waits for a free connection, and its latency counts from
  when it was due, so a stalled server is not hidden by a waiting client).

It parses only the status line and Content-Length: the client's CPU per request is a
few tens of microseconds, a small share of two cores that the server also needs.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import cast


class ConnectionClosed(ConnectionError):
    """The server closed a keep-alive connection before it answered."""


class _Connection(asyncio.Protocol):
    """One keep-alive connection: send a request, wait for its whole response."""

    def __init__(self) -> None:
        self.transport: asyncio.Transport | None = None
        self.buffer = bytearray()
        self.waiter: asyncio.Future[int] | None = None
        self.closed = False

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        """Keep the transport."""
        # NOTE: uvloop's transports are not subclasses of asyncio.Transport.
        self.transport = cast(asyncio.Transport, transport)

    def connection_lost(self, exc: Exception | None) -> None:
        """Fail the request in flight, if any."""
        self.closed = True
        if self.waiter is not None and not self.waiter.done():
            self.waiter.set_exception(ConnectionClosed("closed by the server"))

    def data_received(self, data: bytes) -> None:
        """Complete the request once its whole response is in."""
        self.buffer += data
        head_end = self.buffer.find(b"\r\n\r\n")
        if head_end < 0:
            return
        head = bytes(self.buffer[:head_end]).lower()
        at = head.find(b"content-length:")
        length = 0
        if at >= 0:
            end = head.find(b"\r\n", at)
            length = int(head[at + 15 : end if end >= 0 else len(head)])
        if len(self.buffer) < head_end + 4 + length:
            return
        status = int(self.buffer[9:12])
        del self.buffer[: head_end + 4 + length]
        if self.waiter is not None and not self.waiter.done():
            self.waiter.set_result(status)

    async def request(self, payload: bytes) -> int:
        """Send one request and return the response's status."""
        assert self.transport is not None
        self.waiter = asyncio.get_running_loop().create_future()
        self.transport.write(payload)
        return await self.waiter


@dataclass
class Target:
    """Where requests go, and how to open a connection there."""

    host: str
    port: int

    async def connect(self) -> _Connection:
        """Open one connection."""
        loop = asyncio.get_running_loop()
        _, protocol = await loop.create_connection(_Connection, self.host, self.port)
        return protocol


@dataclass
class Outcome:
    """What a load run measured."""

    latencies: list[float] = field(default_factory=list)
    statuses: dict[int, int] = field(default_factory=dict)
    reconnects: int = 0
    elapsed: float = 0.0

    @property
    def count(self) -> int:
        """Return how many requests were answered."""
        return len(self.latencies)

    @property
    def errors(self) -> int:
        """Return how many answers were not 200."""
        return sum(n for status, n in self.statuses.items() if status != 200)


async def _send(
    target: Target, pool: list[_Connection], payload: bytes, outcome: Outcome
) -> int:
    """Send on a pooled connection (reopening a closed one), return the status."""
    connection = pool.pop() if pool else await target.connect()
    for _ in range(3):
        if connection.closed:
            connection = await target.connect()
            outcome.reconnects += 1
        try:
            status = await connection.request(payload)
        except ConnectionClosed:
            # NOTE: the server closed an idle keep-alive connection just as we
            # wrote: resend, as SwiftChat would; the message id makes it safe.
            continue
        pool.append(connection)
        outcome.statuses[status] = outcome.statuses.get(status, 0) + 1
        return status
    raise ConnectionClosed("the server closed three connections in a row")


async def closed_loop(
    target: Target,
    requests: Iterator[bytes],
    connections: int,
    seconds: float | None = None,
) -> Outcome:
    """Keep `connections` requests in flight until `requests` ends or time is up."""
    outcome = Outcome()
    pool = [await target.connect() for _ in range(connections)]
    began = time.perf_counter()
    deadline = began + seconds if seconds else float("inf")

    async def lane() -> None:
        own = [pool.pop()]
        for payload in requests:
            sent = time.perf_counter()
            if sent > deadline:
                return
            await _send(target, own, payload, outcome)
            outcome.latencies.append(time.perf_counter() - sent)

    await asyncio.gather(*(lane() for _ in range(connections)))
    outcome.elapsed = time.perf_counter() - began
    return outcome


async def open_loop(
    target: Target,
    requests: Callable[[], bytes],
    rate: float,
    seconds: float,
    connections: int = 256,
) -> Outcome:
    """Start `rate` requests a second for `seconds`; latency counts from when due."""
    outcome = Outcome()
    pool = [await target.connect() for _ in range(min(connections, 64))]
    free = asyncio.Semaphore(connections)
    tasks: set[asyncio.Task[None]] = set()

    async def one(payload: bytes, due: float) -> None:
        async with free:
            await _send(target, pool, payload, outcome)
        outcome.latencies.append(time.perf_counter() - due)

    began = time.perf_counter()
    total = int(rate * seconds)
    for index in range(total):
        due = began + index / rate
        delay = due - time.perf_counter()
        if delay > 0.0005:
            await asyncio.sleep(delay)
        task = asyncio.create_task(one(requests(), due))
        tasks.add(task)
        task.add_done_callback(tasks.discard)
    if tasks:
        await asyncio.gather(*tasks)
    outcome.elapsed = time.perf_counter() - began
    return outcome


def install_uvloop() -> None:
    """Use uvloop's faster event loop when it is installed (uvicorn[standard])."""
    try:
        import uvloop
    except ImportError:
        return
    asyncio.set_event_loop_policy(uvloop.EventLoopPolicy())
