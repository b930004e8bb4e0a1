"""The projection runner as its own process, killed mid-batch again and again."""

from __future__ import annotations

import random
import time
from pathlib import Path

from tutorlane.tests.history import record
from tutorlane.tests.integration.test_projections import ReadModels, answers_of
from tutorlane.tests.processes import Process, wait_for


def test_a_runner_killed_mid_batch_and_restarted_applies_every_event_once(
    tmp_path: Path, mariadb_database_url: str
) -> None:
    models = ReadModels(mariadb_database_url)
    events = answers_of(students=300, per_student=60, seed=3)
    record(models.store, events[:6000])
    runner = Process(
        ["projections", "run", "--batch", "40"],
        {
            "TUTORLANE_DATABASE_URL": mariadb_database_url,
            "TUTORLANE_VAR": str(tmp_path / "var"),
        },
        tmp_path / "runner.log",
    )
    chooser = random.Random(5)
    kills = mid_work = 0
    try:
        # Kill the runner at random moments while it works and more events arrive.
        for start in range(6000, len(events), 2000):
            before = min(models.positions().values())
            runner.start()
            wait_for(
                lambda: min(models.positions().values()) > before,  # noqa: B023
                seconds=30,
                on_each=runner.check_running,
                what="the runner to start applying",
            )
            time.sleep(chooser.uniform(0.0, 0.3))
            runner.kill()
            kills += 1
            if 0 < min(models.positions().values()) < models.feed.head():
                mid_work += 1
            record(models.store, events[start : start + 2000])

        runner.start()
        head = models.feed.head()
        wait_for(
            lambda: set(models.positions().values()) == {head},
            seconds=120,
            on_each=runner.check_running,
            what="the runner to catch up",
        )
    finally:
        runner.stop()

    try:
        assert kills == 6
        assert mid_work >= 3, "the runner was killed while it had work in hand"
        assert "projection batch failed" not in runner.output()
        live = models.rows()
        assert len(live["interaction_log"]) == len(events)
        attempts = sum(row[5] for row in live["knowledge_state"])
        assert attempts == len(events)
        models.rebuild()
        assert models.rows() == live
    finally:
        models.close()
