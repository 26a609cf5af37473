"""Two parties and their channels at the transaction level, both sides' keys in one process.

There are no peers and no wire here: what two nodes would negotiate is simply computed for both.
What goes on chain, though, is built the way a node builds it (basepoints and per-commitment
secrets from seeds, keys derived per commitment, the BOLT 3 builders and signers), so the kernel
that judges it judges the real thing. The demo narrates these transactions and the scenario tests
assert on them.

    alice, bob = Party("Alice", seed_a), Party("Bob", seed_b)
    channel = Channel(alice, bob, index=0, config=ChannelConfig(...))
    funding = channel.funding_transaction(chain)      # from Alice's wallet; submit it
    state = channel.state(0, alice_msat, bob_msat)
    commitment = channel.commitment(alice, state)      # Alice's view of that state
    tx = channel.signed_commitment(alice, state)       # Bob's signature checked, then Alice's
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace

from ampere.bitcoin.bip32 import ExtendedPrivateKey
from ampere.bitcoin.hashes import sha256
from ampere.bitcoin.keys import PrivateKey, pubkey_from_secret
from ampere.bitcoin.network import Network
from ampere.bitcoin.script import Op, build_script, p2wsh_script
from ampere.bitcoin.sighash import SigHash
from ampere.bitcoin.signing import sign_p2wpkh_input
from ampere.bitcoin.tx import OutPoint, Transaction, TxOut
from ampere.chain.embedded import EmbeddedChain
from ampere.channel.sweep import (
    build_sweep_tx,
    sign_sweep,
    to_local_delayed_spec,
    to_local_revocation_spec,
    to_remote_anchors_spec,
    to_remote_spec,
)
from ampere.channel.transactions import (
    ChannelBasepoints,
    CommitmentFormat,
    CommitmentParams,
    CommitmentTransaction,
    Htlc,
    HtlcDirection,
    HtlcTransaction,
    OutputKind,
    build_commitment,
    commitment_number_from_tx,
    commitment_obscuring_factor,
    derive_commitment_keys,
    finalize_commitment,
    finalize_htlc_tx,
    find_funding_output,
    funding_script_pubkey,
    sign_commitment,
    sign_local_htlc,
    sign_remote_htlc,
    verify_commitment_signature,
    verify_remote_htlc_signature,
)
from ampere.channel.transactions.commitment import CommitmentOutput
from ampere.channel.transactions.htlc import htlc_transaction_for_output
from ampere.channel.transactions.signing import (
    remote_htlc_sighash_type,
    to_local_delayed_witness,
    to_local_revocation_witness,
    to_remote_anchors_witness,
    to_remote_witness,
)
from ampere.crypto.keys import derive_privkey, derive_revocation_privkey
from ampere.crypto.shachain import PerCommitmentSecretGenerator, ShachainStore
from ampere.errors import AmpereError
from ampere.onchain.fees import grow_for_fee as _grow_for_fee
from ampere.wallet.wallet import Wallet

# Blocks mined only to let time pass pay an anyone-can-spend P2WSH(OP_TRUE): nobody's balance.
SINK_SCRIPT = p2wsh_script(build_script(Op.OP_1))
COINBASE_MATURITY = 100


class KitError(AmpereError):
    """The kit was asked for something the channel does not have (an output, a secret, ...)."""


# --- keys ----------------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True, repr=False)
class ChannelSecrets:
    """One party's secrets for one channel: the basepoint secrets and the shachain seed."""

    funding: bytes
    revocation_basepoint: bytes
    payment_basepoint: bytes
    delayed_payment_basepoint: bytes
    htlc_basepoint: bytes
    shachain: PerCommitmentSecretGenerator

    def __repr__(self) -> str:
        return "ChannelSecrets(<hidden>)"

    @classmethod
    def derive(cls, seed: bytes, channel_index: int) -> ChannelSecrets:
        # Per-channel keys: sharing per-commitment secrets between channels would let a revealed
        # secret of one channel punish a current state of another.
        def secret(label: str) -> bytes:
            return sha256(seed + channel_index.to_bytes(4, "big") + label.encode())

        return cls(
            funding=secret("funding"),
            revocation_basepoint=secret("revocation"),
            payment_basepoint=secret("payment"),
            delayed_payment_basepoint=secret("delayed"),
            htlc_basepoint=secret("htlc"),
            shachain=PerCommitmentSecretGenerator(secret("shachain")),
        )

    @property
    def basepoints(self) -> ChannelBasepoints:
        return ChannelBasepoints(
            funding_pubkey=pubkey_from_secret(self.funding),
            revocation_basepoint=pubkey_from_secret(self.revocation_basepoint),
            payment_basepoint=pubkey_from_secret(self.payment_basepoint),
            delayed_payment_basepoint=pubkey_from_secret(self.delayed_payment_basepoint),
            htlc_basepoint=pubkey_from_secret(self.htlc_basepoint),
        )


