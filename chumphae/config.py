"""Settings from the environment or `.env`, prefix CHUMPHAE_ (pydantic-settings)."""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="CHUMPHAE_", env_file=".env", extra="ignore")

    data_dir: Path = Field(default=Path("data"), description="Where the SQLite file and exports live.")
    database_url: str | None = Field(
        default=None, description="SQLAlchemy URL; default: sqlite file in data_dir."
    )
    host: str = "127.0.0.1"
    port: int = 8080
    log_level: str = "INFO"
    timezone: str = "Asia/Bangkok"
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
