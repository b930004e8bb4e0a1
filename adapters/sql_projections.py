"""Projection tables on MariaDB or SQLite, and the bookkeeping that swaps them.

Each projection's tables exist in generations: `knowledge_state_g1`, `_g2`, ... A
view named after the table (`knowledge_state`) shows the live generation, and that is
what analysts and the Navigator read. A rebuild fills the next generation beside the
live one, then makes it live by changing one row of `projection_state` in the same
transaction as its last batch, and only then points the views at it.

`projection_state` holds, per projection: the live generation, its version and
position in the event log (the id of the last event applied), and the same for a
rebuild in progress together with the lease of the process running it. Every batch
of the live runner and of a rebuild first updates this row, which locks it until the
commit: the runner and a rebuild's final swap cannot interleave, and on SQLite the
update takes the database's write lock before anything is read.
"""

from __future__ import annotations

import contextlib
import re
from collections.abc import Callable, Collection, Iterator, Sequence
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects import mysql, sqlite
from sqlalchemy.engine import Connection, Engine

from tutorlane.projections.base import Key, ProjectionState, Row, TableDifference

PROJECTION_STATE = "projection_state"

# Keys go to the database in IN lists of at most this many tuples.
MAX_KEYS_PER_QUERY = 500
SAMPLE_KEYS = 3  # differing rows a check names

MYSQL_TABLE_OPTIONS: dict[str, Any] = {
    "mysql_engine": "InnoDB",
    "mysql_charset": "utf8mb4",
    "mysql_collate": "utf8mb4_bin",
}
_ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
_TIME = sa.DateTime().with_variant(mysql.DATETIME(fsp=6), "mysql", "mariadb")
_NAME = sa.String(64)


def interaction_log_table(metadata: sa.MetaData, name: str) -> sa.Table:
    """Define one generation of the interaction log."""
    return sa.Table(
        name,
        metadata,
        sa.Column("student", _NAME, primary_key=True),
        sa.Column("seq", _ID, primary_key=True, autoincrement=False),
        sa.Column("notification_id", _ID, nullable=False),
        sa.Column("course", _NAME, nullable=False),
        sa.Column("node", _NAME, nullable=False),
        sa.Column("skill", _NAME, nullable=False),
        sa.Column("answer", sa.String(512), nullable=False),
        sa.Column("correct", sa.Boolean(), nullable=False),
        sa.Column("attempt", sa.Integer(), nullable=False),
        sa.Column("seconds_taken", sa.Double(), nullable=False),
        sa.Column("hints_used", sa.Integer(), nullable=False),
        sa.Column("answered_at", _TIME, nullable=False),
        sa.Index(f"{name}_skill_idx", "course", "skill"),
        **MYSQL_TABLE_OPTIONS,
    )


def knowledge_state_table(metadata: sa.MetaData, name: str) -> sa.Table:
    """Define one generation of the knowledge state."""
    return sa.Table(
        name,
        metadata,
        sa.Column("student", _NAME, primary_key=True),
        sa.Column("course", _NAME, primary_key=True),
        sa.Column("skill", _NAME, primary_key=True),
        sa.Column("p_mastery", sa.Double(), nullable=False),
        sa.Column("mastered", sa.Boolean(), nullable=False),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("correct", sa.Integer(), nullable=False),
        sa.Column("prior", sa.Double(), nullable=False),
        sa.Column("learn", sa.Double(), nullable=False),
        sa.Column("guess", sa.Double(), nullable=False),
        sa.Column("slip", sa.Double(), nullable=False),
        sa.Column("updated_at", _TIME, nullable=False),
        sa.Column("last_seq", _ID, nullable=False),
        **MYSQL_TABLE_OPTIONS,
    )


def next_steps_table(metadata: sa.MetaData, name: str) -> sa.Table:
    """Define one generation of the next steps."""
    return sa.Table(
        name,
        metadata,
        sa.Column("student", _NAME, primary_key=True),
        sa.Column("course", _NAME, nullable=False),
        sa.Column("after_node", _NAME, nullable=False),
        sa.Column("plan", sa.String(255), nullable=False),
        sa.Column("last_seq", _ID, nullable=False),
        sa.Column("last_at", sa.Double(), nullable=False),
        sa.Column("planned_at", _TIME, nullable=False),
        sa.Column("knowledge", sa.Text(), nullable=False),
        sa.Column("recent", sa.Text(), nullable=False),
        **MYSQL_TABLE_OPTIONS,
    )


def analyst_insights_table(metadata: sa.MetaData, name: str) -> sa.Table:
    """Define one generation of the analyst insights."""
    return sa.Table(
        name,
        metadata,
        sa.Column("event_id", sa.String(36), primary_key=True),
        sa.Column("student", _NAME, nullable=False),
        sa.Column("course", _NAME, nullable=False),
        sa.Column("skill", _NAME, nullable=False),
        sa.Column("trigger", sa.String(32), nullable=False),
        sa.Column("misconception", sa.String(512), nullable=False),
        sa.Column("evidence", sa.String(512), nullable=False),
        sa.Column("remediation_node", _NAME, nullable=False),
        sa.Column("model", sa.String(128), nullable=False),
        sa.Column("recorded_at", _TIME, nullable=False),
        sa.Column("notification_id", _ID, nullable=False),
        sa.Index(f"{name}_student_idx", "student"),
        **MYSQL_TABLE_OPTIONS,
    )


