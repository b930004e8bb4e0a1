"""Phone numbers typed as answers never reach the event log."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from tutorlane.domain.events import redact_answer

PHONE = "9800000001"


@pytest.mark.parametrize(
    "typed",
    [
        "call me 9800 000 001",
        "9800_000_001",
        "9800*000*001",
        "98000|00001",
        "phone:98000:00001",
        "98000~00001",
        "98000+00001",
        "+91 98000 00001",
        "(+91) 98000-00001",
        "9️⃣8️⃣0️⃣0️⃣0️⃣0️⃣0️⃣0️⃣0️⃣1️⃣",
        "98OO000001",
        "९८००००००० १",
        "９８０００００００１",
        "98\u200b00\u200b00\u200b0001",
        "98000 0000O",
        "98000 0000o.",
        "9800½000001",
    ],
)
def test_a_phone_number_however_typed_is_removed(typed: str) -> None:
    kept = redact_answer(typed)

    assert "[number removed]" in kept
    assert sum(character.isdigit() for character in kept) < 10, kept


@pytest.mark.parametrize(
    "answer",
    [
        "500",
        "answer is 500 (ok)",
        "1/2",
        "3.75",
        "12,345",
        "good 1234",
        "5, 7, 9",
        "1000 Ok",
        "2½",
    ],
)
def test_answers_are_kept_as_typed(answer: str) -> None:
    assert redact_answer(answer) == answer


@given(st.text(alphabet=" -._*|:~+/()\u200b", max_size=3))
def test_any_separator_between_the_digits_is_seen_through(separator: str) -> None:
    assert "[number removed]" in redact_answer(separator.join(PHONE))
