"""BIP143 and legacy signature hashes against the examples printed in bip-0143.mediawiki."""

from __future__ import annotations

from ampere.bitcoin.hashes import sha256
from ampere.bitcoin.keys import PrivateKey, verify_der
from ampere.bitcoin.script import build_script, p2pkh_script_code, push_data
from ampere.bitcoin.sighash import SigHash, bip143_sighash, legacy_sighash
from ampere.bitcoin.tx import Transaction

# --- bip-0143.mediawiki, "Native P2WPKH" ---------------------------------------------------------------
P2WPKH_UNSIGNED = (
    "0100000002fff7f7881a8099afa6940d42d1e7f6362bec38171ea3edf433541db4e4ad969f0000000000eeffffffef51e1b804cc89d1"
    "82d279655c3aa89e815b1b309fe287d9b2b55d57b90ec68a0100000000ffffffff02202cb206000000001976a9148280b37df378db99"
    "f66f85c95a783a76ac7a6d5988ac9093510d000000001976a9143bde42dbee7e4dbe6a21b2d50ce2f0167faa815988ac11000000"
)
P2WPKH_SIGNED = (
    "01000000000102fff7f7881a8099afa6940d42d1e7f6362bec38171ea3edf433541db4e4ad969f00000000494830450221008b9d1dc2"
    "6ba6a9cb62127b02742fa9d754cd3bebf337f7a55d114c8e5cdd30be022040529b194ba3f9281a99f2b1c0a19c0489bc22ede944ccf4"
    "ecbab4cc618ef3ed01eeffffffef51e1b804cc89d182d279655c3aa89e815b1b309fe287d9b2b55d57b90ec68a0100000000ffffffff"
    "02202cb206000000001976a9148280b37df378db99f66f85c95a783a76ac7a6d5988ac9093510d000000001976a9143bde42dbee7e4d"
    "be6a21b2d50ce2f0167faa815988ac000247304402203609e17b84f6a7d30c80bfa610b5b4542f32a8a0d5447a12fb1366d7f01cc44a"
    "0220573a954c4518331561406f90300e8f3358f51928d43c212a8caed02de67eebee0121025476c2e83188368da1ff3e292e7acafcdb"
    "3566bb0ad253f62fc70f07aeee635711000000"
)
P2PK_KEY = "bbc27228ddcb9209d7fd6f36b02f7dfa6252af40bb2f1cbc7a557da8027ff866"
P2PK_SCRIPT = "2103c9f4836b9a4f77fc0d81f7bcb01b7f1b35916864b9476c241ce9fc198bd25432ac"
P2WPKH_KEY = "619c335025c7f4012e556c2a58b2506e30b8511b53ade95ea316fd8c3286feb9"


def test_native_p2wpkh_example_signs_byte_for_byte() -> None:
    tx = Transaction.from_hex(P2WPKH_UNSIGNED)
    assert tx.to_hex() == P2WPKH_UNSIGNED

    p2pk_key = PrivateKey(bytes.fromhex(P2PK_KEY))
    digest0 = legacy_sighash(tx, 0, bytes.fromhex(P2PK_SCRIPT), SigHash.ALL)
    sig0 = p2pk_key.sign(digest0) + bytes([SigHash.ALL])

    wpkh_key = PrivateKey(bytes.fromhex(P2WPKH_KEY))
    pubkey = wpkh_key.public_key.data
    digest1 = bip143_sighash(tx, 1, p2pkh_script_code(pubkey), 600_000_000, SigHash.ALL)
    assert digest1.hex() == "c37af31116d1b27caf68aae9e3ac82f1477929014d5b917657d0eb49478cb670"
    sig1 = wpkh_key.sign(digest1) + bytes([SigHash.ALL])

    signed = tx.with_script_sig(0, push_data(sig0)).with_witness(1, [sig1, pubkey])
    assert signed.to_hex() == P2WPKH_SIGNED
    # The witness is outside the txid but inside the wtxid.
    assert signed.txid == signed.with_witness(1, []).txid
    assert signed.wtxid != signed.with_witness(1, []).wtxid
    assert Transaction.from_hex(P2WPKH_SIGNED) == signed


