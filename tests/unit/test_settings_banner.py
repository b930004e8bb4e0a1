"""The start banner says where each service is, and never a password."""

from __future__ import annotations

from tutorlane.entrypoints.settings import Settings


def test_the_banner_names_the_bus_and_hides_credentials() -> None:
    settings = Settings(
        redis_url="redis://:sesame@redis.internal:6379/0",
        amqp_url="amqp://guest:sesame@rabbit.internal:5672/",
        bus_name="tutor-blue",
    )

    where = settings.describe()

    assert where["bus"] == "amqp://***@rabbit.internal:5672/ (tutor-blue.*)"
    assert where["sessions"] == "redis://***@redis.internal:6379/0"
    assert "sesame" not in " ".join(where.values())


def test_the_embedded_default_says_so() -> None:
    where = Settings(redis_url=None, amqp_url=None).describe()

    assert where["bus"] == "in-process queues"
    assert where["sessions"] == "fakeredis (in process)"
