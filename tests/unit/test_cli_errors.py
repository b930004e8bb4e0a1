"""A misconfigured command ends in one line that names what to fix, not a traceback.

Each runs `python -m tutorlane` as a user would, against ports on 127.0.0.1 that
nobody listens on, or that accept a connection and never answer: no service needed.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import click
import pytest

from tutorlane.entrypoints.cli import load_settings
from tutorlane.tests.processes import free_port

PASSWORD = "s3cret-Pw-4711"
# Long enough for the slowest start of the interpreter; nothing may wait for more.
TIMEOUT_SECONDS = 60


def tutorlane_env(var: Path, **settings: str) -> dict[str, str]:
    """Return this environment without tutorlane's settings, with `settings`."""
    env = {
        name: value
        for name, value in os.environ.items()
        if not name.startswith("TUTORLANE_")
    }
    return {**env, "TUTORLANE_VAR": str(var), **settings}


def tutorlane(
    var: Path, args: list[str], **settings: str
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "tutorlane", *args],
        env=tutorlane_env(var, **settings),
        capture_output=True,
        text=True,
        timeout=TIMEOUT_SECONDS,
        check=False,
    )


def assert_one_line_error(ran: subprocess.CompletedProcess[str], *names: str) -> None:
    """Assert a failed exit with one `Error:` line naming `names`, no traceback."""
    errors = [line for line in ran.stderr.splitlines() if line.startswith("Error:")]
    assert ran.returncode != 0, ran.stderr
    assert "Traceback" not in ran.stderr, ran.stderr
    assert len(errors) == 1, ran.stderr
    for name in names:
        assert name in errors[0], errors[0]
    assert PASSWORD not in ran.stdout + ran.stderr


@pytest.fixture
def closed_url() -> Iterator[str]:
    """A host:port on 127.0.0.1 that refuses connections."""
    yield f"127.0.0.1:{free_port()}"


@pytest.fixture
def silent_url() -> Iterator[tuple[str, socket.socket]]:
    """A host:port that accepts connections and never answers, and its socket."""
    with socket.socket() as listening:
        listening.bind(("127.0.0.1", 0))
        listening.listen()
        listening.settimeout(TIMEOUT_SECONDS)
        yield f"127.0.0.1:{listening.getsockname()[1]}", listening


def test_the_relay_names_redis_when_it_refuses_connections(
    tmp_path: Path, closed_url: str
) -> None:
    ran = tutorlane(
        tmp_path,
        ["relay"],
        TUTORLANE_REDIS_URL=f"redis://:{PASSWORD}@{closed_url}/13",
        TUTORLANE_AMQP_URL=f"amqp://guest:{PASSWORD}@{closed_url}/",
    )

    assert_one_line_error(ran, "Redis", "TUTORLANE_REDIS_URL")


@pytest.mark.parametrize(
    ("command", "settings", "variable"),
    [
        (["relay"], {"TUTORLANE_REDIS_URL": "notaurl"}, "TUTORLANE_REDIS_URL"),
        (["relay"], {"TUTORLANE_REDIS_URL": "redis://h:abc/1"}, "TUTORLANE_REDIS_URL"),
        (["worker"], {"TUTORLANE_AMQP_URL": "notaurl"}, "TUTORLANE_AMQP_URL"),
        (["migrate"], {"TUTORLANE_DATABASE_URL": "bogus://x"}, "DATABASE_URL"),
        (["projections", "status"], {"TUTORLANE_DATABASE_URL": "notaurl"}, "DATA"),
        (["serve", "--port", "0"], {"TUTORLANE_PSEUDONYM_KEY": PASSWORD[:9]}, "KEY"),
    ],
)
def test_a_bad_setting_is_named_before_anything_connects(
    tmp_path: Path, command: list[str], settings: dict[str, str], variable: str
) -> None:
    # A relay needs both URLs; the one not under test is never reached.
    settings = {
        "TUTORLANE_REDIS_URL": "redis://127.0.0.1:1/13",
        "TUTORLANE_AMQP_URL": "amqp://guest:guest@127.0.0.1:1/",
        **settings,
    }
    # NOTE: one that connected and retried would run into the subprocess timeout.
    ran = tutorlane(tmp_path, command, **settings)

    assert_one_line_error(ran, "bad configuration", variable)


def test_the_worker_names_rabbitmq_when_it_refuses_connections(
    tmp_path: Path, closed_url: str
) -> None:
    ran = tutorlane(
        tmp_path,
        ["worker"],
        TUTORLANE_AMQP_URL=f"amqp://guest:{PASSWORD}@{closed_url}/",
    )

    assert_one_line_error(ran, "RabbitMQ", "TUTORLANE_AMQP_URL")


def test_the_worker_names_the_database_when_it_refuses_connections(
    tmp_path: Path, closed_url: str
) -> None:
    pytest.importorskip("MySQLdb", reason="the MariaDB driver is not installed")
    ran = tutorlane(
        tmp_path,
        ["worker"],
        TUTORLANE_AMQP_URL=f"amqp://guest:guest@{closed_url}/",
        TUTORLANE_DATABASE_URL=f"mysql+mysqldb://root:{PASSWORD}@{closed_url}/x",
    )

    assert_one_line_error(ran, "database", "TUTORLANE_DATABASE_URL")


