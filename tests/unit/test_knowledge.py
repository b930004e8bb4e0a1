"""Bayesian Knowledge Tracing: the published update, checked number by number."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from tutorlane.domain.course import BKTParameters
from tutorlane.domain.knowledge import SkillKnowledge, chance_of_right_answer, observe

PARAMS = BKTParameters(prior=0.3, learn=0.1, guess=0.2, slip=0.1)


def test_the_reference_vector_from_the_issue() -> None:
    answers = [0, 1, 1, 0, 1, 1, 1]
    expected_before = [0.300000, 0.145763, 0.490909, 0.831438, 0.443265, 0.803615]
    expected_before.append(0.953642)

    state = SkillKnowledge.new("k", PARAMS)
    before = []
    for answer in answers:
        before.append(state.p_mastery)
        state = state.after(bool(answer), PARAMS)

    assert before == pytest.approx(expected_before, abs=5e-7)
    assert state.p_mastery == pytest.approx(0.990382, abs=5e-7)
    assert (state.attempts, state.correct) == (7, 5)
    assert state.mastered


def test_mastery_is_declared_at_095() -> None:
    assert not SkillKnowledge("k", 0.9499).mastered
    assert SkillKnowledge("k", 0.95).mastered


def test_the_chance_of_a_right_answer_mixes_knowing_and_guessing() -> None:
    assert chance_of_right_answer(0.0, PARAMS) == pytest.approx(PARAMS.guess)
    assert chance_of_right_answer(1.0, PARAMS) == pytest.approx(1 - PARAMS.slip)


probability = st.floats(min_value=0.01, max_value=0.99)
parameters = st.builds(
    BKTParameters,
    prior=probability,
    learn=st.floats(min_value=0.0, max_value=0.5),
    guess=st.floats(min_value=0.01, max_value=0.3),
    slip=st.floats(min_value=0.01, max_value=0.1),
)


@given(probability, parameters, st.booleans())
def test_mastery_stays_a_probability(p: float, params: BKTParameters, ok: bool) -> None:
    assert 0.0 <= observe(p, ok, params) <= 1.0


@given(probability, parameters)
def test_a_right_answer_never_counts_less_than_a_wrong_one(
    p: float, params: BKTParameters
) -> None:
    assert observe(p, True, params) >= observe(p, False, params)


@given(parameters)
def test_a_run_of_right_answers_only_raises_mastery(params: BKTParameters) -> None:
    state = SkillKnowledge.new("k", params)
    for _ in range(30):
        later = state.after(True, params)
        assert later.p_mastery >= state.p_mastery - 1e-12
        state = later
