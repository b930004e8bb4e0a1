"""The agents in the running embedded system: Navigator plans and Analyst insights.

A student chats through the fast lane; their events travel the slow lane into the
event store, the projections follow, the Navigator writes plans back into the
session and the rule-based stand-in of the Analyst records what it finds.
"""

from __future__ import annotations

import asyncio
import itertools
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
import sqlalchemy as sa

from tutorlane.bootstrap import Runtime, start_runtime
from tutorlane.domain.course import ChoiceAnswer, Node, NumberAnswer, PhraseAnswer
from tutorlane.domain.messages import Inbound, Kind
from tutorlane.domain.session import Session
from tutorlane.entrypoints.settings import Settings

PHONE = "+919711100001"
_ids = itertools.count(1)


def right_answer(node: Node) -> str:
    """Return what a student who knows the answer types."""
    answer = node.answer
    if isinstance(answer, NumberAnswer):
        return str(answer.value)
    if isinstance(answer, PhraseAnswer):
        return answer.phrases[0]
    assert isinstance(answer, ChoiceAnswer)
    return answer.choice


class Student:
    """One student chatting with the in-process fast lane."""

    def __init__(self, runtime: Runtime) -> None:
        self.runtime = runtime
        self.pseudonym = runtime.handler.pseudonymise(PHONE)

    async def say(self, text: str) -> None:
        message = Inbound(f"m-{next(_ids)}", Kind.TEXT, text, sent_at=next(_ids))
        handled = await self.runtime.handler.handle(PHONE, message)
        assert handled.reply is not None

    async def session(self) -> Session:
        return await self.runtime.store.load(self.pseudonym)

    async def node(self) -> Node:
        return self.runtime.course.node((await self.session()).node)

    async def fail(self, node_id: str) -> None:
        """Answer wrong at `node_id` until the course moves on."""
        while (await self.session()).node == node_id:
            await self.say("999999")

    async def plan_ready(self, seconds: float = 15.0) -> Session:
        """Wait until the Navigator's plan is for the student's current question."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + seconds
        while loop.time() < deadline:
            session = await self.session()
            if session.plan and session.plan_for == session.node:
                return session
            await asyncio.sleep(0.05)
        raise AssertionError(f"no plan for {session.node} within {seconds} s")


@pytest.fixture
async def runtime(tmp_path: Path) -> AsyncIterator[Runtime]:
    running = await start_runtime(Settings(var_dir=tmp_path / "var"), secret="s")
    yield running
    await running.close()


async def test_a_student_who_keeps_failing_a_skill_is_sent_to_its_remediation(
    runtime: Runtime,
) -> None:
    student = Student(runtime)
    await student.say("hi")
    # Knowing everything before subtraction, wherever the Navigator sends them.
    for _ in range(60):
        node = await student.node()
        if node.skill == "subtraction":
            break
        await student.say(right_answer(node))
    else:
        raise AssertionError("never reached a subtraction question")

    first = (await student.node()).id
    await student.fail(first)
    planned = await student.plan_ready()
    at = planned.node
    await student.fail(at)

    assert planned.plan[0] == "sub-r", planned.plan
    assert (await student.session()).node == "sub-r"
    assert runtime.course.node("sub-r").skill == "subtraction"


async def test_the_analyst_stand_in_records_an_insight_after_three_wrong_answers(
    runtime: Runtime,
) -> None:
    student = Student(runtime)
    await student.say("hi")
    for _ in range(3):
        await student.say("999999")
    await student.say("hint")

    engine = sa.create_engine(runtime.settings.event_store_url)
    loop = asyncio.get_running_loop()
    deadline = loop.time() + 15
    rows: list[sa.Row[tuple[str, str, str]]] = []
    while loop.time() < deadline and not rows:
        with engine.connect() as connection:
            rows = list(
                connection.execute(
                    sa.text(
                        "SELECT student, remediation_node, model FROM analyst_insights"
                    )
                )
            )
        await asyncio.sleep(0.1)
    engine.dispose()

    assert len(rows) == 1
    who, remediation, model = rows[0]
    assert who == student.pseudonym
    assert runtime.course.has_node(remediation)
    assert model == "rule-based-stand-in"
