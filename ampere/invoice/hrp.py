"""The human-readable part: `ln` + currency prefix + optional amount with multiplier."""

from __future__ import annotations

import re

from ampere.bitcoin.network import Network
from ampere.invoice.errors import InvoiceError
from ampere.invoice.model import MAX_AMOUNT_MSAT

__all__ = ["CURRENCY_PREFIXES", "format_hrp", "parse_hrp"]

#: BOLT 11 currency prefixes (BIP173's HRPs, except signet which BOLT 11 spells `tbs`).
CURRENCY_PREFIXES: dict[Network, str] = {
    Network.MAINNET: "bc",
    Network.TESTNET: "tb",
    Network.SIGNET: "tbs",
    Network.REGTEST: "bcrt",
}
# Longest first, so that `lnbcrt` is regtest and `lntbs` is signet rather than `bc`/`tb` plus junk.
_PREFIX_ORDER = sorted(CURRENCY_PREFIXES.items(), key=lambda item: -len(item[1]))

# The amount counts pico-bitcoin units: one millisatoshi is ten of them.
_PICO_PER_UNIT = {"": 10**12, "m": 10**9, "u": 10**6, "n": 10**3, "p": 1}
_PICO_PER_MSAT = 10
_AMOUNT = re.compile(r"([0-9]+)([munp]?)")
# More digits than this cannot be under MAX_AMOUNT_MSAT with any multiplier; checking the length
# first keeps int() away from giant strings.
_MAX_AMOUNT_DIGITS = 22


def parse_hrp(hrp: str) -> tuple[Network, int | None]:
    """The network and amount (msat, None when absent) of a lowercase human-readable part."""
    if not hrp.startswith("ln"):
        raise InvoiceError(f"human-readable part {hrp!r} does not start with 'ln'")
    rest = hrp[2:]
    for network, prefix in _PREFIX_ORDER:
        amount = rest[len(prefix) :]
        if rest.startswith(prefix) and (not amount or amount[0].isdigit()):
            return network, _parse_amount(amount)
    raise InvoiceError(f"unknown currency prefix in human-readable part {hrp!r}")


def _parse_amount(text: str) -> int | None:
    if not text:
        return None
    match = _AMOUNT.fullmatch(text)
    if match is None:
        raise InvoiceError(
            f"invalid amount {text!r}: expected digits and an optional multiplier m, u, n or p"
        )
    digits, multiplier = match.groups()
    if len(digits) > _MAX_AMOUNT_DIGITS:
        raise InvoiceError(f"amount {text!r} has too many digits")
    pico = int(digits) * _PICO_PER_UNIT[multiplier]
    if pico % _PICO_PER_MSAT:
        raise InvoiceError(f"amount {text!r} has sub-millisatoshi precision (a 'p' amount must end in 0)")
    amount_msat = pico // _PICO_PER_MSAT
    if not 0 < amount_msat <= MAX_AMOUNT_MSAT:
        raise InvoiceError(f"amount {text!r} must be positive and at most 21 million bitcoin")
    return amount_msat


def format_hrp(network: Network, amount_msat: int | None) -> str:
    """The human-readable part, with the amount in its shortest form (largest exact multiplier)."""
    hrp = "ln" + CURRENCY_PREFIXES[network]
    if amount_msat is None:
        return hrp
    if amount_msat <= 0:
        raise InvoiceError(f"amount_msat {amount_msat} must be positive")
    pico = amount_msat * _PICO_PER_MSAT
    for multiplier, unit in _PICO_PER_UNIT.items():
        if pico % unit == 0:
            return f"{hrp}{pico // unit}{multiplier}"
    raise AssertionError("the 'p' unit divides every amount")  # pragma: no cover
