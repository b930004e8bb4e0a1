"""Configuration from environment variables; nothing needs to be set to try it."""

from __future__ import annotations

from pathlib import Path
from urllib.parse import urlsplit

from pydantic import AliasChoices, Field, SecretStr, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from tutorlane.adapters.flow_files import SHIPPED_FLOWS


class Settings(BaseSettings):
    """Where tutorlane finds its services; every service has an embedded default."""

    model_config = SettingsConfigDict(
        env_prefix="TUTORLANE_",
        env_ignore_empty=True,
        extra="ignore",
        populate_by_name=True,
    )

    redis_url: str | None = Field(None, description="sessions, dedupe, outbox")
    redis_cluster: bool = Field(False, description="TUTORLANE_REDIS_URL is a cluster")
    amqp_url: str | None = Field(None, description="RabbitMQ")
    database_url: str | None = Field(None, description="event store and read models")
    webhook_secret: SecretStr | None = None
    swiftchat_base_url: str | None = None
    swiftchat_bot_id: str | None = None
    swiftchat_api_key: SecretStr | None = None
    pseudonym_key: SecretStr | None = None
    flows: Path = SHIPPED_FLOWS
    var_dir: Path = Field(Path("var"), validation_alias="TUTORLANE_VAR")
    shards: int = Field(16, ge=1, le=1024)
    queues: int = Field(8, ge=1, le=256, description="RabbitMQ shard queues")
    quorum_queues: bool = Field(False, description="declare quorum queues")
    bus_name: str = Field(
        "tutorlane",
        pattern=r"^[A-Za-z0-9_.-]{1,64}$",
        description="prefix of this deployment's exchanges and queues",
    )
    inactivity_minutes: float = Field(30.0, gt=0)
    swiftchat_rate_per_second: float = Field(1000.0, gt=0)
    anthropic_api_key: SecretStr | None = Field(
        None, validation_alias=AliasChoices("ANTHROPIC_API_KEY")
    )
    analyst_model: str | None = None
    anthropic_base_url: str | None = Field(
        None, description="Messages API base URL (the SDK's default when unset)"
    )
    analyst_timeout_seconds: float = Field(20.0, gt=0, description="per attempt")
    analyst_max_retries: int = Field(2, ge=0, le=10)
    analyst_calls_per_student_per_day: int = Field(3, ge=0)
    analyst_calls_per_minute: int = Field(30, ge=0, description="all students")
    analyst_debounce_minutes: float = Field(15.0, ge=0)
    analyst_stand_in: bool = Field(
        True, description="with no API key: the rule-based stand-in, else off"
    )

    # NOTE: URLs are checked here, before anything connects: a client given a URL
    # it cannot use fails later and less clearly (aio-pika retries it forever).
    # The messages never repeat the value, which may hold a password.
    @field_validator("redis_url")
    @classmethod
    def _redis_url_is_a_redis_url(cls, url: str | None) -> str | None:
        if url is None:
            return url
        parts = urlsplit(url)
        try:
            parts.port  # noqa: B018 - raises for a port that is not a number
        except ValueError:
            raise ValueError("has a port that is not a number") from None
        if parts.scheme not in ("redis", "rediss", "unix"):
            raise ValueError(
                "must start with redis://, rediss:// or unix://, as in "
                "redis://localhost:6379/0"
            )
        return url

    @field_validator("amqp_url")
    @classmethod
    def _amqp_url_is_an_amqp_url(cls, url: str | None) -> str | None:
        if url is None:
            return url
        parts = urlsplit(url)
        try:
            has_host = bool(parts.hostname) and parts.port != 0
        except ValueError:  # a port that is not a number
            has_host = False
        if parts.scheme not in ("amqp", "amqps") or not has_host:
            raise ValueError(
                "must start with amqp:// or amqps:// and name a host, as in "
                "amqp://guest:guest@localhost:5672/"
            )
        return url

    @field_validator("database_url")
    @classmethod
    def _database_url_is_an_event_store(cls, url: str | None) -> str | None:
        if url is None:
            return url
        from sqlalchemy.engine import make_url
        from sqlalchemy.exc import ArgumentError

        try:
            parsed = make_url(url)
        except ArgumentError:
            raise ValueError(
                "is not a database URL; give one as in "
                "mysql+mysqldb://user:password@host:3306/tutorlane or "
                "sqlite:///var/events.db"
            ) from None
        backend = parsed.get_backend_name()
        if backend not in ("mysql", "mariadb", "sqlite"):
            raise ValueError(
                f"the event store runs on MariaDB (mysql+mysqldb://...) or SQLite "
                f"(sqlite:///file.db), not {backend!r}"
            )
        if backend == "sqlite" and parsed.database in (None, "", ":memory:"):
            raise ValueError(
                "an in-memory SQLite database is empty for each connection; give a "
                "file, as in sqlite:///var/events.db"
            )
        return url

    @field_validator("pseudonym_key")
    @classmethod
    def _pseudonym_key_is_long_enough(cls, key: SecretStr | None) -> SecretStr | None:
        if key is not None and len(key.get_secret_value().encode()) < 16:
            raise ValueError("must be at least 16 bytes long (32 random bytes is best)")
        return key

    @model_validator(mode="after")
    def _swiftchat_needs_credentials(self) -> Settings:
        if self.swiftchat_base_url and not self.swiftchat_bot_id:
            raise ValueError(
                "TUTORLANE_SWIFTCHAT_BASE_URL is set, so TUTORLANE_SWIFTCHAT_BOT_ID "
                "(and TUTORLANE_SWIFTCHAT_API_KEY) must be set too"
            )
        return self

    @property
    def event_store_url(self) -> str:
        """Return the event store's URL: the configured database or a SQLite file."""
        if self.database_url:
            return self.database_url
        return f"sqlite:///{(self.var_dir / 'events.db').resolve()}"

    @property
    def is_embedded(self) -> bool:
        """Tell whether sessions live in this process (fakeredis)."""
        return self.redis_url is None

    def describe(self) -> dict[str, str]:
        """Return where each service is, without credentials, for the start banner."""
        return {
            "sessions": hide_password(self.redis_url) or "fakeredis (in process)",
            "replies": self.swiftchat_base_url
            or "local sink (read by `tutorlane chat`)",
            "bus": (
                f"{hide_password(self.amqp_url)} ({self.bus_name}.*)"
                if self.amqp_url
                else "in-process queues"
            ),
            "events": hide_password(self.event_store_url) or "",
            "courses": str(self.flows),
        }


def variable_of(field: str) -> str:
    """Return the environment variable that sets a field of `Settings`."""
    info = Settings.model_fields.get(field)
    if info is None:  # an alias already, as pydantic names those fields' errors
        return field
    alias = info.validation_alias
    if isinstance(alias, str):
        return alias
    if isinstance(alias, AliasChoices) and isinstance(alias.choices[0], str):
        return alias.choices[0]
    return f"{Settings.model_config.get('env_prefix', '')}{field.upper()}"


def hide_password(url: str | None) -> str | None:
    """Return `url` with its credentials replaced by ***, to be shown or logged."""
    if url is None or "@" not in url:
        return url
    scheme, _, rest = url.partition("://")
    return f"{scheme}://***@{rest.rpartition('@')[2]}"