def test_dead_letters_names_rabbitmq_when_it_refuses_connections(
    tmp_path: Path, closed_url: str
) -> None:
    ran = tutorlane(
        tmp_path,
        ["dead-letters", "show"],
        TUTORLANE_AMQP_URL=f"amqp://guest:{PASSWORD}@{closed_url}/",
    )

    assert_one_line_error(ran, "RabbitMQ", "TUTORLANE_AMQP_URL")


def test_serve_names_a_pseudonym_key_file_that_holds_no_key(tmp_path: Path) -> None:
    (tmp_path / "pseudonym.key").write_text(f"{PASSWORD}\n")

    ran = tutorlane(tmp_path, ["serve", "--port", "0"])

    assert_one_line_error(ran, "pseudonym.key", "TUTORLANE_PSEUDONYM_KEY")


def test_serve_names_a_var_folder_it_cannot_write(tmp_path: Path) -> None:
    (tmp_path / "file").write_text("")
    var = Path("/proc/nope")  # as a tester found it
    if not Path("/proc/self").exists():
        var = tmp_path / "file" / "var"

    ran = tutorlane(var, ["serve", "--port", "0"])

    assert_one_line_error(ran, str(var), "TUTORLANE_VAR")


@pytest.mark.skipif(not hasattr(signal, "SIGTERM"), reason="POSIX signals")
@pytest.mark.parametrize("command", ["worker", "relay"])
def test_sigterm_stops_a_process_still_connecting(
    tmp_path: Path,
    silent_url: tuple[str, socket.socket],
    closed_url: str,
    command: str,
) -> None:
    # The relay connects to Redis first, the worker to RabbitMQ: each to the
    # service that never answers.
    address, listening = silent_url
    env = tutorlane_env(
        tmp_path,
        TUTORLANE_REDIS_URL=f"redis://{address if command == 'relay' else closed_url}",
        TUTORLANE_AMQP_URL=f"amqp://guest:guest@{address}/",
    )
    process = subprocess.Popen(
        [sys.executable, "-m", "tutorlane", command],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        connection, _ = listening.accept()
        with connection:
            time.sleep(0.5)  # well into its start-up
            process.send_signal(signal.SIGTERM)
            # NOTE: before, the signal was ignored until start-up ended, which with
            # a server that never answers was never: this timeout would fail it.
            _, stderr = process.communicate(timeout=TIMEOUT_SECONDS)
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()

    assert process.returncode == 0, stderr
    assert "Traceback" not in stderr, stderr


@pytest.mark.parametrize(
    ("variable", "url"),
    [
        ("TUTORLANE_REDIS_URL", "redis://:pw@localhost:6379/0"),
        ("TUTORLANE_REDIS_URL", "rediss://localhost"),
        ("TUTORLANE_REDIS_URL", "unix:///run/redis.sock"),
        ("TUTORLANE_AMQP_URL", "amqp://guest:guest@localhost:5672/"),
        ("TUTORLANE_AMQP_URL", "amqps://rabbit.internal/vhost"),
        ("TUTORLANE_DATABASE_URL", "mysql+mysqldb://root@127.0.0.1:3306/x"),
        ("TUTORLANE_DATABASE_URL", "sqlite:///var/events.db"),
    ],
)
def test_good_urls_are_taken(
    monkeypatch: pytest.MonkeyPatch, variable: str, url: str
) -> None:
    monkeypatch.setenv(variable, url)

    settings = load_settings()

    assert url in (settings.redis_url, settings.amqp_url, settings.database_url)


@pytest.mark.parametrize(
    ("variable", "url"),
    [
        ("TUTORLANE_REDIS_URL", "localhost:6379"),
        ("TUTORLANE_REDIS_URL", f"http://u:{PASSWORD}@localhost"),
        ("TUTORLANE_AMQP_URL", "notaurl"),
        ("TUTORLANE_AMQP_URL", f"amqp://guest:{PASSWORD}@:5672/"),
        ("TUTORLANE_AMQP_URL", "amqp://localhost:port/"),
        ("TUTORLANE_DATABASE_URL", "notaurl"),
        ("TUTORLANE_DATABASE_URL", f"postgresql://u:{PASSWORD}@localhost/x"),
        ("TUTORLANE_DATABASE_URL", "sqlite://"),
    ],
)
def test_bad_urls_are_named_without_their_password(
    monkeypatch: pytest.MonkeyPatch, variable: str, url: str
) -> None:
    monkeypatch.setenv(variable, url)

    with pytest.raises(click.ClickException) as raised:
        load_settings()

    assert raised.value.message.startswith(f"bad configuration: {variable}: ")
    assert PASSWORD not in raised.value.message


def test_a_bad_number_is_named_by_its_variable(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TUTORLANE_SHARDS", "0")

    with pytest.raises(click.ClickException) as raised:
        load_settings()

    assert raised.value.message.startswith("bad configuration: TUTORLANE_SHARDS: ")