class Party:
    """A person in the story: a seed, a BIP84 wallet fed with the chain's blocks, channel keys."""

    def __init__(self, name: str, seed: bytes) -> None:
        if len(seed) != 32:
            raise ValueError("a party's seed is 32 bytes")
        self.name = name
        self._seed = seed
        self.wallet = Wallet(ExtendedPrivateKey.from_seed(seed), Network.REGTEST)

    def __repr__(self) -> str:
        return f"Party({self.name!r})"

    def channel_secrets(self, channel_index: int) -> ChannelSecrets:
        return ChannelSecrets.derive(self._seed, channel_index)

    def sync(self, chain: EmbeddedChain) -> None:
        """Feed the wallet the blocks it has not seen (the kit never reorganises the chain)."""
        for height in range(self.wallet.synced_height + 1, chain.tip_height() + 1):
            block_hash = chain.block_hash(height)
            info = None if block_hash is None else chain.block_info(block_hash)
            if info is None:
                raise KitError(f"block {height} vanished while syncing {self.name}'s wallet")
            self.wallet.apply_block(info)

    def balance_sat(self, chain: EmbeddedChain) -> int:
        self.sync(chain)
        confirmed, unconfirmed = self.wallet.balance(chain.tip_height())
        return confirmed + unconfirmed

    def fee_coin(self, chain: EmbeddedChain, minimum_sat: int) -> FeeCoin:
        """A confirmed wallet coin of at least `minimum_sat`, with its key, to pay someone's fee."""
        self.sync(chain)
        coins = [c for c in self.wallet.spendable_coins(chain.tip_height()) if c.value >= minimum_sat]
        if not coins:
            raise KitError(f"{self.name} has no coin of {minimum_sat} sat to pay a fee with")
        coin = min(coins, key=lambda c: (c.value, c.outpoint))
        return FeeCoin(coin.outpoint, coin.value, self.wallet.keychain.private_key(coin.path))


@dataclass(frozen=True, slots=True)
class FeeCoin:
    """A P2WPKH coin someone adds to a pre-signed transaction to pay its fee."""

    outpoint: OutPoint
    value: int
    key: PrivateKey


def mine_to_wallets(chain: EmbeddedChain, parties: Sequence[Party]) -> None:
    """One coinbase for each party, then enough blocks for all of them to be spendable."""
    for party in parties:
        chain.generate(1, party.wallet.new_script_pubkey())
    chain.generate(COINBASE_MATURITY, SINK_SCRIPT)
    for party in parties:
        party.sync(chain)


# --- the channel -------------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class ChannelConfig:
    funding_sat: int
    commitment_format: CommitmentFormat
    to_self_delay: int
    feerate_per_kw: int
    dust_limit_sat: int = 354


@dataclass(frozen=True, slots=True)
class ChannelState:
    """One state: balances before fees, and the HTLCs with directions as the opener sees them."""

    number: int
    opener_msat: int
    accepter_msat: int
    htlcs: tuple[Htlc, ...] = ()


