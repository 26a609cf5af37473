"""Static channel backup: the encrypted file format, the restored-channel record, the close request and
the recognition and signing of our to_remote output from the backup alone. Pure: no I/O but a temp file."""

from __future__ import annotations

import contextlib
import hashlib
import os
import stat
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.ciphers.aead import ChaCha20Poly1305
from hypothesis import given
from hypothesis import strategies as st

from ampere.bitcoin.keys import PublicKey
from ampere.bitcoin.network import Network
from ampere.bitcoin.script import p2pkh_script_code, p2wpkh_script, p2wsh_script
from ampere.bitcoin.sighash import SigHash, bip143_sighash
from ampere.bitcoin.tx import OutPoint, Transaction, TxIn, TxOut
from ampere.channel.transactions.scripts import to_remote_anchors_script
from ampere.channel.twoway.messages import ChannelReestablish, ErrorMessage
from ampere.channel.twoway.state import ChannelType
from ampere.node.backup_codec import (
    BackupContents,
    BackupError,
    BackupFormatError,
    BackupKeyError,
    ChannelBackup,
    check_contents,
    decode_backup,
    decode_channel,
    encode_backup,
    encode_channel,
)
from ampere.node.backup_restore import (
    RestoredChannel,
    RestoreState,
    close_request_messages,
    to_remote_claims,
)
from ampere.node.backup_service import write_atomically
from ampere.node.keys import NodeKeys
from ampere.onchain.claims import build_claim_tx, sign_claim_tx
from ampere.onchain.keys import InMemoryOnchainSigner

MNEMONIC = " ".join(["abandon"] * 23 + ["art"])
KEYS = NodeKeys.from_mnemonic(MNEMONIC, Network.REGTEST)
OTHER_KEYS = NodeKeys.from_mnemonic(" ".join(["zoo"] * 11 + ["wrong"]), Network.REGTEST)
KEY = KEYS.backup_key
PEER = bytes.fromhex("02" + "11" * 32)


def _signer(index: int) -> InMemoryOnchainSigner:
    return InMemoryOnchainSigner(KEYS.channel_keys_root(index).private_key)


def channel(index: int, channel_type: ChannelType = ChannelType.STATIC_REMOTEKEY) -> ChannelBackup:
    ours = _signer(index).basepoints
    theirs = _signer(1000 + index).basepoints
    return ChannelBackup(
        channel_id=hashlib.sha256(b"channel %d" % index).digest(),
        peer_id=PEER,
        peer_addresses=("127.0.0.1:9735", "[::1]:19735") if index % 2 else (),
        funding_outpoint=OutPoint(hashlib.sha256(b"funding %d" % index).digest(), index),
        capacity_sat=1_000_000 + index,
        is_funder=bool(index % 2),
        channel_type=channel_type,
        key_index=index,
        local_to_self_delay=144,
        remote_to_self_delay=2016,
        local_payment_basepoint=ours.payment_basepoint,
        remote_funding_pubkey=theirs.funding_pubkey,
        remote_payment_basepoint=theirs.payment_basepoint,
    )


CONTENTS = BackupContents(
    chain_hash=Network.REGTEST.chain_hash,
    created_at=1_700_000_000,
    next_key_index=7,
    channels=(channel(0), channel(1, ChannelType.ANCHORS), channel(5)),
)


@pytest.fixture(scope="module")
def encoded() -> bytes:
    return encode_backup(CONTENTS, KEY)


def test_round_trip(encoded: bytes) -> None:
    assert decode_backup(encoded, KEY) == CONTENTS
    empty = BackupContents(Network.REGTEST.chain_hash, 0, 0, ())
    assert decode_backup(encode_backup(empty, KEY), KEY) == empty


def test_each_file_gets_a_fresh_nonce(encoded: bytes) -> None:
    again = encode_backup(CONTENTS, KEY)
    assert again != encoded
    assert decode_backup(again, KEY) == CONTENTS


def test_nothing_readable_in_the_file(encoded: bytes) -> None:
    for backup in CONTENTS.channels:
        for secretless in (backup.channel_id, backup.peer_id, backup.funding_outpoint.txid, b"127.0.0.1"):
            assert secretless not in encoded
    assert Network.REGTEST.chain_hash not in encoded


def test_wrong_seed_is_a_key_error(encoded: bytes) -> None:
    with pytest.raises(BackupKeyError, match="seed"):
        decode_backup(encoded, OTHER_KEYS.backup_key)


