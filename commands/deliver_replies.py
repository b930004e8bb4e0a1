"""Deliver replies: at once after each commit, and again from the outbox if unconfirmed.

A reply is confirmed (removed from the outbox) only after the SwiftChat API took it.
Whatever is not confirmed after a grace period is re-sent by a sweeper, so delivery is
at least once; a reply older than the give-up age is dropped with a warning, because
SwiftChat only lets a bot write freely within 24 hours of the student's message.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable

from tutorlane.commands.ports import (
    PendingReply,
    PermanentSendError,
    ReplyOutbox,
    ReplySender,
)
from tutorlane.domain.messages import Reply

logger = logging.getLogger(__name__)

# Longer than an immediate delivery may take with all its retries (SwiftChatClient
# gives up after 20 s), so that the sweeper of another process does not send a
# reply that is still on its way.
GRACE_SECONDS = 30.0
GIVE_UP_SECONDS = 23 * 60 * 60
SWEEP_BATCH = 200


class ReplyDelivery:
    """Sends replies and re-sends those the outbox still holds."""

    def __init__(
        self,
        outbox: ReplyOutbox,
        sender: ReplySender,
        owner: str,
        clock: Callable[[], float] = time.time,
        grace_seconds: float = GRACE_SECONDS,
        give_up_seconds: float = GIVE_UP_SECONDS,
        max_in_flight: int = 512,
    ) -> None:
        self.outbox = outbox
        self.sender = sender
        self.owner = owner
        self.clock = clock
        self.grace_seconds = grace_seconds
        self.give_up_seconds = give_up_seconds
        self._in_flight = asyncio.Semaphore(max_in_flight)
        self._tasks: set[asyncio.Task[bool]] = set()
        # Entries this process is sending right now: the sweeper leaves them alone.
        # NOTE: keyed by student too, because entry ids are only unique within one
        # shard's stream: two shards commit `<ms>-0` in the same millisecond.
        self._sending: set[tuple[str, str]] = set()

    def dispatch(self, student: str, entry_id: str, to: str, reply: Reply) -> None:
        """Send a just-committed reply in the background."""
        # TODO: two messages of one student handled within milliseconds (by two
        # workers, or with a slow first send) can have their replies reach SwiftChat
        # in the other order. Resolved by sending each shard's replies in outbox
        # order from one sender, at the cost of the immediate send's latency.
        task = asyncio.create_task(self.deliver(student, entry_id, to, reply))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def deliver(self, student: str, entry_id: str, to: str, reply: Reply) -> bool:
        """Send one reply and confirm it; tell whether it left the outbox."""
        key = (student, entry_id)
        if key in self._sending:
            return False
        self._sending.add(key)
        try:
            async with self._in_flight:
                return await self._send_and_confirm(student, entry_id, to, reply)
        finally:
            self._sending.discard(key)

    async def _send_and_confirm(
        self, student: str, entry_id: str, to: str, reply: Reply
    ) -> bool:
        try:
            await self.sender.send(to, reply)
        except PermanentSendError as ex:
            # Retrying a refused reply cannot help: drop it, and say so loudly.
            logger.error(
                "reply refused for good, dropped: student=%s entry=%s reason=%s",
                student,
                entry_id,
                ex,
            )
        except Exception as ex:
            logger.warning(
                "reply not delivered, the sweeper will retry: student=%s entry=%s "
                "(%s: %s)",
                student,
                entry_id,
                type(ex).__name__,
                ex,
            )
            return False

        try:
            await self.outbox.confirm(student, entry_id)
        except Exception:
            # NOTE: sent but not confirmed: the sweeper will send it again. That is
            # the at-least-once promise; the log says why a student saw it twice.
            logger.warning(
                "reply sent but not confirmed: student=%s entry=%s",
                student,
                entry_id,
                exc_info=True,
            )
            return False
        return True

    async def sweep_once(self) -> int:
        """Re-send unconfirmed replies of every shard this process holds; count them."""
        now = self.clock()
        resent = 0
        for shard in range(self.outbox.shards):
            if not await self.outbox.lease(shard, self.owner, self.grace_seconds * 3):
                continue
            pending = await self.outbox.unconfirmed(
                shard, now - self.grace_seconds, SWEEP_BATCH
            )
            for item in pending:
                resent += await self._resend(item, now)
        return resent

    async def _resend(self, item: PendingReply, now: float) -> int:
        if now - item.created_at > self.give_up_seconds:
            logger.warning(
                "reply too old to send, dropped: student=%s entry=%s age=%.0fs",
                item.student,
                item.entry_id,
                now - item.created_at,
            )
            await self.outbox.confirm(item.student, item.entry_id)
            return 0
        delivered = await self.deliver(item.student, item.entry_id, item.to, item.reply)
        return int(delivered)

    async def run_sweeper(self, interval: float = 2.0) -> None:
        """Sweep forever, every `interval` seconds."""
        while True:
            try:
                resent = await self.sweep_once()
                if resent:
                    logger.info("re-sent %d unconfirmed replies", resent)
            except Exception:
                logger.exception("outbox sweep failed; trying again")
            await asyncio.sleep(interval)

    async def drain(self, seconds: float = 5.0) -> None:
        """Wait for replies being sent right now, up to `seconds`."""
        if self._tasks:
            await asyncio.wait(set(self._tasks), timeout=seconds)
