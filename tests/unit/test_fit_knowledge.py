"""Grouping answers into sequences, evaluating predictions, cross-validating."""

from __future__ import annotations

import copy

import pytest

from tutorlane.commands.fit_knowledge import (
    ObservedAnswer,
    cross_validate,
    dataset_sequences,
    evaluate,
    sequences_by_skill,
)
from tutorlane.domain.assistments import StudentAnswers
from tutorlane.domain.bkt_fitting import FitOptions
from tutorlane.domain.course import BKTParameters, parse_course
from tutorlane.domain.knowledge import observe
from tutorlane.tests.courses import TINY_COURSE


def test_answers_group_per_skill_and_student_in_sequence_order() -> None:
    answers = [
        ObservedAnswer("ann", "add", 3, False),
        ObservedAnswer("bob", "add", 1, True),
        ObservedAnswer("ann", "add", 1, True),
        ObservedAnswer("ann", "sub", 2, False),
        ObservedAnswer("ann", "add", 4, True),
    ]

    assert sequences_by_skill(answers) == {
        "add": [[True, False, True], [True]],
        "sub": [[False]],
    }


def test_a_dataset_groups_under_the_replay_course_skill_ids() -> None:
    students = [
        StudentAnswers(0, (5, 7, 5), (True, False, False)),
        StudentAnswers(1, (5,), (True,)),
    ]

    assert dataset_sequences(students) == {
        "skill-5": [[True, False], [True]],
        "skill-7": [[False]],
    }


def test_evaluation_scores_predictions_from_earlier_answers_only() -> None:
    # With slip 0 and guess 0, a right answer means known: after it, everything is
    # predicted right; the first answer is predicted at the prior.
    certain = BKTParameters(prior=0.5, learn=0.0, guess=1e-9, slip=1e-9)
    students = [
        StudentAnswers(0, (1, 1, 1), (True, True, True)),
        StudentAnswers(1, (1, 1), (False, False)),
    ]

    result, predicted, actual = evaluate(students, {"skill-1": certain})

    assert result.answers == 5 and result.unfitted_skills == 0
    assert sorted(predicted.round(6).tolist()) == [0, 0.5, 0.5, 1, 1]
    # Only the two first answers tie (0.5 each, one right): 5.5 of 6 pairs ordered.
    assert result.auc == pytest.approx(5.5 / 6)
    assert actual.sum() == 3


def test_skills_never_fitted_are_predicted_with_default_parameters() -> None:
    students = [StudentAnswers(0, (1, 2), (True, False))]

    result, _, _ = evaluate(students, {"skill-1": BKTParameters()})

    assert result.unfitted_skills == 1


def test_cross_validation_predicts_every_answer_once() -> None:
    students = [
        StudentAnswers(i, (1, 1, 2, 2, 1), (i % 2 == 0, True, False, i % 3 == 0, True))
        for i in range(20)
    ]

    folds, pooled = cross_validate(students, 4, FitOptions(max_iterations=20))

    assert len(folds) == 4
    assert sum(fold.answers for fold in folds) == pooled.answers == 100
    assert 0 <= pooled.auc <= 1 and 0 <= pooled.rmse <= 1


def test_cross_validation_needs_at_least_two_folds() -> None:
    with pytest.raises(ValueError, match="folds must be between 2"):
        cross_validate([StudentAnswers(0, (1,), (True,))], 2, FitOptions())


def test_forgetting_lowers_mastery_even_after_a_right_answer() -> None:
    params = BKTParameters(prior=0.9, learn=0.0, guess=0.2, slip=0.1, forget=0.2)

    after = observe(1.0, True, params)

    assert after == pytest.approx(0.8)
    assert observe(1.0, True, BKTParameters()) == 1.0


def test_a_course_file_may_give_a_skills_forgetting_rate() -> None:
    data = copy.deepcopy(TINY_COURSE)
    data["skills"][0]["bkt"] = {"prior": 0.4, "forget": 0.05}

    course = parse_course(data, "tiny.yaml")

    assert course.skills["addition"].bkt.forget == 0.05
    assert course.skills["shapes"].bkt.forget == 0.0