class Channel:
    """A channel between an opener and an accepter, seen from above: either side's view on demand."""

    def __init__(self, opener: Party, accepter: Party, index: int, config: ChannelConfig) -> None:
        if opener is accepter:
            raise KitError("a channel needs two parties")
        self.opener = opener
        self.accepter = accepter
        self.index = index
        self.config = config
        self._secrets = {
            id(opener): opener.channel_secrets(index),
            id(accepter): accepter.channel_secrets(index),
        }
        self._basepoints = {key: secrets.basepoints for key, secrets in self._secrets.items()}
        # What each party has learnt of the other's per-commitment secrets (the receiver's store).
        self._received = {id(opener): ShachainStore(), id(accepter): ShachainStore()}
        self.obscuring_factor = commitment_obscuring_factor(
            self.basepoints(opener).payment_basepoint, self.basepoints(accepter).payment_basepoint
        )
        self.funding_outpoint: OutPoint | None = None

    # --- parties and keys ----------------------------------------------------------------------------
    def _check_party(self, party: Party) -> None:
        if id(party) not in self._secrets:
            raise KitError(f"{party.name} is not in this channel")

    def other(self, party: Party) -> Party:
        self._check_party(party)
        return self.accepter if party is self.opener else self.opener

    def secrets(self, party: Party) -> ChannelSecrets:
        self._check_party(party)
        return self._secrets[id(party)]

    def basepoints(self, party: Party) -> ChannelBasepoints:
        self._check_party(party)
        return self._basepoints[id(party)]

    @property
    def funding_script_pubkey(self) -> bytes:
        return funding_script_pubkey(
            self.basepoints(self.opener).funding_pubkey, self.basepoints(self.accepter).funding_pubkey
        )

    @property
    def funding_outpoint_checked(self) -> OutPoint:
        if self.funding_outpoint is None:
            raise KitError("the channel has no funding outpoint yet")
        return self.funding_outpoint

    # --- funding ---------------------------------------------------------------------------------------
    def funding_transaction(self, chain: EmbeddedChain) -> Transaction:
        """The opener's wallet pays the 2-of-2; the channel then knows its funding outpoint."""
        self.opener.sync(chain)
        tx = self.opener.wallet.build_transaction(
            [TxOut(self.config.funding_sat, self.funding_script_pubkey)],
            self.config.feerate_per_kw,
            chain.tip_height(),
        )
        vout = find_funding_output(
            tx,
            self.basepoints(self.opener).funding_pubkey,
            self.basepoints(self.accepter).funding_pubkey,
            self.config.funding_sat,
        )
        self.funding_outpoint = tx.outpoint(vout)
        return tx

    # --- states and commitments ------------------------------------------------------------------------
    def state(
        self, number: int, opener_msat: int, accepter_msat: int, htlcs: Sequence[Htlc] = ()
    ) -> ChannelState:
        return ChannelState(number, opener_msat, accepter_msat, tuple(htlcs))

    def _params(self, owner: Party) -> CommitmentParams:
        return CommitmentParams(
            funding_outpoint=self.funding_outpoint_checked,
            funding_amount_sat=self.config.funding_sat,
            to_self_delay=self.config.to_self_delay,
            dust_limit_sat=self.config.dust_limit_sat,
            owner_is_opener=owner is self.opener,
            obscuring_factor=self.obscuring_factor,
            commitment_format=self.config.commitment_format,
        )

    def commitment(self, owner: Party, state: ChannelState) -> CommitmentTransaction:
        """`owner`'s commitment for `state`, from the keys both could compute from public points."""
        other = self.other(owner)
        point = self.secrets(owner).shachain.point(state.number)
        keys = derive_commitment_keys(point, self.basepoints(owner), self.basepoints(other))
        if owner is self.opener:
            local_msat, remote_msat, htlcs = state.opener_msat, state.accepter_msat, state.htlcs
        else:
            local_msat, remote_msat = state.accepter_msat, state.opener_msat
            htlcs = tuple(htlc.mirrored() for htlc in state.htlcs)
        return build_commitment(
            self._params(owner),
            keys,
            state.number,
            local_msat,
            remote_msat,
            htlcs,
            self.config.feerate_per_kw,
        )

    def peer_commitment_signature(self, owner: Party, commitment: CommitmentTransaction) -> bytes:
        """What the other party sends in commitment_signed for `owner`'s commitment."""
        return sign_commitment(commitment, self.secrets(self.other(owner)).funding)

    def signed_commitment(self, owner: Party, state: ChannelState) -> Transaction:
        """`owner`'s commitment, broadcastable: the peer's signature checked, then the owner's added."""
        commitment = self.commitment(owner, state)
        peer_signature = self.peer_commitment_signature(owner, commitment)
        if not verify_commitment_signature(
            commitment, self.basepoints(self.other(owner)).funding_pubkey, peer_signature
        ):
            raise KitError("the peer's commitment signature does not verify")
        own_signature = sign_commitment(commitment, self.secrets(owner).funding)
        return finalize_commitment(commitment, own_signature, peer_signature)

    # --- revocation ----------------------------------------------------------------------------------------
    def revoke(self, owner: Party, number: int) -> bytes:
        """`owner` gives up commitment `number` by revealing its secret (revoke_and_ack)."""
        secret = self.secrets(owner).shachain.secret(number)
        self._received[id(self.other(owner))].insert_commitment_secret(secret, number)
        return secret

    def identify(self, tx: Transaction) -> int | None:
        """The commitment number a transaction spending the funding output carries, if any."""
        return commitment_number_from_tx(tx, self.obscuring_factor)

    def revealed_secret(self, receiver: Party, number: int) -> bytes | None:
        """The per-commitment secret of the other party's commitment `number`, if it was revealed."""
        store = self._received[id(receiver)]
        # Secrets arrive in order from commitment 0, so the store has every number below the next.
        following = store.next_commitment_number
        if following is not None and number >= following:
            return None
        return store.secret_for_commitment(number)

    # --- HTLC transactions ------------------------------------------------------------------------------
    def htlc_transaction(
        self, commitment: CommitmentTransaction, output: CommitmentOutput
    ) -> HtlcTransaction:
        return htlc_transaction_for_output(commitment, output)

    def _htlc_privkeys(self, owner: Party, commitment: CommitmentTransaction) -> tuple[bytes, bytes]:
        """(owner's, peer's) HTLC private keys for this commitment."""
        point = self.secrets(owner).shachain.point(commitment.commitment_number)
        local = derive_privkey(self.secrets(owner).htlc_basepoint, point)
        remote = derive_privkey(self.secrets(self.other(owner)).htlc_basepoint, point)
        _check_key(local, commitment.keys.local_htlc_pubkey, "owner's HTLC key")
        _check_key(remote, commitment.keys.remote_htlc_pubkey, "peer's HTLC key")
        return local, remote

    def peer_htlc_signature(
        self, owner: Party, commitment: CommitmentTransaction, htlc_tx: HtlcTransaction
    ) -> bytes:
        """The peer's `htlc_signature` for one of `owner`'s HTLC transactions, checked."""
        _, remote = self._htlc_privkeys(owner, commitment)
        signature = sign_remote_htlc(htlc_tx, remote)
        if not verify_remote_htlc_signature(htlc_tx, commitment.keys.remote_htlc_pubkey, signature):
            raise KitError("the peer's HTLC signature does not verify")
        return signature

    def finalize_htlc(
        self,
        owner: Party,
        commitment: CommitmentTransaction,
        htlc_tx: HtlcTransaction,
        peer_signature: bytes,
        *,
        preimage: bytes | None = None,
        fee_coin: FeeCoin | None = None,
        change_script: bytes | None = None,
        check_preimage: bool = True,
    ) -> Transaction:
        """`owner`'s HTLC transaction with both signatures; with `fee_coin`, a wallet input and a
        change output are added first (anchor channels: the peer signed SINGLE|ANYONECANPAY, so
        only the owner's SIGHASH_ALL signature is made over the grown transaction).

        `check_preimage=False` lets a wrong preimage through, to show what the chain does with it.
        """
        local, _ = self._htlc_privkeys(owner, commitment)
        if fee_coin is not None:
            if change_script is None:
                raise KitError("a fee input needs a change script")
            htlc_tx = replace(
                htlc_tx, tx=_grow_for_fee(htlc_tx, fee_coin, change_script, self.config.feerate_per_kw)
            )
        local_signature = sign_local_htlc(htlc_tx, local)
        if check_preimage:
            tx = finalize_htlc_tx(htlc_tx, peer_signature, local_signature, preimage)
        else:
            witness = (
                b"",
                peer_signature + bytes([remote_htlc_sighash_type(htlc_tx.commitment_format)]),
                local_signature + bytes([SigHash.ALL]),
                preimage or b"",
                htlc_tx.input_witness_script,
            )
            tx = htlc_tx.tx.with_witness(0, witness)
        if fee_coin is not None:
            tx = sign_p2wpkh_input(tx, 1, fee_coin.key, fee_coin.value)
        return tx

    # --- sweeps ---------------------------------------------------------------------------------------------
    def sweep_to_local(
        self, owner: Party, commitment: CommitmentTransaction, destination: bytes
    ) -> Transaction:
        """The owner takes its own `to_local` on the delayed path."""
        output = _output(commitment, OutputKind.TO_LOCAL)
        outpoint = OutPoint(commitment.txid, output.index)
        return self.sweep_delayed_output(
            owner,
            commitment.commitment_number,
            outpoint,
            output.amount_sat,
            _witness_script(output),
            destination,
        )

    def sweep_delayed_output(
        self,
        owner: Party,
        commitment_number: int,
        outpoint: OutPoint,
        amount_sat: int,
        witness_script: bytes,
        destination: bytes,
    ) -> Transaction:
        """The delayed path (nSequence = to_self_delay) of a to_local-script output of `owner`'s."""
        secrets = self.secrets(owner)
        point = secrets.shachain.point(commitment_number)
        privkey = derive_privkey(secrets.delayed_payment_basepoint, point)
        spec = to_local_delayed_spec(outpoint, amount_sat, witness_script, self.config.to_self_delay)
        tx = build_sweep_tx(spec, destination, self.config.feerate_per_kw)
        return tx.with_witness(0, to_local_delayed_witness(sign_sweep(tx, spec, privkey), witness_script))

    def penalty_to_local(
        self,
        claimant: Party,
        commitment: CommitmentTransaction,
        per_commitment_secret: bytes,
        destination: bytes,
    ) -> Transaction:
        """The revocation path of the other party's revoked `to_local`, with the revealed secret."""
        output = _output(commitment, OutputKind.TO_LOCAL)
        privkey = derive_revocation_privkey(
            self.secrets(claimant).revocation_basepoint, per_commitment_secret
        )
        _check_key(privkey, commitment.keys.revocation_pubkey, "revocation key")
        return self._revocation_sweep(commitment, output, privkey, destination)

    def forged_penalty_to_local(
        self, claimant: Party, commitment: CommitmentTransaction, destination: bytes
    ) -> Transaction:
        """The revocation path signed with a key the claimant merely has (its own revocation
        basepoint secret): what trying to steal a current, unrevoked state looks like."""
        output = _output(commitment, OutputKind.TO_LOCAL)
        return self._revocation_sweep(
            commitment, output, self.secrets(claimant).revocation_basepoint, destination
        )

    def _revocation_sweep(
        self, commitment: CommitmentTransaction, output: CommitmentOutput, privkey: bytes, destination: bytes
    ) -> Transaction:
        witness_script = _witness_script(output)
        spec = to_local_revocation_spec(
            OutPoint(commitment.txid, output.index), output.amount_sat, witness_script
        )
        tx = build_sweep_tx(spec, destination, self.config.feerate_per_kw)
        return tx.with_witness(0, to_local_revocation_witness(sign_sweep(tx, spec, privkey), witness_script))

    def sweep_to_remote(
        self, claimant: Party, commitment: CommitmentTransaction, destination: bytes
    ) -> Transaction:
        """The non-owner's own balance on the owner's commitment (at once, or after 1 block with anchors)."""
        output = _output(commitment, OutputKind.TO_REMOTE)
        privkey = self.secrets(claimant).payment_basepoint
        _check_key(privkey, commitment.keys.remote_payment_pubkey, "payment basepoint")
        outpoint = OutPoint(commitment.txid, output.index)
        if commitment.commitment_format.has_anchors:
            witness_script = _witness_script(output)
            spec = to_remote_anchors_spec(outpoint, output.amount_sat, witness_script)
            tx = build_sweep_tx(spec, destination, self.config.feerate_per_kw)
            return tx.with_witness(
                0, to_remote_anchors_witness(sign_sweep(tx, spec, privkey), witness_script)
            )
        spec = to_remote_spec(outpoint, output.amount_sat, commitment.keys.remote_payment_pubkey)
        tx = build_sweep_tx(spec, destination, self.config.feerate_per_kw)
        return tx.with_witness(
            0, to_remote_witness(sign_sweep(tx, spec, privkey), commitment.keys.remote_payment_pubkey)
        )


