"""Projections on SQLite and the real MariaDB: runner, rebuild, swap, migrations."""

from __future__ import annotations

import os
import random
import subprocess
import sys
import tempfile
import threading
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tutorlane.adapters.event_feed import EventStoreFeed
from tutorlane.adapters.event_store import (
    EventStore,
    SQLAlchemyApplicationRecorder,
    SQLAlchemyDatastore,
    create_event_store_engine,
    open_event_store,
)
from tutorlane.adapters.flow_files import SHIPPED_FLOWS, load_course_file
from tutorlane.adapters.schema import current_revision, head_revision, upgrade_database
from tutorlane.adapters.sql_projections import (
    TABLE_DEFINITIONS,
    SQLProjectionStore,
    projection_state_table,
)
from tutorlane.domain.course import BKTParameters
from tutorlane.domain.events import Event
from tutorlane.entrypoints.agents import record_analysis
from tutorlane.projections.analyst_insights import AnalystInsightsProjection
from tutorlane.projections.base import LoggedEvent, Projection, RowStore
from tutorlane.projections.interaction_log import InteractionLogProjection
from tutorlane.projections.knowledge_state import (
    KnowledgeStateProjection,
    SkillParameters,
)
from tutorlane.projections.next_steps import NextStepsProjection
from tutorlane.projections.rebuild import (
    CheckReport,
    LostLease,
    ProjectionRebuild,
    RebuildRunning,
)
from tutorlane.projections.runner import ProjectionRunner
from tutorlane.tests.history import (
    COURSE,
    Students,
    analysis,
    answer,
    hint,
    record,
)

SKILLS = ("place-value", "addition", "fractions")
COURSES = {COURSE: load_course_file(SHIPPED_FLOWS / "maths-primary.yaml")}
VIEWS = ("interaction_log", "knowledge_state", "next_steps", "analyst_insights")
PARAMETERS = SkillParameters(
    {}, {skill: BKTParameters(0.3, 0.1, 0.2, 0.1) for skill in SKILLS}
)


class ReadModels:
    """An event store and the projections on one database."""

    def __init__(self, url: str) -> None:
        self.url = url
        self.store: EventStore = open_event_store(url)
        self.tables = SQLProjectionStore(create_event_store_engine(url))
        self.feed = EventStoreFeed(self.store)
        self.projections: list[Projection] = [
            InteractionLogProjection(),
            KnowledgeStateProjection(PARAMETERS),
            NextStepsProjection(COURSES, PARAMETERS),
            AnalystInsightsProjection(),
        ]

    def runner(self, batch_size: int = 1000) -> ProjectionRunner:
        return ProjectionRunner(
            self.projections, self.tables, self.feed, batch_size=batch_size
        )

    def catch_up(self, batch_size: int = 1000) -> None:
        runner = self.runner(batch_size)
        while runner.run_once():
            pass

    def rebuild(self, owner: str = "tester", **options: Any) -> None:
        for projection in self.projections:
            ProjectionRebuild(
                projection, self.tables, self.feed, owner, **options
            ).run()

    def rows(self) -> dict[str, list[tuple[Any, ...]]]:
        """Every row of every live view, sorted: what analysts see."""
        snapshot = {}
        with self.tables.engine.connect() as connection:
            for view in VIEWS:
                result = connection.exec_driver_sql(f"SELECT * FROM {view}")
                snapshot[view] = sorted(tuple(row) for row in result)
        return snapshot

    def positions(self) -> dict[str, int]:
        return {name: state.position for name, state in self.tables.states().items()}

    def close(self) -> None:
        self.tables.close()
        self.store.close()


@contextmanager
def sqlite_url() -> Iterator[str]:
    with tempfile.TemporaryDirectory() as folder:
        yield f"sqlite:///{folder}/events.db"


@pytest.fixture(params=["sqlite", "mariadb"])
def database_url(request: pytest.FixtureRequest) -> Iterator[str]:
    if request.param == "mariadb":
        yield request.getfixturevalue("mariadb_database_url")
    else:
        with sqlite_url() as url:
            yield url


@pytest.fixture
def models(database_url: str) -> Iterator[ReadModels]:
    read_models = ReadModels(database_url)
    yield read_models
    read_models.close()


