"""The core node's methods: wallet, peers, chain and the daemon itself."""

from __future__ import annotations

from ampere.node.method_spec import ADMIN, AMOUNT, INT, READ, STR, MethodSpec, ParamSpec

__all__ = ["NODE_METHODS"]

NODE_METHODS: tuple[MethodSpec, ...] = (
    MethodSpec(("getinfo",), (), READ, "node id, network, block height, listen addresses and counts"),
    MethodSpec(("newaddress",), (), ADMIN, "a new on-chain receive address of the wallet"),
    MethodSpec(("listfunds",), (), READ, "the wallet's unspent outputs"),
    MethodSpec(
        ("withdraw",),
        (
            ParamSpec("address", STR, help="destination address", max_length=128),
            ParamSpec("amount", AMOUNT, help="satoshis, or 'all' for everything spendable", minimum=1),
            ParamSpec(
                "feerate",
                INT,
                help="fee rate in sat/vB (default: the chain's estimate)",
                required=False,
                option=True,
                minimum=1,
                maximum=100_000,
            ),
        ),
        ADMIN,
        "send on-chain funds from the wallet",
    ),
    MethodSpec(
        ("connect",),
        (ParamSpec("peer", STR, help="NODEID@HOST:PORT", max_length=512),),
        ADMIN,
        "connect to a peer (and reconnect to it after restarts)",
    ),
    MethodSpec(("listpeers",), (), READ, "connected and persistent peers"),
    MethodSpec(
        ("disconnect",),
        (ParamSpec("node_id", STR, help="the peer's node id (66 hex digits)", max_length=66),),
        ADMIN,
        "disconnect from a peer and forget it",
    ),
    MethodSpec(
        ("ping",),
        (
            ParamSpec("node_id", STR, help="a connected peer's node id", max_length=66),
            ParamSpec(
                "len",
                INT,
                help="pong size in bytes (default 128)",
                required=False,
                option=True,
                maximum=65531,
            ),
        ),
        ADMIN,
        "ping a connected peer and time the pong",
    ),
    MethodSpec(("stop",), (), ADMIN, "shut the node down"),
    MethodSpec(
        ("generate",),
        (
            ParamSpec("count", INT, help="number of blocks", minimum=1, maximum=10_000),
            ParamSpec(
                "address",
                STR,
                help="coinbase address (default: a new wallet address)",
                required=False,
                max_length=128,
            ),
        ),
        ADMIN,
        "mine blocks (regtest only)",
    ),
)
