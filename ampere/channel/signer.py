"""The channel signer: every private key a two-way channel uses, behind one interface.

The channel state machine never touches a private key. It asks a `ChannelSigner` for points,
signatures and revocation secrets, so that the keys can live elsewhere (an HSM, a remote signer)
as in LDK. A signer is also the last line of defence against a buggy or compromised state
machine, so `InMemorySigner` enforces, like LDK's enforcing signer:

* a per-commitment secret is only released for a holder commitment that has been superseded
  (releasing the current one would let the peer take every output of our latest commitment);
* a counterparty commitment is never signed for a number below one already signed, and never
  more than one commitment ahead of the last revocation received (we would otherwise hold two
  unrevoked commitments of the peer at once, which the protocol never needs).

Signatures are DER without the sighash byte, the form `ampere.channel.transactions` works in.
"""

from __future__ import annotations

import hashlib
import hmac
from dataclasses import dataclass
from typing import Protocol, runtime_checkable

from ampere.bitcoin.keys import pubkey_from_secret
from ampere.channel.transactions.closing import ClosingTransaction, sign_closing
from ampere.channel.transactions.commitment import CommitmentTransaction
from ampere.channel.transactions.htlc import HtlcTransaction, htlc_transactions
from ampere.channel.transactions.keys import ChannelBasepoints
from ampere.channel.transactions.signing import sign_commitment, sign_local_htlc, sign_remote_htlc
from ampere.crypto.keys import CURVE_ORDER, derive_privkey
from ampere.crypto.shachain import MAX_INDEX, PerCommitmentSecretGenerator
from ampere.errors import AmpereError

__all__ = [
    "ChannelSigner",
    "CounterpartySignatures",
    "InMemorySigner",
    "SignerEnforcementError",
    "SignerState",
    "derive_channel_secret",
]


class SignerEnforcementError(AmpereError):
    """The signer refused a request that would put the channel's funds at risk."""


@dataclass(frozen=True, slots=True)
class CounterpartySignatures:
    """What goes into commitment_signed: the commitment signature and one per HTLC output,
    in the commitment's HTLC output order."""

    commitment_signature: bytes
    htlc_signatures: tuple[bytes, ...]


@dataclass(frozen=True, slots=True)
class SignerState:
    """The enforcement counters, so that a restarted signer picks up where it stopped.

    `holder_commitment_number`: our newest commitment the channel has accepted (its previous
    ones may be revoked). `counterparty_signed`: the highest peer commitment signed (-1: none).
    `counterparty_revoked`: the highest peer commitment whose revocation was received (-1: none).
    """

    holder_commitment_number: int = 0
    counterparty_signed: int = -1
    counterparty_revoked: int = -1


@runtime_checkable
class ChannelSigner(Protocol):
    """Keys and signatures of one channel; implementations must be deterministic per channel."""

    @property
    def basepoints(self) -> ChannelBasepoints:
        """Our funding pubkey and basepoints, as sent in open_channel/accept_channel."""
        ...

    def per_commitment_point(self, commitment_number: int) -> bytes:
        """The point of our commitment `commitment_number` (points are public: always allowed)."""
        ...

    def validate_holder_commitment(self, commitment_number: int) -> None:
        """Record that the channel accepted our commitment `commitment_number` (after checking
        the peer's signatures), so that the secrets of the ones before it may be released."""
        ...

    def release_commitment_secret(self, commitment_number: int) -> bytes:
        """The per-commitment secret that revokes our commitment `commitment_number`."""
        ...

    def validate_counterparty_revocation(self, commitment_number: int) -> None:
        """Record that the peer revoked its commitment `commitment_number` (secret verified)."""
        ...

    def sign_counterparty_commitment(
        self, commitment: CommitmentTransaction, per_commitment_point: bytes
    ) -> CounterpartySignatures:
        """Sign the peer's commitment (built at the peer's `per_commitment_point`) and its HTLC
        transactions."""
        ...

    def sign_holder_commitment(self, commitment: CommitmentTransaction) -> bytes:
        """Our own signature of our commitment: only needed to broadcast it."""
        ...

    def sign_holder_htlc_transaction(self, htlc_tx: HtlcTransaction, per_commitment_point: bytes) -> bytes:
        """Our signature of an HTLC transaction spending our own commitment."""
        ...

    def sign_closing_transaction(self, closing: ClosingTransaction) -> bytes:
        """Our signature of a mutual closing transaction."""
        ...

    @property
    def state(self) -> SignerState:
        """The enforcement counters, to persist or inspect."""
        ...

    def restore(self, state: SignerState) -> None:
        """Ratchet the counters forward to a persisted state (never backward)."""
        ...


def derive_channel_secret(root: bytes, label: bytes) -> bytes:
    """The channel secret named `label` (`funding`, `revocation`, `payment`, `delayed_payment`, `htlc`,
    `shachain`) of the channel key `root`: what `InMemorySigner` holds, for other signers of the same
    channel (the on-chain one) to derive the same keys."""
    secret = hmac.new(root, b"ampere/channel/" + label, hashlib.sha256).digest()
    # A value at or above the group order happens with probability ~2^-128; refuse rather
    # than silently reduce, so that every implementation derives the same keys.
    if not 0 < int.from_bytes(secret, "big") < CURVE_ORDER:
        raise SignerEnforcementError(f"derived {label.decode()} secret is not a valid scalar")
    return secret


