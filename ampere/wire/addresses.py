"""BOLT #7 address descriptors (``node_announcement.addresses``, ``init``'s ``remote_addr``)."""

from __future__ import annotations

import base64
import enum
import hashlib
import ipaddress
from collections.abc import Iterable
from dataclasses import dataclass

from ampere.wire.errors import DecodeError, EncodeError
from ampere.wire.primitives import Reader


class AddressType(enum.IntEnum):
    IPV4 = 1
    IPV6 = 2
    TORV2 = 3  # deprecated: parsed so that later descriptors stay reachable, never produced
    TORV3 = 4
    DNS = 5


_FIXED_LEN = {AddressType.IPV4: 4, AddressType.IPV6: 16, AddressType.TORV2: 10, AddressType.TORV3: 35}
_ONION_SUFFIX = ".onion"


@dataclass(frozen=True, slots=True)
class NetAddress:
    """One address descriptor.  ``host`` is text: dotted IPv4, IPv6, ``<56 chars>.onion`` or a hostname."""

    type: AddressType
    host: str
    port: int

    def __post_init__(self) -> None:
        if not 0 <= self.port <= 0xFFFF:
            raise EncodeError(f"port out of range: {self.port}")

    def __str__(self) -> str:
        return f"[{self.host}]:{self.port}" if self.type is AddressType.IPV6 else f"{self.host}:{self.port}"

    def to_bytes(self) -> bytes:
        if self.type is AddressType.IPV4:
            raw = ipaddress.IPv4Address(self.host).packed
        elif self.type is AddressType.IPV6:
            raw = ipaddress.IPv6Address(self.host).packed
        elif self.type is AddressType.TORV3:
            raw = _onion_v3_bytes(self.host)
        elif self.type is AddressType.DNS:
            try:
                name = self.host.encode("ascii")
            except UnicodeEncodeError as exc:
                raise EncodeError("DNS hostnames must be ASCII (use Punycode)") from exc
            if not 0 < len(name) <= 255:
                raise EncodeError("DNS hostname must be 1 to 255 bytes")
            raw = bytes((len(name),)) + name
        else:
            raise EncodeError(f"refusing to produce a {self.type.name} address")
        return bytes((self.type,)) + raw + self.port.to_bytes(2, "big")


def _onion_checksum(pubkey: bytes, version: int) -> bytes:
    return hashlib.sha3_256(b".onion checksum" + pubkey + bytes((version,))).digest()[:2]


def _onion_v3_bytes(host: str) -> bytes:
    label = host[: -len(_ONION_SUFFIX)] if host.endswith(_ONION_SUFFIX) else host
    try:
        raw = base64.b32decode(label.upper())
    except ValueError as exc:
        raise EncodeError(f"not a Tor v3 address: {host!r}") from exc
    if len(raw) != 35 or raw[34] != 3 or raw[32:34] != _onion_checksum(raw[:32], 3):
        raise EncodeError(f"not a valid Tor v3 address: {host!r}")
    return raw


def _onion_text(raw: bytes) -> str:
    return base64.b32encode(raw).decode("ascii").lower() + _ONION_SUFFIX


def parse_addresses(data: bytes) -> tuple[NetAddress, ...]:
    """Parse a list of address descriptors.

    Parsing stops at the first unknown type (its length is unknown, so nothing
    after it can be located: BOLT #7 says to ignore it).  A known descriptor
    that is truncated is an error.
    """
    reader = Reader(data)
    out: list[NetAddress] = []
    while not reader.at_end():
        type_byte = reader.read(1)[0]
        try:
            kind = AddressType(type_byte)
        except ValueError:
            break
        if kind is AddressType.DNS:
            name = reader.read(reader.read(1)[0])
            try:
                host = name.decode("ascii")
            except UnicodeDecodeError as exc:
                raise DecodeError("DNS hostname is not ASCII") from exc
        else:
            raw = reader.read(_FIXED_LEN[kind])
            if kind is AddressType.IPV4:
                host = str(ipaddress.IPv4Address(raw))
            elif kind is AddressType.IPV6:
                host = str(ipaddress.IPv6Address(raw))
            elif kind is AddressType.TORV3:
                host = _onion_text(raw)
            else:
                host = base64.b32encode(raw).decode("ascii").lower() + _ONION_SUFFIX
        out.append(NetAddress(kind, host, reader.read_uint(2)))
    return tuple(out)


def encode_addresses(addresses: Iterable[NetAddress]) -> bytes:
    """Encode descriptors in ascending type order, as BOLT #7 requires of the origin node."""
    ordered = sorted(addresses, key=lambda a: int(a.type))
    if sum(1 for a in ordered if a.type is AddressType.DNS) > 1:
        raise EncodeError("at most one DNS hostname may be announced")
    return b"".join(a.to_bytes() for a in ordered)
