"""The human-readable part: currency prefixes and amounts with multipliers."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from ampere.bitcoin.network import Network
from ampere.invoice import InvoiceError
from ampere.invoice.hrp import format_hrp, parse_hrp
from ampere.invoice.model import MAX_AMOUNT_MSAT


@pytest.mark.parametrize(
    ("hrp", "network", "amount_msat"),
    [
        ("lnbc", Network.MAINNET, None),
        ("lnbc1", Network.MAINNET, 100_000_000_000),
        ("lnbc2500u", Network.MAINNET, 250_000_000),
        ("lnbc20m", Network.MAINNET, 2_000_000_000),
        ("lnbc9678785340p", Network.MAINNET, 967_878_534),
        ("lnbc10p", Network.MAINNET, 1),
        ("lntb1n", Network.TESTNET, 100),
        ("lntbs5m", Network.SIGNET, 500_000_000),
        ("lnbcrt", Network.REGTEST, None),
        ("lnbcrt1u", Network.REGTEST, 100_000),
    ],
)
def test_parse_and_shortest_format(hrp: str, network: Network, amount_msat: int | None) -> None:
    assert parse_hrp(hrp) == (network, amount_msat)
    assert format_hrp(network, amount_msat) == hrp


@pytest.mark.parametrize(
    ("hrp", "message"),
    [
        ("bc", "does not start with 'ln'"),
        ("lnxy", "unknown currency prefix"),
        ("lnbcx", "unknown currency prefix"),
        ("lnbc25x", "invalid amount '25x'"),
        ("lnbc25mm", "invalid amount"),
        ("lnbc1p", "sub-millisatoshi"),
        ("lnbc0", "must be positive"),
        ("lnbc0m", "must be positive"),
        ("lnbc21000001", "at most 21 million"),
        ("lnbc" + "9" * 30, "too many digits"),
    ],
)
def test_bad_hrp_is_refused(hrp: str, message: str) -> None:
    with pytest.raises(InvoiceError, match=message):
        parse_hrp(hrp)


def test_leading_zeros_are_read_as_the_number_they_spell() -> None:
    # Writers must not emit them; the reader rules only fail on non-digits and unknown multipliers.
    assert parse_hrp("lnbc0025m") == (Network.MAINNET, 2_500_000_000)


@given(st.sampled_from(list(Network)), st.integers(min_value=1, max_value=MAX_AMOUNT_MSAT))
def test_amount_roundtrip(network: Network, amount_msat: int) -> None:
    hrp = format_hrp(network, amount_msat)
    assert parse_hrp(hrp) == (network, amount_msat)
    digits = hrp.rstrip("munp")[len("ln") :].lstrip("bcrts")
    assert not digits.startswith("0")
