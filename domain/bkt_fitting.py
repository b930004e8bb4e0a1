"""Fitting Bayesian Knowledge Tracing per skill by expectation maximisation.

A student's answers on one skill form a sequence of a two-state hidden Markov model
(skill unknown or known): the prior is P(known) before the first answer, `learn` the
chance of going from unknown to known after an answer, `forget` the reverse (0 in
plain BKT), `guess` P(right | unknown) and `slip` P(wrong | known).

The E step runs a normalised forward pass (the filtered P(known) after each answer,
which is a probability and never underflows, however long the sequence) and a
smoothing backward pass over it; the M step takes the expected counts. Guess and
slip are capped (0.3 and 0.1 by default) so that "known" keeps meaning known: each
capped value is the exact maximiser of its term of the EM objective under the
bound, so every iteration still raises the likelihood.

All sequences of all skills are processed at once: sorted by length, the sequences
still running at answer t are a prefix, and each step is one numpy operation over
that prefix. Pure: numbers in, numbers out.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from tutorlane.domain.course import BKTParameters

GUESS_MAX = 0.3
SLIP_MAX = 0.1
# Parameters stay this far inside (0, 1): a 0 or a 1 would make an observed answer
# impossible, and EM could never move the parameter back.
EDGE = 1e-4

Floats = npt.NDArray[np.float64]
Ints = npt.NDArray[np.int64]
Bools = npt.NDArray[np.bool_]


@dataclass(frozen=True, slots=True)
class FittedSkill:
    """A skill's fitted parameters, with what they were fitted on."""

    skill: str
    params: BKTParameters
    answers: int
    sequences: int
    log_likelihood: float
    iterations: int


@dataclass(frozen=True, slots=True)
class FitOptions:
    """How to fit: bounds, forgetting, iterations and seeded restarts."""

    forget: bool = False
    guess_max: float = GUESS_MAX
    slip_max: float = SLIP_MAX
    max_iterations: int = 200
    tolerance: float = 1e-6
    restarts: int = 1
    seed: int = 0


class _Sequences:
    """Answer sequences laid out time-major: answer t of every sequence together.

    Sequences are sorted longest first, so the ones that have an answer t are the
    first `active[t]`; answer t of sequence i sits at `start[t] + i` of the flat
    arrays.
    """

    def __init__(
        self,
        skills: Sequence[str],
        sequences: Sequence[Sequence[bool]],
        skill_of: Sequence[int],
    ) -> None:
        lengths = np.fromiter((len(s) for s in sequences), np.int64, len(sequences))
        if not len(lengths) or lengths.min() < 1:
            raise ValueError("every answer sequence needs at least one answer")
        self.skills = list(skills)
        self.order: Ints = np.argsort(-lengths, kind="stable")
        self.lengths: Ints = lengths[self.order]
        self.skill: Ints = np.asarray(skill_of, np.int64)[self.order]

        # active[t]: how many sequences have an answer t (lengths above t).
        ascending = self.lengths[::-1]
        longest = int(self.lengths[0])
        self.active: Ints = len(ascending) - np.searchsorted(
            ascending, np.arange(longest), "right"
        )
        self.start: Ints = np.concatenate(([0], np.cumsum(self.active)))

        # `place[k]`: where the k-th answer, counting sequence by sequence in
        # sorted order, sits in the time-major arrays.
        rank = np.repeat(np.arange(len(self.lengths)), self.lengths)
        first = np.concatenate(([0], np.cumsum(self.lengths)[:-1]))
        position = np.arange(len(rank)) - np.repeat(first, self.lengths)
        self.place: Ints = self.start[position] + rank
        answers = np.concatenate(
            [np.asarray(sequences[i], np.bool_) for i in self.order]
        )
        self.correct: Bools = np.empty(len(rank), np.bool_)
        self.correct[self.place] = answers
        self.flat_skill: Ints = np.empty(len(rank), np.int64)
        self.flat_skill[self.place] = self.skill[rank]

    @property
    def steps(self) -> int:
        return len(self.active)

    def window(self, t: int) -> slice:
        return slice(int(self.start[t]), int(self.start[t]) + int(self.active[t]))


@dataclass
class _Params:
    """One value per skill of each parameter."""

    prior: Floats
    learn: Floats
    forget: Floats
    guess: Floats
    slip: Floats

    def pick(self, keep: Bools, other: _Params) -> _Params:
        return _Params(
            *(np.where(keep, mine, theirs) for mine, theirs in zip(
                self.values(), other.values(), strict=True
            ))
        )  # fmt: skip

    def values(self) -> tuple[Floats, ...]:
        return (self.prior, self.learn, self.forget, self.guess, self.slip)