TABLE_DEFINITIONS = {
    "interaction_log": interaction_log_table,
    "knowledge_state": knowledge_state_table,
    "next_steps": next_steps_table,
    "analyst_insights": analyst_insights_table,
}


def projection_state_table(metadata: sa.MetaData) -> sa.Table:
    """Define the bookkeeping table: one row per projection."""
    return sa.Table(
        PROJECTION_STATE,
        metadata,
        sa.Column("name", _NAME, primary_key=True),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("generation", sa.Integer(), nullable=False),
        sa.Column("position", _ID, nullable=False),
        sa.Column("fingerprint", _NAME, nullable=False),
        sa.Column("rebuild_version", sa.Integer(), nullable=True),
        sa.Column("rebuild_generation", sa.Integer(), nullable=True),
        sa.Column("rebuild_position", _ID, nullable=True),
        sa.Column("rebuild_fingerprint", _NAME, nullable=True),
        sa.Column("rebuild_owner", sa.String(200), nullable=True),
        sa.Column("rebuild_started_at", sa.Double(), nullable=True),
        sa.Column("rebuild_lease_until", sa.Double(), nullable=True),
        **MYSQL_TABLE_OPTIONS,
    )


def generation_table_name(table: str, generation: int) -> str:
    """Return the name of one generation of a projection's table."""
    return f"{table}_g{generation}"


class UnknownTable(LookupError):
    """A projection names a table this adapter has no definition of."""


class SQLRowStore:
    """One generation of a projection's tables, inside one transaction."""

    def __init__(
        self, connection: Connection, tables: dict[str, sa.Table], dialect: str
    ) -> None:
        self.connection = connection
        self.tables = tables
        self.dialect = dialect

    def table(self, name: str) -> sa.Table:
        """Return the physical table behind a logical name."""
        try:
            return self.tables[name]
        except KeyError:
            raise UnknownTable(
                f"no table {name!r} in this projection; it has {sorted(self.tables)}"
            ) from None

    def fetch(self, table: str, keys: Collection[Key]) -> dict[Key, Row]:
        """Return the rows with these primary keys, by key."""
        physical = self.table(table)
        key_columns = list(physical.primary_key.columns)
        found: dict[Key, Row] = {}
        wanted = list(keys)
        for start in range(0, len(wanted), MAX_KEYS_PER_QUERY):
            chunk = wanted[start : start + MAX_KEYS_PER_QUERY]
            statement = sa.select(physical).where(sa.tuple_(*key_columns).in_(chunk))
            for row in self.connection.execute(statement).mappings():
                found[tuple(row[column.name] for column in key_columns)] = dict(row)
        return found

    def insert(self, table: str, rows: Sequence[Row]) -> None:
        """Add new rows in one statement per chunk."""
        if rows:
            self.connection.execute(sa.insert(self.table(table)), list(rows))

    def upsert(self, table: str, rows: Sequence[Row]) -> None:
        """Add the rows, replacing those whose primary key exists already."""
        if not rows:
            return
        physical = self.table(table)
        keys = {column.name for column in physical.primary_key.columns}
        others = [column.name for column in physical.columns if column.name not in keys]
        if self.dialect == "sqlite":
            lite = sqlite.insert(physical)
            statement: Any = lite.on_conflict_do_update(
                index_elements=sorted(keys),
                set_={name: lite.excluded[name] for name in others},
            )
        else:
            maria = mysql.insert(physical)
            statement = maria.on_duplicate_key_update(
                {name: maria.inserted[name] for name in others}
            )
        self.connection.execute(statement, list(rows))


class SQLLockedProjection:
    """A projection's bookkeeping row, locked by an open transaction."""

    def __init__(
        self, store: SQLProjectionStore, connection: Connection, state: ProjectionState
    ) -> None:
        self.store = store
        self.connection = connection
        self.state = state

    def rows(self, tables: Sequence[str], generation: int) -> SQLRowStore:
        """Return one generation of these tables, in this transaction."""
        physical = {
            table: self.store.generation_table(table, generation) for table in tables
        }
        return SQLRowStore(self.connection, physical, self.store.dialect)

    def update(self, **values: Any) -> None:
        """Change fields of the row; the transaction commits them with the rows."""
        table = self.store.state_table
        self.connection.execute(
            sa.update(table).where(table.c.name == self.state.name).values(**values)
        )

    def differences(self, table: str, generation: int, other: int) -> TableDifference:
        """Compare a table's rows in two generations, column for column."""
        first = self.store.generation_table(table, generation)
        second = self.store.generation_table(table, other)
        only_here = sa.except_(sa.select(first), sa.select(second)).subquery()
        only_there = sa.except_(sa.select(second), sa.select(first)).subquery()
        keys = [only_here.c[column.name] for column in first.primary_key.columns]

        def count(selectable: Any) -> int:
            statement = sa.select(sa.func.count()).select_from(selectable)
            return int(self.connection.execute(statement).scalar_one())

        sample = self.connection.execute(
            sa.select(*keys).order_by(*keys).limit(SAMPLE_KEYS)
        )
        return TableDifference(
            table,
            rows=count(first),
            other_rows=count(second),
            only_here=count(only_here),
            only_there=count(only_there),
            sample_keys=tuple(tuple(row) for row in sample),
        )


