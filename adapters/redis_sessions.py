"""Sessions and the outbox in Redis: one read per message, one Lua step to commit.

Keys of a student live in one shard and carry its Redis Cluster hash tag, so that a
Lua script only ever touches one slot:

    tl:{s07}:t:<student>   the session: "<version>|<msgpack>", a string; written
                           by the fast lane's commit and the Navigator's plans
    tl:{s07}:r             stream of replies waiting to be confirmed as sent
    tl:{s07}:e             stream of domain events waiting for the relay
    tl:{s07}:x:<student>   a damaged session, set aside for a week to be looked at

A shard, not a single student, is the unit of the hash tag because the outbox streams
must sit in the same slot as every session that writes to them.

A session is one string, not a hash of version and data: a hash with a value this
long is a table of its own in Redis, 170 bytes more per student. Its version comes
first, so that a script can compare it without decoding the rest. (The first layout,
a hash under `tl:{s07}:s:<student>`, is no longer read: a student whose session is
there is restored from the event store, and the old key expires.)
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import replace
from typing import Any, cast

from redis.asyncio import Redis
from redis.asyncio.cluster import RedisCluster
from redis.exceptions import NoScriptError, ResponseError

from tutorlane.adapters.codecs import (
    CorruptRecord,
    NewerFormat,
    OutgoingReply,
    decode_reply,
    decode_session,
    encode_events,
    encode_reply,
    encode_session,
)
from tutorlane.commands.ports import (
    PendingReply,
    SessionFromNewerRelease,
    SessionPlan,
    VersionConflict,
)
from tutorlane.domain.events import Event
from tutorlane.domain.messages import Reply
from tutorlane.domain.session import Session

logger = logging.getLogger(__name__)

# A single Redis or a Redis Cluster: every key of a script shares one hash slot.
RedisClient = Redis | RedisCluster

DEFAULT_SHARDS = 16
SESSION_TTL_SECONDS = 60 * 60 * 24 * 30
# Confirms arriving within this window share one round trip to Redis.
CONFIRM_WINDOW_SECONDS = 0.002
# NOTE: the store bounds each of its round trips itself, so that its client may run
# without redis-py's socket timeout, which wraps every command sent in a task of
# its own (asyncio.wait_for): 3 % of a webhook worker's CPU.
COMMAND_TIMEOUT_SECONDS = 5.0
DAMAGED_KEPT_SECONDS = 7 * 24 * 60 * 60
# How far ahead of this host's clock another host's may be.
CLOCK_SKEW_SECONDS = 60 * 60

# KEYS: session, replies stream, events stream.
# ARGV: expected version, stored session, ttl, student, reply, events ('' when the
#       message produced none).
# A stored session whose version cannot be read equals no expected version.
_COMMIT = """
local stored = redis.call('GET', KEYS[1])
local version = '0'
if stored then
  version = string.match(stored, '^(%d+)|') or ''
end
if version ~= ARGV[1] then
  return false
end
redis.call('SET', KEYS[1], ARGV[2], 'EX', ARGV[3])
local reply_id = redis.call('XADD', KEYS[2], '*', 's', ARGV[4], 'r', ARGV[5])
if ARGV[6] ~= '' then
  redis.call('XADD', KEYS[3], '*', 's', ARGV[4], 'e', ARGV[6])
end
return reply_id
"""

# KEYS: session. ARGV: expected version, stored session.
# A missing session is never created here, so a plan for a session that expired
# meanwhile is dropped.
_WRITE_PLAN = """
local stored = redis.call('GET', KEYS[1])
if not stored or string.match(stored, '^(%d+)|') ~= ARGV[1] then
  return 0
end
redis.call('SET', KEYS[1], ARGV[2], 'KEEPTTL')
return 1
"""


# KEYS: session, where to keep it. ARGV: the damaged value ('' for a key that is
# not a string), seconds to keep it. Only what was found damaged moves: a session
# written meanwhile stays.
_SET_ASIDE = """
local kind = redis.call('TYPE', KEYS[1])['ok']
if kind == 'none' then
  return 0
