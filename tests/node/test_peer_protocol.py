"""The sans-IO BOLT #1 protocol object: init checks, ping/pong, errors, odd/even, gossip queries."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from ampere.bitcoin.network import Network
from ampere.node.peer_protocol import (
    DEFAULT_FEATURES,
    Action,
    Disconnect,
    ErrorReceived,
    MessageReceived,
    PeerError,
    PeerProtocol,
    PeerReady,
    PeerState,
    PongReceived,
    ProtocolConfig,
    SendMessage,
    negotiated_features,
)
from ampere.wire import Feature, Features, FieldValue, Message, UnknownMessage, decode_message, encode_message
from ampere.wire import make_message as mk
from ampere.wire.addresses import AddressType, NetAddress
from ampere.wire.gossip_queries import QueryOption, make_query_channel_range, make_query_short_channel_ids

REGTEST = Network.REGTEST.chain_hash
TESTNET = Network.TESTNET.chain_hash
CONFIG = ProtocolConfig(chains=(REGTEST,))


def init_bytes(
    features: Features = DEFAULT_FEATURES,
    chains: tuple[bytes, ...] | None = (REGTEST,),
    remote_addr: bytes | None = None,
    globalfeatures: bytes = b"",
) -> bytes:
    tlvs: dict[str, dict[str, FieldValue]] = {}
    if chains is not None:
        tlvs["networks"] = {"chains": chains}
    if remote_addr is not None:
        tlvs["remote_addr"] = {"data": remote_addr}
    return encode_message(mk("init", globalfeatures=globalfeatures, features=features.to_bytes(), tlvs=tlvs))


def ready_protocol(**kwargs: object) -> PeerProtocol:
    proto = PeerProtocol(CONFIG, **kwargs)  # type: ignore[arg-type]
    proto.start()
    actions = proto.receive(init_bytes())
    assert isinstance(actions[0], PeerReady)
    return proto


def sent(actions: list[Action]) -> list[Message | UnknownMessage]:
    return [a.message for a in actions if isinstance(a, SendMessage)]


def disconnects(actions: list[Action]) -> list[Disconnect]:
    return [a for a in actions if isinstance(a, Disconnect)]


# --------------------------------------------------------------------------- init


def test_start_sends_init_with_features_and_networks() -> None:
    remote = NetAddress(AddressType.IPV4, "203.0.113.7", 9735)
    proto = PeerProtocol(CONFIG, remote_addr=remote)
    [action] = proto.start()
    assert isinstance(action, SendMessage)
    init = action.message
    assert isinstance(init, Message) and init.name == "init"
    assert Features.from_bytes(init.get_bytes("features")) == DEFAULT_FEATURES
    assert init.tlv_value("networks") == (REGTEST,)
    assert init.tlv_value("remote_addr") == remote.to_bytes()
    with pytest.raises(PeerError):
        proto.start()


def test_default_features_are_all_optional_and_complete() -> None:
    bits = set(DEFAULT_FEATURES.bit_numbers())
    assert bits == {1, 7, 9, 13, 15, 17, 19, 23, 27, 45, 257}  # 257: micropayment channels
    assert all(bit % 2 for bit in bits)
    assert not DEFAULT_FEATURES.missing_dependencies()


def test_init_makes_peer_ready_with_negotiated_features() -> None:
    proto = PeerProtocol(CONFIG)
    proto.start()
    theirs = Features.of(required=[Feature.VAR_ONION_OPTIN], optional=[Feature.GOSSIP_QUERIES])
    remote_addr = NetAddress(AddressType.IPV4, "198.51.100.1", 1234)
    [ready] = proto.receive(init_bytes(theirs, remote_addr=remote_addr.to_bytes()))
    assert isinstance(ready, PeerReady)
    assert ready.features == theirs
    assert ready.remote_addr == remote_addr
    assert ready.chains == (REGTEST,)
    assert ready.negotiated.requires(Feature.VAR_ONION_OPTIN)
    assert ready.negotiated.has(Feature.GOSSIP_QUERIES)
    assert not ready.negotiated.has(Feature.ANCHORS)
    assert proto.state is PeerState.READY


def test_globalfeatures_are_ored_in() -> None:
    proto = PeerProtocol(CONFIG)
    proto.start()
    [ready] = proto.receive(
        init_bytes(Features(), globalfeatures=Features.of(optional=[Feature.DATA_LOSS_PROTECT]).to_bytes())
    )
    assert isinstance(ready, PeerReady)
    assert ready.features.has(Feature.DATA_LOSS_PROTECT)


@pytest.mark.parametrize("bit", [100, 28, 2 * 60])
def test_unknown_required_feature_gets_warning_and_disconnect(bit: int) -> None:
    proto = PeerProtocol(CONFIG)
    proto.start()
    actions = proto.receive(init_bytes(DEFAULT_FEATURES.set_bit(bit)))
    [warning] = sent(actions)
    assert warning.name == "warning"
    assert isinstance(warning, Message) and str(bit).encode() in warning.get_bytes("data")
    assert disconnects(actions)
    assert proto.state is PeerState.CLOSED
    assert proto.receive(encode_message(mk("ping", num_pong_bytes=1, ignored=b""))) == []


def test_unknown_odd_feature_is_ignored() -> None:
    proto = PeerProtocol(CONFIG)
    proto.start()
    [ready] = proto.receive(init_bytes(DEFAULT_FEATURES.set_bit(101)))
    assert isinstance(ready, PeerReady)


def test_required_feature_we_offer_is_accepted() -> None:
    proto = PeerProtocol(CONFIG)
    proto.start()
    [ready] = proto.receive(init_bytes(Features.of(required=[Feature.STATIC_REMOTEKEY])))
    assert isinstance(ready, PeerReady)


def test_missing_dependency_disconnects() -> None:
    proto = PeerProtocol(CONFIG)
    proto.start()
    actions = proto.receive(init_bytes(Features.of(optional=[Feature.BASIC_MPP])))
    assert disconnects(actions)
    assert "payment_secret" in disconnects(actions)[0].reason


def test_no_common_chain_disconnects() -> None:
    proto = PeerProtocol(CONFIG)
    proto.start()
    actions = proto.receive(init_bytes(chains=(TESTNET,)))
    assert disconnects(actions) and "chain" in disconnects(actions)[0].reason


@pytest.mark.parametrize("chains", [None, (TESTNET, REGTEST)])
def test_absent_or_overlapping_networks_accepted(chains: tuple[bytes, ...] | None) -> None:
    proto = PeerProtocol(CONFIG)
    proto.start()
    [ready] = proto.receive(init_bytes(chains=chains))
    assert isinstance(ready, PeerReady)


def test_bad_remote_addr_is_ignored() -> None:
    proto = PeerProtocol(CONFIG)
    proto.start()
    [ready] = proto.receive(init_bytes(remote_addr=b"\x01\x02"))
    assert isinstance(ready, PeerReady) and ready.remote_addr is None


@pytest.mark.parametrize(
    "first",
    [
        encode_message(mk("ping", num_pong_bytes=1, ignored=b"")),
        encode_message(UnknownMessage(32769, b"x")),
        (40000).to_bytes(2, "big"),
        b"\x00",
    ],
)
def test_anything_before_init_disconnects_without_a_word(first: bytes) -> None:
    proto = PeerProtocol(CONFIG)
    proto.start()
    actions = proto.receive(first)
    assert sent(actions) == []
    assert disconnects(actions)


def test_second_init_disconnects() -> None:
    proto = ready_protocol()
    assert disconnects(proto.receive(init_bytes()))


# --------------------------------------------------------------------------- ping / pong


@pytest.mark.parametrize("n", [0, 1, 1000, 65531])
def test_ping_answered_with_zeros(n: int) -> None:
    proto = ready_protocol()
    [pong] = sent(proto.receive(encode_message(mk("ping", num_pong_bytes=n, ignored=bytes(7)))))
    assert isinstance(pong, Message) and pong.name == "pong"
    assert pong.get_bytes("ignored") == bytes(n)
    assert len(encode_message(pong)) <= 65535


@pytest.mark.parametrize("n", [65532, 65533, 65535])
def test_ping_asking_too_much_is_ignored(n: int) -> None:
    proto = ready_protocol()
    assert proto.receive(encode_message(mk("ping", num_pong_bytes=n, ignored=b""))) == []


def test_pong_matches_outstanding_pings_in_order() -> None:
    proto = ready_protocol()
    t1, _ = proto.ping(10)
    none_token, _ = proto.ping(65535)
    t2, _ = proto.ping(3, padding=100)
    assert none_token is None
    assert proto.outstanding_pings == 2
    [pong1] = proto.receive(encode_message(mk("pong", ignored=bytes(10))))
    assert pong1 == PongReceived(t1, 10, False)  # type: ignore[arg-type]
    [pong2] = proto.receive(encode_message(mk("pong", ignored=bytes(3))))
    assert isinstance(pong2, PongReceived) and pong2.token == t2


def test_pong_of_wrong_length_disconnects() -> None:
    proto = ready_protocol()
    proto.ping(10)
    actions = proto.receive(encode_message(mk("pong", ignored=bytes(11))))
    assert disconnects(actions)


def test_unsolicited_pong_disconnects() -> None:
    proto = ready_protocol()
    assert disconnects(proto.receive(encode_message(mk("pong", ignored=b""))))


def test_ping_limits() -> None:
    proto = PeerProtocol(ProtocolConfig(chains=(REGTEST,), max_outstanding_pings=2))
    proto.start()
    with pytest.raises(PeerError):
        proto.ping(1)  # not ready yet
    proto.receive(init_bytes())
    proto.ping(1)
    proto.ping(1)
    with pytest.raises(PeerError):
        proto.ping(1)
    with pytest.raises(PeerError):
        proto.ping(70000)


def test_keepalive_pings_then_drops_a_silent_peer() -> None:
    proto = ready_protocol()
    [ping] = sent(proto.keepalive())
    assert ping.name == "ping"
    [pong] = proto.receive(encode_message(mk("pong", ignored=b"")))
    assert isinstance(pong, PongReceived) and pong.keepalive
    sent(proto.keepalive())
    actions = proto.keepalive()
    assert disconnects(actions) and "pong" in disconnects(actions)[0].reason


# --------------------------------------------------------------------------- errors and unknown messages


def test_error_and_warning_surface_as_events() -> None:
    proto = ready_protocol()
    [err] = proto.receive(encode_message(mk("error", channel_id=bytes(32), data=b"boom")))
    assert isinstance(err, ErrorReceived) and not err.warning and err.all_channels and err.text == "boom"
    [warn] = proto.receive(encode_message(mk("warning", channel_id=b"\x01" * 32, data=b"\x00\xff")))
    assert isinstance(warn, ErrorReceived) and warn.warning and not warn.all_channels
    assert warn.text == "0x00ff"
    assert proto.ready


def test_unknown_even_message_disconnects_with_warning() -> None:
    proto = ready_protocol()
    actions = proto.receive((0x1234).to_bytes(2, "big") + b"payload")
    assert [m.name for m in sent(actions)] == ["warning"]
    assert disconnects(actions)


def test_unknown_odd_message_ignored_unless_handled() -> None:
    proto = ready_protocol(is_handled=lambda t: t == 32769)
    assert proto.receive((32771).to_bytes(2, "big") + b"x") == []
    [event] = proto.receive((32769).to_bytes(2, "big") + b"x")
    assert event == MessageReceived(UnknownMessage(32769, b"x"))


def test_handled_even_custom_message_delivered() -> None:
    proto = ready_protocol(is_handled=lambda t: t == 32768)
    [event] = proto.receive((32768).to_bytes(2, "big") + b"yo")
    assert event == MessageReceived(UnknownMessage(32768, b"yo"))


def test_malformed_known_message_disconnects() -> None:
    proto = ready_protocol()
    actions = proto.receive(encode_message(mk("ping", num_pong_bytes=1, ignored=b"abc"))[:-2])
    assert disconnects(actions)


def test_channel_messages_go_up() -> None:
    proto = ready_protocol()
    msg = mk("shutdown", channel_id=bytes(32), scriptpubkey=b"\x00\x14" + bytes(20))
    [event] = proto.receive(encode_message(msg))
    assert isinstance(event, MessageReceived) and event.message.name == "shutdown"


def test_check_sendable() -> None:
    proto = PeerProtocol(CONFIG)
    proto.start()
    with pytest.raises(PeerError):
        proto.check_sendable(UnknownMessage(32769, b""))
    proto.receive(init_bytes())
    proto.check_sendable(UnknownMessage(32769, b""))
    with pytest.raises(PeerError):
        proto.check_sendable(decode_message(init_bytes()))


# --------------------------------------------------------------------------- gossip queries


def test_query_channel_range_gets_empty_complete_reply() -> None:
    proto = ready_protocol()
    query = make_query_channel_range(REGTEST, 100, 50, QueryOption.WANT_TIMESTAMPS)
    [reply] = sent(proto.receive(encode_message(query)))
    assert isinstance(reply, Message) and reply.name == "reply_channel_range"
    assert reply.get_int("sync_complete") == 1
    assert (reply.get_int("first_blocknum"), reply.get_int("number_of_blocks")) == (100, 50)
    assert reply.get_bytes("encoded_short_ids") == b"\x00"
    assert reply.tlv("timestamps_tlv") is not None and reply.tlv("checksums_tlv") is None


def test_query_for_another_chain_is_not_complete() -> None:
    proto = ready_protocol()
    [reply] = sent(proto.receive(encode_message(make_query_channel_range(TESTNET, 0, 10))))
    assert isinstance(reply, Message) and reply.get_int("sync_complete") == 0


def test_query_short_channel_ids_gets_end() -> None:
    proto = ready_protocol()
    [reply] = sent(proto.receive(encode_message(make_query_short_channel_ids(REGTEST, []))))
    assert isinstance(reply, Message) and reply.name == "reply_short_channel_ids_end"
    assert reply.get_int("full_information") == 1


def test_gossip_timestamp_filter_ignored() -> None:
    proto = ready_protocol()
    msg = mk("gossip_timestamp_filter", chain_hash=REGTEST, first_timestamp=0, timestamp_range=2**32 - 1)
    assert proto.receive(encode_message(msg)) == []


def test_queries_ignored_without_gossip_queries_feature() -> None:
    proto = PeerProtocol(
        ProtocolConfig(features=DEFAULT_FEATURES.without(Feature.GOSSIP_QUERIES), chains=(REGTEST,))
    )
    proto.start()
    proto.receive(init_bytes())
    assert proto.receive(encode_message(make_query_channel_range(REGTEST, 0, 10))) == []


# --------------------------------------------------------------------------- negotiation and fuzz


def test_negotiated_features() -> None:
    local = Features.of(
        required=[Feature.VAR_ONION_OPTIN], optional=[Feature.ANCHORS, Feature.GOSSIP_QUERIES]
    )
    remote = Features.of(required=[Feature.ANCHORS], optional=[Feature.DATA_LOSS_PROTECT])
    result = negotiated_features(local, remote)
    assert result.requires(Feature.VAR_ONION_OPTIN)  # we require it: the peer would have left otherwise
    assert result.requires(Feature.ANCHORS)
    assert not result.has(Feature.GOSSIP_QUERIES)
    assert not result.has(Feature.DATA_LOSS_PROTECT)


@given(st.binary(max_size=300))
def test_random_bytes_never_raise(data: bytes) -> None:
    proto = ready_protocol()
    actions = proto.receive(data)
    for action in actions:
        if isinstance(action, SendMessage):
            encode_message(action.message)
    if disconnects(actions):
        assert proto.state is PeerState.CLOSED


@given(st.binary(max_size=300))
def test_random_bytes_before_init_never_raise(data: bytes) -> None:
    proto = PeerProtocol(CONFIG)
    proto.start()
    for action in proto.receive(data):
        assert not isinstance(action, SendMessage | MessageReceived)
