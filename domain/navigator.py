"""The Navigator's policy: which questions a student should see next.

From what a student knows (Bayesian Knowledge Tracing, per skill) and the course
graph, `Navigator.plan` chooses up to three next nodes:

- drill: questions of skills not yet mastered whose prerequisite skills are mastered
  (the student's frontier);
- review: at most one question of a mastered skill not seen for a while;
- remediation: the course's detour nodes (the easier questions a wrong answer leads
  to) only for a student who is struggling with that skill.

The plan keeps to the skill of the current node while it is open (mastery learning),
then prefers skills, and within a skill questions, whose predicted chance of a right
answer is nearest the target band (about 0.75-0.8: hard enough to learn from, easy
enough not to discourage). In plain BKT every question of a skill has the same chance,
so the policy shifts it by the question's place in the course: the first question of
a skill counts as easier than the last, a detour as easier than all. A review question
takes the last place. The current node and recent nodes are never planned. Ties are
broken by course order, so the same input always gives the same plan.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from tutorlane.domain.course import Course
from tutorlane.domain.knowledge import SkillKnowledge, chance_of_right_answer

PLAN_LENGTH = 3
DAY_SECONDS = 24 * 60 * 60


@dataclass(frozen=True, slots=True)
class NavigatorPolicy:
    """The tunable numbers of the policy; the defaults follow issue 5."""

    target_low: float = 0.75
    target_high: float = 0.8
    # How much a question's place among its skill's questions moves its predicted
    # chance: the first is `difficulty_spread / 2` easier than average, the last as
    # much harder, a detour `difficulty_spread` easier.
    difficulty_spread: float = 0.2
    review_after_seconds: float = 3 * DAY_SECONDS
    max_reviews: int = 1
    length: int = PLAN_LENGTH

    def __post_init__(self) -> None:
        if not 0 <= self.target_low <= self.target_high <= 1:
            raise ValueError(
                "the target band needs 0 <= target_low <= target_high <= 1, "
                f"not {self.target_low}..{self.target_high}"
            )
        if self.length < 1 or self.max_reviews < 0:
            raise ValueError("length must be 1 or more and max_reviews 0 or more")


# A node the plan may take, as a tuple that sorts best first: the skill being learnt
# comes first (mastery learning), then other skills by how near their chance is to
# the target, then questions by theirs; course order breaks ties.
_Candidate = tuple[bool, float, int, float, int, str]


class Navigator:
    """Plans a student's next nodes in one course; pure and deterministic."""

    def __init__(self, course: Course, policy: NavigatorPolicy | None = None) -> None:
        self.course = course
        self.policy = policy or NavigatorPolicy()
        self._order = {node_id: index for index, node_id in enumerate(course.nodes)}
        self._skill_order = {skill: index for index, skill in enumerate(course.skills)}
        self._detours = frozenset(
            node.next.wrong for node in course.nodes.values() if node.next.wrong
        )
        self._difficulty = self._difficulties()
        self._nodes_by_skill: dict[str, list[str]] = {}
        for node in course.nodes.values():
            # NOTE: a menu asks nothing and trains no skill: it is never planned.
            if not node.is_menu:
                self._nodes_by_skill.setdefault(node.skill, []).append(node.id)

    def plan(
        self,
        knowledge: Mapping[str, SkillKnowledge],
        last_seen: Mapping[str, float],
        current: str,
        recent: Sequence[str],
        now: float,
    ) -> tuple[str, ...]:
        """Return up to `policy.length` node ids to ask after `current`, best first.

        `knowledge` maps skill ids to the student's state (a skill missing from it is
        at its prior); `last_seen` maps skill ids to when the student last answered
        one of its questions (seconds, like `now`); `recent` holds the node ids the
        student saw lately. An empty plan means: follow the course graph.
        """
        states = {
            skill_id: knowledge.get(skill_id) or SkillKnowledge.new(skill_id, skill.bkt)
            for skill_id, skill in self.course.skills.items()
        }
        excluded = {current, *recent}
        focus = self.course.nodes[current].skill if current in self.course.nodes else ""
        drill: list[_Candidate] = []
        review: list[_Candidate] = []
        for skill_id, node_ids in self._nodes_by_skill.items():
            state = states[skill_id]
            is_review = self.review_is_due(skill_id, states, last_seen, now)
            if not is_review and not self.skill_is_open(skill_id, states):
                continue

            # NOTE: a detour is remediation: it is offered only to a student who
            # has tried the skill and whose chance on it is below the target band.
            remediation = not is_review and self.struggles_with(skill_id, state)
            chance = chance_of_right_answer(
                state.p_mastery, self.course.skills[skill_id].bkt
            )
            skill_key = (skill_id != focus, self._distance(chance))
            skill_order = self._skill_order[skill_id]
            found = review if is_review else drill
            for node_id in node_ids:
                if node_id in excluded or (
                    node_id in self._detours and not remediation
                ):
                    continue
                distance = self._distance(self._shifted(chance, node_id))
                found.append(
                    (*skill_key, skill_order, distance, self._order[node_id], node_id)
                )

        # NOTE: review takes the last places, so that it never displaces the
        # next question of the skill being learnt.
        reviews = sorted(review)[: min(self.policy.max_reviews, self.policy.length)]
        room = self.policy.length - len(reviews)
        chosen = sorted(drill)[:room] + reviews
        return tuple(candidate[-1] for candidate in chosen)

    def skill_is_open(
        self, skill_id: str, states: Mapping[str, SkillKnowledge]
    ) -> bool:
        """Tell whether a skill is on the frontier: not mastered, prerequisites are."""
        skill = self.course.skills[skill_id]
        return not states[skill_id].mastered and all(
            states[required].mastered for required in skill.requires
        )

    def review_is_due(
        self,
        skill_id: str,
        states: Mapping[str, SkillKnowledge],
        last_seen: Mapping[str, float],
        now: float,
    ) -> bool:
        """Tell whether a mastered skill has gone unseen long enough to review."""
        seen = last_seen.get(skill_id)
        return (
            states[skill_id].mastered
            and seen is not None
            and now - seen >= self.policy.review_after_seconds
        )

    def predicted_chance(self, node_id: str, state: SkillKnowledge) -> float:
        """Return the chance of a right answer to one node, its difficulty included."""
        bkt = self.course.skills[self.course.nodes[node_id].skill].bkt
        return self._shifted(chance_of_right_answer(state.p_mastery, bkt), node_id)

    def _shifted(self, skill_chance: float, node_id: str) -> float:
        shift = self.policy.difficulty_spread * (0.5 - self._difficulty[node_id])
        return min(1.0, max(0.0, skill_chance + shift))

    def struggles_with(self, skill_id: str, state: SkillKnowledge) -> bool:
        """Tell whether a student has tried a skill and is below the target band."""
        chance = chance_of_right_answer(
            state.p_mastery, self.course.skills[skill_id].bkt
        )
        return state.attempts > 0 and chance < self.policy.target_low

    def _distance(self, chance: float) -> float:
        low, high = self.policy.target_low, self.policy.target_high
        # Rounded so that float noise never decides between equal candidates.
        return round(max(low - chance, chance - high, 0.0), 9)

    def _difficulties(self) -> dict[str, float]:
        """Return each node's difficulty: 0 (first of its skill) to 1 (last).

        A detour scores -0.5: easier than any question on the main path.
        """
        by_skill: dict[str, list[str]] = {}
        for node in self.course.nodes.values():
            if node.id not in self._detours and not node.is_menu:
                by_skill.setdefault(node.skill, []).append(node.id)
        difficulty = dict.fromkeys(self._detours, -0.5)
        for node_ids in by_skill.values():
            steps = max(len(node_ids) - 1, 1)
            for index, node_id in enumerate(node_ids):
                difficulty[node_id] = index / steps
        return difficulty
