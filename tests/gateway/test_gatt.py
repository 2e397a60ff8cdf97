"""The live raw-stream path through the gateway pipeline: real wrist recordings played as a band
(real band frames for the adverts, real raw-stream notifications over a GATT client with
BleakClient's protocol), the fall model on the stream, one alert per fall.

The GATT client here is injected (the same small protocol as bleak's `BleakClient`); the
bleak-over-D-Bus path is in test_gatt_dbus.py.
"""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest

from gateway.gatt import SOURCE_RAW, SOURCE_SUMMARY, FallGate, RawFall, Verdict
from gateway.simulate.gattrig import ADDR, DATA, T0, Rig, recorded

needs_data = pytest.mark.skipif(not (DATA / "umafall" / "labels.csv").is_file(),
                                reason=f"real fall recordings not found at {DATA} (set CHUMPHAE_FALLS_DATA)")


@needs_data
@pytest.mark.parametrize("set_, name, hz", [
    ("umafall", "Subject_02_Fall_forwardFall_1", 20),
    ("umafall", "Subject_02_Fall_lateralFall_1", 20),
    ("fallalld", "S02_A101_T01", 50),
])
async def test_a_real_fall_streamed_over_gatt_raises_exactly_one_alert(tmp_path: Path, set_: str, name: str,
                                                                       hz: int) -> None:
    rig = Rig(recorded(set_, name, hz), tmp_path)
    await rig.play()
    (alert,) = rig.alerts()
    assert alert["type"] == "fall" and alert["patient_id"] == 1 and alert["address"] == ADDR
    assert alert["details"]["source"] == SOURCE_RAW and 0.5 <= alert["confidence"] <= 1.0
    assert alert["details"]["model_confidence"] == alert["confidence"]
    assert 0 < alert["details"]["decided_after_s"] <= 10.0
    st = rig.raw.streams.stats
    assert st.sessions >= 1 and st.falls == 1 and st.malformed == 0 and st.lost == 0
    assert rig.band.connects == st.sessions and rig.band.subscribers == []  # disconnected after the verdict


@needs_data
@pytest.mark.parametrize("set_, name, hz, summary_fooled", [
    ("umafall", "Subject_02_ADL_Aplausing_3", 20, False),
    # the summary rule called these two falls; the summary model (falls-11) does not
    ("fallalld", "S02_A004_T04", 50, False),
    ("umafall", "Subject_02_ADL_HandsUp_2", 20, False),
    # the summary model calls these falls; the model on the stream does not, and overrules it
    ("umafall", "Subject_02_ADL_Hopping_1", 20, True),
    ("fallalld", "S02_A003_T01", 50, True),
])
async def test_daily_activity_streamed_over_gatt_raises_nothing(tmp_path: Path, set_: str, name: str, hz: int,
                                                                summary_fooled: bool) -> None:
    rig = Rig(recorded(set_, name, hz), tmp_path)
    await rig.play()
    assert rig.alerts() == []
    assert rig.raw.streams.stats.sessions >= 1  # it peaked: the band was streamed, and the model said no
    assert rig.raw.gate.overruled == int(summary_fooled)


@needs_data
async def test_gatt_down_the_summary_rule_still_speaks_and_nothing_crashes(tmp_path: Path) -> None:
    band = recorded("umafall", "Subject_02_Fall_forwardFall_1", 20)
    band.fail_connect = OSError("org.bluez.Error.Failed: le-connection-abort-by-local")
    rig = Rig(band, tmp_path)
    await rig.play()
    st = rig.raw.streams.stats
    assert st.connect_failures >= 1 and st.falls == 0
    alerts = rig.alerts()
    assert len(alerts) <= 1 and all(a["details"]["source"] == SOURCE_SUMMARY for a in alerts)
    assert rig.raw.health()["gatt_connect_failures"] == st.connect_failures


@needs_data
async def test_lost_notifications_do_not_crash_and_a_gap_never_overrules(tmp_path: Path) -> None:
    band = recorded("umafall", "Subject_02_Fall_forwardFall_1", 20)
    band.drop_every = 3
    rig = Rig(band, tmp_path)
    await rig.play()
    assert rig.raw.streams.stats.lost > 0
    alerts = rig.alerts()
    assert len(alerts) <= 1
    assert rig.raw.gate.overruled == 0  # a stream with holes is not a "no fall"


def det(t: float, source: str = "summary rule", conf: float = 0.6) -> Any:
    from chumphae.values import AlertType, Detection

    return Detection(AlertType.FALL, T0 + timedelta(seconds=t), ADDR, 1, conf, details={"band_flag": True})


def verdict(trigger: float, falls: tuple[float, ...] = (), covered: bool = True, span: tuple[float, float] = (0, 30),
            reason: str = "decided") -> Verdict:
    from chumphae.detect.fall_detector import ModelFall

    return Verdict(ADDR, T0 + timedelta(seconds=trigger),
                   tuple(RawFall(T0 + timedelta(seconds=f), ModelFall(f, f + 8, 0.9, {})) for f in falls),
                   covered, reason, (T0 + timedelta(seconds=span[0]), T0 + timedelta(seconds=span[1])))


def test_the_gate_holds_the_summary_rule_for_the_model_and_sends_one_alert_per_fall() -> None:
    g = FallGate(dedupe_s=60)
    assert g.summary(det(10), streaming=True) == []  # held
    (d,) = g.verdict(verdict(10, falls=(9.6,)), 1)
    assert d.details["source"] == SOURCE_RAW and d.confidence == 0.9 and d.details["summary_rule_confidence"] == 0.6
    assert d.details["band_flag"] is True and g.held == {}
    assert g.summary(det(12), streaming=False) == [] and g.duplicates == 1  # the same fall, later: dropped
    assert g.verdict(verdict(11, falls=(11.0,)), 1) == [] and g.duplicates == 2
    assert [x.details["source"] for x in g.summary(det(80), streaming=False)] == [SOURCE_SUMMARY]  # a new fall


def test_no_fall_from_a_whole_stream_overrules_a_failed_stream_does_not() -> None:
    g = FallGate()
    assert g.summary(det(10), streaming=True) == []
    assert g.verdict(verdict(10, span=(0, 5)), 1) == []  # judged up to 5 s only: still held
    assert g.verdict(verdict(10, span=(0, 12)), 1) == [] and g.overruled == 1 and g.held == {}
    assert g.summary(det(11), streaming=False) == [] and g.overruled == 2  # inside the judged span
    g2 = FallGate()
    g2.summary(det(10), streaming=True)
    (d,) = g2.verdict(verdict(10, covered=False, reason="connect failed: OSError"), 1)
    assert d.details["source"] == SOURCE_SUMMARY and g2.overruled == 0


def test_a_held_summary_fall_leaves_by_impact_plus_10_s_without_a_verdict() -> None:
    g = FallGate()
    g.summary(det(10), streaming=True)
    assert g.due(T0 + timedelta(seconds=19.9)) == []
    (d,) = g.due(T0 + timedelta(seconds=20))
    assert d.details["source"] == SOURCE_SUMMARY and g.held == {}
    assert g.verdict(verdict(10, falls=(10.0,)), 1) == [] and g.duplicates == 1  # late model: same fall
