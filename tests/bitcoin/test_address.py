"""Segwit and legacy addresses against BIP173/BIP350 and Bitcoin Core vectors; networks; base58."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from ampere.bitcoin.address import (
    AddressError,
    WitnessProgram,
    address_to_script_pubkey,
    decode_segwit_address,
    encode_segwit_address,
    p2pkh_script_pubkey,
    p2sh_script_pubkey,
    parse_witness_script_pubkey,
    script_pubkey_to_address,
    witness_script_pubkey,
)
from ampere.bitcoin.base58 import Base58Error, b58check_decode, b58check_encode, b58decode, b58encode
from ampere.bitcoin.network import Network, UnknownNetworkError

# Segwit address vectors from bip-0350.mediawiki "Test vectors for v0-v16 native segregated witness
# addresses" (valid, with their scriptPubKey, and invalid) and bip-0173.mediawiki "Test vectors"
# (invalid), github.com/bitcoin/bips. BIP173's valid v1+ examples use the bech32 checksum, which
# BIP350 made invalid; they are kept to check that they are now refused.
VALID_ADDRESSES = [
    (
        "BC1QW508D6QEJXTDG4Y5R3ZARVARY0C5XW7KV8F3T4",
        "0014751e76e8199196d454941c45d1b3a323f1433bd6",
    ),
    (
        "tb1qrp33g0q5c5txsp9arysrx4k6zdkfs4nce4xj0gdcccefvpysxf3q0sl5k7",
        "00201863143c14c5166804bd19203356da136c985678cd4d27a1b8c6329604903262",
    ),
    (
        "bc1pw508d6qejxtdg4y5r3zarvary0c5xw7kw508d6qejxtdg4y5r3zarvary0c5xw7kt5nd6y",
        "5128751e76e8199196d454941c45d1b3a323f1433bd6751e76e8199196d454941c45d1b3a323f1433bd6",
    ),
    (
        "BC1SW50QGDZ25J",
        "6002751e",
    ),
    (
        "bc1zw508d6qejxtdg4y5r3zarvaryvaxxpcs",
        "5210751e76e8199196d454941c45d1b3a323",
    ),
    (
        "tb1qqqqqp399et2xygdj5xreqhjjvcmzhxw4aywxecjdzew6hylgvsesrxh6hy",
        "0020000000c4a5cad46221b2a187905e5266362b99d5e91c6ce24d165dab93e86433",
    ),
    (
        "tb1pqqqqp399et2xygdj5xreqhjjvcmzhxw4aywxecjdzew6hylgvsesf3hn0c",
        "5120000000c4a5cad46221b2a187905e5266362b99d5e91c6ce24d165dab93e86433",
    ),
    (
        "bc1p0xlxvlhemja6c4dqv22uapctqupfhlxm9h8z3k2e72q4k9hcz7vqzk5jj0",
        "512079be667ef9dcbbac55a06295ce870b07029bfcdb2dce28d959f2815b16f81798",
    ),
]

INVALID_ADDRESSES_BIP173 = [
    ("tc1qw508d6qejxtdg4y5r3zarvary0c5xw7kg3g4ty", "Invalid human-readable part"),
    ("bc1qw508d6qejxtdg4y5r3zarvary0c5xw7kv8f3t5", "Invalid checksum"),
    ("BC13W508D6QEJXTDG4Y5R3ZARVARY0C5XW7KN40WF2", "Invalid witness version"),
    ("bc1rw5uspcuh", "Invalid program length"),
    (
        "bc10w508d6qejxtdg4y5r3zarvary0c5xw7kw508d6qejxtdg4y5r3zarvary0c5xw7kw5rljs90",
        "Invalid program length",
    ),
    (
        "BC1QR508D6QEJXTDG4Y5R3ZARVARYV98GJ9P",
        "Invalid program length for witness version 0 (per BIP141)",
    ),
    ("tb1qrp33g0q5c5txsp9arysrx4k6zdkfs4nce4xj0gdcccefvpysxf3q0sL5k7", "Mixed case"),
    ("bc1zw508d6qejxtdg4y5r3zarvaryvqyzf3du", "zero padding of more than 4 bits"),
    (
        "tb1qrp33g0q5c5txsp9arysrx4k6zdkfs4nce4xj0gdcccefvpysxf3pjxtptv",
        "Non-zero padding in 8-to-5 conversion",
    ),
    ("bc1gmk9yu", "Empty data section"),
]

INVALID_ADDRESSES_BIP350 = [
    ("tc1p0xlxvlhemja6c4dqv22uapctqupfhlxm9h8z3k2e72q4k9hcz7vq5zuyut", "Invalid human-readable part"),
    (
        "bc1p0xlxvlhemja6c4dqv22uapctqupfhlxm9h8z3k2e72q4k9hcz7vqh2y7hd",
        "Invalid checksum (Bech32 instead of Bech32m)",
    ),
    (
        "tb1z0xlxvlhemja6c4dqv22uapctqupfhlxm9h8z3k2e72q4k9hcz7vqglt7rf",
        "Invalid checksum (Bech32 instead of Bech32m)",
    ),
    (
        "BC1S0XLXVLHEMJA6C4DQV22UAPCTQUPFHLXM9H8Z3K2E72Q4K9HCZ7VQ54WELL",
        "Invalid checksum (Bech32 instead of Bech32m)",
    ),
    (
        "bc1qw508d6qejxtdg4y5r3zarvary0c5xw7kemeawh",
        "Invalid checksum (Bech32m instead of Bech32)",
    ),
    (
        "tb1q0xlxvlhemja6c4dqv22uapctqupfhlxm9h8z3k2e72q4k9hcz7vq24jc47",
        "Invalid checksum (Bech32m instead of Bech32)",
    ),
    (
        "bc1p38j9r5y49hruaue7wxjce0updqjuyyx0kh56v8s25huc6995vvpql3jow4",
        "Invalid character in checksum",
    ),
    ("BC130XLXVLHEMJA6C4DQV22UAPCTQUPFHLXM9H8Z3K2E72Q4K9HCZ7VQ7ZWS8R", "Invalid witness version"),
    ("bc1pw5dgrnzv", "Invalid program length (1 byte)"),
    (
        "bc1p0xlxvlhemja6c4dqv22uapctqupfhlxm9h8z3k2e72q4k9hcz7v8n0nx0muaewav253zgeav",
        "Invalid program length (41 bytes)",
    ),
    (
        "BC1QR508D6QEJXTDG4Y5R3ZARVARYV98GJ9P",
        "Invalid program length for witness version 0 (per BIP141)",
    ),
    ("tb1p0xlxvlhemja6c4dqv22uapctqupfhlxm9h8z3k2e72q4k9hcz7vq47Zagq", "Mixed case"),
    (
        "bc1p0xlxvlhemja6c4dqv22uapctqupfhlxm9h8z3k2e72q4k9hcz7v07qwwzcrf",
        "zero padding of more than 4 bits",
    ),
    (
        "tb1p0xlxvlhemja6c4dqv22uapctqupfhlxm9h8z3k2e72q4k9hcz7vpggkg4j",
        "Non-zero padding in 8-to-5 conversion",
    ),
    ("bc1gmk9yu", "Empty data section"),
]

BIP173_VALID_NOW_INVALID = [
    (
        "bc1pw508d6qejxtdg4y5r3zarvary0c5xw7kw508d6qejxtdg4y5r3zarvary0c5xw7k7grplx",
        "5128751e76e8199196d454941c45d1b3a323f1433bd6751e76e8199196d454941c45d1b3a323f1433bd6",
    ),
    (
        "BC1SW50QA3JX3S",
        "6002751e",
    ),
    (
        "bc1zw508d6qejxtdg4y5r3zarvaryvg6kdaj",
        "5210751e76e8199196d454941c45d1b3a323",
    ),
]

# Address/scriptPubKey pairs from Bitcoin Core's src/test/data/key_io_valid.json
# (github.com/bitcoin/bitcoin). Its "testnet4" entries are listed under TESTNET: testnet3 and
# testnet4 share the "tb" HRP and the Base58 prefixes.
CORE_VECTORS = [
    (
        "1FsSia9rv4NeEwvJ2GvXrX7LyxYspbN2mo",
        "76a914a31c06bd463e3923bc1aadbde48b16976c08071788ac",
        Network.MAINNET,
    ),
    ("36j4NfKv6Akva9amjWrLG6MuSQym1GuEmm", "a914373b819a068f32b7a6b38b6b38729647cfde01c287", Network.MAINNET),
    (
        "mzK2FFDEhxqHcmrJw1ysqFkVyhUULo45hZ",
        "76a914ce28b26c57472737f5c3561a1761185bd8589a4388ac",
        Network.TESTNET,
    ),
    (
        "2NC2hEhe28ULKAJkW5MjZ3jtTMJdvXmByvK",
        "a914ce0bba75891ff9ec60148d4bd4a09ee2dc5c933187",
        Network.TESTNET,
    ),
    (
        "mww4LvqtTMKvmeQvizPz2EQv26xTneWrbg",
        "76a914b4110ba93ac54afc14da3bdd19614774a2d55d2988ac",
        Network.SIGNET,
    ),
    ("2N1r7aC69VHeE7yQJPDLi9T1PYq4wnwvjuT", "a9145e5a35ab44b3efaea5129ba22b88ba3e2976614587", Network.SIGNET),
    (
        "n4fajahJrAuKbN7uNsKjLjQkz9Qn5ewJXQ",
        "76a914fdeca3b08e38af53d7c4c60e3ad208ce5066441088ac",
        Network.REGTEST,
    ),
    (
        "2MxFajLApXpYk4VodBSZSt7rw8y4ryABkfA",
        "a91436e9f191e0b75036a77f65e2eaa4752443233fbe87",
        Network.REGTEST,
    ),
    (
        "bc1qvyq0cc6rahyvsazfdje0twl7ez82ndmuac2lhv",
        "00146100fc6343edc8c874496cb2f5bbfec88ea9b77c",
        Network.MAINNET,
    ),
    (
        "bc1qyucykdlhp62tezs0hagqury402qwhk589q80tqs5myh3rxq34nwqhkdhv7",
        "002027304b37f70e94bc8a0fbf500e0c957a80ebda87280ef58214d92f119811acdc",
        Network.MAINNET,
    ),
    (
        "bc1p83n3au0rjylefxq2nc2xh2y4jzz4pm6zxj4mw5pagdjjr2a9f36s6jjnnu",
        "51203c671ef1e3913f94980a9e146ba895908550ef4234abb7503d436521aba54c75",
        Network.MAINNET,
    ),
    ("bc1z2rksukkjr8", "520250ed", Network.MAINNET),
    (
        "tb1qcrh3yqn4nlleplcez2yndq2ry8h9ncg3qh7n54",
        "0014c0ef1202759fff90ff19128936814321ee59e111",
        Network.TESTNET,
    ),
    (
        "tb1p35n52jy6xkm4wd905tdy8qtagrn73kqdz73xe4zxpvq9t3fp50aqk3s6gz",
        "51208d2745489a35b75734afa2da43817d40e7e8d80d17a26cd4460b0055c521a3fa",
        Network.TESTNET,
    ),
    (
        "tb1q3vya2h5435jkugq2few7dmktlrwq4ejmfaw7kr",
        "00148b09d55e958d256e200a4e5de6eecbf8dc0ae65b",
        Network.SIGNET,
    ),
    (
        "tb1rx9n9g37az8mu236e5jpxdt0m67y4fuq8rhs0ss3djnm0kscfrwvq0ntlyg",
        "532031665447dd11f7c54759a48266adfbd78954f0071de0f8422d94f6fb43091b98",
        Network.SIGNET,
    ),
    (
        "bcrt1qdavt4j2sd7dlhqsavtnfxvzppw6k7qy97tmnu9",
        "00146f58bac9506f9bfb821d62e69330410bb56f0085",
        Network.REGTEST,
    ),
    (
        "bcrt1pfwxjqvtt4tcxrtdluukfmy2dv7xd2qzdfy6kajv5nwn4yam3wxkq3553uh",
        "51204b8d20316baaf061adbfe72c9d914d678cd5004d49356ec9949ba752777171ac",
        Network.REGTEST,
    ),
    (
        "bcrt1sx6p8njlx7h9mc2agz4yg82dzne23050ncq72cneeecez2pst8mahn8xecsf8g6hzx94420",
        "6028368279cbe6f5cbbc2ba8154883a9a29e5517d1f3c03cac4f39ce3225060b3efb799cd9c412746ae2",
        Network.REGTEST,
    ),
]


def _hrp_of(address: str) -> str:
    return address.lower().rsplit("1", 1)[0]


def _networks_for(hrp: str) -> list[Network]:
    return [network for network in Network if network.hrp == hrp]


@pytest.mark.parametrize(("address", "script_pubkey"), VALID_ADDRESSES)
def test_bip350_valid_addresses(address: str, script_pubkey: str) -> None:
    hrp = _hrp_of(address)
    decoded = decode_segwit_address(hrp, address)
    assert decoded.script_pubkey.hex() == script_pubkey
    assert encode_segwit_address(hrp, decoded.version, decoded.program) == address.lower()
    for network in _networks_for(hrp):
        assert address_to_script_pubkey(address, network).hex() == script_pubkey
        assert script_pubkey_to_address(bytes.fromhex(script_pubkey), network) == address.lower()


@pytest.mark.parametrize(("address", "reason"), INVALID_ADDRESSES_BIP173 + INVALID_ADDRESSES_BIP350)
def test_invalid_addresses(address: str, reason: str) -> None:
    for hrp in ("bc", "tb", "bcrt"):
        with pytest.raises(AddressError):
            decode_segwit_address(hrp, address)
    for network in Network:
        with pytest.raises(AddressError):
            address_to_script_pubkey(address, network)


@pytest.mark.parametrize(("address", "script_pubkey"), BIP173_VALID_NOW_INVALID)
def test_bip173_v1_plus_with_bech32_checksum_refused(address: str, script_pubkey: str) -> None:
    with pytest.raises(AddressError):
        decode_segwit_address("bc", address)
    # The same program under the right checksum is fine.
    witness = parse_witness_script_pubkey(bytes.fromhex(script_pubkey))
    assert witness is not None
    reencoded = encode_segwit_address("bc", witness.version, witness.program)
    assert decode_segwit_address("bc", reencoded) == witness


@pytest.mark.parametrize(("address", "script_pubkey", "network"), CORE_VECTORS)
def test_bitcoin_core_vectors(address: str, script_pubkey: str, network: Network) -> None:
    assert address_to_script_pubkey(address, network).hex() == script_pubkey
    assert script_pubkey_to_address(bytes.fromhex(script_pubkey), network) == address
    if _hrp_of(address) == network.hrp:
        assert address_to_script_pubkey(address.upper(), network).hex() == script_pubkey


def test_wrong_network_refused() -> None:
    mainnet_p2pkh = CORE_VECTORS[0][0]
    testnet_p2sh = CORE_VECTORS[3][0]
    mainnet_segwit = CORE_VECTORS[8][0]
    regtest_segwit = CORE_VECTORS[16][0]
    with pytest.raises(AddressError):
        address_to_script_pubkey(mainnet_p2pkh, Network.TESTNET)
    with pytest.raises(AddressError):
        address_to_script_pubkey(testnet_p2sh, Network.MAINNET)
    with pytest.raises(AddressError):
        address_to_script_pubkey(mainnet_segwit, Network.REGTEST)
    with pytest.raises(AddressError):
        address_to_script_pubkey(regtest_segwit, Network.MAINNET)
    with pytest.raises(AddressError):
        address_to_script_pubkey(regtest_segwit, Network.TESTNET)


def test_mistyped_segwit_address_reports_bech32_error() -> None:
    address = CORE_VECTORS[8][0]
    mistyped = address[:-1] + ("q" if address[-1] != "q" else "p")
    with pytest.raises(AddressError, match="segwit"):
        address_to_script_pubkey(mistyped, Network.MAINNET)


@pytest.mark.parametrize(
    "script_pubkey",
    [
        "",
        "6a0401020304",  # OP_RETURN
        "0014" + "00" * 19,  # push length does not match
        "0015" + "00" * 21,  # v0 with a 21-byte program
        "5101" + "00",  # 1-byte program
        "4f14" + "00" * 20,  # OP_1NEGATE is not a witness version
        "76a91400" + "00" * 19 + "88ad",  # P2PKH with OP_CHECKSIGVERIFY
        "a914" + "00" * 20 + "88",  # P2SH with OP_EQUALVERIFY
    ],
)
def test_scripts_without_address(script_pubkey: str) -> None:
    with pytest.raises(AddressError):
        script_pubkey_to_address(bytes.fromhex(script_pubkey), Network.MAINNET)


def test_script_builders_validate() -> None:
    with pytest.raises(AddressError):
        p2pkh_script_pubkey(bytes(19))
    with pytest.raises(AddressError):
        p2sh_script_pubkey(bytes(21))
    with pytest.raises(AddressError):
        witness_script_pubkey(17, bytes(20))
    with pytest.raises(AddressError):
        witness_script_pubkey(1, bytes(41))
    with pytest.raises(AddressError):
        WitnessProgram(0, bytes(31))
    with pytest.raises(AddressError):
        encode_segwit_address("tb", 0, bytes(21))


def test_p2tr_needs_bech32m_and_v0_needs_bech32() -> None:
    program = bytes(range(32))
    p2tr = encode_segwit_address("bc", 1, program)
    p2wsh = encode_segwit_address("bc", 0, program)
    assert p2tr.startswith("bc1p")
    assert p2wsh.startswith("bc1q")
    assert decode_segwit_address("bc", p2tr) == WitnessProgram(1, program)
    assert decode_segwit_address("bc", p2wsh) == WitnessProgram(0, program)


def test_networks() -> None:
    assert Network.MAINNET.genesis_hash.hex() == (
        "6fe28c0ab6f1b372c1a6a246ae63f74f931e8365e15a089c68d6190000000000"
    )
    assert Network.TESTNET.genesis_hash[::-1].hex() == (
        "000000000933ea01ad0ee984209779baaec3ced90fa3f408719526f8d77f4943"
    )
    assert Network.SIGNET.genesis_hash[::-1].hex() == (
        "00000008819873e925422c1ff0f99f7cc9bbb232af63a077a480a3633bee1ef6"
    )
    assert Network.REGTEST.chain_hash[::-1].hex() == (
        "0f9188f13cb7b2c71f2a335e3a4fc328bf5beb436012afca590b1a11466e2206"
    )
    assert [network.hrp for network in Network] == ["bc", "tb", "tb", "bcrt"]
    assert [network.bip44_coin_type for network in Network] == [0, 1, 1, 1]
    assert Network.MAINNET.xprv_version.hex() == "0488ade4"
    assert Network.MAINNET.xpub_version.hex() == "0488b21e"
    assert Network.REGTEST.xprv_version.hex() == "04358394"
    assert Network.SIGNET.xpub_version.hex() == "043587cf"
    assert (Network.MAINNET.p2pkh_prefix, Network.MAINNET.p2sh_prefix) == (0x00, 0x05)
    assert (Network.TESTNET.p2pkh_prefix, Network.TESTNET.p2sh_prefix) == (0x6F, 0xC4)
    assert Network.MAINNET.wif_prefix == 0x80
    assert Network.REGTEST.wif_prefix == 0xEF
    for network in Network:
        assert Network.from_chain_hash(network.chain_hash) is network
        assert Network.from_name(network.label) is network
        assert Network(network.value) is network
    assert Network.from_name("main") is Network.MAINNET
    assert Network.from_name(" Bitcoin ") is Network.MAINNET
    assert Network.from_name("testnet3") is Network.TESTNET
    with pytest.raises(UnknownNetworkError):
        Network.from_name("litecoin")
    with pytest.raises(UnknownNetworkError):
        Network.from_chain_hash(bytes(32))


def test_base58_examples() -> None:
    assert b58encode(b"") == ""
    assert b58decode("") == b""
    assert b58encode(b"\0\0\x01") == "112"
    assert b58encode(bytes([57])) == "z"
    assert b58encode(bytes([58])) == "21"
    with pytest.raises(Base58Error):
        b58decode("0OIl")
    with pytest.raises(Base58Error):
        b58check_decode("1")
    address = CORE_VECTORS[0][0]
    tampered = address[:-1] + ("a" if address[-1] != "a" else "b")
    with pytest.raises(Base58Error):
        b58check_decode(tampered)


@given(st.binary(max_size=100))
def test_base58_round_trip(data: bytes) -> None:
    assert b58decode(b58encode(data)) == data
    assert b58check_decode(b58check_encode(data)) == data


@given(st.integers(min_value=0, max_value=10), st.binary(max_size=40))
def test_base58_keeps_leading_zeros(zeros: int, data: bytes) -> None:
    encoded = b58encode(b"\0" * zeros + data.lstrip(b"\0"))
    assert encoded.startswith("1" * zeros)
    assert b58decode(encoded) == b"\0" * zeros + data.lstrip(b"\0")


_PROGRAMS = st.one_of(
    st.tuples(st.just(0), st.sampled_from([20, 32]).flatmap(lambda n: st.binary(min_size=n, max_size=n))),
    st.tuples(st.integers(min_value=1, max_value=16), st.binary(min_size=2, max_size=40)),
)


@given(_PROGRAMS, st.sampled_from(list(Network)))
def test_segwit_round_trip(version_program: tuple[int, bytes], network: Network) -> None:
    version, program = version_program
    address = encode_segwit_address(network.hrp, version, program)
    assert decode_segwit_address(network.hrp, address) == WitnessProgram(version, program)
    script_pubkey = witness_script_pubkey(version, program)
    assert script_pubkey_to_address(script_pubkey, network) == address
    assert address_to_script_pubkey(address, network) == script_pubkey


@given(st.binary(min_size=20, max_size=20), st.booleans(), st.sampled_from(list(Network)))
def test_legacy_round_trip(hash160: bytes, is_p2sh: bool, network: Network) -> None:
    script_pubkey = p2sh_script_pubkey(hash160) if is_p2sh else p2pkh_script_pubkey(hash160)
    address = script_pubkey_to_address(script_pubkey, network)
    assert address_to_script_pubkey(address, network) == script_pubkey
