"""Feature bits (BOLT #9) and feature-vector helpers.

Features come in pairs: the even bit means "required", the odd bit
"supported".  A peer that sets an even bit we do not know must be
disconnected (BOLT #1, *it's OK to be odd*), which ``Features.validate``
enforces along with the transitive dependencies of BOLT #9.
"""

from __future__ import annotations

import enum
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from types import MappingProxyType

from ampere.wire.errors import EncodeError, FeatureError


class Feature(enum.IntEnum):
    """Known features, valued by their even ("required") bit."""

    DATA_LOSS_PROTECT = 0
    INITIAL_ROUTING_SYNC = 2  # only the odd bit 3 was ever assigned
    UPFRONT_SHUTDOWN_SCRIPT = 4
    GOSSIP_QUERIES = 6
    VAR_ONION_OPTIN = 8
    GOSSIP_QUERIES_EX = 10
    STATIC_REMOTEKEY = 12
    PAYMENT_SECRET = 14
    BASIC_MPP = 16
    LARGE_CHANNEL = 18
    ANCHORS = 22
    ROUTE_BLINDING = 24
    SHUTDOWN_ANYSEGWIT = 26
    DUAL_FUND = 28
    QUIESCE = 34
    ATTRIBUTION_DATA = 36
    ONION_MESSAGES = 38
    PROVIDE_STORAGE = 42
    CHANNEL_TYPE = 44
    SCID_ALIAS = 46
    PAYMENT_METADATA = 48
    ZEROCONF = 50
    SIMPLE_CLOSE = 60
    SPLICE = 62
    # Experimental range: Ampere's micropayment channels (advertised as the odd bit 257).
    MICROPAYMENT_CHANNEL = 256

    @property
    def required_bit(self) -> int:
        return int(self.value)

    @property
    def optional_bit(self) -> int:
        return int(self.value) + 1


#: Features that only ever had an optional (odd) bit; their even bit is unassigned.
ODD_ONLY: frozenset[Feature] = frozenset({Feature.INITIAL_ROUTING_SYNC})

#: BOLT #9 "Dependencies" column (plus gossip_queries_ex → gossip_queries, which it extends).
DEPENDENCIES: Mapping[Feature, frozenset[Feature]] = MappingProxyType(
    {
        Feature.GOSSIP_QUERIES_EX: frozenset({Feature.GOSSIP_QUERIES}),
        Feature.BASIC_MPP: frozenset({Feature.PAYMENT_SECRET}),
        Feature.ZEROCONF: frozenset({Feature.SCID_ALIAS}),
        Feature.SIMPLE_CLOSE: frozenset({Feature.SHUTDOWN_ANYSEGWIT}),
    }
)


def _known_bits(known: Iterable[Feature]) -> frozenset[int]:
    bits: set[int] = set()
    for feature in known:
        bits.add(feature.optional_bit)
        if feature not in ODD_ONLY:
            bits.add(feature.required_bit)
    return frozenset(bits)


KNOWN_BITS = _known_bits(Feature)


