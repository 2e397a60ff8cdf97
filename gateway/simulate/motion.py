"""Wrist acceleration, sampled at 50 Hz, and the one-second summary a band puts in its frame.

The fall trace follows the published shape of a wrist-worn fall: walking,
a free-fall phase of ~0.3–0.5 s with |a| well under 1 g, an impact of
several g lasting ~0.1 s (clipped at the sensor's ±8 g per axis), a short
bounce, then stillness at ~1 g in a new orientation (lying: gravity moves
from the forearm's z axis towards x). Daily-life peaks (clapping, hitting a
table) are also generated so detectors can be tested against them.
"""

from __future__ import annotations

import math
import random
from collections.abc import Sequence

from chumphae.values import Motion

HZ = 50
CLIP_G = 8.0
Sample = tuple[float, float, float]


def _clip(v: float) -> float:
    return max(-CLIP_G, min(CLIP_G, v))


RESTING: Sample = (0.0, 0.15, 0.99)  # gravity seen by a wrist resting on a lap or a table


def tilted(g: Sample, pitch_deg: float, roll_deg: float) -> Sample:
    """`g` turned by `pitch_deg` about x, then `roll_deg` about y (same length)."""
    p, r = math.radians(pitch_deg), math.radians(roll_deg)
    x, y, z = g
    y, z = y * math.cos(p) - z * math.sin(p), y * math.sin(p) + z * math.cos(p)
    x, z = x * math.cos(r) + z * math.sin(r), -x * math.sin(r) + z * math.cos(r)
    return (x, y, z)


def still(rng: random.Random, seconds: float, gravity: Sample = RESTING, noise: float = 0.01) -> list[Sample]:
    return [tuple(g + rng.gauss(0, noise) for g in gravity) for _ in range(int(seconds * HZ))]  # type: ignore[misc]


def walking(rng: random.Random, seconds: float, cadence_hz: float = 1.8) -> list[Sample]:
    out = []
    phase = rng.uniform(0, 2 * math.pi)
    for i in range(int(seconds * HZ)):
        w = 2 * math.pi * cadence_hz * i / HZ + phase
        out.append((0.25 * math.sin(w / 2) + rng.gauss(0, 0.03), 0.15 + 0.1 * math.sin(w) + rng.gauss(0, 0.03),
                    0.98 + 0.3 * math.sin(w) + rng.gauss(0, 0.04)))
    return out


def fall(rng: random.Random) -> list[Sample]:
    """3 s: 1 s walking, free fall, impact, bounce, stillness lying on the side."""
    trace = walking(rng, 1.0)
    ff = int(rng.uniform(0.3, 0.5) * HZ)
    for i in range(ff):
        k = 1.0 - 0.8 * (i + 1) / ff  # gravity fades as the body falls
        trace.append((rng.gauss(0, 0.05), 0.15 * k, 0.98 * k + rng.gauss(0, 0.05)))
    peak = rng.uniform(3.0, 6.5)
    for i in range(5):  # ~0.1 s impact
        s = peak * math.sin(math.pi * (i + 1) / 6)
        trace.append((_clip(-0.8 * s), _clip(0.3 * s), _clip(0.5 * s)))
    for i in range(10):  # bounce
        d = math.exp(-i / 3)
        trace.append((-0.9 - 0.6 * d * math.cos(i), 0.1 + 0.3 * d, 0.3 + 0.4 * d * math.sin(i)))
    lying = (-0.97, 0.1, 0.2)
    trace += still(rng, 3.0 - len(trace) / HZ, lying)
    return trace


def table_slap(rng: random.Random) -> list[Sample]:
    """1 s of a hand hitting a table: a peak like a fall, but no free fall and no new orientation."""
    trace = still(rng, 0.5)
    trace += [(_clip(0.2), _clip(0.1), _clip(3.5)), (0.1, 0.1, 2.2), (0.0, 0.1, 1.4)]
    trace += still(rng, 1.0 - len(trace) / HZ)
    return trace


def summarise(samples: Sequence[Sample]) -> Motion:
    """What the band sends for one second: max / min / mean |a| and the final orientation."""
    mags = [math.sqrt(x * x + y * y + z * z) for x, y, z in samples]
    x, y, z = samples[-1]
    pitch = math.degrees(math.atan2(-x, math.sqrt(y * y + z * z)))
    roll = math.degrees(math.atan2(y, z))
    return Motion(max(mags), min(mags), sum(mags) / len(mags), pitch, roll)


def band_flags_fall(samples: Sequence[Sample]) -> bool:
    """The band's own (simple) detector: free fall < 0.5 g, then > 2.5 g within 0.5 s, then still."""
    mags = [math.sqrt(x * x + y * y + z * z) for x, y, z in samples]
    for i, m in enumerate(mags):
        if m < 0.5 and any(v > 2.5 for v in mags[i : i + HZ // 2]):
            tail = mags[-HZ:]
            return max(tail) - min(tail) < 0.3
    return False
