"""What every projection is: a named, versioned function from events to table rows.

A projection sees the event store's log in notification order, a batch at a time, and
turns each batch into row changes through a `RowStore`: the one port the runner hands
it, bound to one transaction and to one generation of the projection's tables (the live
one, or the shadow one a rebuild fills). Its rows depend on the events and on its
`fingerprint` only, so that the live tables always equal a rebuild from scratch.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Collection, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, ClassVar, Protocol

from tutorlane.domain.events import Event

Row = dict[str, Any]
Key = tuple[Any, ...]


@dataclass(frozen=True, slots=True)
class LoggedEvent:
    """A domain event at its place in the log of all events."""

    notification_id: int
    event: Event


class RowStore(Protocol):
    """A projection's tables inside the runner's transaction."""

    def fetch(self, table: str, keys: Collection[Key]) -> dict[Key, Row]:
        """Return the rows of `table` with these primary keys, by key."""
        ...

    def insert(self, table: str, rows: Sequence[Row]) -> None:
        """Add new rows; a row whose key exists already is an error."""
        ...

    def upsert(self, table: str, rows: Sequence[Row]) -> None:
        """Add the rows, replacing those whose primary key exists already."""
        ...


class Projection(ABC):
    """A read model kept from the event log.

    `name` is what operators type; `tables` are the logical names of its tables (each
    has a view of that name over the live generation); raising `version` says that
    the rows are computed differently and the live tables need a rebuild.
    """

    name: ClassVar[str]
    version: ClassVar[int]
    tables: ClassVar[tuple[str, ...]]

    def fingerprint(self) -> str:
        """Return what, besides the events, decides the rows ('' when nothing)."""
        return ""

    @abstractmethod
    def apply(self, events: Sequence[LoggedEvent], rows: RowStore) -> None:
        """Change the rows for a batch of events, given in notification order."""


def utc_time(timestamp: float) -> datetime:
    """Return a Unix time as a naive UTC datetime, as the tables keep times."""
    return datetime.fromtimestamp(timestamp, UTC).replace(tzinfo=None)


@dataclass(frozen=True, slots=True)
class ProjectionState:
    """A projection's row of `projection_state`."""

    name: str
    version: int
    generation: int
    position: int
    fingerprint: str
    rebuild_version: int | None = None
    rebuild_generation: int | None = None
    rebuild_position: int | None = None
    rebuild_fingerprint: str | None = None
    rebuild_owner: str | None = None
    rebuild_started_at: float | None = None
    rebuild_lease_until: float | None = None


@dataclass(frozen=True, slots=True)
class TableDifference:
    """How one table's rows differ between two generations."""

    table: str
    rows: int
    other_rows: int
    only_here: int  # rows of the first generation the other lacks or has changed
    only_there: int
    sample_keys: tuple[Key, ...] = ()  # primary keys of a few rows only here

    @property
    def equal(self) -> bool:
        """Tell whether both generations hold the same rows."""
        return self.only_here == 0 and self.only_there == 0
