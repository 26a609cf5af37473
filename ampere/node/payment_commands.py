"""RPC/CLI declarations of invoices and payments (handlers: `ampere.api.payment_methods`)."""

from __future__ import annotations

from ampere.node.method_spec import MethodSpec, ParamKind, ParamSpec, Permission

__all__ = ["PAYMENT_METHODS"]

STR, INT = ParamKind.STRING, ParamKind.INTEGER
READ, ADMIN = Permission.READ, Permission.ADMIN

MAX_INVOICE_MSAT = 21_000_000 * 100_000_000 * 1000

PAYMENT_METHODS: tuple[MethodSpec, ...] = (
    MethodSpec(
        ("invoice",),
        (
            ParamSpec(
                "amount_msat", INT, help="amount in millisatoshis", minimum=1, maximum=MAX_INVOICE_MSAT
            ),
            ParamSpec(
                "label",
                STR,
                help="a unique label (default: generated)",
                required=False,
                option=True,
                max_length=256,
            ),
            ParamSpec(
                "description",
                STR,
                help="what the payment is for (default: empty)",
                required=False,
                option=True,
                max_length=639,
            ),
            ParamSpec(
                "expiry",
                INT,
                help="seconds until the invoice expires (default 3600)",
                required=False,
                option=True,
                minimum=1,
                maximum=(1 << 32) - 1,
            ),
        ),
        ADMIN,
        "issue a BOLT 11 invoice",
    ),
    MethodSpec(
        ("pay",),
        (ParamSpec("bolt11", STR, help="the BOLT 11 invoice to pay", max_length=16384),),
        ADMIN,
        "pay a BOLT 11 invoice over a direct channel; waits for the outcome",
    ),
    MethodSpec(("listinvoices",), (), READ, "invoices we issued and their status"),
    MethodSpec(("listpayments",), (), READ, "payments we sent and their status"),
)
