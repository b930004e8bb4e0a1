"""Fit knowledge tracing from answer histories, and measure how well it predicts.

Answers come either from the event store (what students did through the tutor) or
straight from a dataset file; either way each student's answers on a skill form one
sequence in their order, which `domain.bkt_fitting` fits per skill.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass

import numpy as np

from tutorlane.domain.assistments import StudentAnswers
from tutorlane.domain.bkt_fitting import (
    FitOptions,
    FittedSkill,
    fit_skills,
    predict_sequences,
)
from tutorlane.domain.course import BKTParameters
from tutorlane.domain.metrics import area_under_roc, root_mean_squared_error
from tutorlane.domain.replay import skill_id


@dataclass(frozen=True, slots=True)
class ObservedAnswer:
    """One recorded answer: who, on which skill, their sequence number, right?"""

    student: str
    skill: str
    seq: int
    correct: bool


def sequences_by_skill(
    answers: Iterable[ObservedAnswer],
) -> dict[str, list[list[bool]]]:
    """Group answers per skill into one sequence per student, ordered by seq."""
    grouped: dict[str, dict[str, list[tuple[int, bool]]]] = defaultdict(
        lambda: defaultdict(list)
    )
    for answer in answers:
        grouped[answer.skill][answer.student].append((answer.seq, answer.correct))
    return {
        skill: [[correct for _, correct in sorted(run)] for run in students.values()]
        for skill, students in grouped.items()
    }


def dataset_sequences(
    students: Iterable[StudentAnswers],
) -> dict[str, list[list[bool]]]:
    """Group a dataset's answers per course skill id, one sequence per student."""
    return sequences_by_skill(
        ObservedAnswer(str(student.index), skill_id(skill), seq, correct)
        for student in students
        for seq, (skill, correct) in enumerate(
            zip(student.skills, student.correct, strict=True)
        )
    )


@dataclass(frozen=True, slots=True)
class Evaluation:
    """How predictions of answers from earlier answers matched the answers."""

    answers: int
    auc: float
    rmse: float
    accuracy: float
    unfitted_skills: int  # skills predicted with default parameters


def evaluate(
    students: Sequence[StudentAnswers],
    fitted: Mapping[str, BKTParameters],
) -> tuple[Evaluation, np.ndarray, np.ndarray]:
    """Predict every answer of `students` from their earlier answers on its skill.

    Returns the figures with the predictions and the answers they were for.
    """
    sequences = dataset_sequences(students)
    default = BKTParameters()
    runs = [
        (fitted.get(skill, default), run)
        for skill, skill_runs in sorted(sequences.items())
        for run in skill_runs
    ]
    predicted = np.concatenate(predict_sequences(runs))
    actual = np.concatenate([np.asarray(run, np.bool_) for _, run in runs])
    return (
        Evaluation(
            answers=int(actual.size),
            auc=area_under_roc(predicted, actual),
            rmse=root_mean_squared_error(predicted, actual),
            accuracy=float(np.mean((predicted >= 0.5) == actual)),
            unfitted_skills=len(set(sequences) - set(fitted)),
        ),
        predicted,
        actual,
    )


def cross_validate(
    students: Sequence[StudentAnswers],
    folds: int,
    options: FitOptions,
    seed: int = 0,
) -> tuple[list[Evaluation], Evaluation]:
    """Fit on all folds of students but one and predict that one, for each fold.

    Returns each fold's figures and the figures over every held-out answer pooled.
    """
    if not 2 <= folds <= len(students):
        raise ValueError(f"folds must be between 2 and {len(students)}, not {folds}")
    fold_of = np.random.default_rng(seed).permutation(len(students)) % folds
    results: list[Evaluation] = []
    predicted: list[np.ndarray] = []
    actual: list[np.ndarray] = []
    for fold in range(folds):
        train = [s for s, f in zip(students, fold_of, strict=True) if f != fold]
        test = [s for s, f in zip(students, fold_of, strict=True) if f == fold]
        fitted = fit_skills(dataset_sequences(train), options)
        result, fold_predicted, fold_actual = evaluate(test, parameters_of(fitted))
        results.append(result)
        predicted.append(fold_predicted)
        actual.append(fold_actual)

    everything = np.concatenate(predicted)
    truth = np.concatenate(actual)
    pooled = Evaluation(
        answers=int(truth.size),
        auc=area_under_roc(everything, truth),
        rmse=root_mean_squared_error(everything, truth),
        accuracy=float(np.mean((everything >= 0.5) == truth)),
        unfitted_skills=max(result.unfitted_skills for result in results),
    )
    return results, pooled


def parameters_of(fitted: Mapping[str, FittedSkill]) -> dict[str, BKTParameters]:
    """Return just the parameters of each fitted skill."""
    return {skill: result.params for skill, result in fitted.items()}