def test_another_network_is_refused() -> None:
    testnet = BackupContents(Network.TESTNET.chain_hash, 0, 0, (channel(0),))
    with pytest.raises(BackupKeyError, match="network"):
        check_contents(decode_backup(encode_backup(testnet, KEY), KEY), Network.REGTEST.chain_hash)
    check_contents(CONTENTS, Network.REGTEST.chain_hash)


def test_every_truncation_is_a_format_error(encoded: bytes) -> None:
    for length in range(len(encoded)):
        with pytest.raises(BackupFormatError):
            decode_backup(encoded[:length], KEY)


def test_every_flipped_byte_is_detected(encoded: bytes) -> None:
    for position in range(len(encoded)):
        damaged = bytearray(encoded)
        damaged[position] ^= 0x01
        with pytest.raises(BackupFormatError):
            decode_backup(bytes(damaged), KEY)


def test_tampering_that_fixes_the_checksum_still_fails_authentication(encoded: bytes) -> None:
    body = bytearray(encoded[:-4])
    body[30] ^= 0x80  # inside the ciphertext
    forged = bytes(body) + hashlib.sha256(bytes(body)).digest()[:4]
    with pytest.raises(BackupKeyError):
        decode_backup(forged, KEY)


def test_version_and_magic(encoded: bytes) -> None:
    with pytest.raises(BackupFormatError, match="magic"):
        decode_backup(b"NOTSCB" + encoded[6:], KEY)
    with pytest.raises(BackupFormatError, match="version 2"):
        decode_backup(encoded[:6] + b"\x02" + encoded[7:], KEY)


def test_invalid_values_are_refused() -> None:
    with pytest.raises(BackupFormatError):
        ChannelBackup(**{**_fields(channel(0)), "peer_id": b"\x02" * 32})
    with pytest.raises(BackupFormatError):
        ChannelBackup(**{**_fields(channel(0)), "capacity_sat": 0})
    with pytest.raises(BackupError):
        encode_backup(CONTENTS, b"short key")


def _fields(backup: ChannelBackup) -> dict[str, object]:
    return {name: getattr(backup, name) for name in ChannelBackup.__slots__}


@given(st.binary(max_size=600))
def test_fuzz_decode_raises_only_backup_errors(data: bytes) -> None:
    for candidate in (data, b"AMPSCB\x01" + data):
        with contextlib.suppress(BackupError):
            decode_backup(candidate, KEY)


def _sealed(plaintext: bytes) -> bytes:
    """A well-formed, authentic file around any plaintext: what only our own seed could make."""
    header, nonce = b"AMPSCB\x01", bytes(12)
    body = header + nonce + ChaCha20Poly1305(KEY).encrypt(nonce, plaintext, header)
    return body + hashlib.sha256(body).digest()[:4]


@given(st.binary(max_size=600))
def test_fuzz_authentic_but_malformed_contents(plaintext: bytes) -> None:
    with contextlib.suppress(BackupError):
        decode_backup(_sealed(plaintext), KEY)


@given(st.integers(min_value=0, max_value=2000), st.binary(min_size=1, max_size=8))
def test_fuzz_mutated_contents(position: int, noise: bytes) -> None:
    plaintext = bytearray(decode_plaintext_of(encode_backup(CONTENTS, KEY, nonce=bytes(12))))
    at = position % len(plaintext)
    plaintext[at : at + len(noise)] = noise
    with contextlib.suppress(BackupError):
        decode_backup(_sealed(bytes(plaintext)), KEY)


def decode_plaintext_of(encoded: bytes) -> bytes:
    body = encoded[:-4]
    return ChaCha20Poly1305(KEY).decrypt(body[7:19], body[19:], body[:7])


@given(st.binary(max_size=400))
def test_fuzz_channel_record_raises_only_backup_errors(data: bytes) -> None:
    with contextlib.suppress(BackupError):
        decode_channel(data)


@given(st.integers(min_value=0, max_value=1000), st.integers(min_value=0, max_value=255))
def test_fuzz_damaged_files(position: int, mask: int) -> None:
    encoded = encode_backup(CONTENTS, KEY, nonce=bytes(12))
    damaged = bytearray(encoded)
    damaged[position % len(damaged)] ^= mask
    if bytes(damaged) == encoded:
        assert decode_backup(encoded, KEY) == CONTENTS
        return
    with pytest.raises(BackupError):
        decode_backup(bytes(damaged), KEY)


