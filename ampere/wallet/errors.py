"""Errors of the on-chain wallet."""

from ampere.errors import AmpereError


class WalletError(AmpereError):
    """Base of the wallet's errors."""


class InsufficientFundsError(WalletError):
    """The spendable coins cannot pay for the outputs and the fee."""

    def __init__(self, needed_sat: int, available_sat: int) -> None:
        super().__init__(f"insufficient funds: need {needed_sat} sat, have {available_sat} sat spendable")
        self.needed_sat = needed_sat
        self.available_sat = available_sat
