"""A rule-based stand-in for the Analyst, used when no Anthropic API key is set.

It is no model: it counts the wrong answers and suggests the easiest practice
question. It answers in the model's schema, so its output takes the same checked
path into the event store, and every analysis it records is marked with its name.
"""

from __future__ import annotations

import json

from tutorlane.domain.analysis import (
    MAX_EVIDENCE,
    MAX_MISCONCEPTION,
    AnalysisRequest,
    RemediationChoice,
)

STAND_IN_NAME = "rule-based-stand-in"


class RuleBasedAnalyst:
    """Answers like the Analyst from simple rules; needs no network."""

    model = STAND_IN_NAME

    async def analyse(self, request: AnalysisRequest) -> str:
        """Return an analysis in the schema, from counting the answers."""
        wrong = [answered for answered in request.answers if not answered.correct]
        misconception = (
            f"{len(wrong)} of the last {len(request.answers)} answers on "
            f"{request.skill_name} were wrong (rule-based: no model was asked)"
        )
        shown = "; ".join(
            f"wrote {answered.answer!r} where {answered.expected} was expected"
            for answered in wrong[-3:]
        )
        return json.dumps(
            {
                "misconception": misconception[:MAX_MISCONCEPTION],
                "evidence": (shown or "no wrong answers recorded")[:MAX_EVIDENCE],
                "remediation_node": _easiest(request).node,
            },
            ensure_ascii=False,
        )


def _easiest(request: AnalysisRequest) -> RemediationChoice:
    """Return the first practice question of the skill, else of a prerequisite."""
    on_skill = [choice for choice in request.choices if choice.skill == request.skill]
    return (on_skill or list(request.choices))[0]
