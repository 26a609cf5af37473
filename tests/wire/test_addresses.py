"""BOLT #7 address descriptors."""

from __future__ import annotations

import contextlib

import pytest
from hypothesis import given
from hypothesis import strategies as st

from ampere.wire import DecodeError, EncodeError
from ampere.wire.addresses import AddressType, NetAddress, encode_addresses, parse_addresses

# A syntactically valid v3 onion address (key, checksum and version consistent).
ONION = "pg6mmjiyjmcrsslvykfwnntlaru7p5svn6y2ymmju6nubxndf4pscryd.onion"


def test_known_types_roundtrip() -> None:
    addresses = (
        NetAddress(AddressType.IPV4, "127.0.0.1", 9735),
        NetAddress(AddressType.IPV6, "2001:db8::1", 9736),
        NetAddress(AddressType.TORV3, ONION, 9737),
        NetAddress(AddressType.DNS, "node.example.com", 9738),
    )
    encoded = encode_addresses(reversed(addresses))
    assert encoded[:7].hex() == "017f000001" + "2607"
    assert parse_addresses(encoded) == addresses
    assert str(addresses[1]) == "[2001:db8::1]:9736"


def test_unknown_type_stops_parsing() -> None:
    data = bytes.fromhex("017f0000012607") + b"\x09garbage" + bytes.fromhex("017f0000012607")
    assert parse_addresses(data) == (NetAddress(AddressType.IPV4, "127.0.0.1", 9735),)


def test_torv2_is_skipped_over_but_not_produced() -> None:
    data = b"\x03" + bytes(10) + b"\x00\x50" + bytes.fromhex("017f0000012607")
    parsed = parse_addresses(data)
    assert [a.type for a in parsed] == [AddressType.TORV2, AddressType.IPV4]
    with pytest.raises(EncodeError):
        parsed[0].to_bytes()


@pytest.mark.parametrize("data", ["017f0000", "0500", "05037a7a", "04" + "00" * 30])
def test_truncated_known_types(data: str) -> None:
    with pytest.raises(DecodeError):
        parse_addresses(bytes.fromhex(data))


def test_encode_rejections() -> None:
    with pytest.raises(EncodeError):
        encode_addresses([NetAddress(AddressType.DNS, "a.b", 1), NetAddress(AddressType.DNS, "c.d", 1)])
    with pytest.raises(EncodeError):
        NetAddress(AddressType.DNS, "bücher.example", 1).to_bytes()
    with pytest.raises(EncodeError):
        NetAddress(AddressType.TORV3, "aaaa.onion", 1).to_bytes()
    with pytest.raises(EncodeError):
        NetAddress(AddressType.IPV4, "1.2.3.4", 70000)


@given(st.binary(max_size=80))
def test_random_bytes_raise_only_decode_errors(data: bytes) -> None:
    with contextlib.suppress(DecodeError):
        parse_addresses(data)
