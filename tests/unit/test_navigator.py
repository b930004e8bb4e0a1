"""The Navigator's policy on the shipped course: what it plans, what it never does."""

from __future__ import annotations

from collections.abc import Mapping

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tutorlane.adapters.flow_files import SHIPPED_FLOWS, load_course_file
from tutorlane.domain.knowledge import SkillKnowledge
from tutorlane.domain.navigator import DAY_SECONDS, Navigator, NavigatorPolicy

NOW = 1_700_000_000.0
COURSE = load_course_file(SHIPPED_FLOWS / "maths-primary.yaml")
NAVIGATOR = Navigator(COURSE)


def known(**p_mastery: float) -> dict[str, SkillKnowledge]:
    """Knowledge with the given mastery per skill (underscores stand for dashes)."""
    return {
        skill.replace("_", "-"): SkillKnowledge(skill.replace("_", "-"), p, attempts=4)
        for skill, p in p_mastery.items()
    }


def skills_of(plan: tuple[str, ...]) -> list[str]:
    return [COURSE.nodes[node_id].skill for node_id in plan]


def test_a_new_student_gets_the_easiest_place_value_questions_in_order() -> None:
    plan = NAVIGATOR.plan({}, {}, current="pv-1", recent=[], now=NOW)

    assert plan == ("pv-2", "pv-3", "pv-4")


def test_a_skill_is_not_planned_before_its_prerequisites_are_mastered() -> None:
    knowledge = known(place_value=0.99, addition=0.6)

    plan = NAVIGATOR.plan(knowledge, {}, current="add-1", recent=[], now=NOW)

    assert set(skills_of(plan)) == {"addition"}


def test_two_open_skills_compete_by_their_chance_of_a_right_answer() -> None:
    # Subtraction and multiplication both need only addition. Subtraction sits in
    # the target band; multiplication is still at its prior.
    knowledge = known(place_value=0.99, addition=0.99, subtraction=0.88)

    plan = NAVIGATOR.plan(knowledge, {}, current="add-6", recent=[], now=NOW)

    assert skills_of(plan) == ["subtraction"] * 3


def test_mastered_skills_are_not_drilled() -> None:
    knowledge = known(place_value=0.99, addition=0.97, subtraction=0.4)
    seen = {"place-value": NOW - 60, "addition": NOW - 60}

    plan = NAVIGATOR.plan(knowledge, seen, current="sub-1", recent=[], now=NOW)

    assert plan and not {"place-value", "addition"} & set(skills_of(plan))


def test_a_mastered_skill_unseen_for_days_gets_one_review_question() -> None:
    knowledge = known(place_value=0.99, addition=0.97, subtraction=0.4)
    seen = {"place-value": NOW - 4 * DAY_SECONDS, "addition": NOW - 60}

    plan = NAVIGATOR.plan(knowledge, seen, current="sub-1", recent=[], now=NOW)

    assert skills_of(plan).count("place-value") == 1
    assert "addition" not in skills_of(plan)


def test_a_struggling_student_is_sent_to_the_easier_detour_first() -> None:
    knowledge = known(place_value=0.99, addition=0.99, subtraction=0.05)

    plan = NAVIGATOR.plan(knowledge, {}, current="sub-3", recent=[], now=NOW)

    assert plan[0] == "sub-r"


def test_a_student_doing_well_is_never_sent_to_a_detour() -> None:
    knowledge = known(place_value=0.99, addition=0.99, subtraction=0.85)

    plan = NAVIGATOR.plan(knowledge, {}, current="sub-1", recent=[], now=NOW)

    assert "sub-r" not in plan and skills_of(plan) == ["subtraction"] * 3


def test_a_strong_student_gets_the_harder_questions_of_the_skill() -> None:
    weak = NAVIGATOR.plan(known(place_value=0.1), {}, "pv-3", [], NOW)
    strong = NAVIGATOR.plan(known(place_value=0.93), {}, "pv-3", [], NOW)

    assert weak == ("pv-1", "pv-2", "pv-4")
    assert strong == ("pv-5", "pv-6", "pv-4")


def test_recent_nodes_are_not_planned_again() -> None:
    recent = ["pv-1", "pv-2", "pv-3"]

    plan = NAVIGATOR.plan({}, {}, current="pv-4", recent=recent, now=NOW)

    assert plan == ("pv-5", "pv-6")


def test_nothing_is_planned_when_every_skill_is_mastered_and_fresh() -> None:
    knowledge = known(**{skill.replace("-", "_"): 0.99 for skill in COURSE.skills})
    seen = dict.fromkeys(COURSE.skills, NOW)

    assert NAVIGATOR.plan(knowledge, seen, "geo-6", [], NOW) == ()


def test_a_policy_with_a_band_upside_down_is_refused() -> None:
    with pytest.raises(ValueError, match="target band"):
        NavigatorPolicy(target_low=0.9, target_high=0.7)


