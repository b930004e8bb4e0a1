"""The Anthropic Analyst through the real SDK against a Messages API imitation."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tutorlane.adapters.anthropic_analyst import AnthropicAnalyst
from tutorlane.adapters.circuit_breaker import BreakerState, CircuitBreaker
from tutorlane.adapters.flow_files import SHIPPED_FLOWS, load_course_file
from tutorlane.commands.analyse_student import AnalyseStudent
from tutorlane.commands.ports import AnalystUnavailable
from tutorlane.domain.analysis import (
    AnalysisRequest,
    AnalystBudget,
    Trigger,
    TriggerKind,
    build_request,
)
from tutorlane.domain.events import AnswerSubmitted
from tutorlane.tests.processes import Process, free_port, http_up

COURSE = load_course_file(SHIPPED_FLOWS / "maths-primary.yaml")
STUDENT = "pseudo-7f3a"
GOOD = {
    "misconception": "Takes the smaller digit from the larger in every column.",
    "evidence": "Answered 327 for 503 - 176.",
    "remediation_node": "sub-r",
}
ANSWERS = [
    AnswerSubmitted(
        event_id=f"e-{seq}",
        student=STUDENT,
        seq=seq,
        message_id=f"m-{seq}",
        occurred_at=1_700_000_000.0 + seq,
        course=COURSE.id,
        node=f"sub-{seq}",
        skill="subtraction",
        answer=f"{seq}27",
        correct=False,
        attempt=1,
        seconds_taken=4.0,
    )
    for seq in (1, 2, 3)
]
TRIGGER = Trigger(TriggerKind.WRONG_STREAK, "subtraction", ANSWERS[-1])
REQUEST = build_request(TRIGGER, COURSE, ANSWERS, {})


@pytest.fixture(scope="module")
def api(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    port = free_port()
    log = Path(tmp_path_factory.mktemp("messages-api")) / "imitation.log"
    process = Process(["dev", "messages-api-imitation", "--port", str(port)], {}, log)
    process.start().wait_until(http_up(f"http://127.0.0.1:{port}/_received"))
    yield f"http://127.0.0.1:{port}"
    process.stop()


@pytest.fixture(autouse=True)
def fresh(api: str) -> None:
    httpx.delete(f"{api}/_received")


def script(api: str, *responses: dict[str, Any]) -> None:
    httpx.post(f"{api}/_script", json={"responses": list(responses)})


def received(api: str) -> list[dict[str, Any]]:
    requests: list[dict[str, Any]] = httpx.get(f"{api}/_received").json()["received"]
    return requests


def analyst(api: str, **options: Any) -> AnthropicAnalyst:
    options = {"timeout": 5.0, "max_retries": 2, **options}
    return AnthropicAnalyst("test-key", model="claude-test", base_url=api, **options)


async def test_an_analysis_is_asked_for_and_recorded(api: str) -> None:
    script(api, {"text": json.dumps(GOOD)})
    use_case = AnalyseStudent(analyst(api), COURSE, AnalystBudget())

    analysed = await use_case.analyse(TRIGGER, ANSWERS, {})

    assert analysed.event is not None
    assert analysed.event.misconception == GOOD["misconception"]
    assert analysed.event.model == "claude-test"
    (request,) = received(api)
    assert request["api_key"] and request["anthropic_version"]
    body = request["body"]
    assert body["model"] == "claude-test" and "untrusted" in body["system"]
    prompt = body["messages"][0]["content"]
    assert "327" in prompt and STUDENT not in json.dumps(body)


async def test_the_imitation_answers_a_valid_analysis_when_not_scripted(
    api: str,
) -> None:
    use_case = AnalyseStudent(analyst(api), COURSE, AnalystBudget())

    analysed = await use_case.analyse(TRIGGER, ANSWERS, {})

    assert analysed.event is not None
    assert analysed.event.remediation_node == REQUEST.choices[0].node


async def test_malformed_model_output_is_rejected_and_does_not_trip_the_breaker(
    api: str,
) -> None:
    script(api, {"text": f"Sure! Here it is:\n{json.dumps(GOOD)}"})
    model = analyst(api)
    use_case = AnalyseStudent(model, COURSE, AnalystBudget())

    analysed = await use_case.analyse(TRIGGER, ANSWERS, {})

    assert analysed.event is None and "not one JSON object" in analysed.skipped
    assert model.breaker.failures == 0


@pytest.mark.parametrize(
    ("body", "problem"),
    [
        ("{not json", "not JSON"),
        ("{}", "no text content"),
        ('{"content": "text"}', "no text content"),
        ('{"content": [{"type": "text"}]}', "no text content"),
    ],
)
async def test_a_broken_response_body_is_a_failure(
    api: str, body: str, problem: str
) -> None:
    script(api, {"body": body})
    model = analyst(api, max_retries=0)

    with pytest.raises(AnalystUnavailable, match=problem):
        await model.analyse(REQUEST)
    assert model.breaker.failures == 1


async def test_a_rate_limit_is_retried_after_the_time_the_api_asks(api: str) -> None:
    script(api, {"status": 429, "retry_after": 1}, {"text": json.dumps(GOOD)})
    started = time.monotonic()

    text = await analyst(api).analyse(REQUEST)

    assert json.loads(text) == GOOD
    assert len(received(api)) == 2
    assert time.monotonic() - started >= 0.9


async def test_an_overloaded_api_is_retried(api: str) -> None:
    script(api, {"status": 529}, {"text": json.dumps(GOOD)})

    text = await analyst(api).analyse(REQUEST)

    assert json.loads(text) == GOOD and len(received(api)) == 2


async def test_an_api_overloaded_through_every_retry_makes_the_analyst_unavailable(
    api: str,
) -> None:
    script(api, {"status": 529}, {"status": 529}, {"status": 529})

    with pytest.raises(AnalystUnavailable, match="HTTP 529"):
        await analyst(api, max_retries=2).analyse(REQUEST)
    assert len(received(api)) == 3


async def test_a_slow_api_times_out(api: str) -> None:
    script(api, {"delay": 3, "text": json.dumps(GOOD)})
    started = time.monotonic()

    with pytest.raises(AnalystUnavailable, match="in time"):
        await analyst(api, timeout=0.5, max_retries=0).analyse(REQUEST)
    assert time.monotonic() - started < 2.5


async def test_a_long_retry_after_is_cut_short_by_the_overall_deadline(
    api: str,
) -> None:
    script(api, {"status": 429, "retry_after": 30})
    started = time.monotonic()

    with pytest.raises(AnalystUnavailable, match="in time"):
        await analyst(api, deadline=1.0).analyse(REQUEST)
    assert time.monotonic() - started < 5


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


async def test_the_breaker_opens_on_failures_and_closes_after_a_good_trial(
    api: str,
) -> None:
    clock = Clock()
    breaker = CircuitBreaker(
        "anthropic", failure_threshold=2, reset_seconds=30, clock=clock
    )
    model = analyst(api, max_retries=0, breaker=breaker)
    script(api, {"status": 500}, {"status": 529})
    for _ in range(2):
        with pytest.raises(AnalystUnavailable, match="HTTP 5"):
            await model.analyse(REQUEST)

    with pytest.raises(AnalystUnavailable, match="circuit open"):
        await model.analyse(REQUEST)
    assert len(received(api)) == 2  # refused without asking the API
    assert breaker.state.value == BreakerState.OPEN.value

    clock.now += 30
    script(api, {"text": json.dumps(GOOD)})
    assert json.loads(await model.analyse(REQUEST)) == GOOD
    assert breaker.state.value == BreakerState.CLOSED.value
    assert len(received(api)) == 3


async def test_a_request_for_analysis_holds_no_student_identity() -> None:
    # The request type itself has no field for one; this guards against adding it.
    fields = set(AnalysisRequest.__dataclass_fields__)

    assert not {"student", "phone", "name", "pseudonym"} & fields
