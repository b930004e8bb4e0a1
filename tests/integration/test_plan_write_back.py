"""The Navigator's write-back racing the fast lane, on fakeredis and a real Redis."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence

import pytest
from redis.asyncio import Redis

from tutorlane.adapters.flow_files import SHIPPED_FLOWS, load_course_file
from tutorlane.adapters.redis_sessions import RedisSessionStore
from tutorlane.commands.handle_message import MessageHandler
from tutorlane.commands.plan_next_steps import (
    PlanNextSteps,
    PlanOutcome,
    PlanRequest,
)
from tutorlane.commands.ports import SessionPlan
from tutorlane.domain.course import Course
from tutorlane.domain.knowledge import SkillKnowledge
from tutorlane.domain.messages import Inbound, Kind
from tutorlane.domain.navigator import Navigator
from tutorlane.domain.session import Session

PHONE = "+919800000001"
STUDENT = "pseudo-0001"
NOW = 1_700_000_000.0
# A student strong in place value: the Navigator skips the easy pv-2 and pv-3,
# which the course graph would ask next.
STRONG = {"place-value": SkillKnowledge("place-value", 0.93, attempts=3)}
STRONG_PLAN = ("pv-5", "pv-6", "pv-4")


@pytest.fixture(scope="module")
def course() -> Course:
    return load_course_file(SHIPPED_FLOWS / "maths-primary.yaml")


class Student:
    """One student chatting through the real fast-lane handler."""

    def __init__(
        self, store: RedisSessionStore, course: Course, student: str = STUDENT
    ) -> None:
        self.id = student
        self.handler = MessageHandler(
            store, course, lambda phone: student, clock=lambda: NOW
        )
        self.count = 0

    async def send(self, text: str) -> str:
        self.count += 1
        message = Inbound(f"m-{self.count}", Kind.TEXT, text, sent_at=int(NOW))
        handled = await self.handler.handle(PHONE, message)
        assert handled.reply is not None
        return handled.reply.text


class RacingSessions:
    """A PlanWriter that lets something else happen between the read and the write."""

    def __init__(
        self, store: RedisSessionStore, meanwhile: Callable[[], Awaitable[object]]
    ) -> None:
        self.store = store
        self.meanwhile = meanwhile

    async def load_many(self, students: Sequence[str]) -> list[Session | None]:
        return await self.store.load_many(students)

    async def write_plans(self, plans: Sequence[SessionPlan]) -> list[bool]:
        await self.meanwhile()
        return await self.store.write_plans(plans)


async def test_a_plan_is_written_for_the_current_node_and_moves_the_version_on(
    store: RedisSessionStore, course: Course, redis_client: Redis
) -> None:
    await Student(store, course).send("hi")
    navigator = PlanNextSteps(store, Navigator(course))

    planned = await navigator.plan(STUDENT, STRONG, {}, [], knowledge_seq=1, now=NOW)

    assert planned.outcome is PlanOutcome.WRITTEN and planned.plan == STRONG_PLAN
    session = await store.load(STUDENT)
    assert (session.plan, session.plan_for) == (STRONG_PLAN, "pv-1")
    assert session.version == planned.version + 1
    # The plan keeps the session's time to live.
    assert 0 < await redis_client.ttl(store.session_key(STUDENT)) <= store.session_ttl


async def test_the_fast_lane_takes_the_plan_on_the_next_answer(
    store: RedisSessionStore, course: Course
) -> None:
    student = Student(store, course)
    await student.send("hi")
    await PlanNextSteps(store, Navigator(course)).plan(STUDENT, STRONG, {}, [], 1, NOW)

    reply = await student.send("500")

    assert course.nodes["pv-5"].question.in_language("en") in reply
    session = await store.load(STUDENT)
    assert (session.node, session.plan, session.plan_for) == (
        "pv-5",
        ("pv-6", "pv-4"),
        "pv-5",
    )


async def test_a_plan_that_loses_the_race_to_the_fast_lane_is_dropped(
    store: RedisSessionStore, course: Course
) -> None:
    student = Student(store, course)
    await student.send("hi")
    sessions = RacingSessions(store, lambda: student.send("500"))

    planned = await PlanNextSteps(sessions, Navigator(course)).plan(
        STUDENT, STRONG, {}, [], knowledge_seq=1, now=NOW
    )

    assert planned.outcome is PlanOutcome.STALE
    session = await store.load(STUDENT)
    # The fast lane followed the graph to pv-2, and the plan made for pv-1 is not
    # there to send the student anywhere from it.
    assert session.node == "pv-2" and session.plan == ()


async def test_a_fast_lane_commit_in_flight_redoes_its_message_with_the_plan(
    store: RedisSessionStore, course: Course
) -> None:
    student = Student(store, course)
    await student.send("hi")
    navigator = PlanNextSteps(store, Navigator(course))

    class PlanAfterFirstLoad:
        """The fast lane's store; the Navigator writes just after its first read."""

        def __init__(self) -> None:
            self.loads = 0

        async def load(self, student_id: str) -> Session:
            session = await store.load(student_id)
            self.loads += 1
            if self.loads == 1:
                await navigator.plan(STUDENT, STRONG, {}, [], 1, NOW)
            return session

        def __getattr__(self, name: str) -> object:
            return getattr(store, name)

    racing = PlanAfterFirstLoad()
    student.handler.store = racing  # type: ignore[assignment]

    reply = await student.send("500")

    assert racing.loads == 2  # conflict, then redone on the session with the plan
    assert course.nodes["pv-5"].question.in_language("en") in reply