end
if kind == 'string' and redis.call('GET', KEYS[1]) ~= ARGV[1] then
  return 0
end
redis.call('RENAME', KEYS[1], KEYS[2])
redis.call('EXPIRE', KEYS[2], ARGV[2])
return 1
"""


# The keys and the arguments of one call of a Lua script.
_ScriptCall = tuple[list[str], list[int | bytes]]


def shard_of(student: str, shards: int) -> int:
    """Return the outbox shard a student belongs to."""
    digest = hashlib.blake2b(student.encode(), digest_size=4).digest()
    return int.from_bytes(digest, "big") % shards


def shard_tag(shard: int) -> str:
    """Return the key prefix, with its hash tag, of one shard."""
    return f"tl:{{s{shard:02d}}}"


class RedisSessionStore:
    """Sessions, dedupe marks and the outbox in Redis (or fakeredis, same code)."""

    def __init__(
        self,
        redis: RedisClient,
        shards: int = DEFAULT_SHARDS,
        session_ttl: int = SESSION_TTL_SECONDS,
        max_in_flight: int = 64,
        timeout: float = COMMAND_TIMEOUT_SECONDS,
    ) -> None:
        self.redis = redis
        self.shards = shards
        self.session_ttl = session_ttl
        self.timeout = timeout
        # Bounds the connections a burst of messages takes; the others wait. Keep
        # it below the client's pool size (redis-py's default pool holds 100).
        self._in_flight = asyncio.Semaphore(max_in_flight)
        self._commit = redis.register_script(_COMMIT)
        self._write_plan = redis.register_script(_WRITE_PLAN)
        self._set_aside = redis.register_script(_SET_ASIDE)
        self._confirms = _ConfirmBatch(redis, self.replies_key, timeout)

    def session_key(self, student: str) -> str:
        """Return the key of a student's session."""
        return f"{shard_tag(shard_of(student, self.shards))}:t:{student}"

    def replies_key(self, shard: int) -> str:
        """Return the key of one shard's reply outbox."""
        return f"{shard_tag(shard)}:r"

    def events_key(self, shard: int) -> str:
        """Return the key of one shard's event outbox."""
        return f"{shard_tag(shard)}:e"

    def damaged_key(self, student: str) -> str:
        """Return where a student's damaged session is kept."""
        return f"{shard_tag(shard_of(student, self.shards))}:x:{student}"

    async def load(self, student: str) -> Session:
        """Return the student's session, or a new one if none can be read.

        A damaged session is set aside and reads as none, so that the student is
        restored from the event store as after a loss; one from a newer release is
        left alone and raises SessionFromNewerRelease.
        """
        try:
            async with self._in_flight, asyncio.timeout(self.timeout):
                data = await self.redis.get(self.session_key(student))
        except ResponseError as ex:
            if not str(ex).startswith("WRONGTYPE"):
                raise
            await self._move_aside(student, b"", CorruptRecord("not a string key"))
            return Session()
        if data is None:
            return Session()
        try:
            return _stored_session(_bytes(data))
        except NewerFormat as ex:
            raise SessionFromNewerRelease(f"session of {student}: {ex}") from None
        except CorruptRecord as ex:
            await self._move_aside(student, _bytes(data), ex)
            return Session()

    async def _move_aside(
        self, student: str, damaged: bytes, problem: CorruptRecord
    ) -> None:
        keys = [self.session_key(student), self.damaged_key(student)]
        async with self._in_flight, asyncio.timeout(self.timeout):
            moved = await self._set_aside(
                keys=keys, args=[damaged, DAMAGED_KEPT_SECONDS]
            )
        if moved:
            # NOTE: if another process moved it first, it has said so already.
            logger.error(
                "session of student=%s damaged (%s): kept under %s for 7 days, "
                "and the student restored from the event store",
                student,
                problem,
                keys[1],
            )

    async def commit(
        self,
        student: str,
        expected_version: int,
        session: Session,
        to: str,
        reply: Reply,
        events: Sequence[Event],
    ) -> str:
        """Write session, reply and events at once, if the version is unchanged."""
        shard = shard_of(student, self.shards)
        outgoing = OutgoingReply(to, reply, session.last_seen)
        keys = [
            self.session_key(student),
            self.replies_key(shard),
            self.events_key(shard),
        ]
        args: list[bytes | str | int] = [
            expected_version,
            session_value(session),
            self.session_ttl,
            student,
            encode_reply(outgoing),
            encode_events(tuple(events)) if events else b"",
        ]
        async with self._in_flight, asyncio.timeout(self.timeout):
            entry_id = await self._commit(keys=keys, args=args)
        if entry_id is None:
            raise VersionConflict(f"session of {student} moved past {expected_version}")
        return _text(entry_id)

    async def load_many(self, students: Sequence[str]) -> list[Session | None]:
        """Return the students' sessions in their order, read in one round trip.

        A session that cannot be read (another release's format, a damaged key) is
        None, logged; it does not keep the others from being read.
        """
        pipe = self.redis.pipeline(transaction=False)
        for student in students:
            pipe.get(self.session_key(student))
        async with self._in_flight, asyncio.timeout(self.timeout):
            found = await pipe.execute(raise_on_error=False) if students else []
        return [
            self._readable(student, data)
            for student, data in zip(students, found, strict=True)
        ]

    @staticmethod
    def _readable(student: str, data: Any) -> Session | None:
        """Return a session read by a pipeline, None if it cannot be read."""
        if data is None:
            return Session()
        try:
            if not isinstance(data, Exception):
                return _stored_session(_bytes(data))
            problem: Exception = data
        except CorruptRecord as ex:
            problem = ex
        logger.warning("session of student=%s cannot be read: %s", student, problem)
        return None

    async def write_plans(self, plans: Sequence[SessionPlan]) -> list[bool]:
        """Set each Navigator plan whose session is still the one it was made for.

        A plan applies at the session's current node (`plan_for`). Writing it moves
        the version on by one, like any other change of the session: the version
        then always names one content, so a plan computed for an older version can
        never overwrite a newer plan, and a fast-lane commit that loaded the session
        before the plan conflicts and redoes its message on the session with the
        plan. A stale plan writes nothing and answers False, as does one that
        failed (logged). All of them go in one round trip; each is checked and
        written atomically on its own.
        """
        if not plans:
            return []
        calls: list[_ScriptCall] = []
        for planned in plans:
            computed_for = planned.computed_for
            session = replace(
                computed_for,
                version=computed_for.version + 1,
                plan=planned.plan,
                plan_for=computed_for.node,
            )
            calls.append(
                (
                    [self.session_key(planned.student)],
                    [computed_for.version, session_value(session)],
                )
            )

        answers = await self._write_plan_calls(calls)
        unknown = [i for i, answer in enumerate(answers) if _no_script(answer)]
        if unknown:
            # NOTE: a cluster's pipeline does not load scripts the way a single
            # Redis's does, and a restarted node has forgotten them. Only the calls
            # refused for it ran nothing; only they go again.
            async with asyncio.timeout(self.timeout):
                await self.redis.script_load(_WRITE_PLAN)
            again = await self._write_plan_calls([calls[i] for i in unknown])
            for index, answer in zip(unknown, again, strict=True):
                answers[index] = answer
        for planned, answer in zip(plans, answers, strict=True):
            if isinstance(answer, Exception):
                # NOTE: one damaged key must not hide what became of the others.
                logger.warning(
                    "plan for student=%s not written: %s", planned.student, answer
                )
        return [answer == 1 for answer in answers]

    async def _write_plan_calls(self, calls: Sequence[_ScriptCall]) -> list[Any]:
        """Run the plan script once per call in one pipeline; errors as answers."""
        pipe = self.redis.pipeline(transaction=False)
        for keys, args in calls:
            # NOTE: redis-py's scripts take a pipeline, though its hints say not.
            await self._write_plan(keys=keys, args=args, client=pipe)  # type: ignore[arg-type]
        async with self._in_flight, asyncio.timeout(self.timeout):
            return list(await pipe.execute(raise_on_error=False))

    async def write_plan(
        self, student: str, computed_for: Session, plan: Sequence[str]
    ) -> bool:
        """Set one plan if the session is still `computed_for` (see `write_plans`)."""
        (written,) = await self.write_plans(
            [SessionPlan(student, computed_for, tuple(plan))]
        )
        return written

    async def confirm(self, student: str, entry_id: str) -> None:
        """Remove a sent reply from the outbox."""
        await self._confirms.confirm(shard_of(student, self.shards), entry_id)

    async def lease(self, shard: int, owner: str, seconds: float) -> bool:
        """Take (or keep) the right to sweep one shard for `seconds`."""
        key = f"{shard_tag(shard)}:sweeper"
        milliseconds = int(seconds * 1000)
        async with asyncio.timeout(self.timeout):
            taken = await self.redis.set(key, owner, nx=True, px=milliseconds)
            if taken:
                return True
            if _text(await self.redis.get(key) or b"") == owner:
                await self.redis.pexpire(key, milliseconds)
                return True
            return False

    async def unconfirmed(
        self, shard: int, older_than: float, limit: int
    ) -> list[PendingReply]:
        """Return replies of one shard committed before `older_than`, oldest first."""
        newest = f"({int(older_than * 1000)}-0"
        # NOTE: redis-py types stream rows loosely; without decoding they are bytes.
        async with asyncio.timeout(self.timeout):
            found = await self.redis.xrange(self.replies_key(shard), "-", newest, limit)
        rows = cast(list[tuple[bytes, dict[bytes, bytes]]], found)
        pending = []
        for entry_id, fields in rows:
            try:
                pending.append(_pending(entry_id, fields))
            except (ValueError, KeyError) as ex:
                # NOTE: ValueError covers CorruptRecord and a student id that is
                # not UTF-8.
                await self._quarantine(shard, entry_id, fields, ex)
        return pending

    async def _quarantine(
        self, shard: int, entry_id: bytes, fields: dict[bytes, bytes], ex: Exception
    ) -> None:
        # NOTE: one unreadable entry must not stop the sweep of every other reply;
        # it moves to a side stream where an operator can look at it.
        logger.error(
            "unreadable reply %s in shard %d moved to %s:r-dead (%s)",
            _text(entry_id),
            shard,
            shard_tag(shard),
            ex,
        )
        pipe = self.redis.pipeline(transaction=True)
        kept: dict[Any, Any] = dict(fields) or {b"empty": b""}
        pipe.xadd(f"{shard_tag(shard)}:r-dead", kept)
        pipe.xdel(self.replies_key(shard), entry_id)
        async with asyncio.timeout(self.timeout):
            await pipe.execute()

    async def outbox_sizes(self) -> dict[str, int]:
        """Return how many replies and events wait in the outbox, over all shards."""
        pipe = self.redis.pipeline(transaction=False)
        for shard in range(self.shards):
            pipe.xlen(self.replies_key(shard))
            pipe.xlen(self.events_key(shard))
        async with asyncio.timeout(self.timeout):
            counts = await pipe.execute()
        return {"replies": sum(counts[0::2]), "events": sum(counts[1::2])}