@dataclass(frozen=True, slots=True)
class Features:
    """An immutable feature vector; bit 0 is the least significant bit of the last byte on the wire."""

    bits: int = 0

    def __post_init__(self) -> None:
        if self.bits < 0:
            raise EncodeError("feature bits cannot be negative")

    @classmethod
    def from_bytes(cls, data: bytes) -> Features:
        return cls(int.from_bytes(data, "big"))

    @classmethod
    def from_bit_numbers(cls, bits: Iterable[int]) -> Features:
        value = 0
        for bit in bits:
            value |= 1 << bit
        return cls(value)

    @classmethod
    def of(cls, required: Iterable[Feature] = (), optional: Iterable[Feature] = ()) -> Features:
        features = cls()
        for feature in required:
            features = features.with_feature(feature, required=True)
        for feature in optional:
            features = features.with_feature(feature, required=False)
        return features

    def to_bytes(self, min_length: int = 0) -> bytes:
        """Minimal big-endian encoding (BOLT #1: "SHOULD use the minimum length")."""
        return self.bits.to_bytes(max((self.bits.bit_length() + 7) // 8, min_length), "big")

    def is_set(self, bit: int) -> bool:
        return bool(self.bits >> bit & 1)

    def set_bit(self, bit: int) -> Features:
        return Features(self.bits | 1 << bit)

    def clear_bit(self, bit: int) -> Features:
        return Features(self.bits & ~(1 << bit))

    def bit_numbers(self) -> Iterator[int]:
        bits, index = self.bits, 0
        while bits:
            if bits & 1:
                yield index
            bits >>= 1
            index += 1

    def has(self, feature: Feature) -> bool:
        """Whether the feature is offered, as required or optional."""
        return self.is_set(feature.optional_bit) or (
            feature not in ODD_ONLY and self.is_set(feature.required_bit)
        )

    def requires(self, feature: Feature) -> bool:
        """Whether the required (even) bit is set; BOLT #9 treats both-bits-set as required."""
        return feature not in ODD_ONLY and self.is_set(feature.required_bit)

    def with_feature(self, feature: Feature, *, required: bool = False) -> Features:
        """Set one bit of the pair (never both: BOLT #9 "MUST NOT set both")."""
        if required and feature in ODD_ONLY:
            raise EncodeError(f"{feature.name} has no required bit")
        cleared = self.without(feature)
        return cleared.set_bit(feature.required_bit if required else feature.optional_bit)

    def without(self, feature: Feature) -> Features:
        return self.clear_bit(feature.required_bit).clear_bit(feature.optional_bit)

    def union(self, other: Features) -> Features:
        return Features(self.bits | other.bits)

    def __or__(self, other: Features) -> Features:
        return self.union(other)

    def unknown_even_bits(self, known: Iterable[Feature] | None = None) -> list[int]:
        known_bits = KNOWN_BITS if known is None else _known_bits(known)
        return [bit for bit in self.bit_numbers() if bit % 2 == 0 and bit not in known_bits]

    def missing_dependencies(self) -> list[tuple[Feature, Feature]]:
        """``(feature, dependency)`` pairs where a set feature lacks a feature it depends on."""
        return [
            (feature, dep)
            for feature, deps in DEPENDENCIES.items()
            if self.has(feature)
            for dep in sorted(deps)
            if not self.has(dep)
        ]

    def validate(self, known: Iterable[Feature] | None = None, *, check_dependencies: bool = True) -> None:
        """Raise ``FeatureError`` for unknown even bits or (optionally) missing dependencies.

        ``known`` defaults to every feature this module names; pass the set the
        node actually implements to reject peers that require anything else.
        """
        unknown = self.unknown_even_bits(known)
        if unknown:
            raise FeatureError(f"unknown required feature bits {unknown}")
        if check_dependencies:
            missing = self.missing_dependencies()
            if missing:
                text = ", ".join(f"{f.name} needs {d.name}" for f, d in missing)
                raise FeatureError(f"feature dependencies not set: {text}")

    def names(self) -> list[str]:
        """Human-readable list, e.g. ``["var_onion_optin", "payment_secret(required)", "bit 101"]``."""
        out: list[str] = []
        by_bit = {f.optional_bit: f for f in Feature} | {
            f.required_bit: f for f in Feature if f not in ODD_ONLY
        }
        for bit in self.bit_numbers():
            feature = by_bit.get(bit)
            if feature is None:
                out.append(f"bit {bit}")
            elif bit == feature.required_bit:
                out.append(f"{feature.name.lower()}(required)")
            else:
                out.append(feature.name.lower())
        return out


def combine_init_features(globalfeatures: bytes, features: bytes) -> Features:
    """BOLT #1: the receiver of ``init`` ORs the two bitmaps into one logical feature vector."""
    return Features.from_bytes(globalfeatures) | Features.from_bytes(features)
