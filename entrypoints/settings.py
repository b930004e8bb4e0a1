"""Configuration from environment variables; nothing needs to be set to try it."""

from __future__ import annotations

from pathlib import Path

from pydantic import AliasChoices, Field, SecretStr, model_validator
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
            "sessions": _hide_password(self.redis_url) or "fakeredis (in process)",
            "replies": self.swiftchat_base_url
            or "local sink (read by `tutorlane chat`)",
            "bus": (
                f"{_hide_password(self.amqp_url)} ({self.bus_name}.*)"
                if self.amqp_url
                else "in-process queues"
            ),
            "events": _hide_password(self.event_store_url) or "",
            "courses": str(self.flows),
        }


def _hide_password(url: str | None) -> str | None:
    if url is None or "@" not in url:
        return url
    scheme, _, rest = url.partition("://")
    return f"{scheme}://***@{rest.rpartition('@')[2]}"
