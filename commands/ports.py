"""The ports the command handlers depend on; adapters implement them."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol

from tutorlane.domain.events import Event
from tutorlane.domain.messages import Reply
from tutorlane.domain.session import Session


class VersionConflict(Exception):
    """Another message of the same student committed first; reload and redo."""


@dataclass(frozen=True, slots=True)
class PendingReply:
    """A reply in the outbox, not yet confirmed as sent."""

    entry_id: str
    student: str
    to: str
    reply: Reply
    created_at: float


class SessionStore(Protocol):
    """Sessions, with an atomic commit of session, dedupe mark, reply and events."""

    async def load(self, student: str) -> Session:
        """Return the student's session, or a new one."""
        ...

    async def commit(
        self,
        student: str,
        expected_version: int,
        session: Session,
        to: str,
        reply: Reply,
        events: Sequence[Event],
    ) -> str:
        """Write all of it at once if the stored version is `expected_version`.

        Returns the outbox entry id of the reply; raises `VersionConflict` otherwise.
        """
        ...


class ReplyOutbox(Protocol):
    """Replies committed with their sessions, waiting for the SwiftChat API to take.

    The outbox is split into `shards`; one sweeper at a time holds a shard's lease.
    """

    shards: int

    async def confirm(self, student: str, entry_id: str) -> None:
        """Mark a reply as sent, so that it is never sent again."""
        ...

    async def lease(self, shard: int, owner: str, seconds: float) -> bool:
        """Take or renew the right to sweep `shard` for `seconds`; tell if held."""
        ...

    async def unconfirmed(
        self, shard: int, older_than: float, limit: int
    ) -> list[PendingReply]:
        """Return replies of `shard` committed before `older_than`, oldest first."""
        ...


class ReplySender(Protocol):
    """Delivers a reply to a student."""

    async def send(self, to: str, reply: Reply) -> None:
        """Send `reply`; raise `PermanentSendError` when retrying cannot help."""
        ...


class PermanentSendError(Exception):
    """The receiving API refused a reply for good (bad request, unknown user)."""