class InMemorySigner:
    """A `ChannelSigner` holding every key in memory, all derived from one 32-byte root.

    The node derives one root per channel from its BIP39 seed, so a channel's keys can be
    re-derived after a restore. The root is never printed.
    """

    __slots__ = (
        "_basepoints",
        "_delayed_payment_secret",
        "_funding_secret",
        "_htlc_secret",
        "_payment_secret",
        "_revocation_secret",
        "_secrets",
        "_state",
    )

    def __init__(self, root: bytes, state: SignerState | None = None) -> None:
        if not isinstance(root, bytes) or len(root) != 32:
            raise SignerEnforcementError("channel key root must be 32 bytes")
        self._funding_secret = derive_channel_secret(root, b"funding")
        self._revocation_secret = derive_channel_secret(root, b"revocation")
        self._payment_secret = derive_channel_secret(root, b"payment")
        self._delayed_payment_secret = derive_channel_secret(root, b"delayed_payment")
        self._htlc_secret = derive_channel_secret(root, b"htlc")
        self._secrets = PerCommitmentSecretGenerator(derive_channel_secret(root, b"shachain"))
        self._basepoints = ChannelBasepoints(
            funding_pubkey=pubkey_from_secret(self._funding_secret),
            revocation_basepoint=pubkey_from_secret(self._revocation_secret),
            payment_basepoint=pubkey_from_secret(self._payment_secret),
            delayed_payment_basepoint=pubkey_from_secret(self._delayed_payment_secret),
            htlc_basepoint=pubkey_from_secret(self._htlc_secret),
        )
        self._state = SignerState()
        if state is not None:
            self.restore(state)

    def __repr__(self) -> str:
        return f"InMemorySigner(funding_pubkey={self._basepoints.funding_pubkey.hex()}, {self._state})"

    @property
    def basepoints(self) -> ChannelBasepoints:
        return self._basepoints

    @property
    def state(self) -> SignerState:
        return self._state

    def restore(self, state: SignerState) -> None:
        current = self._state
        self._state = SignerState(
            holder_commitment_number=max(current.holder_commitment_number, state.holder_commitment_number),
            counterparty_signed=max(current.counterparty_signed, state.counterparty_signed),
            counterparty_revoked=max(current.counterparty_revoked, state.counterparty_revoked),
        )

    # --- our commitments ---------------------------------------------------------------------

    @staticmethod
    def _check_number(commitment_number: int) -> None:
        if not 0 <= commitment_number <= MAX_INDEX:
            raise SignerEnforcementError(f"commitment number out of range: {commitment_number}")

    def per_commitment_point(self, commitment_number: int) -> bytes:
        self._check_number(commitment_number)
        return self._secrets.point(commitment_number)

    def validate_holder_commitment(self, commitment_number: int) -> None:
        self._check_number(commitment_number)
        current = self._state.holder_commitment_number
        if commitment_number not in (current, current + 1):
            raise SignerEnforcementError(f"holder commitment {commitment_number} does not follow {current}")
        self._state = SignerState(
            commitment_number, self._state.counterparty_signed, self._state.counterparty_revoked
        )

    def release_commitment_secret(self, commitment_number: int) -> bytes:
        self._check_number(commitment_number)
        if commitment_number >= self._state.holder_commitment_number:
            raise SignerEnforcementError(
                f"refusing to revoke commitment {commitment_number}: it is not superseded "
                f"(current is {self._state.holder_commitment_number})"
            )
        return self._secrets.secret(commitment_number)

    def sign_holder_commitment(self, commitment: CommitmentTransaction) -> bytes:
        if commitment.commitment_number < self._state.holder_commitment_number:
            raise SignerEnforcementError(
                f"refusing to sign revoked holder commitment {commitment.commitment_number}"
            )
        return sign_commitment(commitment, self._funding_secret)

    def sign_holder_htlc_transaction(self, htlc_tx: HtlcTransaction, per_commitment_point: bytes) -> bytes:
        return sign_local_htlc(htlc_tx, derive_privkey(self._htlc_secret, per_commitment_point))

    # --- the counterparty's commitments ---------------------------------------------------------

    def validate_counterparty_revocation(self, commitment_number: int) -> None:
        self._check_number(commitment_number)
        expected = self._state.counterparty_revoked + 1
        if commitment_number != expected and commitment_number > self._state.counterparty_revoked:
            raise SignerEnforcementError(f"counterparty revoked {commitment_number}, expected {expected}")
        self._state = SignerState(
            self._state.holder_commitment_number,
            self._state.counterparty_signed,
            max(commitment_number, self._state.counterparty_revoked),
        )

    def sign_counterparty_commitment(
        self, commitment: CommitmentTransaction, per_commitment_point: bytes
    ) -> CounterpartySignatures:
        number = commitment.commitment_number
        self._check_number(number)
        if number < self._state.counterparty_signed:
            raise SignerEnforcementError(
                f"refusing to sign counterparty commitment {number}: already signed "
                f"{self._state.counterparty_signed}"
            )
        if number > self._state.counterparty_revoked + 2:
            raise SignerEnforcementError(
                f"refusing to sign counterparty commitment {number}: commitment "
                f"{number - 2} has not been revoked"
            )
        htlc_key = derive_privkey(self._htlc_secret, per_commitment_point)
        signatures = CounterpartySignatures(
            commitment_signature=sign_commitment(commitment, self._funding_secret),
            htlc_signatures=tuple(
                sign_remote_htlc(htlc_tx, htlc_key) for htlc_tx in htlc_transactions(commitment)
            ),
        )
        self._state = SignerState(
            self._state.holder_commitment_number, number, self._state.counterparty_revoked
        )
        return signatures

    # --- closing ---------------------------------------------------------------------------------

    def sign_closing_transaction(self, closing: ClosingTransaction) -> bytes:
        return sign_closing(closing, self._funding_secret)
