"""JSON-RPC error codes of the node API, and the mapping from typed node errors to them.

Standard codes for malformed calls; -32000..-32099 for application errors, with what a program needs
to react (amounts, reject reasons) in `data`. Later issues map their own errors with `register_error`.
"""

from __future__ import annotations

import enum
import logging
from collections.abc import Callable

from ampere.chain.errors import BroadcastError, ChainError, ChainUnavailableError
from ampere.chain.jsonrpc import RpcError
from ampere.errors import AmpereError
from ampere.node.errors import InvalidArgumentError, NotFoundError, NotSupportedError
from ampere.node.peer_protocol import PeerError
from ampere.store.errors import StoreError
from ampere.wallet.errors import InsufficientFundsError, WalletError

__all__ = ["ErrorCode", "RpcError", "register_error", "to_rpc_error"]

log = logging.getLogger(__name__)


class ErrorCode(enum.IntEnum):
    PARSE_ERROR = -32700
    INVALID_REQUEST = -32600
    METHOD_NOT_FOUND = -32601
    INVALID_PARAMS = -32602
    INTERNAL_ERROR = -32603
    # application errors
    APPLICATION_ERROR = -32000
    INSUFFICIENT_FUNDS = -32001  # data: needed_sat, available_sat
    BROADCAST_REJECTED = -32002  # data: reason (ampere.chain.errors.RejectReason value), detail
    PEER_ERROR = -32003  # cannot connect, handshake failed, peer not connected
    NOT_FOUND = -32004  # unknown peer, channel, ...
    NOT_SUPPORTED = -32005  # e.g. generate outside regtest
    CHAIN_UNAVAILABLE = -32006  # the chain backend does not answer
    WALLET_ERROR = -32007
    STORE_ERROR = -32008
    UNAUTHORIZED = -32010  # HTTP 401: no token or a wrong one
    FORBIDDEN = -32011  # HTTP 403: the read-only token on an admin method
    CHANNEL_REFUSED = -32020  # the peer refused the channel, or the channel refused the command
    PAYMENT_ERROR = -32030  # an invoice or payment cannot be made as asked
    INVALID_INVOICE = -32031  # undecodable, other network, no amount, expired, our own
    ALREADY_PAID = -32032  # the payment hash was paid already, or its payment is pending
    NO_ROUTE = -32033  # no channel can carry the payment to the payee
    DUPLICATE_LABEL = -32034
    MICRO_CHAIN_REFUSED = -32040  # the chain refused a micropayment channel transaction (reason in data)


ErrorConverter = Callable[[Exception], RpcError]
_CONVERTERS: list[tuple[type[Exception], ErrorConverter]] = []


def register_error(exc_type: type[Exception], converter: ErrorConverter) -> None:
    """Map `exc_type` (and subclasses) to a JSON-RPC error; later registrations take precedence."""
    _CONVERTERS.insert(0, (exc_type, converter))


def to_rpc_error(exc: Exception) -> RpcError:
    """The JSON-RPC error for an exception a method raised; unknown ones are -32603 (and logged)."""
    if isinstance(exc, RpcError):
        return exc
    for exc_type, converter in _CONVERTERS:
        if isinstance(exc, exc_type):
            return converter(exc)
    log.error("RPC method failed", exc_info=exc)
    return RpcError(ErrorCode.INTERNAL_ERROR, "Internal error")


def _simple(code: ErrorCode) -> ErrorConverter:
    def convert(exc: Exception) -> RpcError:
        return RpcError(code, str(exc))

    return convert


def _invalid_argument(exc: Exception) -> RpcError:
    assert isinstance(exc, InvalidArgumentError)
    return RpcError(
        ErrorCode.INVALID_PARAMS, f"Invalid params: {exc}", {"param": exc.param, "reason": exc.reason}
    )


def _insufficient_funds(exc: Exception) -> RpcError:
    assert isinstance(exc, InsufficientFundsError)
    data = {"needed_sat": exc.needed_sat, "available_sat": exc.available_sat}
    return RpcError(ErrorCode.INSUFFICIENT_FUNDS, str(exc), data)


def _broadcast(exc: Exception) -> RpcError:
    assert isinstance(exc, BroadcastError)
    return RpcError(
        ErrorCode.BROADCAST_REJECTED,
        f"Transaction rejected: {exc}",
        {"reason": exc.reason.value, "detail": exc.detail},
    )


for _type, _converter in (
    (AmpereError, _simple(ErrorCode.APPLICATION_ERROR)),
    (StoreError, _simple(ErrorCode.STORE_ERROR)),
    (WalletError, _simple(ErrorCode.WALLET_ERROR)),
    (ChainError, _simple(ErrorCode.CHAIN_UNAVAILABLE)),
    (ChainUnavailableError, _simple(ErrorCode.CHAIN_UNAVAILABLE)),
    (PeerError, _simple(ErrorCode.PEER_ERROR)),
    (NotFoundError, _simple(ErrorCode.NOT_FOUND)),
    (NotSupportedError, _simple(ErrorCode.NOT_SUPPORTED)),
    (InvalidArgumentError, _invalid_argument),
    (InsufficientFundsError, _insufficient_funds),
    (BroadcastError, _broadcast),
):
    register_error(_type, _converter)