def answers_of(students: int, per_student: int, seed: int = 1) -> list[Event]:
    """Answers of several students, interleaved as a chat would record them."""
    chooser = random.Random(seed)
    seqs = Students()
    events: list[Event] = []
    for _ in range(per_student):
        for number in range(students):
            student = f"student-{number}"
            events.append(
                answer(
                    student,
                    seqs.next_seq(student),
                    correct=chooser.random() < 0.6,
                    skill=chooser.choice(SKILLS),
                )
            )
    return events


# Migrations -------------------------------------------------------------------------


def test_migrations_create_the_tables_the_code_defines(database_url: str) -> None:
    upgrade_database(database_url)

    expected = sa.MetaData()
    projection_state_table(expected)
    for name, define in TABLE_DEFINITIONS.items():
        define(expected, f"{name}_g1")
    engine = create_event_store_engine(database_url)
    with engine.connect() as connection:
        context = MigrationContext.configure(
            connection, opts={"include_name": _only(expected)}
        )
        differences = compare_metadata(context, expected)
    engine.dispose()
    assert differences == []


def _only(metadata: sa.MetaData) -> Any:
    def include(name: str | None, kind: str, _parent: Any) -> bool:
        return kind != "table" or name in metadata.tables

    return include


def test_migrating_again_changes_nothing(database_url: str) -> None:
    first = upgrade_database(database_url)
    second = upgrade_database(database_url)

    assert first == (None, head_revision())
    assert second == (head_revision(), head_revision())


def test_an_event_store_made_before_migrations_is_adopted_with_its_events(
    database_url: str,
) -> None:
    datastore = SQLAlchemyDatastore(database_url)
    SQLAlchemyApplicationRecorder(datastore).create_table()
    old = EventStore(SQLAlchemyApplicationRecorder(datastore))
    record(old, [answer("s1", 1, correct=True)])
    datastore.close()

    models = ReadModels(database_url)
    try:
        models.catch_up()
        assert models.store.count() == 1
        assert len(models.rows()["interaction_log"]) == 1
        engine = create_event_store_engine(database_url)
        assert current_revision(engine) == head_revision()
        engine.dispose()
    finally:
        models.close()


# The live runner --------------------------------------------------------------------


def test_the_runner_applies_each_event_once_and_records_its_position(
    models: ReadModels,
) -> None:
    events = answers_of(students=7, per_student=30)
    record(models.store, events[:100])
    models.catch_up(batch_size=33)
    record(models.store, [hint("student-0", 31), *events[100:]])
    models.catch_up(batch_size=33)

    rows = models.rows()
    assert len(rows["interaction_log"]) == len(events)
    assert sum(row[5] for row in rows["knowledge_state"]) == len(events)
    head = models.feed.head()
    assert set(models.positions().values()) == {head}


class Crash(Exception):
    pass


class CrashingProjection(InteractionLogProjection):
    """Writes its rows, then dies before the batch commits."""

    crashes = 1

    def apply(self, events: Sequence[LoggedEvent], rows: RowStore) -> None:
        super().apply(events, rows)
        if self.crashes:
            self.crashes -= 1
            raise Crash


def test_a_batch_that_dies_half_written_leaves_nothing_and_is_applied_again(
    models: ReadModels,
) -> None:
    record(models.store, answers_of(students=3, per_student=5))
    crashing = CrashingProjection()
    runner = ProjectionRunner([crashing], models.tables, models.feed, batch_size=4)

    with pytest.raises(Crash):
        runner.run_once()
    assert models.rows()["interaction_log"] == []
    assert models.positions()["interaction_log"] == 0

    while runner.run_once():
        pass
    assert len(models.rows()["interaction_log"]) == 15


