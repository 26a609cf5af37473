"""RPC/CLI declarations of the micropayment channel commands (handlers: `ampere.api.micro_methods`)."""

from __future__ import annotations

from ampere.node.method_spec import MethodSpec, ParamKind, ParamSpec, Permission

__all__ = ["MICRO_METHODS"]

STR, INT = ParamKind.STRING, ParamKind.INTEGER
READ, ADMIN = Permission.READ, Permission.ADMIN

_CHANNEL = ParamSpec("channel", STR, help="micropayment channel_id (64 hex digits)", max_length=64)

MICRO_METHODS: tuple[MethodSpec, ...] = (
    MethodSpec(
        ("micro", "open"),
        (
            ParamSpec("node_id", STR, help="a connected peer's node id", max_length=66),
            ParamSpec(
                "amount", INT, help="channel capacity in satoshis", minimum=1, maximum=21_000_000 * 10**8
            ),
            ParamSpec(
                "refund_after",
                INT,
                help="blocks from now until the payer may take the funds back",
                option=True,
                minimum=1,
                maximum=100_000,
            ),
        ),
        ADMIN,
        "open a one-way micropayment channel as the payer; returns once the funding is broadcast",
    ),
    MethodSpec(
        ("micro", "pay"),
        (
            _CHANNEL,
            ParamSpec("amount_msat", INT, help="millisatoshis to add", minimum=1, maximum=21 * 10**17),
        ),
        ADMIN,
        "pay more over a micropayment channel; returns once the payee acknowledged",
    ),
    MethodSpec(("micro", "settle"), (_CHANNEL,), ADMIN, "payee: put the best update on chain"),
    MethodSpec(
        ("micro", "refund"),
        (_CHANNEL,),
        ADMIN,
        "payer: take the funds back once the refund height is reached",
    ),
    MethodSpec(("micro", "list"), (), READ, "our micropayment channels"),
)
