"""The decode step: one BLE advert in, one `Reading` (or nothing) out.

A registry keyed by what is in the advert: a manufacturer company id or a
service-data UUID, plus a first-byte frame type where several formats share
one UUID (Eddystone TLM 0x20 and KKM 0x21 both live under 0xFEAA). Looking a
decoder up is a dict hit, not a try-every-decoder loop, because a village
site hears phones, TVs and earbuds far more often than wristbands.

`Decoders.decode` never raises: a frame that is not ours is ignored, a
malformed one is counted and dropped, a forged or replayed one is counted
and dropped. A crash here would silence every patient at the site.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Protocol

from chumphae.values import Advert, Reading

if TYPE_CHECKING:
    from gateway.decode.chumphae_band import BandDecoder, ReplayGuard

log = logging.getLogger(__name__)

BASE_UUID = "-0000-1000-8000-00805f9b34fb"


def uuid16(short: int) -> str:
    """The full 128-bit UUID string bleak uses for a 16-bit SIG UUID."""
    return f"0000{short:04x}{BASE_UUID}"


def reading(advert: Advert, kind: str, **fields: Any) -> Reading:
    """A Reading stamped with what every advert carries: address, RSSI, receiver, time, tx power."""
    fields.setdefault("tx_power", advert.tx_power)
    return Reading(address=advert.address, kind=kind, rssi=advert.rssi, receiver=advert.receiver, t=advert.t,
                   **fields)


class DecodeError(ValueError):
    """The frame claims a format but its bytes do not fit it (malformed)."""


class AuthError(DecodeError):
    """The frame failed authentication (wrong key, forged, corrupted)."""


class ReplayError(DecodeError):
    """The frame authenticated but its counter is older than one already seen."""


class Decoder(Protocol):
    name: str

    def decode(self, advert: Advert, payload: bytes) -> Reading | None:
        """Decode `payload` (the manufacturer or service data value); None = not this format."""


@dataclass(frozen=True, slots=True)
class Key:
    """Where a decoder's frames live in an advert: ("m", company id) or ("s", uuid)."""

    where: str
    ident: int | str
    first_byte: int | None = None  # frame type at payload[0], None = any


@dataclass(slots=True)
class DecodeStats:
    """Counters for the heartbeat: what the decode step saw and why it dropped."""

    decoded: dict[str, int] = field(default_factory=dict)
    unknown: int = 0
    malformed: int = 0
    auth_failures: int = 0
    replays: int = 0

    @property
    def failures(self) -> int:
        return self.malformed + self.auth_failures + self.replays


class Decoders:
    """The registry. Register decoders with the keys they own; call `decode`."""

    def __init__(self) -> None:
        self._by_key: dict[tuple[str, int | str], list[tuple[int | None, Decoder]]] = {}
        self.stats = DecodeStats()
        self.on_failure: Callable[[Advert, DecodeError], None] | None = None
        self.band: BandDecoder | None = None  # the band frames' decoder (`default_decoders`), for repeats

    def register(self, decoder: Decoder, keys: Iterable[Key]) -> None:
        for k in keys:
            ident = k.ident.lower() if isinstance(k.ident, str) else k.ident
            self._by_key.setdefault((k.where, ident), []).append((k.first_byte, decoder))

    def _candidates(self, advert: Advert) -> Iterable[tuple[Decoder, bytes]]:
        for company, payload in advert.manufacturer_data.items():
            for first, dec in self._by_key.get(("m", company), ()):
                if first is None or (payload and payload[0] == first):
                    yield dec, payload
        for uuid, payload in advert.service_data.items():
            for first, dec in self._by_key.get(("s", uuid.lower()), ()):
                if first is None or (payload and payload[0] == first):
                    yield dec, payload

    def decode(self, advert: Advert) -> Reading | None:
        """The first reading any registered decoder makes of this advert, or None."""
        if advert.manufacturer_data and not advert.service_data:  # the common case: one company's data
            for company, payload in advert.manufacturer_data.items():
                for first, dec in self._by_key.get(("m", company), ()):
                    if first is None or (payload and payload[0] == first):
                        reading = self._try(dec, advert, payload)
                        if reading is not None:
                            return reading
        else:
            for dec, payload in self._candidates(advert):
                reading = self._try(dec, advert, payload)
                if reading is not None:
                    return reading
        self.stats.unknown += 1
        return None

    def _try(self, dec: Decoder, advert: Advert, payload: bytes) -> Reading | None:
        try:
            reading = dec.decode(advert, payload)
        except ReplayError as e:
            self.stats.replays += 1
            self._failed(advert, e)
            return None
        except AuthError as e:
            self.stats.auth_failures += 1
            self._failed(advert, e)
            return None
        except (DecodeError, ValueError, IndexError, KeyError, TypeError) as e:
            # The formats are only partly documented by their makers: a
            # decoder bug must cost one advert, not the gateway.
            self.stats.malformed += 1
            self._failed(advert, e if isinstance(e, DecodeError) else DecodeError(repr(e)))
            return None
        if reading is not None:
            decoded = self.stats.decoded
            decoded[reading.kind] = decoded.get(reading.kind, 0) + 1
        return reading

    def _failed(self, advert: Advert, err: DecodeError) -> None:
        log.debug("dropped advert from %s via %s: %s", advert.address, advert.receiver, err)
        if self.on_failure is not None:
            self.on_failure(advert, err)


def default_decoders(keys: Callable[[str], bytes | None] | None = None, guard: ReplayGuard | None = None) -> Decoders:
    """All formats the gateway understands. `keys(address)` gives a band's AES key; `guard` is the
    band frames' replay guard (give one to keep it across registries, e.g. on a config change)."""
    from gateway.decode import bthome, chumphae_band, eddystone, ibeacon, kkm, moko

    reg = Decoders()
    reg.band = chumphae_band.BandDecoder(keys or (lambda _a: None), guard)
    reg.register(reg.band, chumphae_band.KEYS)
    reg.register(ibeacon.IBeaconDecoder(), ibeacon.KEYS)
    reg.register(eddystone.TlmDecoder(), eddystone.KEYS)
    reg.register(kkm.KkmDecoder(), kkm.KEYS)
    reg.register(moko.MokoDecoder(), moko.KEYS)
    reg.register(bthome.BTHomeDecoder(), bthome.KEYS)
    return reg