def test_channel_record_round_trip() -> None:
    for index in (0, 1):
        backup = channel(index)
        assert decode_channel(encode_channel(backup)) == backup
    sweep = Transaction(2, (TxIn(OutPoint(b"\x01" * 32, 0), b"", 1),), (TxOut(5000, p2wpkh_script(PEER)),), 0)
    restored = RestoredChannel(channel(1), RestoreState.SWEEPING, b"\x07" * 32, 120, sweep, None, 5300)
    assert RestoredChannel.decode(restored.encode()) == restored
    waiting = RestoredChannel(channel(0), RestoreState.WAITING_CLOSE)
    assert RestoredChannel.decode(waiting.encode()) == waiting
    assert waiting.to_json()["state"] == "waiting_close"


def test_close_request_is_what_bolt2_says_a_node_that_lost_its_state_sends() -> None:
    backup = channel(3)
    reestablish, error = close_request_messages(backup)
    assert isinstance(reestablish, ChannelReestablish) and isinstance(error, ErrorMessage)
    # "if next_commitment_number is zero: MUST immediately fail the channel and broadcast".
    assert reestablish.channel_id == backup.channel_id and reestablish.next_commitment_number == 0
    # "if next_revocation_number equals 0: MUST set your_last_per_commitment_secret to all zeroes".
    assert reestablish.next_revocation_number == 0
    assert reestablish.your_last_per_commitment_secret == bytes(32)
    PublicKey(reestablish.my_current_per_commitment_point)  # "MUST set ... to a valid point"
    # The error names the channel, not all channels (all-zero id), and goes on the wire as type 17.
    assert error.channel_id == backup.channel_id and error.to_wire().type == 17
    assert reestablish.to_wire().type == 136


@pytest.mark.parametrize("channel_type", [ChannelType.STATIC_REMOTEKEY, ChannelType.ANCHORS])
def test_to_remote_is_found_and_signed_from_the_backup_alone(channel_type: ChannelType) -> None:
    backup = channel(4, channel_type)
    payment = backup.local_payment_basepoint
    if channel_type is ChannelType.ANCHORS:
        ours_script = p2wsh_script(to_remote_anchors_script(payment))
    else:
        ours_script = p2wpkh_script(payment)
    commitment = Transaction(
        2,
        (TxIn(backup.funding_outpoint, b"", 0x80000000),),
        (TxOut(330, p2wpkh_script(PEER)), TxOut(400_000, ours_script), TxOut(500_000, p2wpkh_script(PEER))),
        0x20000000,
    )
    claims = to_remote_claims(backup, commitment)
    assert [(c.outpoint, c.amount_sat) for c in claims] == [(commitment.outpoint(1), 400_000)]
    # Anchors: the output carries `1 OP_CSV`, so the sweep's nSequence must be 1.
    assert claims[0].sequence == (1 if channel_type is ChannelType.ANCHORS else 0xFFFFFFFD)
    destination = p2wpkh_script(KEYS.node_id)
    sweep = sign_claim_tx(build_claim_tx(claims, destination, 253), claims, _signer(4))
    assert sweep.outputs[0].script_pubkey == destination
    assert 0 < 400_000 - sweep.outputs[0].value < 1000  # the fee at 253 sat/kw
    witness = sweep.inputs[0].witness
    if channel_type is ChannelType.ANCHORS:
        script_code = witness[-1]
        assert p2wsh_script(script_code) == ours_script
    else:
        assert witness[1] == payment
        script_code = p2pkh_script_code(payment)
    digest = bip143_sighash(sweep, 0, script_code, 400_000, SigHash.ALL)
    assert witness[0][-1] == SigHash.ALL
    assert PublicKey(payment).verify(witness[0][:-1], digest)
    # Another channel's keys do not match: nothing to claim.
    assert to_remote_claims(channel(6, channel_type), commitment) == []


def test_write_atomically(tmp_path: Path) -> None:
    target = tmp_path / "backup.scb"
    write_atomically(target, b"first")
    write_atomically(target, b"second")
    assert target.read_bytes() == b"second"
    assert stat.S_IMODE(os.stat(target).st_mode) == 0o600
    assert [p.name for p in tmp_path.iterdir()] == ["backup.scb"]
