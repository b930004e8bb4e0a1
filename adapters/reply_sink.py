"""The embedded default's stand-in for the SwiftChat API: replies kept in memory."""

from __future__ import annotations

import asyncio
import contextlib
from collections import defaultdict, deque

from tutorlane.domain.messages import Reply

KEEP_PER_RECIPIENT = 200


class LocalReplySink:
    """Keeps the last replies to each recipient for `tutorlane chat` to read."""

    def __init__(self) -> None:
        self._replies: dict[str, deque[tuple[int, Reply]]] = defaultdict(
            lambda: deque(maxlen=KEEP_PER_RECIPIENT)
        )
        self._counter = 0
        self._changed = asyncio.Condition()

    async def send(self, to: str, reply: Reply) -> None:
        """Take a reply, as the SwiftChat API would."""
        async with self._changed:
            self._counter += 1
            self._replies[to].append((self._counter, reply))
            self._changed.notify_all()

    async def read(
        self, to: str, after: int = 0, wait: float = 0.0
    ) -> list[tuple[int, Reply]]:
        """Return replies to `to` numbered above `after`, waiting up to `wait` s."""

        def newer() -> list[tuple[int, Reply]]:
            return [(n, reply) for n, reply in self._replies.get(to, ()) if n > after]

        async with self._changed:
            if not newer() and wait > 0:
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(
                        self._changed.wait_for(lambda: bool(newer())), wait
                    )
            return newer()
