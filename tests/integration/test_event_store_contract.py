"""eventsourcing's own recorder contract, run on our recorders in MariaDB and SQLite.

The cases are unittest classes from `eventsourcing.tests.persistence`; the module is
imported whole, not its classes, because pytest would collect the abstract ones too.
MariaDB classes take their URL from the `mariadb_url` fixture, so they skip when no
server answers and fail under CI=true, like every other real-service test.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from unittest import TestCase

import pytest
import sqlalchemy as sa
from eventsourcing.persistence import InfrastructureFactory
from eventsourcing.tests import persistence as contract
from eventsourcing.utils import Environment, get_topic

from tutorlane.adapters.event_store import (
    SQLAlchemyAggregateRecorder,
    SQLAlchemyApplicationRecorder,
    SQLAlchemyDatastore,
    SQLAlchemyFactory,
    SQLAlchemyProcessRecorder,
    SQLAlchemyTrackingRecorder,
)

# Tables of this run only: database `test` is shared with other tests and people.
PREFIX = f"es_contract_{os.getpid()}"
EVENTS_TABLE = f"{PREFIX}_events"
TRACKING_TABLE = f"{PREFIX}_tracking"


@pytest.fixture(scope="class")
def mariadb_for_class(request: pytest.FixtureRequest, mariadb_url: str) -> None:
    """Hand the MariaDB URL to a unittest class (skipped, or failed under CI)."""
    request.cls.url = mariadb_url


class OnDatabase(TestCase):
    """Fresh tables for every test; the recorders' connections closed after it."""

    # NOTE: pytest collects every TestCase subclass whatever its name; only the
    # concrete classes at the end of this module say they are tests.
    __test__ = False
    url: str

    def setUp(self) -> None:
        super().setUp()
        self.datastores: list[SQLAlchemyDatastore] = []
        self.drop_tables()

    def tearDown(self) -> None:
        for datastore in self.datastores:
            datastore.close()
        self.drop_tables()
        super().tearDown()

    def drop_tables(self) -> None:
        """Drop the tables of this run (a new SQLite file has none)."""

    def datastore(self) -> SQLAlchemyDatastore:
        """Return a datastore closed at the end of the test."""
        datastore = SQLAlchemyDatastore(self.url)
        self.datastores.append(datastore)
        return datastore


class OnSQLite(OnDatabase):
    """A new SQLite file for every test."""

    def setUp(self) -> None:
        self.folder = tempfile.mkdtemp(prefix="tutorlane-contract-")
        self.url = f"sqlite:///{self.folder}/events.db"
        super().setUp()

    def tearDown(self) -> None:
        super().tearDown()
        shutil.rmtree(self.folder, ignore_errors=True)


@pytest.mark.usefixtures("mariadb_for_class")
class OnMariaDB(OnDatabase):
    """The MariaDB test database, without the tables of this run."""

    def drop_tables(self) -> None:
        engine = sa.create_engine(self.url)
        try:
            with engine.begin() as connection:
                names = connection.execute(
                    sa.text(
                        "SELECT table_name FROM information_schema.tables "
                        "WHERE table_schema = DATABASE() AND table_name LIKE :pattern"
                    ),
                    {"pattern": f"{PREFIX}\\_%"},
                ).scalars()
                for name in list(names):
                    connection.exec_driver_sql(f"DROP TABLE `{name}`")
        finally:
            engine.dispose()


class AggregateRecorderCases(OnDatabase, contract.AggregateRecorderTestCase):
    """The aggregate recorder contract (used for snapshots)."""

    def create_recorder(self) -> SQLAlchemyAggregateRecorder:
        recorder = SQLAlchemyAggregateRecorder(
            self.datastore(), events_table_name=f"{PREFIX}_snapshots"
        )
        recorder.create_table()
        return recorder


class ApplicationRecorderCases(OnDatabase, contract.ApplicationRecorderTestCase):
    """The application recorder contract, the subscription included."""

    def create_recorder(self) -> SQLAlchemyApplicationRecorder:
        recorder = SQLAlchemyApplicationRecorder(
            self.datastore(), events_table_name=EVENTS_TABLE
        )
        recorder.create_table()
        return recorder

    def test_insert_subscribe(self) -> None:
        self.optional_test_insert_subscribe()