def test_the_runner_leaves_a_projection_built_with_other_parameters_alone(
    models: ReadModels, caplog: pytest.LogCaptureFixture
) -> None:
    record(models.store, answers_of(students=2, per_student=3))
    models.catch_up()
    before = models.rows()["knowledge_state"]

    refitted = SkillParameters(
        {}, {skill: BKTParameters(0.5, 0.2, 0.1, 0.05) for skill in SKILLS}
    )
    other = KnowledgeStateProjection(refitted)
    record(models.store, [answer("student-0", 4, correct=True)])
    runner = ProjectionRunner([other], models.tables, models.feed)

    assert runner.run_once() == 0
    assert models.rows()["knowledge_state"] == before
    assert "projections rebuild" in caplog.text

    ProjectionRebuild(other, models.tables, models.feed, "tester").run()
    assert runner.run_once() == 0
    rows = models.rows()["knowledge_state"]
    assert {row[7] for row in rows} == {0.5}
    assert sum(row[5] for row in rows) == 7


def test_a_running_runner_takes_up_newly_fitted_parameters_after_a_rebuild(
    models: ReadModels,
) -> None:
    record(models.store, answers_of(students=2, per_student=3))
    models.catch_up()
    old = SkillParameters({})
    running = KnowledgeStateProjection(old)
    fitted = {skill: BKTParameters(0.5, 0.2, 0.1, 0.05) for skill in SKILLS}

    def reload() -> None:  # as ReadSide.reload_parameters reads bkt_parameters
        old.fitted = dict(fitted)

    runner = ProjectionRunner(
        [running], models.tables, models.feed, reload_parameters=reload
    )
    # `replay fit`, then a rebuild with its parameters, under the running runner.
    ProjectionRebuild(
        KnowledgeStateProjection(SkillParameters({}, fitted)),
        models.tables,
        models.feed,
        "tester",
    ).run()
    record(models.store, [answer("student-0", 4, correct=True)])

    assert runner.run_once() == 1
    rows = models.rows()["knowledge_state"]
    assert {row[7] for row in rows} == {0.5}
    assert sum(row[5] for row in rows) == 7


# Rebuild ----------------------------------------------------------------------------


def test_a_rebuild_swaps_in_equal_tables_and_drops_the_old_generation(
    models: ReadModels,
) -> None:
    record(models.store, answers_of(students=5, per_student=20))
    models.catch_up(batch_size=17)
    live = models.rows()

    models.rebuild(batch_size=23)

    assert models.rows() == live
    assert {state.generation for state in models.tables.states().values()} == {2}
    tables = set(sa.inspect(models.tables.engine).get_table_names())
    assert "knowledge_state_g1" not in tables
    assert "knowledge_state_g2" in tables


def test_a_second_rebuild_at_the_same_time_is_refused(models: ReadModels) -> None:
    record(models.store, answers_of(students=2, per_student=2))
    projection = models.projections[1]
    first = ProjectionRebuild(projection, models.tables, models.feed, "host-a:1")
    first.claim()

    second = ProjectionRebuild(projection, models.tables, models.feed, "host-b:2")
    with pytest.raises(RebuildRunning, match="being rebuilt by host-a:1"):
        second.run()

    first.run()
    second.run()
    assert models.tables.states()["knowledge_state"].generation == 3


def test_a_runner_starting_during_a_rebuild_leaves_the_rebuilds_tables(
    models: ReadModels,
) -> None:
    record(models.store, answers_of(students=3, per_student=5))
    models.catch_up()
    projection = models.projections[0]
    rebuild = ProjectionRebuild(
        projection, models.tables, models.feed, "host-a:1", batch_size=4
    )
    runner = models.runner()
    # A runner starts, its snapshot of the states taken before the rebuild's
    # claim, and tidies up after the rebuild's first batch.
    runner.tables = StaleStates(models.tables, models.tables.states())
    batches = 0

    def runner_starts(done: int, total: int) -> None:
        nonlocal batches
        batches += 1
        if batches == 1:
            runner.prepare()

    report = rebuild.run(runner_starts)

    assert models.tables.states()["interaction_log"].generation == report.generation
    assert len(models.rows()["interaction_log"]) == 15


class StaleStates:
    """Projection tables whose first `states()` answers from an old snapshot."""

    def __init__(self, tables: SQLProjectionStore, snapshot: dict[str, Any]) -> None:
        self.tables = tables
        self.snapshot: dict[str, Any] | None = snapshot

    def states(self) -> dict[str, Any]:
        snapshot, self.snapshot = self.snapshot, None
        return snapshot if snapshot is not None else self.tables.states()

    def __getattr__(self, name: str) -> Any:
        return getattr(self.tables, name)


