"""Recorded students of the ASSISTments file through the running tutor, end to end.

A slice of the real training file (its first 300 students, each up to their first 8
answers) goes through `tutorlane serve`'s webhook over HTTP, in the embedded default
(fakeredis, in-process queues, SQLite); every answer must land in the event store
exactly once, in each student's order, right or wrong as in the file.
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections import defaultdict
from dataclasses import replace
from pathlib import Path

import pytest

from tutorlane.adapters.answer_history import read_answers
from tutorlane.adapters.event_store import open_event_store
from tutorlane.adapters.pseudonyms import Pseudonymiser, load_or_create_key
from tutorlane.domain.replay import REPLAY_COURSE_ID, phone_of, skill_id
from tutorlane.entrypoints.projections import open_read_side
from tutorlane.entrypoints.replay import read_dataset, run_dataset, write_course
from tutorlane.entrypoints.settings import Settings
from tutorlane.tests.processes import Process, free_port, http_up

REPO_ROOT = Path(__file__).resolve().parents[2]
DATASET = REPO_ROOT.parent / "shared" / "data" / "assistments" / "builder_train.csv"
STUDENTS = 300
ANSWERS_EACH = 8
SECRET = "replay-secret-0123456789"

pytestmark = pytest.mark.e2e


@pytest.fixture
def dataset() -> Path:
    if DATASET.exists():
        return DATASET
    # Data, not a service: its absence is a skip with the reason, under CI too (as
    # the issue asks); an unreachable service is what CI=true must fail on.
    message = f"the ASSISTments file is not at {DATASET} (the shared data folder)"
    pytest.skip(f"{message}; put shared/data beside the repository to run this test")


def test_a_slice_of_the_file_reaches_the_event_store_exactly_once(
    dataset: Path, tmp_path: Path
) -> None:
    records = [
        replace(r, skills=r.skills[:ANSWERS_EACH], correct=r.correct[:ANSWERS_EACH])
        for r in read_dataset(dataset, STUDENTS)
    ]
    every_skill = read_dataset(dataset)  # the course has every skill of the file
    write_course(every_skill, tmp_path / "flows")
    var = tmp_path / "var"
    port = free_port()
    server = Process(
        ["serve", "--port", str(port)],
        {
            "TUTORLANE_FLOWS": str(tmp_path / "flows"),
            "TUTORLANE_VAR": str(var),
            "TUTORLANE_WEBHOOK_SECRET": SECRET,
        },
        tmp_path / "serve.log",
    )
    server.start().wait_until(http_up(f"http://127.0.0.1:{port}/healthz"))
    database_url = f"sqlite:///{var / 'events.db'}"
    pseudonym = Pseudonymiser(load_or_create_key(var / "pseudonym.key"))
    settings = Settings(TUTORLANE_VAR=var, flows=tmp_path / "flows")
    try:
        url = f"http://127.0.0.1:{port}/webhooks/swiftchat/{SECRET}"
        result = run_dataset(
            url,
            database_url,
            records,
            16,
            30.0,
            pseudonym,
            lambda: open_read_side(settings),
        )
    finally:
        server.stop()

    expected = sum(len(record) for record in records)
    assert result.students == STUDENTS and result.answers == expected
    assert result.recorded_answers == expected, server.output()[-2000:]
    assert result.recorded_students == result.students_matching == STUDENTS

    # The read models caught up; the live tables equal a rebuild from the log.
    rows = {status.name: status.rows for status in result.projections}
    assert rows["interaction_log"] == expected
    assert 0 < rows["knowledge_state"] <= expected
    assert rows["next_steps"] == STUDENTS
    assert not any(status.lag for status in result.projections)
    check = subprocess.run(
        [sys.executable, "-m", "tutorlane", "projections", "check"],
        env={
            **os.environ,
            "TUTORLANE_VAR": str(var),
            "TUTORLANE_FLOWS": str(tmp_path / "flows"),
        },
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert check.returncode == 0, check.stdout + check.stderr
    assert check.stdout.count("equal") == 4, check.stdout

    # Each student's answers, by sequence number, are the file's, exactly once.
    store = open_event_store(database_url)
    recorded: dict[str, list[tuple[int, str, bool]]] = defaultdict(list)
    for answer in read_answers(store, REPLAY_COURSE_ID):
        recorded[answer.student].append((answer.seq, answer.skill, answer.correct))
    store.close()
    assert len(recorded) == STUDENTS
    for record in records:
        answers = sorted(recorded[pseudonym(phone_of(record.index, record.cohort))])
        assert [(skill, right) for _, skill, right in answers] == [
            (skill_id(skill), right)
            for skill, right in zip(record.skills, record.correct, strict=True)
        ], f"student {record.index}"
        # seq 1 is the CourseStarted of `start`; the answers follow without a gap.
        assert [seq for seq, _, _ in answers] == list(range(2, len(record) + 2))
