"""The ports the command handlers depend on; adapters implement them."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol

from tutorlane.domain.analysis import AnalysisRequest
from tutorlane.domain.events import Event
from tutorlane.domain.messages import Reply
from tutorlane.domain.session import Session


class VersionConflict(Exception):
    """Another message of the same student committed first; reload and redo."""


class SessionFromNewerRelease(Exception):
    """The session was written by a newer release; this one must not touch it.

    Raised during a rolling upgrade, until a process of the newer release takes
    the student's messages; SwiftChat retries them meanwhile.
    """


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


@dataclass(frozen=True, slots=True)
class SessionPlan:
    """A plan to set on a student's session if it is still `computed_for`."""

    student: str
    computed_for: Session
    plan: tuple[str, ...]


class PlanWriter(Protocol):
    """Sessions as the Navigator sees them: read some, set their plans if unchanged.

    Both calls take a whole batch of students, so that the Navigator pays one round
    trip per batch, not one per student.
    """

    async def load_many(self, students: Sequence[str]) -> list[Session | None]:
        """Return the students' sessions in their order; a new one where none.

        None stands for a session that exists but cannot be read.
        """
        ...

    async def write_plans(self, plans: Sequence[SessionPlan]) -> list[bool]:
        """Set each plan for its session's current node if the session is unchanged.

        Compared by version, atomically per session. A False in the answer says that
        plan wrote nothing: the session changed or vanished meanwhile, or the write
        failed. A write moves the session's version on.
        """
        ...


class RecordedHistory(Protocol):
    """What the event store already holds of a student, as the fast lane needs it."""

    async def history(self, student: str) -> list[Event]:
        """Return the student's recorded events in sequence order ([] if none).

        Raises when the event store cannot be asked.
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


# Slow lane ------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class BusMessage:
    """One event on its way to the event store, as JSON."""

    event_id: str
    student: str
    seq: int
    body: bytes


@dataclass(frozen=True, slots=True)
class OutboxEntry:
    """The events one message committed, read from the event outbox.

    `problem` says why an entry could not be read; it then carries no messages and
    its raw `payload` is parked on the dead-letter queue.
    """

    entry_id: str
    messages: tuple[BusMessage, ...]
    payload: bytes = b""
    problem: str | None = None


class EventOutbox(Protocol):
    """Events committed with sessions, waiting for the relay; split into shards."""

    shards: int

    async def read(
        self, shard: int, consumer: str, count: int, block_ms: int, pending: bool
    ) -> list[OutboxEntry]:
        """Return entries for `consumer`: its unacknowledged ones, or new ones."""
        ...

    async def reclaim(self, shard: int, consumer: str, idle_ms: int, count: int) -> int:
        """Take over entries another consumer left unacknowledged; count them."""
        ...

    async def acknowledge(self, shard: int, entry_ids: Sequence[str]) -> None:
        """Remove entries whose events the bus has confirmed."""
        ...


class EventPublisher(Protocol):
    """The bus from the relay to the workers."""

    async def publish(self, messages: Sequence[BusMessage]) -> None:
        """Publish all of them; return once the bus confirmed every one, or raise."""
        ...

    async def dead_letter(self, body: bytes, reason: str) -> None:
        """Park a message that cannot be processed, with the reason."""
        ...


@dataclass(frozen=True, slots=True)
class DeliveredEvent:
    """An event read from the bus, checked against its schema."""

    student: str
    seq: int
    topic: str
    body: bytes
    event_id: str = ""


@dataclass(frozen=True, slots=True)
class UnreadableEvent:
    """Part of a bus message that is not a valid event, and why."""

    body: bytes
    problem: str


class Delivery(Protocol):
    """A bus message handed to the worker: several events, settled together."""

    events: list[DeliveredEvent | UnreadableEvent]

    async def ack(self) -> None:
        """Settle: every event in it is recorded (or was already)."""
        ...

    async def retry_later(self) -> None:
        """Give the message back to the bus to be delivered again."""
        ...


class ParkedMessage(Protocol):
    """A message on the dead-letter queue, taken to be replayed or put back."""

    events: list[DeliveredEvent | UnreadableEvent]
    reason: str
    body: bytes

    async def settle(self) -> None:
        """Remove it from the dead-letter queue: its events are on their way."""
        ...

    async def park_again(self) -> None:
        """Put it back at the end of the dead-letter queue, reason unchanged."""
        ...


class DeadLetterQueue(Protocol):
    """Where messages the worker could not record wait, with the reason."""

    async def take(self, limit: int) -> Sequence[ParkedMessage]:
        """Take up to `limit` of the messages waiting now, oldest first."""
        ...

    async def close(self) -> None:
        """Let go of the queue; messages taken and not settled stay parked."""
        ...


@dataclass(frozen=True, slots=True)
class NewRecord:
    """An event as the event store keeps it."""

    student: str
    seq: int
    topic: str
    state: bytes


class EventLog(Protocol):
    """The event store, as the worker sees it (synchronous; run in a thread)."""

    def last_seqs(self, students: Sequence[str]) -> dict[str, int]:
        """Return the highest recorded sequence number of each student (0 if none)."""
        ...

    def append(self, records: Sequence[NewRecord]) -> None:
        """Record all of them in one transaction, or none."""
        ...

    def event_ids(self, keys: Sequence[tuple[str, int]]) -> dict[tuple[str, int], str]:
        """Return the event id recorded under each (student, seq) that has one."""
        ...


# Agents ---------------------------------------------------------------------------


class AnalystUnavailable(Exception):
    """The Analyst cannot answer now (down, rate-limited, too slow, circuit open)."""


class Analyst(Protocol):
    """A model that explains what a student gets wrong; `model` names it."""

    model: str

    async def analyse(self, request: AnalysisRequest) -> str:
        """Return the model's raw answer text; raise `AnalystUnavailable` if none.

        The text is untrusted: the caller checks it with `parse_insight`.
        """
        ...