class _ConfirmBatch:
    """Removes the replies confirmed within a short window in one round trip.

    Every message's reply is confirmed once it is sent; one XDEL each was a third of
    the fast lane's Redis commands, and a Python Redis command costs about 0.1 ms of
    CPU. Confirms of one moment are gathered into one XDEL per shard, pipelined; each
    caller still returns only once its entry is gone (or raises if it could not be
    removed, and the sweeper sends the reply again).
    """

    def __init__(
        self,
        redis: RedisClient,
        replies_key: Callable[[int], str],
        timeout: float,
    ) -> None:
        self.redis = redis
        self.replies_key = replies_key
        self.timeout = timeout
        self._waiting: dict[int, list[str]] = {}
        self._done: asyncio.Future[None] | None = None
        self._flushes: set[asyncio.Task[None]] = set()

    async def confirm(self, shard: int, entry_id: str) -> None:
        """Remove one entry, together with the others of this window."""
        if self._done is None:
            loop = asyncio.get_running_loop()
            self._done = loop.create_future()
            loop.call_later(CONFIRM_WINDOW_SECONDS, self._flush_now)
        self._waiting.setdefault(shard, []).append(entry_id)
        # NOTE: shielded, so that a cancelled caller never cancels the others' XDEL.
        await asyncio.shield(self._done)

    def _flush_now(self) -> None:
        waiting, done = self._waiting, self._done
        self._waiting, self._done = {}, None
        if done is None:
            return
        task = asyncio.create_task(self._flush(waiting, done))
        self._flushes.add(task)
        task.add_done_callback(self._flushes.discard)

    async def _flush(
        self, waiting: dict[int, list[str]], done: asyncio.Future[None]
    ) -> None:
        try:
            pipe = self.redis.pipeline(transaction=False)
            for shard, entry_ids in waiting.items():
                pipe.xdel(self.replies_key(shard), *entry_ids)
            async with asyncio.timeout(self.timeout):
                await pipe.execute()
        except Exception as ex:
            done.set_exception(ex)
            # Retrieved here, so that no caller gone meanwhile leaves it unretrieved.
            done.exception()
        else:
            done.set_result(None)


