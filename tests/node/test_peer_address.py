"""``node_id@host:port`` parsing."""

from __future__ import annotations

import pytest

from ampere.bitcoin.keys import PrivateKey
from ampere.node.peer_address import (
    DEFAULT_PORT,
    format_host_port,
    is_public,
    net_address,
    parse_host_port,
    parse_peer_address,
)
from ampere.node.peer_protocol import PeerError
from ampere.wire.addresses import AddressType

NODE = PrivateKey.from_int(7).public_key.data
HEX = NODE.hex()


@pytest.mark.parametrize(
    ("text", "host", "port"),
    [
        (f"{HEX}@127.0.0.1:9736", "127.0.0.1", 9736),
        (f"{HEX}@127.0.0.1", "127.0.0.1", DEFAULT_PORT),
        (f"{HEX}@[::1]:1", "::1", 1),
        (f"{HEX}@[2001:db8::5]", "2001:db8::5", DEFAULT_PORT),
        (f"{HEX}@2001:db8::5", "2001:db8::5", DEFAULT_PORT),
        (f"{HEX}@node.example.com:65535", "node.example.com", 65535),
        (f"  {HEX}@localhost:19735 ", "localhost", 19735),
    ],
)
def test_parse(text: str, host: str, port: int) -> None:
    address = parse_peer_address(text)
    assert (address.node_id, address.host, address.port) == (NODE, host, port)
    assert parse_peer_address(str(address)) == address


@pytest.mark.parametrize(
    "text",
    [
        "127.0.0.1:9735",
        f"{HEX}@",
        f"{HEX}@host:0",
        f"{HEX}@host:65536",
        f"{HEX}@host:port",
        f"{HEX}@[::1",
        f"{HEX}@[::1]x",
        f"{HEX}@[nothex]:1",
        f"{HEX}@bad_host!:1",
        f"{HEX[:-2]}@127.0.0.1",
        f"zz{HEX[2:]}@127.0.0.1",
        "04" + HEX[2:] + "@127.0.0.1",
    ],
)
def test_rejects(text: str) -> None:
    with pytest.raises(PeerError):
        parse_peer_address(text)


def test_host_port_helpers() -> None:
    assert parse_host_port("[::1]:5", 1) == ("::1", 5)
    assert format_host_port("::1", 5) == "[::1]:5"
    assert format_host_port("1.2.3.4", 5) == "1.2.3.4:5"
    v4 = net_address("::ffff:203.0.113.9", 7)
    assert v4 is not None and v4.type is AddressType.IPV4 and v4.host == "203.0.113.9"
    assert net_address("example.com", 1) is None
    loop = net_address("127.0.0.1", 1)
    public = net_address("8.8.8.8", 1)
    assert loop is not None and not is_public(loop)
    assert public is not None and is_public(public)