@dataclass
class _Filtered:
    """Per answer: P(known) and P(unknown) before it and after it, P(the answer).

    Both states are carried rather than one and its complement: after a long run of
    right answers P(unknown) is tiny, and 1 - P(known) would round it to 0.
    """

    known_before: Floats
    unknown_before: Floats
    known_after: Floats
    unknown_after: Floats
    likelihood: Floats


def _forward(data: _Sequences, p: _Params) -> _Filtered:
    """Filter every sequence forwards: what is believed before and after each answer."""
    total = len(data.correct)
    out = _Filtered(*(np.empty(total) for _ in range(5)))
    for t in range(data.steps):
        here = data.window(t)
        skill = data.skill[: data.active[t]]
        if t == 0:
            known, unknown = p.prior[skill], 1 - p.prior[skill]
        else:
            last = data.window(t - 1)
            was_known = out.known_after[last][: data.active[t]]
            was_unknown = out.unknown_after[last][: data.active[t]]
            known = was_known * (1 - p.forget[skill]) + was_unknown * p.learn[skill]
            unknown = was_unknown * (1 - p.learn[skill]) + was_known * p.forget[skill]
        right = data.correct[here]
        if_known = np.where(right, 1 - p.slip[skill], p.slip[skill])
        if_unknown = np.where(right, p.guess[skill], 1 - p.guess[skill])
        seen = known * if_known + unknown * if_unknown
        out.known_before[here], out.unknown_before[here] = known, unknown
        out.known_after[here] = known * if_known / seen
        out.unknown_after[here] = unknown * if_unknown / seen
        out.likelihood[here] = seen
    return out


def _iterate(
    data: _Sequences, p: _Params, options: FitOptions
) -> tuple[_Params, Floats]:
    """Run one EM iteration; return new parameters and each skill's log-likelihood."""
    f = _forward(data, p)
    skills = len(data.skills)

    # Smooth backwards: P(known at t | the whole sequence) and the expected
    # transitions between t and t + 1 (each state's own probability, as above).
    known = f.known_after.copy()
    unknown = f.unknown_after.copy()
    learnt = np.zeros(len(known))  # P(unknown at t, known at t+1 | all answers)
    stayed_unknown = np.zeros(len(known))
    forgot = np.zeros(len(known))
    stayed_known = np.zeros(len(known))
    for t in range(data.steps - 2, -1, -1):
        going_on = int(data.active[t + 1])
        now = slice(int(data.start[t]), int(data.start[t]) + going_on)
        then = data.window(t + 1)
        skill = data.skill[:going_on]
        to_known = _divide(known[then], f.known_before[then])
        to_unknown = _divide(unknown[then], f.unknown_before[then])
        was_known, was_unknown = f.known_after[now], f.unknown_after[now]
        learnt[now] = was_unknown * p.learn[skill] * to_known
        stayed_unknown[now] = was_unknown * (1 - p.learn[skill]) * to_unknown
        forgot[now] = was_known * p.forget[skill] * to_unknown
        stayed_known[now] = was_known * (1 - p.forget[skill]) * to_known
        known[now] = forgot[now] + stayed_known[now]
        unknown[now] = learnt[now] + stayed_unknown[now]
    likelihood = f.likelihood

    def per_skill(weights: Floats) -> Floats:
        return _sum_by(data.flat_skill, weights, skills)

    first = data.window(0)
    prior = _sum_by(data.skill, known[first], skills) / np.maximum(
        np.bincount(data.skill, minlength=skills), 1
    )
    learn = _ratio(per_skill(learnt), per_skill(learnt + stayed_unknown), p.learn)
    if options.forget:
        forget = _ratio(per_skill(forgot), per_skill(forgot + stayed_known), p.forget)
    else:
        forget = np.zeros(skills)
    guess = _ratio(per_skill(unknown * data.correct), per_skill(unknown), p.guess)
    slip = _ratio(per_skill(known * ~data.correct), per_skill(known), p.slip)

    fitted = _Params(
        prior=np.clip(prior, EDGE, 1 - EDGE),
        learn=np.clip(learn, EDGE, 1 - EDGE),
        forget=np.clip(forget, EDGE, 1 - EDGE) if options.forget else forget,
        guess=np.clip(guess, EDGE, options.guess_max),
        slip=np.clip(slip, EDGE, options.slip_max),
    )
    return fitted, per_skill(np.log(likelihood))


def _divide(top: Floats, bottom: Floats) -> Floats:
    """Return top / bottom, 0 where bottom is 0 (then top is 0 too: a state that
    cannot be reached cannot be in the smoothed estimate either)."""
    return np.divide(top, bottom, out=np.zeros_like(top), where=bottom > 0)


def _sum_by(index: Ints, weights: Floats, size: int) -> Floats:
    """Return the sum of `weights` for each value of `index` below `size`."""
    return np.asarray(np.bincount(index, weights, minlength=size), np.float64)