class TrackingRecorderCases(OnDatabase, contract.TrackingRecorderTestCase):
    """The tracking recorder contract."""

    def create_recorder(self) -> SQLAlchemyTrackingRecorder:
        recorder = SQLAlchemyTrackingRecorder(
            self.datastore(), tracking_table_name=TRACKING_TABLE
        )
        recorder.create_table()
        return recorder


class ProcessRecorderCases(OnDatabase, contract.ProcessRecorderTestCase):
    """The process recorder contract."""

    def create_recorder(self) -> SQLAlchemyProcessRecorder:
        recorder = SQLAlchemyProcessRecorder(
            self.datastore(),
            events_table_name=EVENTS_TABLE,
            tracking_table_name=TRACKING_TABLE,
        )
        recorder.create_table()
        return recorder


class NonInterleavingCases(OnDatabase, contract.NonInterleavingNotificationIDsBaseCase):
    """Two concurrent inserts of 1,000 events take two unbroken runs of ids."""

    def create_recorder(self) -> SQLAlchemyApplicationRecorder:
        recorder = SQLAlchemyApplicationRecorder(
            self.datastore(), events_table_name=EVENTS_TABLE
        )
        recorder.create_table()
        return recorder


class CustomTrackingRecorder(SQLAlchemyTrackingRecorder):
    """A subclass the factory must build when asked for it."""


class InfrastructureFactoryCases(
    OnDatabase, contract.InfrastructureFactoryTestCase[SQLAlchemyFactory]
):
    """The factory contract: our recorders built from an eventsourcing env."""

    def setUp(self) -> None:
        # The contract's setUp builds the factory from this env.
        self.env = Environment(PREFIX)
        self.env[InfrastructureFactory.PERSISTENCE_MODULE] = get_topic(
            SQLAlchemyFactory
        )
        self.env[SQLAlchemyFactory.SQLALCHEMY_URL] = self.url
        super().setUp()

    def tearDown(self) -> None:
        self.factory.close()
        super().tearDown()

    def expected_factory_class(self) -> type[SQLAlchemyFactory]:
        return SQLAlchemyFactory

    def expected_aggregate_recorder_class(self) -> type[SQLAlchemyAggregateRecorder]:
        return SQLAlchemyAggregateRecorder

    def expected_application_recorder_class(
        self,
    ) -> type[SQLAlchemyApplicationRecorder]:
        return SQLAlchemyApplicationRecorder

    def expected_tracking_recorder_class(self) -> type[SQLAlchemyTrackingRecorder]:
        return SQLAlchemyTrackingRecorder

    def tracking_recorder_subclass(self) -> type[SQLAlchemyTrackingRecorder]:
        return CustomTrackingRecorder

    def expected_process_recorder_class(self) -> type[SQLAlchemyProcessRecorder]:
        return SQLAlchemyProcessRecorder


class TestAggregateRecorderOnSQLite(OnSQLite, AggregateRecorderCases):
    __test__ = True


class TestAggregateRecorderOnMariaDB(OnMariaDB, AggregateRecorderCases):
    __test__ = True


class TestApplicationRecorderOnSQLite(OnSQLite, ApplicationRecorderCases):
    __test__ = True


class TestApplicationRecorderOnMariaDB(OnMariaDB, ApplicationRecorderCases):
    __test__ = True


class TestTrackingRecorderOnSQLite(OnSQLite, TrackingRecorderCases):
    __test__ = True


class TestTrackingRecorderOnMariaDB(OnMariaDB, TrackingRecorderCases):
    __test__ = True


class TestProcessRecorderOnSQLite(OnSQLite, ProcessRecorderCases):
    __test__ = True


class TestProcessRecorderOnMariaDB(OnMariaDB, ProcessRecorderCases):
    __test__ = True


class TestNonInterleavingNotificationIdsOnSQLite(OnSQLite, NonInterleavingCases):
    __test__ = True


class TestNonInterleavingNotificationIdsOnMariaDB(OnMariaDB, NonInterleavingCases):
    __test__ = True


class TestInfrastructureFactoryOnSQLite(OnSQLite, InfrastructureFactoryCases):
    __test__ = True


class TestInfrastructureFactoryOnMariaDB(OnMariaDB, InfrastructureFactoryCases):
    __test__ = True