# Properties over any knowledge state ----------------------------------------------

SKILLS = list(COURSE.skills)
NODES = list(COURSE.nodes)

mastery = st.one_of(
    st.floats(min_value=0.0, max_value=1.0), st.sampled_from([0.3, 0.95, 0.99])
)
knowledge_states = st.dictionaries(st.sampled_from(SKILLS), mastery).map(
    lambda ps: {s: SkillKnowledge(s, p, attempts=3) for s, p in ps.items()}
)
seen_times = st.dictionaries(
    st.sampled_from(SKILLS), st.floats(min_value=NOW - 30 * DAY_SECONDS, max_value=NOW)
)


def is_open(skill: str, knowledge: Mapping[str, SkillKnowledge]) -> bool:
    def mastered(skill_id: str) -> bool:
        state = knowledge.get(skill_id)
        return state is not None and state.p_mastery >= 0.95

    requires = COURSE.skills[skill].requires
    return not mastered(skill) and all(mastered(r) for r in requires)


def is_due(
    skill: str, knowledge: Mapping[str, SkillKnowledge], seen: dict[str, float]
) -> bool:
    state = knowledge.get(skill)
    return (
        state is not None
        and state.p_mastery >= 0.95
        and skill in seen
        and NOW - seen[skill] >= 3 * DAY_SECONDS
    )


@settings(max_examples=300, deadline=None)
@given(
    knowledge=knowledge_states,
    seen=seen_times,
    current=st.sampled_from(NODES),
    recent=st.lists(st.sampled_from(NODES), max_size=12),
)
def test_a_plan_names_only_fresh_eligible_nodes_of_the_course(
    knowledge: dict[str, SkillKnowledge],
    seen: dict[str, float],
    current: str,
    recent: list[str],
) -> None:
    plan = NAVIGATOR.plan(knowledge, seen, current, recent, NOW)

    assert len(plan) <= 3 and len(set(plan)) == len(plan)
    assert all(node_id in COURSE.nodes for node_id in plan)
    assert current not in plan and not set(recent) & set(plan)
    planned_skills = skills_of(plan)
    assert all(
        is_open(skill, knowledge) or is_due(skill, knowledge, seen)
        for skill in planned_skills
    )
    reviews = [s for s in planned_skills if not is_open(s, knowledge)]
    assert len(reviews) <= 1


@settings(max_examples=200, deadline=None)
@given(
    knowledge=knowledge_states,
    seen=seen_times,
    current=st.sampled_from(NODES),
    recent=st.lists(st.sampled_from(NODES), max_size=12),
)
def test_the_same_input_gives_the_same_plan_whatever_the_order_of_its_maps(
    knowledge: dict[str, SkillKnowledge],
    seen: dict[str, float],
    current: str,
    recent: list[str],
) -> None:
    first = NAVIGATOR.plan(knowledge, seen, current, recent, NOW)
    reordered = dict(reversed(list(knowledge.items())))
    again = Navigator(COURSE).plan(
        reordered, dict(reversed(seen.items())), current, recent, NOW
    )

    assert first == again


@settings(max_examples=200, deadline=None)
@given(knowledge=knowledge_states, current=st.sampled_from(NODES))
def test_a_plan_is_full_when_open_skills_have_enough_main_path_questions(
    knowledge: dict[str, SkillKnowledge], current: str
) -> None:
    detours = {n.next.wrong for n in COURSE.nodes.values() if n.next.wrong}
    available = [
        node
        for node in COURSE.nodes.values()
        if node.id != current
        and node.id not in detours
        and is_open(node.skill, knowledge)
    ]

    plan = NAVIGATOR.plan(knowledge, {}, current, [], NOW)

    assert len(plan) == min(3, len(available))


def test_the_skill_being_learnt_is_kept_until_it_is_mastered() -> None:
    # Multiplication is open too, but the student stays on subtraction.
    knowledge = known(place_value=0.99, addition=0.99, subtraction=0.5)

    plan = NAVIGATOR.plan(knowledge, {}, current="sub-2", recent=[], now=NOW)

    assert skills_of(plan) == ["subtraction"] * 3


def test_a_detour_is_not_offered_for_a_skill_never_tried() -> None:
    knowledge = known(place_value=0.99, addition=0.99)

    plan = NAVIGATOR.plan(knowledge, {}, current="add-6", recent=[], now=NOW)

    assert not {"sub-r", "mul-r"} & set(plan)


def test_a_review_question_comes_after_the_skill_being_learnt() -> None:
    knowledge = known(place_value=0.99, addition=0.99, subtraction=0.5)
    seen = {"place-value": NOW - 10 * DAY_SECONDS, "addition": NOW - 60}

    plan = NAVIGATOR.plan(knowledge, seen, current="sub-2", recent=[], now=NOW)

    assert skills_of(plan) == ["subtraction", "subtraction", "place-value"]
