"""Settings from the environment or `.env`, prefix CHUMPHAE_ (pydantic-settings)."""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path
from typing import Literal

from pydantic import Field, SecretStr, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from chumphae.logs import known_level


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="CHUMPHAE_", env_file=".env", extra="ignore")

    data_dir: Path = Field(default=Path("data"), description="Where the SQLite file and exports live.")
    database_url: str | None = Field(
        default=None, description="SQLAlchemy URL; default: sqlite file in data_dir."
    )
    host: str = "127.0.0.1"
    port: int = 8080
    log_level: str = "INFO"

    @field_validator("log_level")
    @classmethod
    def _known_level(cls, value: str) -> str:
        return known_level(value)

    redis_url: str | None = Field(default=None, description="Fan-out between backend processes.")
    export_dir: Path | None = Field(default=None, description="Nightly daily-summary files.")
    hospcode: str = Field(default="10707", description="HOSPCODE of the district hospital.")
    map_path: Path | None = Field(default=None, description="GeoPackage loaded when the map is empty.")
    retention_positions_days: int = Field(default=400, ge=0, description="Positions kept (0: for ever).")
    retention_messages_days: int = Field(default=14, ge=0, description="Gateway message ids kept for dedupe.")
    retention_feed_days: int = Field(default=30, ge=0, description="Feed rows kept (older cursors: snapshot).")
    retention_audit_days: int = Field(default=0, ge=0, description="Audit rows kept (0: for ever).")
    auth_max_failures: int = Field(default=30, ge=0, description="Failed authentications per client address "
                                   "within auth_window_s before 429 (0: no limit).")
    auth_window_s: float = Field(default=60.0, gt=0, description="The window of the failed-authentication limit.")
    public_url: str = Field(default="http://127.0.0.1:8080", description="Base of the page link in messages.")
    radio_dead_after_s: float = Field(default=180.0, gt=0, description="A gateway whose heartbeats say for this "
                                      "long that its radio cannot scan gets a gateway_radio alert.")

    # Delivery (chumphae/deliver, docs/delivery.md). Secrets are never logged.
    line_channel_access_token: SecretStr | None = Field(default=None, description="LINE Messaging API token.")
    line_channel_secret: SecretStr | None = Field(default=None, description="Verifies X-Line-Signature.")
    line_api_url: str = Field(default="https://api.line.me", description="LINE Messaging API base URL.")
    sms_url: str | None = Field(default=None, description="The SMS gateway's send URL (unset: no SMS).")
    sms_username: str | None = None
    sms_password: SecretStr | None = None
    sms_sender: str = "Chumphae"
    sms_format: Literal["form", "json"] = "form"
    sms_field_to: str = "msisdn"
    sms_field_message: str = "message"
    sms_field_sender: str = "sender"
    sms_id_field: str = Field(default="message_id", description="Key of the message id in the JSON answer.")
    sms_idempotency_header: str = Field(default="Idempotency-Key", description="Empty: send none.")
    webhook_secret: SecretStr | None = Field(default=None, description="Signs X-Chumphae-Signature.")
    delivery_timeout_s: float = Field(default=10.0, gt=0, description="One provider request.")
    delivery_give_up_s: float = Field(default=600.0, gt=0, description="Retry a notice this long, then give up.")
    delivery_backoff_s: float = Field(default=2.0, gt=0, description="First retry delay; doubles, with jitter.")
    delivery_backoff_max_s: float = Field(default=120.0, gt=0)
    delivery_poll_s: float = Field(default=1.0, ge=0, description="Worker poll; 0: no worker in this process.")

    @property
    def effective_database_url(self) -> str:
        if self.database_url:
            return self.database_url
        return f"sqlite:///{(self.data_dir / 'chumphae.db').resolve()}"

    @property
    def effective_export_dir(self) -> Path:
        return self.export_dir or self.data_dir / "exports"


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    return Settings()


def reset_settings() -> None:
    """Forget cached settings (tests and CLI options that change the environment)."""
    get_settings.cache_clear()