# --- bip-0143.mediawiki, "P2SH-P2WSH": 6-of-6 multisig signed with all six sighash types -------------
MULTISIG_UNSIGNED = (
    "010000000136641869ca081e70f394c6948e8af409e18b619df2ed74aa106c1ca29787b96e0100000000ffffffff0200e9a4350000"
    "00001976a914389ffce9cd9ae88dcc0631e88a821ffdbe9bfe2688acc0832f05000000001976a9147480a33f950689af511e6e84c1"
    "38dbbd3c3ee41588ac00000000"
)
MULTISIG_WITNESS_SCRIPT = (
    "56210307b8ae49ac90a048e9b53357a2354b3334e9c8bee813ecb98e99a7e07e8c3ba32103b28f0c28bfab54554ae8c658ac5c3e0c"
    "e6e79ad336331f78c428dd43eea8449b21034b8113d703413d57761b8b9781957b8c0ac1dfe69f492580ca4195f50376ba4a210334"
    "00f6afecb833092a9a21cfdf1ed1376e58c5d1f47de74683123987e967a8f42103a6d48b1131e94ba04d9737d61acdaa1322008af9"
    "602b3b14862c07a1789aac162102d8b661b0b3302ee2f162b09e07a55ad5dfbe673a9f01d9f0c19617681024306b56ae"
)
MULTISIG_SIGNERS = [
    (
        "730fff80e1413068a05b57d6a58261f07551163369787f349438ea38ca80fac6",
        SigHash.ALL,
        "185c0be5263dce5b4bb50a047973c1b6272bfbd0103a89444597dc40b248ee7c",
    ),
    (
        "11fa3d25a17cbc22b29c44a484ba552b5a53149d106d3d853e22fdd05a2d8bb3",
        SigHash.NONE,
        "e9733bc60ea13c95c6527066bb975a2ff29a925e80aa14c213f686cbae5d2f36",
    ),
    (
        "77bf4141a87d55bdd7f3cd0bdccf6e9e642935fec45f2f30047be7b799120661",
        SigHash.SINGLE,
        "1e1f1c303dc025bd664acb72e583e933fae4cff9148bf78c157d1e8f78530aea",
    ),
    (
        "14af36970f5025ea3e8b5542c0f8ebe7763e674838d08808896b63c3351ffe49",
        SigHash.ALL | SigHash.ANYONECANPAY,
        "2a67f03e63a6a422125878b40b82da593be8d4efaafe88ee528af6e5a9955c6e",
    ),
    (
        "fe9a95c19eef81dde2b95c1284ef39be497d128e2aa46916fb02d552485e0323",
        SigHash.NONE | SigHash.ANYONECANPAY,
        "781ba15f3779d5542ce8ecb5c18716733a5ee42a6f51488ec96154934e2c890a",
    ),
    (
        "428a7aee9f0c2af0cd19af3cf1c78149951ea528726989b2e83e4778d2c3f890",
        SigHash.SINGLE | SigHash.ANYONECANPAY,
        None,
    ),
]
MULTISIG_SIGNED = (
    "0100000000010136641869ca081e70f394c6948e8af409e18b619df2ed74aa106c1ca29787b96e0100000023220020a16b5755f7f6f9"
    "6dbd65f5f0d6ab9418b89af4b1f14a1bb8a09062c35f0dcb54ffffffff0200e9a435000000001976a914389ffce9cd9ae88dcc0631e8"
    "8a821ffdbe9bfe2688acc0832f05000000001976a9147480a33f950689af511e6e84c138dbbd3c3ee41588ac080047304402206ac44d"
    "672dac41f9b00e28f4df20c52eeb087207e8d758d76d92c6fab3b73e2b0220367750dbbe19290069cba53d096f44530e4f98acaa5948"
    "10388cf7409a1870ce01473044022068c7946a43232757cbdf9176f009a928e1cd9a1a8c212f15c1e11ac9f2925d9002205b75f937ff"
    "2f9f3c1246e547e54f62e027f64eefa2695578cc6432cdabce271502473044022059ebf56d98010a932cf8ecfec54c48e6139ed6adb0"
    "728c09cbe1e4fa0915302e022007cd986c8fa870ff5d2b3a89139c9fe7e499259875357e20fcbb15571c76795403483045022100fbef"
    "d94bd0a488d50b79102b5dad4ab6ced30c4069f1eaa69a4b5a763414067e02203156c6a5c9cf88f91265f5a942e96213afae16d83321"
    "c8b31bb342142a14d16381483045022100a5263ea0553ba89221984bd7f0b13613db16e7a70c549a86de0cc0444141a407022005c360"
    "ef0ae5a5d4f9f2f87a56c1546cc8268cab08c73501d6b3be2e1e1a8a08824730440220525406a1482936d5a21888260dc165497a90a1"
    "5669636d8edca6b9fe490d309c022032af0c646a34a44d1f4576bf6a4a74b67940f8faa84c7df9abe12a01a11e2b4783cf56210307b8"
    "ae49ac90a048e9b53357a2354b3334e9c8bee813ecb98e99a7e07e8c3ba32103b28f0c28bfab54554ae8c658ac5c3e0ce6e79ad33633"
    "1f78c428dd43eea8449b21034b8113d703413d57761b8b9781957b8c0ac1dfe69f492580ca4195f50376ba4a21033400f6afecb83309"
    "2a9a21cfdf1ed1376e58c5d1f47de74683123987e967a8f42103a6d48b1131e94ba04d9737d61acdaa1322008af9602b3b14862c07a1"
    "789aac162102d8b661b0b3302ee2f162b09e07a55ad5dfbe673a9f01d9f0c19617681024306b56ae00000000"
)