def _ratio(top: Floats, bottom: Floats, otherwise: Floats) -> Floats:
    """Return top / bottom, keeping the old value where nothing was observed."""
    safe = bottom > 1e-12
    return np.where(safe, top / np.where(safe, bottom, 1.0), otherwise)


def _starting_points(skills: int, options: FitOptions) -> list[_Params]:
    """Return the usual start, then seeded random ones within the bounds."""
    ones = np.ones(skills)
    starts = [
        _Params(0.5 * ones, 0.15 * ones, 0.05 * ones * options.forget,
                0.15 * ones, 0.05 * ones)
    ]  # fmt: skip
    random = np.random.default_rng(options.seed)
    for _ in range(options.restarts - 1):
        starts.append(
            _Params(
                prior=random.uniform(0.05, 0.95, skills),
                learn=random.uniform(0.01, 0.5, skills),
                forget=random.uniform(0.0, 0.2, skills) * options.forget,
                guess=random.uniform(0.01, options.guess_max, skills),
                slip=random.uniform(0.01, options.slip_max, skills),
            )
        )
    return starts


def _run_em(data: _Sequences, start: _Params, options: FitOptions
            ) -> tuple[_Params, Floats, Ints]:  # fmt: skip
    """Iterate EM until every skill's log-likelihood stops rising."""
    params, previous = start, np.full(len(data.skills), -np.inf)
    iterations = np.zeros(len(data.skills), np.int64)
    for _ in range(options.max_iterations):
        fitted, log_likelihood = _iterate(data, params, options)
        # NOTE: the log-likelihood returned is that of `params`, before the update.
        moving = log_likelihood - previous > options.tolerance * np.abs(log_likelihood)
        iterations += moving
        params, previous = fitted, log_likelihood
        if not moving.any():
            break
    final = _sum_by(
        data.flat_skill, np.log(_forward(data, params).likelihood), len(data.skills)
    )
    return params, final, iterations


def fit_skills(
    sequences: Mapping[str, Sequence[Sequence[bool]]],
    options: FitOptions = FitOptions(),  # frozen: safe as a default
) -> dict[str, FittedSkill]:
    """Fit BKT parameters per skill from its students' answer sequences.

    `sequences` maps a skill id to one sequence per student, each their answers on
    that skill in order (True for right). Skills with no answers are left out.
    """
    skills = [skill for skill, runs in sequences.items() if any(runs)]
    runs = [list(run) for skill in skills for run in sequences[skill] if run]
    skill_of = [i for i, skill in enumerate(skills) for run in sequences[skill] if run]
    if not runs:
        return {}
    data = _Sequences(skills, runs, skill_of)

    best: tuple[_Params, Floats, Ints] | None = None
    for start in _starting_points(len(skills), options):
        params, log_likelihood, iterations = _run_em(data, start, options)
        if best is None:
            best = (params, log_likelihood, iterations)
            continue
        better = log_likelihood > best[1]
        best = (
            params.pick(better, best[0]),
            np.where(better, log_likelihood, best[1]),
            np.where(better, iterations, best[2]),
        )
    assert best is not None
    params, log_likelihood, iterations = best

    answers = np.bincount(data.flat_skill, minlength=len(skills))
    counts = np.bincount(data.skill, minlength=len(skills))
    return {
        skill: FittedSkill(
            skill=skill,
            params=BKTParameters(
                prior=float(params.prior[i]),
                learn=float(params.learn[i]),
                guess=float(params.guess[i]),
                slip=float(params.slip[i]),
                forget=float(params.forget[i]),
            ),
            answers=int(answers[i]),
            sequences=int(counts[i]),
            log_likelihood=float(log_likelihood[i]),
            iterations=int(iterations[i]),
        )
        for i, skill in enumerate(skills)
    }


def predict_sequences(
    sequences: Sequence[tuple[BKTParameters, Sequence[bool]]],
) -> list[Floats]:
    """Return, for each (parameters, answers) sequence, P(right) of every answer
    predicted from the answers before it."""
    if not sequences:
        return []
    table = list({params: None for params, _ in sequences})
    index = {params: i for i, params in enumerate(table)}
    data = _Sequences(
        [str(i) for i in range(len(table))],
        [run for _, run in sequences],
        [index[params] for params, _ in sequences],
    )
    p = _Params(
        *(np.array([getattr(t, name) for t in table], np.float64)
          for name in ("prior", "learn", "forget", "guess", "slip"))
    )  # fmt: skip
    f = _forward(data, p)
    skill = data.flat_skill
    right = f.known_before * (1 - p.slip[skill]) + f.unknown_before * p.guess[skill]

    # Back from time-major to each sequence's own order.
    by_sorted = np.split(right[data.place], np.cumsum(data.lengths)[:-1])
    out: list[Floats] = [np.empty(0)] * len(sequences)
    for sorted_index, original in enumerate(data.order):
        out[int(original)] = by_sorted[sorted_index]
    return out
