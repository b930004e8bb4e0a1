"""Fitting BKT by expectation maximisation, predicting with it, and its metrics."""

from __future__ import annotations

import itertools
import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tutorlane.domain.bkt_fitting import FitOptions, fit_skills, predict_sequences
from tutorlane.domain.course import BKTParameters
from tutorlane.domain.knowledge import chance_of_right_answer, observe
from tutorlane.domain.metrics import area_under_roc, root_mean_squared_error


def simulate(
    params: BKTParameters, students: int, longest: int, seed: int
) -> list[list[bool]]:
    """Return answer sequences drawn from the BKT model with `params`."""
    random = np.random.default_rng(seed)
    sequences = []
    for _ in range(students):
        known = random.random() < params.prior
        answers = []
        for _ in range(int(random.integers(1, longest + 1))):
            right = random.random() < (1 - params.slip if known else params.guess)
            answers.append(bool(right))
            if known:
                known = random.random() >= params.forget
            else:
                known = random.random() < params.learn
        sequences.append(answers)
    return sequences


TRUE_A = BKTParameters(prior=0.3, learn=0.2, guess=0.25, slip=0.08)
TRUE_B = BKTParameters(prior=0.6, learn=0.05, guess=0.1, slip=0.05)


def test_em_recovers_the_parameters_that_generated_the_answers() -> None:
    data = {
        "a": simulate(TRUE_A, 3000, 20, seed=1),
        "b": simulate(TRUE_B, 3000, 20, seed=2),
    }

    fitted = fit_skills(data, FitOptions(restarts=2, seed=3))

    for skill, truth in (("a", TRUE_A), ("b", TRUE_B)):
        got = fitted[skill].params
        for name in ("prior", "learn", "guess", "slip"):
            assert getattr(got, name) == pytest.approx(getattr(truth, name), abs=0.04)
        assert got.forget == 0.0
    assert fitted["a"].answers == sum(map(len, data["a"]))
    assert fitted["a"].sequences == 3000


def test_em_with_forgetting_recovers_the_forgetting_rate() -> None:
    truth = BKTParameters(prior=0.4, learn=0.2, guess=0.2, slip=0.05, forget=0.1)
    data = {"a": simulate(truth, 3000, 30, seed=4)}

    got = fit_skills(data, FitOptions(forget=True, restarts=2)).values()

    (result,) = got
    assert result.params.forget == pytest.approx(0.1, abs=0.04)
    assert result.params.learn == pytest.approx(0.2, abs=0.05)


def test_guess_and_slip_stay_within_their_bounds() -> None:
    sloppy = BKTParameters(prior=0.5, learn=0.1, guess=0.6, slip=0.3)
    data = {"a": simulate(sloppy, 500, 15, seed=5)}

    (result,) = fit_skills(data, FitOptions(restarts=3)).values()

    assert result.params.guess <= 0.3 and result.params.slip <= 0.1
    for name in ("prior", "learn", "guess", "slip"):
        assert 0 < getattr(result.params, name) < 1


def test_one_answer_sequences_give_finite_parameters_within_bounds() -> None:
    data = {"a": [[True], [False], [True], [True]], "b": [[False]]}

    fitted = fit_skills(data)

    for result in fitted.values():
        values = (result.params.prior, result.params.learn, result.params.guess)
        assert all(math.isfinite(v) and 0 < v < 1 for v in values)
        assert math.isfinite(result.log_likelihood)
    assert fitted["b"].answers == 1


def test_a_very_long_run_of_right_answers_stays_finite() -> None:
    # P(unknown) after 3,000 right answers underflows to 0; nothing may be NaN.
    data = {"a": [[True] * 3000, [False, True] * 20, [False] * 5]}

    (result,) = fit_skills(data).values()

    assert math.isfinite(result.log_likelihood)
    assert all(math.isfinite(v) for v in vars_of(result.params))


def vars_of(params: BKTParameters) -> list[float]:
    return [params.prior, params.learn, params.guess, params.slip, params.forget]


def test_each_em_iteration_raises_the_likelihood() -> None:
    data = {"a": simulate(TRUE_A, 300, 12, seed=6)}

    likelihoods = [
        fit_skills(data, FitOptions(max_iterations=n, restarts=1))["a"].log_likelihood
        for n in range(1, 8)
    ]

    assert all(b >= a - 1e-9 for a, b in itertools.pairwise(likelihoods))
    assert likelihoods[-1] > likelihoods[0]


def test_skills_without_answers_are_left_out() -> None:
    assert set(fit_skills({"a": [[True, False]], "b": [], "c": [[]]})) == {"a"}


@given(
    st.lists(st.lists(st.booleans(), min_size=1, max_size=12), min_size=1, max_size=6),
    st.sampled_from([TRUE_A, TRUE_B, BKTParameters(forget=0.2)]),
)
def test_predictions_match_tracing_one_answer_at_a_time(
    sequences: list[list[bool]], params: BKTParameters
) -> None:
    predicted = predict_sequences([(params, run) for run in sequences])

    for run, chances in zip(sequences, predicted, strict=True):
        mastery, expected = params.prior, []
        for right in run:
            expected.append(chance_of_right_answer(mastery, params))
            mastery = observe(mastery, right, params)
        # NOTE: the vectorised and the scalar recursion round differently, and the
        # difference grows along a run.
        assert chances.tolist() == pytest.approx(expected, abs=1e-9)


def test_auc_of_a_small_example_counts_ordered_pairs() -> None:
    # Right answers scored 0.35 and 0.8, wrong ones 0.1 and 0.4: 3 of 4 pairs.
    assert area_under_roc([0.1, 0.4, 0.35, 0.8], [False, False, True, True]) == 0.75
    assert area_under_roc([0.9, 0.1], [True, False]) == 1.0
    assert area_under_roc([0.5, 0.5, 0.5], [True, False, True]) == 0.5


@settings(deadline=None)
@given(
    st.lists(
        st.tuples(st.sampled_from([0.0, 0.25, 0.5, 0.75, 1.0]), st.booleans()),
        min_size=2,
        max_size=40,
    ).filter(lambda pairs: len({right for _, right in pairs}) == 2)
)
def test_auc_equals_the_share_of_right_wrong_pairs_ordered(
    pairs: list[tuple[float, bool]],
) -> None:
    rights = [score for score, right in pairs if right]
    wrongs = [score for score, right in pairs if not right]
    wins = sum((r > w) + 0.5 * (r == w) for r in rights for w in wrongs)

    auc = area_under_roc([s for s, _ in pairs], [r for _, r in pairs])

    assert auc == pytest.approx(wins / (len(rights) * len(wrongs)))


def test_auc_needs_both_kinds_of_answer() -> None:
    with pytest.raises(ValueError, match="at least one right and one wrong"):
        area_under_roc([0.2, 0.3], [True, True])


def test_rmse_is_the_root_of_the_mean_squared_error() -> None:
    assert root_mean_squared_error([1.0, 0.0, 0.5, 0.5], [1, 0, 1, 0]) == pytest.approx(
        0.125**0.5
    )
