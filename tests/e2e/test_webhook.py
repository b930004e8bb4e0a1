"""A student talks to the running service over HTTP; replies reach the SwiftChat API."""

from __future__ import annotations

import asyncio
import itertools
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import httpx
import pytest

from tutorlane.bootstrap import pick_course
from tutorlane.domain.course import Course, NumberAnswer
from tutorlane.entrypoints.settings import Settings
from tutorlane.tests.e2e.conftest import BOT_ID, Imitation, Server

_phones = itertools.count(919700000000)


@pytest.fixture
def phone() -> str:
    return f"+{next(_phones)}"


@pytest.fixture(scope="module")
def course() -> Course:
    return pick_course(Settings())


def body(phone: str, text: str, message_id: str | None = None) -> dict[str, Any]:
    return {
        "from": phone,
        "type": "text",
        "timestamp": "1733212800",
        "message_id": message_id or str(uuid.uuid4()),
        "conversation_id": "c-e2e",
        "conversation_initiated_by": "user",
        "text": {"body": text},
    }


def say(server: Server, phone: str, text: str, message_id: str | None = None) -> None:
    response = httpx.post(server.webhook, json=body(phone, text, message_id))
    assert response.status_code == 200, response.text


def text_of(message: dict[str, Any]) -> str:
    if message["type"] == "button":
        return str(message["button"]["body"]["text"]["body"])
    return str(message["text"]["body"])


def first_number_answer(course: Course) -> int:
    answer = course.node(course.start).answer
    assert isinstance(answer, NumberAnswer), "the shipped course starts with a number"
    return int(answer.value)


def test_a_student_starts_answers_asks_a_hint_and_moves_on(
    server: Server, imitation: Imitation, phone: str, course: Course
) -> None:
    first = course.node(course.start)
    right = first_number_answer(course)

    say(server, phone, "hi")
    say(server, phone, str(right + 1))
    say(server, phone, "hint")
    say(server, phone, f"Answer is {right}")
    replies = imitation.wait_for(phone, 4)

    assert len(replies) == 4
    assert all(reply["bot_id"] == BOT_ID for reply in replies)
    texts = [text_of(reply) for reply in replies]
    assert first.question.in_language("en") in texts[0]
    assert first.wrong_feedback.in_language("en") in texts[1]
    assert first.hints[0].in_language("en") in texts[2]
    assert first.right_feedback.in_language("en") in texts[3]
    next_node = course.node(first.next.right or "")
    assert next_node.question.in_language("en") in texts[3]


def test_the_same_delivery_twice_gives_one_reply(
    server: Server, imitation: Imitation, phone: str
) -> None:
    say(server, phone, "hi", message_id="dup-start")
    say(server, phone, "hi", message_id="dup-start")
    say(server, phone, "help")

    replies = imitation.wait_for(phone, 2)
    assert len(replies) == 2
    assert "Commands" in text_of(replies[1])


def test_two_messages_at_the_same_moment_are_applied_one_after_the_other(
    server: Server, imitation: Imitation, phone: str, course: Course
) -> None:
    hints = course.node(course.start).hints
    assert len(hints) >= 2, "the first question needs two hints for this test"
    say(server, phone, "hi")
    imitation.wait_for(phone, 1)

    with ThreadPoolExecutor(2) as pool:
        list(pool.map(lambda _: say(server, phone, "hint"), range(2)))
    replies = imitation.wait_for(phone, 3)

    given = sorted(text_of(reply).split("\n\n")[0] for reply in replies[1:])
    expected = sorted(hint.in_language("en") for hint in hints[:2])
    assert given == expected, "each hint once: neither message overwrote the other"


def test_a_wrong_secret_is_not_found(server: Server, phone: str) -> None:
    url = server.webhook.replace("e2e-secret", "e2e-guess")
    assert httpx.post(url, json=body(phone, "hi")).status_code == 404


def test_malformed_json_gets_a_json_error_saying_so(server: Server) -> None:
    response = httpx.post(
        server.webhook,
        content=b"{not json",
        headers={"content-type": "application/json"},
    )
    assert response.status_code == 400
    assert "not valid JSON" in response.json()["description"]


def test_a_body_missing_envelope_fields_gets_400_naming_the_field(
    server: Server, phone: str
) -> None:
    incomplete = body(phone, "hi")
    del incomplete["message_id"]
    response = httpx.post(server.webhook, json=incomplete)

    assert response.status_code == 400
    assert "message_id" in response.json()["description"]


def test_a_body_over_64_kib_gets_413_and_changes_nothing(
    server: Server, imitation: Imitation, phone: str
) -> None:
    huge = body(phone, "hi")
    huge["padding"] = "x" * (65 * 1024)
    response = httpx.post(server.webhook, json=huge)

    assert response.status_code == 413
    say(server, phone, "15")
    (reply,) = imitation.wait_for(phone, 1)
    assert "Send hi" in text_of(reply), "the oversized greeting started nothing"


def test_an_unknown_message_type_gets_200_and_a_gentle_reply(
    server: Server, imitation: Imitation, phone: str
) -> None:
    sticker = {**body(phone, ""), "type": "sticker", "sticker": {"id": "s1"}}
    del sticker["text"]
    response = httpx.post(server.webhook, json=sticker)

    assert response.status_code == 200
    (reply,) = imitation.wait_for(phone, 1)
    assert "only read typed answers" in text_of(reply)


def test_a_reply_the_api_fails_to_take_is_sent_again(
    server: Server, imitation: Imitation, phone: str
) -> None:
    imitation.script({"status": 503}, {"status": 429, "retry_after": 1})
    say(server, phone, "hi")

    replies = imitation.wait_for(phone, 1, seconds=15)
    assert len(replies) == 1


def test_health_check_answers(server: Server) -> None:
    response = httpx.get(f"{server.base_url}/healthz")
    assert response.status_code == 200
    assert response.json()["status"] == "ok"


def test_a_burst_of_the_same_message_gets_one_reply_and_no_errors(
    server: Server, imitation: Imitation, phone: str
) -> None:
    async def burst() -> list[int]:
        limits = httpx.Limits(max_connections=300)
        async with httpx.AsyncClient(timeout=30, limits=limits) as http:
            responses = await asyncio.gather(
                *(
                    http.post(server.webhook, json=body(phone, "hi", "same"))
                    for _ in range(300)
                )
            )
        return [response.status_code for response in responses]

    statuses = asyncio.run(burst())

    assert statuses == [200] * 300
    assert len(imitation.wait_for(phone, 1)) == 1
    time.sleep(1)
    assert len(imitation.sent_to(phone)) == 1