def test_every_sighash_type_signs_the_six_of_six_example() -> None:
    tx = Transaction.from_hex(MULTISIG_UNSIGNED)
    witness_script = bytes.fromhex(MULTISIG_WITNESS_SCRIPT)
    amount = 987_654_321
    signatures = []
    for secret_hex, sighash, expected_digest in MULTISIG_SIGNERS:
        key = PrivateKey(bytes.fromhex(secret_hex))
        digest = bip143_sighash(tx, 0, witness_script, amount, sighash)
        if expected_digest is not None:
            assert digest.hex() == expected_digest
        signature = key.sign(digest)
        assert verify_der(key.public_key.data, signature, digest)
        signatures.append(signature + bytes([sighash]))
    redeem_script = build_script(0, sha256(witness_script))
    signed = tx.with_script_sig(0, push_data(redeem_script)).with_witness(
        0, [b"", *signatures, witness_script]
    )
    assert signed.to_hex() == MULTISIG_SIGNED


def test_sighash_single_without_matching_output_commits_to_no_outputs() -> None:
    tx = Transaction.from_hex(P2WPKH_UNSIGNED)
    one_output = Transaction(tx.version, tx.inputs, tx.outputs[:1], tx.locktime)
    code = b"\x51"
    # With SIGHASH_SINGLE and no output at the input's index, BIP143 hashes zeros for the outputs,
    # so changing the outputs must not change the digest.
    digest = bip143_sighash(one_output, 1, code, 1000, SigHash.SINGLE)
    no_outputs = Transaction(tx.version, tx.inputs, (), tx.locktime)
    assert digest == bip143_sighash(no_outputs, 1, code, 1000, SigHash.SINGLE)
    assert legacy_sighash(one_output, 1, code, SigHash.SINGLE) == (1).to_bytes(32, "little")