# --- helpers -----------------------------------------------------------------------------------------------


def make_htlc(
    direction: HtlcDirection, htlc_id: int, amount_msat: int, preimage: bytes, cltv_expiry: int
) -> Htlc:
    return Htlc(direction, htlc_id, amount_msat, sha256(preimage), cltv_expiry)


def htlc_output(
    commitment: CommitmentTransaction, direction: HtlcDirection, htlc_id: int
) -> CommitmentOutput:
    """The output of an HTLC (direction as the commitment's owner sees it)."""
    output = commitment.output_for_htlc(direction, htlc_id)
    if output is None:
        raise KitError(f"the commitment has no output for {direction.value} HTLC {htlc_id}")
    return output


def output_of(commitment: CommitmentTransaction, kind: OutputKind) -> CommitmentOutput:
    return _output(commitment, kind)


def _output(commitment: CommitmentTransaction, kind: OutputKind) -> CommitmentOutput:
    output = commitment.output_of_kind(kind)
    if output is None:
        raise KitError(f"the commitment has no {kind.value} output")
    return output


def _witness_script(output: CommitmentOutput) -> bytes:
    if output.witness_script is None:
        raise KitError(f"output {output.index} is not a P2WSH")
    return output.witness_script


def _check_key(privkey: bytes, expected_pubkey: bytes, what: str) -> None:
    # The kit derives private keys along a different path from the builders' public keys; a
    # mismatch is a kit bug that would otherwise surface as a puzzling script failure.
    if pubkey_from_secret(privkey) != expected_pubkey:
        raise KitError(f"derived {what} does not match the commitment's")
