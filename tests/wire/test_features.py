"""Feature bits (BOLT #9)."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from ampere.wire import EncodeError, Feature, FeatureError, Features
from ampere.wire.features import KNOWN_BITS, combine_init_features

BRIEF_BITS = {
    "DATA_LOSS_PROTECT": 0, "UPFRONT_SHUTDOWN_SCRIPT": 4, "GOSSIP_QUERIES": 6, "VAR_ONION_OPTIN": 8,
    "GOSSIP_QUERIES_EX": 10, "STATIC_REMOTEKEY": 12, "PAYMENT_SECRET": 14, "BASIC_MPP": 16,
    "LARGE_CHANNEL": 18, "ANCHORS": 22, "ROUTE_BLINDING": 24, "SHUTDOWN_ANYSEGWIT": 26, "DUAL_FUND": 28,
    "QUIESCE": 34, "ONION_MESSAGES": 38, "CHANNEL_TYPE": 44, "SCID_ALIAS": 46, "ZEROCONF": 50,
    "SIMPLE_CLOSE": 60,
}  # fmt: skip


def test_bit_assignments() -> None:
    for name, bit in BRIEF_BITS.items():
        assert Feature[name].required_bit == bit
        assert Feature[name].optional_bit == bit + 1
    assert Feature.INITIAL_ROUTING_SYNC.optional_bit == 3
    assert 3 in KNOWN_BITS and 2 not in KNOWN_BITS


def test_wire_encoding() -> None:
    features = Features.of(required=[Feature.VAR_ONION_OPTIN], optional=[Feature.PAYMENT_SECRET])
    assert features.to_bytes() == bytes.fromhex("8100")
    assert Features.from_bytes(bytes.fromhex("008100")) == features
    assert Features().to_bytes() == b""
    assert Features().to_bytes(min_length=2) == b"\x00\x00"


def test_has_and_requires() -> None:
    features = Features.of(required=[Feature.STATIC_REMOTEKEY], optional=[Feature.ANCHORS])
    assert features.has(Feature.STATIC_REMOTEKEY) and features.requires(Feature.STATIC_REMOTEKEY)
    assert features.has(Feature.ANCHORS) and not features.requires(Feature.ANCHORS)
    assert not features.has(Feature.ZEROCONF)
    both = features.set_bit(Feature.ANCHORS.required_bit)
    assert both.requires(Feature.ANCHORS)  # both bits set means required
    assert not Features.from_bit_numbers([2]).has(Feature.INITIAL_ROUTING_SYNC)
    assert Features.from_bit_numbers([3]).has(Feature.INITIAL_ROUTING_SYNC)


def test_with_feature_sets_one_bit_of_the_pair() -> None:
    features = Features().with_feature(Feature.DUAL_FUND, required=True).with_feature(Feature.DUAL_FUND)
    assert list(features.bit_numbers()) == [29]
    assert features.without(Feature.DUAL_FUND) == Features()
    with pytest.raises(EncodeError):
        Features().with_feature(Feature.INITIAL_ROUTING_SYNC, required=True)


def test_validate_unknown_even_bits() -> None:
    Features.from_bit_numbers([101, 3, 9]).validate()
    with pytest.raises(FeatureError) as info:
        Features.from_bit_numbers([100]).validate()
    assert info.value.must_disconnect
    with pytest.raises(FeatureError):
        Features.from_bit_numbers([2]).validate()  # initial_routing_sync never had an even bit
    with pytest.raises(FeatureError):
        Features.of(required=[Feature.SPLICE]).validate(known=[Feature.VAR_ONION_OPTIN])
    assert Features.from_bit_numbers([100, 102, 5]).unknown_even_bits() == [100, 102]


def test_validate_dependencies() -> None:
    with pytest.raises(FeatureError, match="BASIC_MPP needs PAYMENT_SECRET"):
        Features.of(optional=[Feature.BASIC_MPP]).validate()
    with pytest.raises(FeatureError, match="ZEROCONF needs SCID_ALIAS"):
        Features.of(optional=[Feature.ZEROCONF]).validate()
    with pytest.raises(FeatureError, match="SIMPLE_CLOSE needs SHUTDOWN_ANYSEGWIT"):
        Features.of(optional=[Feature.SIMPLE_CLOSE]).validate()
    Features.of(optional=[Feature.SIMPLE_CLOSE]).validate(check_dependencies=False)
    Features.of(required=[Feature.PAYMENT_SECRET], optional=[Feature.BASIC_MPP]).validate()


def test_names_and_init_combination() -> None:
    features = combine_init_features(b"\x02", bytes.fromhex("0100"))
    assert features.names() == ["data_loss_protect", "var_onion_optin(required)"]
    assert Features.from_bit_numbers([201]).names() == ["bit 201"]


@given(st.sets(st.integers(0, 300), max_size=20))
def test_bytes_roundtrip(bits: set[int]) -> None:
    features = Features.from_bit_numbers(bits)
    assert set(features.bit_numbers()) == bits
    assert Features.from_bytes(features.to_bytes()) == features
