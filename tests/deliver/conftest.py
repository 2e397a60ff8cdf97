"""Delivery tests: fake providers on loopback, a district with contact points, a clock the test moves."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy.engine import Engine
from sqlmodel import Session

from chumphae.alert import service
from chumphae.alert.service import AlertChange, AlertInput
from chumphae.config import Settings
from chumphae.deliver.linehook import set_contact
from chumphae.deliver.worker import WorkerOptions
from tests.conftest import World, build_world
from tests.deliver.fakes import (
    LINE_SECRET,
    LINE_TOKEN,
    SMS_PASSWORD,
    SMS_USER,
    WEBHOOK_SECRET,
    Fake,
    line_server,
    sms_server,
    webhook_server,
)

T0 = datetime(2025, 6, 1, 3, 0, tzinfo=UTC)  # 10:00 in Bangkok
LINE_IDS = {"caregiver": "U" + "c" * 32, "volunteer": "U" + "v" * 32, "care_manager": "U" + "m" * 32}
PHONE = "0812345678"


class Clock:
    def __init__(self, now: datetime) -> None:
        self.now = now

    def __call__(self) -> datetime:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += timedelta(seconds=seconds)


@dataclass
class Fakes:
    line: Fake
    sms: Fake
    webhook: Fake

    def settings(self, **kw: object) -> Settings:
        values: dict[str, object] = dict(
            line_api_url=self.line.url, line_channel_access_token=LINE_TOKEN, line_channel_secret=LINE_SECRET,
            sms_url=self.sms.url + "/send", sms_username=SMS_USER, sms_password=SMS_PASSWORD,
            webhook_secret=WEBHOOK_SECRET, delivery_timeout_s=0.5, public_url="https://chumphae.example")
        values.update(kw)
        return Settings(**values)  # type: ignore[arg-type]


@pytest.fixture
def fakes() -> Iterator[Fakes]:
    with line_server(Fake("line", hang_s=1.0)) as line, sms_server(Fake("sms", hang_s=1.0)) as sms, \
            webhook_server(Fake("webhook", hang_s=1.0)) as hook:
        yield Fakes(line, sms, hook)


def options(**kw: float) -> WorkerOptions:
    values: dict[str, float] = dict(poll_s=0.05, lease_s=5.0, give_up_s=120.0, backoff_s=1.0, backoff_max_s=8.0)
    values.update(kw)
    return WorkerOptions(**values)  # type: ignore[arg-type]


def contacts(world: World, *, webhook_url: str | None = None) -> None:
    """Caregiver on LINE and SMS, volunteer and care manager on LINE, the hospital on a webhook."""
    with Session(world.engine) as s:
        for who, line_id in LINE_IDS.items():
            set_contact(s, user_id=world.users[who], channel="line", address=line_id)
        set_contact(s, user_id=world.users["caregiver"], channel="sms", address=PHONE)
        if webhook_url:
            set_contact(s, user_id=world.users["hospital"], channel="webhook", address=webhook_url)
        s.commit()


def sos_input(patient_id: int, *, now: datetime = T0, type_: str = "sos") -> AlertInput:
    return AlertInput(type=type_, t=now, patient_id=patient_id, lat=16.5461, lon=102.1030, uncertainty_m=25.0,
                      parcel_code="03I017", description_th="120 ม. ทางทิศเหนือของวัดศรีชมภู",
                      description_en="120 m north of Wat Si Chomphu")


def raise_sos(engine: Engine, patient_id: int, *, now: datetime = T0, type_: str = "sos") -> AlertChange:
    with Session(engine, expire_on_commit=False) as s:
        change = service.raise_alert(s, alert=sos_input(patient_id, now=now, type_=type_), now=now)
        s.commit()
    return change


@pytest.fixture
def district(engine: Engine) -> World:
    world = build_world(engine)
    contacts(world)
    return world
