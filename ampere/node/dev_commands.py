"""RPC/CLI declarations of the developer commands (handlers: `ampere.api.dev_methods`).

They are declared always (so the CLI knows them) but served only by a node started with `--developer`;
any other node answers them as unknown methods (-32601).
"""

from __future__ import annotations

from ampere.node.method_spec import ADMIN, INT, STR, MethodSpec, ParamSpec

__all__ = ["DEV_METHODS"]

DEV_METHODS: tuple[MethodSpec, ...] = (
    MethodSpec(
        ("dev-cheat",),
        (
            ParamSpec(
                "channel", STR, help="channel_id (64 hex digits) or short_channel_id HxTxO", max_length=64
            ),
            ParamSpec("commitment_number", INT, help="which of our commitments: 0 is the first"),
        ),
        ADMIN,
        "developer mode only: broadcast one of our own (possibly revoked) commitments, so that the peer "
        "punishes it; the channel's funds are then the peer's",
    ),
)