class SQLProjectionStore:
    """The projections' tables and bookkeeping in one SQL database."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self.dialect = engine.dialect.name
        self.metadata = sa.MetaData()
        self.state_table = projection_state_table(self.metadata)
        self._generations: dict[tuple[str, int], sa.Table] = {}

    # Bookkeeping -----------------------------------------------------------------

    def states(self) -> dict[str, ProjectionState]:
        """Return every projection's bookkeeping row, by name."""
        with self.engine.connect() as connection:
            rows = connection.execute(sa.select(self.state_table)).mappings().all()
        return {row["name"]: ProjectionState(**row) for row in rows}

    @contextlib.contextmanager
    def locked(self, name: str) -> Iterator[SQLLockedProjection]:
        """Open a transaction holding the projection's row locked; commit at the end."""
        table = self.state_table
        with self.engine.begin() as connection:
            # NOTE: a write first: it locks the row on MariaDB and takes the write
            # lock on SQLite before any read, so a later write cannot find the
            # snapshot stale.
            touched = connection.execute(
                sa.update(table).where(table.c.name == name).values(name=name)
            )
            if touched.rowcount != 1:
                raise LookupError(
                    f"projection {name!r} has no row in {PROJECTION_STATE}; "
                    "run `tutorlane migrate`"
                )
            row = (
                connection.execute(sa.select(table).where(table.c.name == name))
                .mappings()
                .one()
            )
            yield SQLLockedProjection(self, connection, ProjectionState(**row))

    # Tables ----------------------------------------------------------------------

    def generation_table(self, table: str, generation: int) -> sa.Table:
        """Return (and remember) the definition of one generation of a table."""
        key = (table, generation)
        if key not in self._generations:
            define = TABLE_DEFINITIONS.get(table)
            if define is None:
                raise UnknownTable(f"no definition of projection table {table!r}")
            name = generation_table_name(table, generation)
            self._generations[key] = define(self.metadata, name)
        return self._generations[key]

    def create_generation(self, tables: Sequence[str], generation: int) -> None:
        """Create empty tables for a generation, dropping any left from before."""
        for table in tables:
            physical = self.generation_table(table, generation)
            with self.engine.begin() as connection:
                physical.drop(connection, checkfirst=True)
                physical.create(connection)

    def drop_generation(self, tables: Sequence[str], generation: int) -> None:
        """Drop a generation's tables, if they exist."""
        for table in tables:
            physical = self.generation_table(table, generation)
            with self.engine.begin() as connection:
                physical.drop(connection, checkfirst=True)

    def drop_other_generations(self, tables: Sequence[str], keep: set[int]) -> None:
        """Drop every generation of these tables but those in `keep`."""
        self._drop_generations(tables, lambda generation: generation not in keep)

    def drop_older_generations(self, tables: Sequence[str], live: int) -> None:
        """Drop the generations of these tables older than the live one."""
        self._drop_generations(tables, lambda generation: generation < live)

    def _drop_generations(
        self, tables: Sequence[str], doomed: Callable[[int], bool]
    ) -> None:
        existing = sa.inspect(self.engine).get_table_names()
        for table in tables:
            pattern = re.compile(rf"{re.escape(table)}_g(\d+)")
            for name in existing:
                match = pattern.fullmatch(name)
                if match and doomed(int(match.group(1))):
                    self.drop_generation([table], int(match.group(1)))

    def publish(self, tables: Sequence[str], generation: int) -> None:
        """Point each table's view at this generation."""
        for table in tables:
            physical = generation_table_name(table, generation)
            view = self.quote(table)
            select = f"SELECT * FROM {self.quote(physical)}"  # noqa: S608 - our names
            with self.engine.begin() as connection:
                if self.dialect == "sqlite":
                    connection.exec_driver_sql(f"DROP VIEW IF EXISTS {view}")
                    connection.exec_driver_sql(f"CREATE VIEW {view} AS {select}")
                else:
                    connection.exec_driver_sql(
                        f"CREATE OR REPLACE VIEW {view} AS {select}"
                    )

    def count_rows(self, table: str) -> int:
        """Return how many rows the live view of a table shows."""
        with self.engine.connect() as connection:
            statement = f"SELECT COUNT(*) FROM {self.quote(table)}"  # noqa: S608
            return int(connection.exec_driver_sql(statement).scalar_one())

    def quote(self, name: str) -> str:
        """Return a table or view name quoted for this database."""
        return self.engine.dialect.identifier_preparer.quote(name)

    def close(self) -> None:
        """Close the pooled connections."""
        self.engine.dispose()