def _pending(entry_id: Any, fields: dict[bytes, bytes]) -> PendingReply:
    outgoing = decode_reply(fields[b"r"])
    return PendingReply(
        entry_id=_text(entry_id),
        student=_text(fields[b"s"]),
        to=outgoing.to,
        reply=outgoing.reply,
        created_at=outgoing.created_at,
    )


def session_value(session: Session) -> bytes:
    """Return a session as stored: its version, a bar, and the session."""
    return b"%d|%s" % (session.version, encode_session(session))


def _stored_session(data: bytes) -> Session:
    """Read a stored session back; raise CorruptRecord if it cannot be."""
    version, bar, encoded = data.partition(b"|")
    if not bar or not version.isdigit():
        raise CorruptRecord("a stored session starts with its version and a bar")
    session = decode_session(encoded)
    # NOTE: the Lua scripts compare the prefix as text: one that disagrees with the
    # version inside (or has a leading zero) would refuse every commit, as would
    # version 0, which the commit takes for "no session yet".
    if session.version < 1 or version != b"%d" % session.version:
        raise CorruptRecord(
            f"session prefix {version[:20]!r} is not its version {session.version}"
        )
    # NOTE: the fast lane keeps message times no later than its clock; one far
    # ahead of it would take every message for a redelivery, answered by silence.
    seen = [session.horizon, *(int.from_bytes(m[6:10], "big") for m in session.recent)]
    if max(seen) > time.time() + CLOCK_SKEW_SECONDS:
        raise CorruptRecord("session remembers messages from the future")
    return session


def _no_script(answer: Any) -> bool:
    return isinstance(answer, NoScriptError) or (
        isinstance(answer, ResponseError) and str(answer).startswith("NOSCRIPT")
    )


def _bytes(value: bytes | str) -> bytes:
    return value if isinstance(value, bytes) else value.encode()


def _text(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)
