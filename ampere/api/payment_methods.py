"""Handlers of `invoice`, `pay`, `listinvoices` and `listpayments`, and the JSON-RPC errors of payments.

Replies follow the contracts: amounts in msat integers, hex lowercase, lists wrapped in an object.
`pay` and `listpayments` also carry `failure` (null unless the payment failed), so that a program sees
why without reading the log.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from ampere.api.errors import ErrorCode, RpcError, register_error
from ampere.api.registry import Handler, MethodRegistry
from ampere.invoice import DEFAULT_EXPIRY
from ampere.node.payment_commands import PAYMENT_METHODS
from ampere.node.payment_errors import (
    AlreadyPaidError,
    DuplicateLabelError,
    InvalidInvoiceError,
    InvoiceExpiredError,
    NoRouteError,
    PaymentError,
    PaymentInProgressError,
    SelfPaymentError,
)
from ampere.node.payments import InvoiceView, PaymentService
from ampere.store.payments import PaymentRecord

__all__ = ["invoice_json", "payment_json", "register_payment_methods"]


def register_payment_methods(registry: MethodRegistry, service: PaymentService) -> None:
    handlers = _handlers(service)
    for spec in PAYMENT_METHODS:
        registry.register(spec, handlers[spec.name])


def payment_json(record: PaymentRecord) -> dict[str, Any]:
    preimage = record.payment_preimage
    return {
        "payment_hash": record.payment_hash.hex(),
        "payment_preimage": None if preimage is None else preimage.hex(),
        "amount_msat": record.amount_msat,
        "fee_msat": record.fee_msat,
        "status": record.status.value,
        "failure": record.failure,
    }


def invoice_json(view: InvoiceView) -> dict[str, Any]:
    record = view.record
    return {
        "label": record.label,
        "payment_hash": record.payment_hash.hex(),
        "amount_msat": record.amount_msat,
        "status": view.status.value,
        "paid_at": record.paid_at,
    }


def _handlers(service: PaymentService) -> Mapping[str, Handler]:
    async def invoice(params: dict[str, Any]) -> Any:
        expiry = params["expiry"]
        record = await service.create_invoice(
            params["amount_msat"],
            label=params["label"],
            description=params["description"] or "",
            expiry=DEFAULT_EXPIRY if expiry is None else expiry,
        )
        return {
            "bolt11": record.bolt11,
            "payment_hash": record.payment_hash.hex(),
            "payment_secret": record.payment_secret.hex(),
            "amount_msat": record.amount_msat,
            "expires_at": record.expires_at,
        }

    async def pay(params: dict[str, Any]) -> Any:
        return payment_json(await service.pay(params["bolt11"]))

    async def listinvoices(_params: dict[str, Any]) -> Any:
        return {"invoices": [invoice_json(view) for view in service.list_invoices()]}

    async def listpayments(_params: dict[str, Any]) -> Any:
        return {"payments": [payment_json(record) for record in service.list_payments()]}

    return {"invoice": invoice, "pay": pay, "listinvoices": listinvoices, "listpayments": listpayments}


def _with_code(code: ErrorCode) -> Any:
    def convert(exc: Exception) -> RpcError:
        return RpcError(code, str(exc))

    return convert


for _type, _code in (
    (PaymentError, ErrorCode.PAYMENT_ERROR),
    (InvalidInvoiceError, ErrorCode.INVALID_INVOICE),
    (InvoiceExpiredError, ErrorCode.INVALID_INVOICE),
    (SelfPaymentError, ErrorCode.INVALID_INVOICE),
    (AlreadyPaidError, ErrorCode.ALREADY_PAID),
    (PaymentInProgressError, ErrorCode.ALREADY_PAID),
    (NoRouteError, ErrorCode.NO_ROUTE),
    (DuplicateLabelError, ErrorCode.DUPLICATE_LABEL),
):
    register_error(_type, _with_code(_code))
