"""Analyst insights: what the Analyst found each student getting wrong, and why."""

from __future__ import annotations

from collections.abc import Sequence
from typing import ClassVar

from tutorlane.domain.events import AnalysisRecorded
from tutorlane.projections.base import LoggedEvent, Projection, RowStore, utc_time

ANALYST_INSIGHTS = "analyst_insights"


class AnalystInsightsProjection(Projection):
    """One row per recorded analysis; a rebuild reads them, never asks the LLM."""

    name: ClassVar[str] = ANALYST_INSIGHTS
    version: ClassVar[int] = 1
    tables: ClassVar[tuple[str, ...]] = (ANALYST_INSIGHTS,)

    def apply(self, events: Sequence[LoggedEvent], rows: RowStore) -> None:
        """Add a row for each analysis in the batch."""
        insights = []
        for logged in events:
            analysis = logged.event
            if not isinstance(analysis, AnalysisRecorded):
                continue
            insights.append(
                {
                    "event_id": analysis.event_id,
                    "student": analysis.student,
                    "course": analysis.course,
                    "skill": analysis.skill,
                    "trigger": analysis.trigger,
                    "misconception": analysis.misconception,
                    "evidence": analysis.evidence,
                    "remediation_node": analysis.remediation_node,
                    "model": analysis.model,
                    "recorded_at": utc_time(analysis.occurred_at),
                    "notification_id": logged.notification_id,
                }
            )
        # NOTE: one analysis per triggering event, but two runners could each have
        # recorded it; the last one recorded stands, live and in a rebuild alike.
        latest = {insight["event_id"]: insight for insight in insights}
        rows.upsert(ANALYST_INSIGHTS, list(latest.values()))