async def test_no_plan_is_made_from_knowledge_that_lacks_the_latest_answer(
    store: RedisSessionStore, course: Course
) -> None:
    student = Student(store, course)
    await student.send("hi")
    await student.send("500")  # event seq 2; the knowledge below is still at 1

    planned = await PlanNextSteps(store, Navigator(course)).plan(
        STUDENT, STRONG, {}, [], knowledge_seq=1, now=NOW
    )

    assert planned.outcome is PlanOutcome.BEHIND
    assert (await store.load(STUDENT)).plan == ()


async def test_the_same_plan_is_not_written_twice(
    store: RedisSessionStore, course: Course
) -> None:
    await Student(store, course).send("hi")
    navigator = PlanNextSteps(store, Navigator(course))
    await navigator.plan(STUDENT, STRONG, {}, [], 1, NOW)
    version = (await store.load(STUDENT)).version

    again = await navigator.plan(STUDENT, STRONG, {}, [], 1, NOW)

    assert again.outcome is PlanOutcome.UNCHANGED
    assert (await store.load(STUDENT)).version == version


async def test_a_student_who_never_started_gets_no_plan_and_no_session(
    store: RedisSessionStore, course: Course, redis_client: Redis
) -> None:
    planned = await PlanNextSteps(store, Navigator(course)).plan(
        STUDENT, STRONG, {}, [], 0, NOW
    )

    assert planned.outcome is PlanOutcome.NOT_IN_COURSE
    assert not await redis_client.exists(store.session_key(STUDENT))


async def test_a_plan_for_a_session_that_expired_meanwhile_creates_nothing(
    store: RedisSessionStore, course: Course, redis_client: Redis
) -> None:
    await Student(store, course).send("hi")
    session = await store.load(STUDENT)
    await redis_client.delete(store.session_key(STUDENT))

    assert not await store.write_plan(STUDENT, session, STRONG_PLAN)
    assert not await redis_client.exists(store.session_key(STUDENT))


async def test_a_batch_is_read_and_planned_at_once_and_only_the_stale_plan_dropped(
    store: RedisSessionStore, course: Course
) -> None:
    students = [Student(store, course, f"pseudo-{n:04d}") for n in range(5)]
    for student in students:
        await student.send("hi")
    behind, racing = students[1], students[3]
    await behind.send("500")  # its knowledge below is still at seq 1
    sessions = RacingSessions(store, lambda: racing.send("500"))
    requests = [
        PlanRequest(student.id, STRONG, {}, [], knowledge_seq=1, now=NOW)
        for student in students
    ] + [PlanRequest("pseudo-never", STRONG, {}, [], knowledge_seq=0, now=NOW)]

    planned = await PlanNextSteps(sessions, Navigator(course)).plan_many(requests)

    assert [item.outcome for item in planned] == [
        PlanOutcome.WRITTEN,
        PlanOutcome.BEHIND,
        PlanOutcome.WRITTEN,
        PlanOutcome.STALE,
        PlanOutcome.WRITTEN,
        PlanOutcome.NOT_IN_COURSE,
    ]
    loaded = [await store.load(student.id) for student in students]
    assert [session.plan for session in loaded] == [
        STRONG_PLAN,
        (),
        STRONG_PLAN,
        (),
        STRONG_PLAN,
    ]
    assert [session.node for session in loaded] == [
        "pv-1",
        "pv-2",
        "pv-1",
        "pv-2",
        "pv-1",
    ]


async def test_reading_no_students_asks_redis_nothing(
    store: RedisSessionStore,
) -> None:
    assert await store.load_many([]) == []
    assert await store.write_plans([]) == []


@pytest.mark.parametrize("damage", ["another format", "not a string"])
async def test_an_unreadable_session_is_left_alone_and_the_others_planned(
    store: RedisSessionStore, course: Course, redis_client: Redis, damage: str
) -> None:
    students = [Student(store, course, f"pseudo-{n:04d}") for n in range(3)]
    for student in students:
        await student.send("hi")
    damaged = store.session_key(students[1].id)
    if damage == "another format":
        await redis_client.set(damaged, b"2|\x92\x02\xa1x", keepttl=True)  # [2, "x"]
    else:
        await redis_client.delete(damaged)
        await redis_client.hset(damaged, "d", "a hash")
    requests = [
        PlanRequest(student.id, STRONG, {}, [], knowledge_seq=1, now=NOW)
        for student in students
    ]

    planned = await PlanNextSteps(store, Navigator(course)).plan_many(requests)

    assert [item.outcome for item in planned] == [
        PlanOutcome.WRITTEN,
        PlanOutcome.UNREADABLE,
        PlanOutcome.WRITTEN,
    ]
    assert (await store.load(students[2].id)).plan == STRONG_PLAN


async def test_a_write_that_fails_for_one_student_answers_for_every_other(
    store: RedisSessionStore, course: Course, redis_client: Redis
) -> None:
    students = [Student(store, course, f"pseudo-{n:04d}") for n in range(3)]
    for student in students:
        await student.send("hi")
    sessions = await store.load_many([student.id for student in students])
    damaged = store.session_key(students[0].id)
    await redis_client.delete(damaged)
    await redis_client.hset(damaged, "d", "a hash")

    written = await store.write_plans(
        [
            SessionPlan(student.id, session, STRONG_PLAN)
            for student, session in zip(students, sessions, strict=True)
            if session is not None
        ]
    )

    assert written == [False, True, True]
