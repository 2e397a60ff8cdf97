"""Gateway settings from the environment or `.env`, prefix GATEWAY_ (pydantic-settings)."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import Field, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from chumphae.logs import known_level


class GatewaySettings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="GATEWAY_", env_file=".env", extra="ignore")

    backend_url: str = Field(
        default="http://127.0.0.1:8080", description="Backend base URL; ws(s) is derived from it."
    )
    token: str = Field(default="", description="This gateway's bearer token (never logged).")
    site_id: str = Field(default="", description="Informative; the backend knows the site by token.")
    receiver_id: str = Field(default="local", description="Receiver id of this machine's adapter.")
    adapter: str | None = Field(default=None, description='BlueZ adapter name, e.g. "hci0"; unset: the default adapter.')
    scan_mode: Literal["active", "passive"] = "active"
    watchdog_s: float = Field(default=90.0, gt=0, description="Restart a scanner silent for this long.")
    scan_queue_size: int = Field(default=4096, ge=1, description="Adverts buffered between radio and pipeline.")
    queue_path: Path = Field(default=Path("data/gateway-outbox.sqlite3"), description="Durable outbox.")
    config_cache: Path = Field(default=Path("data/gateway-config.json"), description="Last site config.")
    # Each of these above 0 (docs18): GATEWAY_HEARTBEAT_S=0 sent heartbeats back to back, one backend write each
    # (355 in 10 s against 10), where README promises that a bad setting stops the command with one line.
    heartbeat_s: float = Field(default=15.0, gt=0)
    ack_timeout_s: float = Field(default=30.0, gt=0)
    max_in_flight: int = Field(default=256, ge=1)
    alert_url: str = Field(
        default="", description='The alert socket beside the main one (docs/gateway-protocol.md §3.3): "" = the one the '
        'backend names in its welcome (if any); "off" = none; or a ws(s):// URL. Alerts still go on the main socket too.',
    )
    backoff_min_s: float = Field(default=0.5, gt=0)
    backoff_max_s: float = Field(default=30.0, gt=0, description="Reconnect / task-restart backoff cap, seconds.")
    memory_queue_max: int = Field(
        default=10_000, ge=100,
        description="While the outbox disk is full: positions/readings held in memory at most (alerts always kept).",
    )
    poison_after: int = Field(
        default=3, ge=1,
        description="Sessions closed abnormally (1011 …) with the same message at the head and no ack "
        "before that message is moved behind the others.",
    )
    config_poll_s: float = Field(default=600.0, ge=0, description="Refetch the site config (If-None-Match) this often; 0 = never.")
    replay_margin: int = Field(
        default=5, ge=0, description="After a restart, band counters up to this far above the stored one are refused too."
    )
    position_every_s: float = Field(default=60.0, gt=0, description="Send a position at least this often per band.")
    locate_window_s: float = Field(default=15.0, gt=0, description="RSSI history per receiver, seconds.")
    coverage_timeout_s: float = Field(default=60.0, gt=0, description="Unheard this long = out of coverage.")
    gatt_enabled: bool = Field(
        default=True, description="Read a band's raw accelerometer stream over GATT when its advert shows "
        "its fall flag or a high-motion second, and judge it with the fall model.",
    )
    gatt_max_connections: int = Field(default=2, ge=1, description="GATT raw-stream connections at once.")
    gatt_trigger_g: float = Field(
        default=2.0, gt=0, description="An advert whose second peaked at this |a| (g) starts a raw-stream session.",
    )
    gatt_session_s: float = Field(default=30.0, gt=0, description="A raw-stream session ends after this long at most.")
    gatt_connect_timeout_s: float = Field(default=10.0, gt=0, description="Give up connecting to a band after this long.")
    fall_dedupe_s: float = Field(
        default=60.0, ge=0, description="A fall alert this close (s) to one already sent for the band is the same fall.",
    )
    log_level: str = "INFO"

    @field_validator("log_level")
    @classmethod
    def _known_level(cls, value: str) -> str:
        return known_level(value)


    @property
    def ws_url(self) -> str:
        base = self.backend_url.rstrip("/")
        if base.startswith("https://"):
            base = "wss://" + base[len("https://") :]
        elif base.startswith("http://"):
            base = "ws://" + base[len("http://") :]
        return base + "/api/v1/gateway/ws"

    @property
    def config_url(self) -> str:
        return self.backend_url.rstrip("/") + "/api/v1/gateway/config"
