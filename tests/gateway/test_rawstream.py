"""The GATT raw-stream notification (docs/band-frame.md, "Raw stream over GATT") on real bytes."""

from __future__ import annotations

import numpy as np
import pytest

from gateway.decode import DecodeError
from gateway.decode import rawstream as rs

# the golden vector printed in docs/band-frame.md: band firmware must produce these bytes
GOLDEN = bytes.fromhex("a1070040e20100f40102" "00000000e803" "06ffac0d0080")


def test_golden_vector_both_ways() -> None:
    assert rs.encode(7, 123456, 50.0, [(0, 0, 1000), (-250, 3500, -32768)]) == GOLDEN
    b = rs.parse(GOLDEN)
    assert (b.seq, b.t0_ms, b.hz) == (7, 123456, 50.0)
    assert b.xyz_mg.tolist() == [[0, 0, 1000], [-250, 3500, -32768]]


@pytest.mark.parametrize("data, why", [
    (b"", "shorter"),
    (GOLDEN[:15], "shorter"),
    (GOLDEN[:-1], "bytes for 2 samples"),
    (GOLDEN + b"\x00", "bytes for 2 samples"),
    (b"\xa2" + GOLDEN[1:], "version"),
    (GOLDEN[:9] + b"\x00" + GOLDEN[10:], "claims 0 samples"),
    (GOLDEN[:9] + b"\x54" + GOLDEN[10:], "claims 84 samples"),
    (GOLDEN[:7] + b"\x00\x00" + GOLDEN[9:], "rate"),
    (GOLDEN[:7] + b"\xff\xff" + GOLDEN[9:], "rate"),
])
def test_bad_notifications_are_refused(data: bytes, why: str) -> None:
    with pytest.raises(DecodeError, match=why):
        rs.parse(data)


def blocks(seqs: list[int], t0s: list[int], n: int = 25, hz: float = 50.0) -> list[bytes]:
    return [rs.encode(s, t, hz, [(0, 0, 1000 + i) for i in range(n)]) for s, t in zip(seqs, t0s, strict=True)]


def test_a_stream_makes_one_time_line_in_g() -> None:
    s = rs.RawStream()
    out = [s.feed(b) for b in blocks([65534, 65535, 0], [1000, 1500, 2000])]  # seq wraps
    assert all(o is not None for o in out)
    t = np.concatenate([o.t for o in out if o is not None])
    assert t[0] == 1.0 and t[-1] == pytest.approx(2.48) and np.all(np.diff(t) == pytest.approx(0.02))
    assert out[0] is not None and out[0].xyz_g[1].tolist() == [0.0, 0.0, 1.001] and out[0].hz == 50.0
    assert s.health() == {"blocks": 3, "malformed": 0, "lost": 0, "repeats": 0, "resets": 0}


def test_lost_notifications_leave_a_gap_and_bad_ones_are_counted_never_raised() -> None:
    s = rs.RawStream()
    a, b, c = blocks([10, 13, 13], [0, 1500, 1500])
    got = [s.feed(a), s.feed(b"\xa1\x00"), s.feed(GOLDEN[:-2]), s.feed(bytes(100)), s.feed(b), s.feed(c)]
    assert [g is None for g in got] == [False, True, True, True, False, True]
    assert got[4] is not None and got[4].t[0] == 1.5  # 1.0 s of nothing between 0.48 and 1.5: a gap
    assert s.health() == {"blocks": 2, "malformed": 3, "lost": 2, "repeats": 1, "resets": 0}


def test_clock_wrap_and_band_reset_keep_time_moving_forward() -> None:
    s = rs.RawStream()
    wrap = rs.WRAP_MS
    x = [s.feed(b) for b in blocks([1, 2, 3, 4], [wrap - 500, 0, 500, 100])]
    assert all(o is not None for o in x)
    starts = [o.t[0] for o in x if o is not None]
    assert starts[1] - starts[0] == pytest.approx(0.5) and starts[2] - starts[1] == pytest.approx(0.5)
    assert starts[3] == pytest.approx(x[2].t[-1] + rs.RESET_GAP_S)  # type: ignore[union-attr]
    assert s.resets == 1
