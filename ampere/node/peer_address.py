"""``node_id@host:port`` as users type it: IPv4, ``[IPv6]``, or a hostname; the port may be left out."""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass

from ampere.bitcoin.keys import is_valid_pubkey
from ampere.node.peer_protocol import PeerError
from ampere.wire.addresses import AddressType, NetAddress

DEFAULT_PORT = 9735

_HOSTNAME_CHARS = frozenset("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-.")


@dataclass(frozen=True, slots=True)
class PeerAddress:
    node_id: bytes
    host: str
    port: int

    def __str__(self) -> str:
        return f"{self.node_id.hex()}@{format_host_port(self.host, self.port)}"


def format_host_port(host: str, port: int) -> str:
    """``host:port``, with IPv6 literals in brackets so the port stays unambiguous."""
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


def parse_host_port(text: str, default_port: int = DEFAULT_PORT) -> tuple[str, int]:
    """Split ``host[:port]``; IPv6 literals need brackets when a port follows (``[::1]:9735``)."""
    text = text.strip()
    if not text:
        raise PeerError("empty address")
    if text.startswith("["):
        end = text.find("]")
        if end < 0:
            raise PeerError(f"unclosed bracket in {text!r}")
        host, rest = text[1:end], text[end + 1 :]
        _check_ipv6(host)
        if not rest:
            return host, default_port
        if not rest.startswith(":"):
            raise PeerError(f"junk after ']' in {text!r}")
        return host, _parse_port(rest[1:])
    if text.count(":") > 1:
        # A bare IPv6 literal cannot carry a port; take it whole.
        _check_ipv6(text)
        return text, default_port
    host, sep, port_text = text.partition(":")
    _check_host(host)
    return host, _parse_port(port_text) if sep else default_port


def parse_peer_address(text: str, default_port: int = DEFAULT_PORT) -> PeerAddress:
    """Parse ``node_id@host[:port]`` (the node id is 66 hex digits, a compressed public key)."""
    node_hex, sep, address = text.strip().partition("@")
    if not sep:
        raise PeerError(f"expected node_id@host:port, got {text!r}")
    node_id = parse_node_id(node_hex)
    host, port = parse_host_port(address, default_port)
    return PeerAddress(node_id, host, port)


def parse_node_id(text: str) -> bytes:
    try:
        node_id = bytes.fromhex(text)
    except ValueError:
        raise PeerError(f"node id is not hex: {text!r}") from None
    if not is_valid_pubkey(node_id):
        raise PeerError("node id must be a 33-byte compressed public key")
    return node_id


def net_address(host: str, port: int) -> NetAddress | None:
    """The BOLT #7 descriptor of an IP address, or ``None`` for anything else (e.g. a hostname)."""
    try:
        ip = ipaddress.ip_address(host.split("%", 1)[0])
    except ValueError:
        return None
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped
    kind = AddressType.IPV4 if ip.version == 4 else AddressType.IPV6
    return NetAddress(kind, str(ip), port)


def is_public(address: NetAddress) -> bool:
    """Whether an IP address is globally routable (BOLT #1: don't report private ones in ``remote_addr``)."""
    try:
        return ipaddress.ip_address(address.host).is_global
    except ValueError:
        return False


def _parse_port(text: str) -> int:
    if not text.isdigit():
        raise PeerError(f"bad port {text!r}")
    port = int(text)
    if not 0 < port <= 0xFFFF:
        raise PeerError(f"port out of range: {port}")
    return port


def _check_ipv6(host: str) -> None:
    try:
        ipaddress.IPv6Address(host.split("%", 1)[0])
    except ValueError:
        raise PeerError(f"not an IPv6 address: {host!r}") from None


def _check_host(host: str) -> None:
    if not host or len(host) > 253 or not set(host) <= _HOSTNAME_CHARS:
        raise PeerError(f"not a host name or IPv4 address: {host!r}")