def test_an_interrupted_rebuild_resumes_where_it_stopped(models: ReadModels) -> None:
    record(models.store, answers_of(students=4, per_student=25))
    models.catch_up()
    live = models.rows()
    projection = models.projections[0]
    batches = 0

    def interrupt_after_two(done: int, total: int) -> None:
        nonlocal batches
        batches += 1
        if batches == 2:
            raise KeyboardInterrupt

    rebuild = ProjectionRebuild(
        projection, models.tables, models.feed, "first", batch_size=10
    )
    with pytest.raises(KeyboardInterrupt):
        rebuild.run(interrupt_after_two)
    state = models.tables.states()["interaction_log"]
    assert (state.rebuild_position, state.rebuild_owner) == (20, None)

    report = ProjectionRebuild(
        projection, models.tables, models.feed, "second", batch_size=10
    ).run()
    assert report.resumed
    assert report.events == 80
    assert models.rows() == live


def test_a_dead_rebuilds_lease_lapses_and_another_takes_over(
    models: ReadModels,
) -> None:
    record(models.store, answers_of(students=2, per_student=10))
    projection = models.projections[0]
    now = [1000.0]
    dead = ProjectionRebuild(
        projection, models.tables, models.feed, "dead", clock=lambda: now[0]
    )
    dead.claim()

    now[0] += 61
    heir = ProjectionRebuild(
        projection, models.tables, models.feed, "heir", clock=lambda: now[0]
    )
    heir.run()
    with pytest.raises(LostLease):
        dead.swap(1, 0)


def test_a_rebuild_while_events_keep_arriving_equals_a_fresh_rebuild(
    models: ReadModels,
) -> None:
    events = answers_of(students=20, per_student=60, seed=7)
    record(models.store, events[:300])
    models.catch_up()
    stop = threading.Event()
    runner = models.runner(batch_size=50)
    running = threading.Thread(target=runner.run, args=(stop, 0.01))
    running.start()

    def keep_recording() -> None:
        for start in range(300, len(events), 20):
            record(models.store, events[start : start + 20])

    writer = threading.Thread(target=keep_recording)
    writer.start()
    try:
        models.rebuild(batch_size=40)
    finally:
        writer.join()
        stop.set()
        running.join()
    models.catch_up()
    while_arriving = models.rows()

    models.rebuild()

    assert models.rows() == while_arriving
    assert len(while_arriving["interaction_log"]) == len(events)


# Check --------------------------------------------------------------------------------


def check(models: ReadModels, projection: Projection, **options: Any) -> CheckReport:
    return ProjectionRebuild(projection, models.tables, models.feed, "checker").check(
        **options
    )


def test_a_check_finds_the_live_tables_equal_as_far_as_they_have_come(
    models: ReadModels,
) -> None:
    record(models.store, answers_of(students=6, per_student=10))
    models.catch_up(batch_size=7)
    record(models.store, [answer("late", seq, correct=True) for seq in (1, 2)])
    live = models.rows()

    reports = [check(models, projection) for projection in models.projections]

    assert all(report.equal and report.live_is_current for report in reports)
    interaction_log = reports[0].differences[0]
    assert interaction_log.rows == interaction_log.other_rows == 60
    assert models.rows() == live
    assert {state.generation for state in models.tables.states().values()} == {1}
    assert not any(state.rebuild_owner for state in models.tables.states().values())
    tables = set(sa.inspect(models.tables.engine).get_table_names())
    assert not any(table.endswith("_g2") for table in tables)


def test_a_check_names_a_live_row_that_differs_from_the_rebuild(
    models: ReadModels,
) -> None:
    record(models.store, answers_of(students=3, per_student=4))
    models.catch_up()
    with models.tables.engine.begin() as connection:
        connection.exec_driver_sql(
            "UPDATE knowledge_state_g1 SET correct = correct + 1 "
            "WHERE student = 'student-1'"
        )

    report = check(models, models.projections[1])

    assert not report.equal
    (difference,) = report.differences
    assert difference.only_here == difference.only_there > 0
    assert all(key[0] == "student-1" for key in difference.sample_keys)


