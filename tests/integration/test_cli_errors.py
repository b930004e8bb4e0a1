"""A command given the wrong RabbitMQ password says so in one line, without it."""

from __future__ import annotations

from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

from tutorlane.tests.unit.test_cli_errors import (
    PASSWORD,
    assert_one_line_error,
    tutorlane,
)


def test_dead_letters_says_rabbitmq_refused_the_login(
    tmp_path: Path, rabbitmq_url: str
) -> None:
    parts = urlsplit(rabbitmq_url)
    netloc = f"{parts.username or 'guest'}:{PASSWORD}@{parts.hostname}"
    if parts.port:
        netloc += f":{parts.port}"
    wrong = urlunsplit(parts._replace(netloc=netloc))

    ran = tutorlane(tmp_path, ["dead-letters", "show"], TUTORLANE_AMQP_URL=wrong)

    assert_one_line_error(ran, "RabbitMQ", "refused the login", "TUTORLANE_AMQP_URL")
