"""Shared fixtures: real services when reachable, and a loud failure under CI."""

from __future__ import annotations

import importlib.util
import itertools
import os
import socket
from collections.abc import Iterator
from urllib.parse import urlsplit

import pytest
import sqlalchemy as sa

REDIS_TEST_URL = os.environ.get("TUTORLANE_TEST_REDIS_URL", "redis://127.0.0.1:6379/15")


def reachable(url: str, default_port: int) -> bool:
    """Tell whether something listens at the host and port of `url`."""
    parts = urlsplit(url)
    try:
        with socket.create_connection(
            (parts.hostname or "127.0.0.1", parts.port or default_port), timeout=1.0
        ):
            return True
    except OSError:
        return False


def require_service(name: str, url: str, default_port: int) -> str:
    """Return `url` if the service answers; skip the test, or fail it under CI."""
    if reachable(url, default_port):
        return url
    message = f"{name} is not reachable at {url}"
    if os.environ.get("CI", "").lower() == "true":
        pytest.fail(f"{message}; CI=true requires every service", pytrace=False)
    pytest.skip(f"{message}; start it to run this test")


@pytest.fixture(scope="session")
def redis_url() -> str:
    """The URL of a real Redis for tests (database 15, flushed by the tests)."""
    return require_service("Redis", REDIS_TEST_URL, 6379)


MARIADB_TEST_URL = os.environ.get(
    "TUTORLANE_TEST_DATABASE_URL",
    "mysql+mysqldb://root@127.0.0.1:3306/test?charset=utf8mb4",
)


@pytest.fixture(scope="session")
def mariadb_url() -> str:
    """The URL of a real MariaDB for tests (its `test` database; tests own tables)."""
    url = require_service("MariaDB", MARIADB_TEST_URL, 3306)
    if importlib.util.find_spec("MySQLdb") is None:
        message = "the MariaDB driver is missing: pip install -e '.[test,mariadb]'"
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail(message, pytrace=False)
        pytest.skip(message)
    return url


_databases = itertools.count(1)


@pytest.fixture
def mariadb_database_url(mariadb_url: str) -> Iterator[str]:
    """The URL of a new, empty MariaDB database of this test, dropped after it."""
    # A database of its own: another test run on the same server cannot mix in.
    server = sa.create_engine(sa.make_url(mariadb_url).set(database=""))
    database = f"tutorlane_test_{os.getpid()}_{next(_databases)}"
    with server.begin() as connection:
        connection.execute(sa.text(f"DROP DATABASE IF EXISTS {database}"))
        connection.execute(sa.text(f"CREATE DATABASE {database}"))
    yield (
        sa.make_url(mariadb_url)
        .set(database=database)
        .render_as_string(hide_password=False)
    )
    with server.begin() as connection:
        connection.execute(sa.text(f"DROP DATABASE IF EXISTS {database}"))
    server.dispose()


RABBITMQ_TEST_URL = os.environ.get(
    "TUTORLANE_TEST_AMQP_URL", "amqp://guest:guest@127.0.0.1:5672/"
)


@pytest.fixture(scope="session")
def rabbitmq_url() -> str:
    """The URL of a real RabbitMQ for tests (they delete the tutorlane.* queues)."""
    return require_service("RabbitMQ", RABBITMQ_TEST_URL, 5672)