def test_a_check_waits_for_an_unfinished_rebuild(models: ReadModels) -> None:
    record(models.store, answers_of(students=2, per_student=2))
    projection = models.projections[0]
    ProjectionRebuild(projection, models.tables, models.feed, "host-a:1").claim()

    with pytest.raises(RebuildRunning, match="being rebuilt by host-a:1"):
        check(models, projection)


# Live equals rebuild, for any history ------------------------------------------------

history = st.lists(
    st.tuples(
        st.integers(0, 4),  # student
        st.sampled_from(SKILLS),
        st.booleans(),  # correct
        st.sampled_from(["answer", "hint", "analysis"]),
        st.integers(1, 6),  # events the worker commits together
    ),
    min_size=1,
    max_size=60,
)


def _live_equals_rebuild(url: str, steps: list[Any], batch_size: int) -> None:
    models = ReadModels(url)
    try:
        seqs = Students()
        pending: list[Event] = []
        for number, skill, correct, kind, commit_after in steps:
            student = f"s{number}"
            if kind == "analysis":
                record_analysis(models.store, analysis(student, skill, len(pending)))
                continue
            seq = seqs.next_seq(student)
            pending.append(
                answer(student, seq, correct=correct, skill=skill)
                if kind == "answer"
                else hint(student, seq, skill=skill)
            )
            if len(pending) >= commit_after:
                record(models.store, pending)
                pending = []
                models.runner(batch_size).run_once()
        record(models.store, pending)
        models.catch_up(batch_size)
        live = models.rows()

        models.rebuild(batch_size=batch_size * 3)

        assert models.rows() == live
    finally:
        models.close()


@settings(
    max_examples=30,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)
@given(steps=history, batch_size=st.integers(1, 8))
def test_live_projections_equal_a_rebuild_on_sqlite(
    steps: list[Any], batch_size: int
) -> None:
    with sqlite_url() as url:
        _live_equals_rebuild(url, steps, batch_size)


@settings(
    max_examples=8,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)
@given(steps=history, batch_size=st.integers(1, 8))
def test_live_projections_equal_a_rebuild_on_mariadb(
    mariadb_url: str, steps: list[Any], batch_size: int
) -> None:
    server = sa.create_engine(sa.make_url(mariadb_url).set(database=""))
    database = f"tutorlane_property_{Path(tempfile.mktemp()).name[3:]}"
    with server.begin() as connection:
        connection.execute(sa.text(f"CREATE DATABASE {database}"))
    try:
        url = sa.make_url(mariadb_url).set(database=database)
        _live_equals_rebuild(url.render_as_string(hide_password=False), steps, 3)
    finally:
        with server.begin() as connection:
            connection.execute(sa.text(f"DROP DATABASE {database}"))
        server.dispose()


def test_running_a_projection_that_does_not_exist_says_which_there_are(
    tmp_path: Path,
) -> None:
    env = {**os.environ, "TUTORLANE_VAR": str(tmp_path)}
    env.pop("TUTORLANE_DATABASE_URL", None)
    ran = subprocess.run(
        [sys.executable, "-m", "tutorlane", "projections", "run", "nosuch"],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )

    assert ran.returncode == 2
    assert "no projection called nosuch" in ran.stderr
    assert "interaction_log" in ran.stderr


def test_status_shows_the_generation_a_rebuild_made_live(tmp_path: Path) -> None:
    env = {**os.environ, "TUTORLANE_VAR": str(tmp_path), "COLUMNS": "150"}
    env.pop("TUTORLANE_DATABASE_URL", None)

    def tutorlane(*args: str) -> str:
        ran = subprocess.run(
            [sys.executable, "-m", "tutorlane", "projections", *args],
            env=env,
            capture_output=True,
            text=True,
            timeout=120,
            check=True,
        )
        return ran.stdout

    tutorlane("rebuild", "knowledge_state")
    table = tutorlane("status")

    rows = {
        cells[0]: cells[1:]
        for line in table.splitlines()
        if len(cells := line.replace("│", " ").split()) > 3
    }
    assert "generation" in table
    assert rows["knowledge_state"][:2] == ["1", "2"]  # version 1, generation 2
    assert rows["interaction_log"][:2] == ["1", "1"]
