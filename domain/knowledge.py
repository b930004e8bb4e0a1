"""Bayesian Knowledge Tracing: the probability that a student has mastered a skill.

After each answer the estimate is first conditioned on what was observed (a right
answer may be a guess, a wrong one a slip), then moved by the chance of learning
from the attempt (and of forgetting, when the skill's `forget` is above 0). Pure
functions; the knowledge-state projection applies them.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

from tutorlane.domain.course import BKTParameters

MASTERY_THRESHOLD = 0.95


def observe(p_mastery: float, correct: bool, params: BKTParameters) -> float:
    """Return the probability of mastery after one answer, learning included."""
    if correct:
        knew = p_mastery * (1 - params.slip)
        posterior = knew / (knew + (1 - p_mastery) * params.guess)
    else:
        knew = p_mastery * params.slip
        posterior = knew / (knew + (1 - p_mastery) * (1 - params.guess))
    # A known skill may be forgotten (0 in plain BKT); an unknown one may be learnt.
    return posterior * (1 - params.forget) + (1 - posterior) * params.learn


def chance_of_right_answer(p_mastery: float, params: BKTParameters) -> float:
    """Return the predicted probability that the next answer is right."""
    return p_mastery * (1 - params.slip) + (1 - p_mastery) * params.guess


@dataclass(frozen=True, slots=True)
class SkillKnowledge:
    """What is known of one student's grasp of one skill."""

    skill: str
    p_mastery: float
    attempts: int = 0
    correct: int = 0

    @classmethod
    def new(cls, skill: str, params: BKTParameters) -> SkillKnowledge:
        """Return the state before any answer: the skill's prior."""
        return cls(skill, params.prior)

    @property
    def mastered(self) -> bool:
        """Tell whether mastery is likely enough to move on (0.95)."""
        return self.p_mastery >= MASTERY_THRESHOLD

    def after(self, correct: bool, params: BKTParameters) -> SkillKnowledge:
        """Return the state after one more answer."""
        return replace(
            self,
            p_mastery=observe(self.p_mastery, correct, params),
            attempts=self.attempts + 1,
            correct=self.correct + int(correct),
        )
