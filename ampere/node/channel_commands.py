"""RPC/CLI declarations of the two-way channel commands (handlers: `ampere.api.channel_methods`)."""

from __future__ import annotations

from ampere.node.method_spec import ADMIN, INT, READ, STR, MethodSpec, ParamKind, ParamSpec

__all__ = ["CHANNEL_METHODS"]

_CHANNEL = ParamSpec(
    "channel", STR, help="channel_id (64 hex digits) or short_channel_id HxTxO", max_length=64
)

CHANNEL_METHODS: tuple[MethodSpec, ...] = (
    MethodSpec(
        ("openchannel",),
        (
            ParamSpec("node_id", STR, help="a connected peer's node id", max_length=66),
            ParamSpec(
                "amount", INT, help="channel capacity in satoshis", minimum=1, maximum=21_000_000 * 10**8
            ),
            ParamSpec(
                "push_msat",
                INT,
                help="millisatoshis given to the peer at opening",
                required=False,
                option=True,
            ),
            ParamSpec(
                "anchors",
                ParamKind.BOOLEAN,
                help="open an option_anchors channel",
                required=False,
                option=True,
            ),
        ),
        ADMIN,
        "open a channel funded from the wallet; returns once the funding transaction is broadcast",
    ),
    MethodSpec(("listchannels",), (), READ, "our two-way channels, their states and balances"),
    MethodSpec(
        ("closechannel",),
        (
            _CHANNEL,
            ParamSpec(
                "force",
                ParamKind.BOOLEAN,
                help="broadcast our commitment instead (unilateral close; the peer gets an error)",
                required=False,
                option=True,
            ),
        ),
        ADMIN,
        "close a channel cooperatively (or with --force unilaterally); returns once the closing "
        "transaction is broadcast",
    ),
)
