"""BOLT #8 transport: the Noise_XK_secp256k1_ChaChaPoly_SHA256 handshake and message framing.

Sans-IO: the handshake objects turn received act bytes into the bytes to
send, and the transport turns plaintext messages into framed ciphertext and
back.  Reading exactly 50/50/66 bytes, then 18 + ``l`` + 16 bytes per
message, is the caller's job (or use ``MessageDecryptor.feed`` with whatever
arrived).

Every failure is a ``NoiseError`` whose ``code`` names what went wrong
(``ACT1_BAD_TAG``, ``BODY_BAD_TAG``...).  Any of them means the connection
must be dropped without another word: after a failure a handshake or
decryptor refuses further use.
"""

from __future__ import annotations

import enum
import hashlib

import coincurve
from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers.aead import ChaCha20Poly1305
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from ampere.errors import AmpereError

PROTOCOL_NAME = b"Noise_XK_secp256k1_ChaChaPoly_SHA256"
PROLOGUE = b"lightning"
HANDSHAKE_VERSION = 0

ACT_ONE_SIZE = 50
ACT_TWO_SIZE = 50
ACT_THREE_SIZE = 66
MAC_SIZE = 16
HEADER_SIZE = 2 + MAC_SIZE
MAX_MESSAGE_SIZE = 65535
KEY_ROTATION_INTERVAL = 1000

_PUBKEY_SIZE = 33
_EMPTY = b""


class NoiseError(AmpereError):
    """A handshake or transport failure; the connection must be closed."""

    def __init__(self, code: str, detail: str = "") -> None:
        super().__init__(f"{code}: {detail}" if detail else code)
        self.code = code


def _sha256(*parts: bytes) -> bytes:
    digest = hashlib.sha256()
    for part in parts:
        digest.update(part)
    return digest.digest()


def hkdf_two_keys(salt: bytes, ikm: bytes) -> tuple[bytes, bytes]:
    """BOLT #8 ``HKDF(salt, ikm)``: RFC 5869 with empty info, 64 bytes split into two 32-byte keys."""
    okm = HKDF(algorithm=hashes.SHA256(), length=64, salt=salt, info=_EMPTY).derive(ikm)
    return okm[:32], okm[32:]


def _nonce(n: int) -> bytes:
    # Noise convention: 32 zero bits then a little-endian 64-bit counter.
    return b"\x00\x00\x00\x00" + n.to_bytes(8, "little")


def _private_key(secret: bytes, code: str) -> coincurve.PrivateKey:
    if len(secret) != 32:
        raise NoiseError(code, "private keys are 32 bytes")
    try:
        return coincurve.PrivateKey(secret)
    except ValueError as exc:
        raise NoiseError(code, "not a valid secp256k1 private key") from exc


def _public_key(data: bytes, code: str) -> coincurve.PublicKey:
    if len(data) != _PUBKEY_SIZE or data[0] not in (2, 3):
        raise NoiseError(code, "not a compressed public key")
    try:
        return coincurve.PublicKey(data)
    except ValueError as exc:
        raise NoiseError(code, "not a point on secp256k1") from exc


def _ecdh(key: coincurve.PrivateKey, point: coincurve.PublicKey) -> bytes:
    # libsecp256k1's default ECDH hash is SHA256 of the compressed shared
    # point, which is exactly BOLT 8's ECDH().
    return key.ecdh(point.format(compressed=True))


class CipherState:
    """One direction of the transport: a ChaCha20-Poly1305 key, its nonce and its rotation chaining key."""

    __slots__ = ("_aead", "_ck", "_key", "_nonce")

    def __init__(self, key: bytes, chaining_key: bytes) -> None:
        self._key = key
        self._ck = chaining_key
        self._nonce = 0
        self._aead = ChaCha20Poly1305(key)

    def __repr__(self) -> str:
        return f"CipherState(nonce={self._nonce})"  # never print key material

    @property
    def key(self) -> bytes:
        return self._key

    @property
    def chaining_key(self) -> bytes:
        return self._ck

    @property
    def nonce(self) -> int:
        return self._nonce

    def _advance(self) -> None:
        self._nonce += 1
        if self._nonce == KEY_ROTATION_INTERVAL:
            self._ck, self._key = hkdf_two_keys(self._ck, self._key)
            self._nonce = 0
            self._aead = ChaCha20Poly1305(self._key)

    def encrypt(self, plaintext: bytes) -> bytes:
        ciphertext = self._aead.encrypt(_nonce(self._nonce), plaintext, None)
        self._advance()
        return ciphertext

    def decrypt(self, ciphertext: bytes, code: str) -> bytes:
        try:
            plaintext = self._aead.decrypt(_nonce(self._nonce), ciphertext, None)
        except InvalidTag as exc:
            raise NoiseError(code, "MAC check failed") from exc
        self._advance()
        return plaintext


class MessageEncryptor:
    """Frames outgoing messages: ``encrypt(len) || encrypt(message)``, each with its own MAC."""

    __slots__ = ("_cipher",)

    def __init__(self, cipher: CipherState) -> None:
        self._cipher = cipher

    @property
    def cipher(self) -> CipherState:
        return self._cipher

    def encrypt_message(self, plaintext: bytes) -> bytes:
        if len(plaintext) > MAX_MESSAGE_SIZE:
            raise NoiseError("MESSAGE_TOO_LONG", f"{len(plaintext)} bytes exceeds {MAX_MESSAGE_SIZE}")
        header = self._cipher.encrypt(len(plaintext).to_bytes(2, "big"))
        return header + self._cipher.encrypt(plaintext)


class _DecryptState(enum.Enum):
    HEADER = "header"
    BODY = "body"
    FAILED = "failed"


class MessageDecryptor:
    """Unframes incoming messages.

    Either drive it step by step (``decrypt_header`` on exactly 18 bytes gives
    the body length ``l``; ``decrypt_body`` on exactly ``l + 16`` bytes gives the
    message) or hand it whatever arrived with ``feed``.
    """

    __slots__ = ("_body_len", "_buffer", "_cipher", "_state")

    def __init__(self, cipher: CipherState) -> None:
        self._cipher = cipher
        self._state = _DecryptState.HEADER
        self._body_len = 0
        self._buffer = bytearray()

    @property
    def cipher(self) -> CipherState:
        return self._cipher

    @property
    def bytes_needed(self) -> int:
        """How many bytes the next step consumes: 18 for a header, ``l + 16`` for a body."""
        return HEADER_SIZE if self._state is _DecryptState.HEADER else self._body_len + MAC_SIZE

    def _fail(self, code: str, detail: str) -> NoiseError:
        self._state = _DecryptState.FAILED
        self._buffer.clear()
        return NoiseError(code, detail)

    def decrypt_header(self, header: bytes) -> int:
        """Decrypt an 18-byte length prefix; return the plaintext length of the body that follows."""
        if self._state is not _DecryptState.HEADER:
            raise self._fail("BAD_STATE", f"expected {self._state.value}, not a header")
        if len(header) != HEADER_SIZE:
            raise self._fail("HEADER_READ_FAILED", f"header must be {HEADER_SIZE} bytes, got {len(header)}")
        try:
            length = int.from_bytes(self._cipher.decrypt(bytes(header), "HEADER_BAD_TAG"), "big")
        except NoiseError as exc:
            raise self._fail(exc.code, "length prefix MAC check failed") from exc
        self._body_len = length
        self._state = _DecryptState.BODY
        return length

    def decrypt_body(self, body: bytes) -> bytes:
        """Decrypt ``l + 16`` bytes of body (``l`` from ``decrypt_header``); return the message."""
        if self._state is not _DecryptState.BODY:
            raise self._fail("BAD_STATE", f"expected {self._state.value}, not a body")
        if len(body) != self._body_len + MAC_SIZE:
            raise self._fail("BODY_READ_FAILED", f"body must be {self._body_len + MAC_SIZE} bytes")
        try:
            plaintext = self._cipher.decrypt(bytes(body), "BODY_BAD_TAG")
        except NoiseError as exc:
            raise self._fail(exc.code, "message MAC check failed") from exc
        self._state = _DecryptState.HEADER
        return plaintext

    def feed(self, data: bytes) -> list[bytes]:
        """Buffer ``data`` and return every message it completes, in order."""
        if self._state is _DecryptState.FAILED:
            raise NoiseError("BAD_STATE", "decryptor failed earlier")
        self._buffer += data
        buffer = self._buffer
        messages: list[bytes] = []
        consumed = 0
        try:
            # Walk an offset and trim once: deleting each frame from the front
            # would make a burst of small messages quadratic.
            while len(buffer) - consumed >= (needed := self.bytes_needed):
                chunk = bytes(buffer[consumed : consumed + needed])
                consumed += needed
                if self._state is _DecryptState.HEADER:
                    self.decrypt_header(chunk)
                else:
                    messages.append(self.decrypt_body(chunk))
        finally:
            del buffer[:consumed]
        return messages


class NoiseTransport:
    """The session after a successful handshake: both cipher directions and the peer's identity."""

    __slots__ = ("decryptor", "encryptor", "local_static_pub", "remote_static_pub")

    def __init__(
        self,
        send: CipherState,
        receive: CipherState,
        *,
        local_static_pub: bytes,
        remote_static_pub: bytes,
    ) -> None:
        self.encryptor = MessageEncryptor(send)
        self.decryptor = MessageDecryptor(receive)
        self.local_static_pub = local_static_pub
        self.remote_static_pub = remote_static_pub

    def encrypt_message(self, plaintext: bytes) -> bytes:
        return self.encryptor.encrypt_message(plaintext)

    def decrypt_header(self, header: bytes) -> int:
        return self.decryptor.decrypt_header(header)

    def decrypt_body(self, body: bytes) -> bytes:
        return self.decryptor.decrypt_body(body)

    def feed(self, data: bytes) -> list[bytes]:
        return self.decryptor.feed(data)


class _HandshakeState:
    """``ck`` and ``h`` as in BOLT 8 "Handshake State", plus the state-machine guard."""

    def __init__(self, local_static: bytes, responder_static_pub: bytes, ephemeral: bytes | None) -> None:
        self.s = _private_key(local_static, "BAD_LOCAL_KEY")
        self.e = coincurve.PrivateKey() if ephemeral is None else _private_key(ephemeral, "BAD_EPHEMERAL_KEY")
        self.h = _sha256(PROTOCOL_NAME)
        self.ck = self.h
        self.h = _sha256(self.h, PROLOGUE)
        self.h = _sha256(self.h, responder_static_pub)
        self.temp_k2 = b""
        self.step = 0
        self.failed = False

    def mix_key(self, shared: bytes) -> bytes:
        self.ck, temp_k = hkdf_two_keys(self.ck, shared)
        return temp_k

    def encrypt_and_hash(self, key: bytes, nonce: int, plaintext: bytes) -> bytes:
        c = ChaCha20Poly1305(key).encrypt(_nonce(nonce), plaintext, self.h)
        self.h = _sha256(self.h, c)
        return c

    def decrypt_and_hash(self, key: bytes, nonce: int, ciphertext: bytes, code: str) -> bytes:
        try:
            p = ChaCha20Poly1305(key).decrypt(_nonce(nonce), ciphertext, self.h)
        except InvalidTag as exc:
            raise NoiseError(code, "MAC check failed") from exc
        self.h = _sha256(self.h, ciphertext)
        return p

    def guard(self, expected_step: int, what: str) -> None:
        if self.failed:
            raise NoiseError("BAD_STATE", "handshake failed earlier")
        if self.step != expected_step:
            raise NoiseError("BAD_STATE", f"{what} called out of order")

    def split(self) -> tuple[CipherState, CipherState]:
        """The two transport keys, in BOLT 8's ``(initiator send, initiator receive)`` order."""
        k1, k2 = hkdf_two_keys(self.ck, _EMPTY)
        return CipherState(k1, self.ck), CipherState(k2, self.ck)


def _read_act(message: bytes, size: int, act: str) -> bytes:
    if len(message) != size:
        raise NoiseError(f"{act}_READ_FAILED", f"expected {size} bytes, got {len(message)}")
    if message[0] != HANDSHAKE_VERSION:
        raise NoiseError(f"{act}_BAD_VERSION", f"version {message[0]}")
    return message


class NoiseInitiator:
    """The connecting side, which knows the responder's node id in advance.

    ``ephemeral_priv`` exists for test vectors only; in production leave it
    ``None`` so a fresh key comes from the OS CSPRNG.
    """

    def __init__(
        self, local_static_priv: bytes, remote_static_pub: bytes, *, ephemeral_priv: bytes | None = None
    ) -> None:
        self._rs = _public_key(remote_static_pub, "BAD_REMOTE_KEY")
        self._state = _HandshakeState(local_static_priv, self._rs.format(), ephemeral_priv)
        self.remote_static_pub = self._rs.format()

    def act_one(self) -> bytes:
        """Produce Act One (50 bytes): ``-> e, es``."""
        st = self._state
        st.guard(0, "act_one")
        e_pub = st.e.public_key.format()
        st.h = _sha256(st.h, e_pub)
        temp_k1 = st.mix_key(_ecdh(st.e, self._rs))
        c = st.encrypt_and_hash(temp_k1, 0, _EMPTY)
        st.step = 1
        return bytes((HANDSHAKE_VERSION,)) + e_pub + c

    def read_act_two(self, act_two: bytes) -> tuple[bytes, NoiseTransport]:
        """Consume Act Two (``<- e, ee``); return Act Three (66 bytes) and the ready transport."""
        st = self._state
        st.guard(1, "read_act_two")
        try:
            message = _read_act(act_two, ACT_TWO_SIZE, "ACT2")
            re = _public_key(message[1:34], "ACT2_BAD_PUBKEY")
            st.h = _sha256(st.h, message[1:34])
            temp_k2 = st.mix_key(_ecdh(st.e, re))
            st.decrypt_and_hash(temp_k2, 0, message[34:], "ACT2_BAD_TAG")
        except NoiseError:
            st.failed = True
            raise
        # Act Three: -> s, se
        c = st.encrypt_and_hash(temp_k2, 1, st.s.public_key.format())
        temp_k3 = st.mix_key(_ecdh(st.s, re))
        t = st.encrypt_and_hash(temp_k3, 0, _EMPTY)
        send, receive = st.split()
        st.step = 2
        transport = NoiseTransport(
            send,
            receive,
            local_static_pub=st.s.public_key.format(),
            remote_static_pub=self.remote_static_pub,
        )
        return bytes((HANDSHAKE_VERSION,)) + c + t, transport


class NoiseResponder:
    """The listening side; it learns the initiator's node id from Act Three."""

    def __init__(self, local_static_priv: bytes, *, ephemeral_priv: bytes | None = None) -> None:
        local = _private_key(local_static_priv, "BAD_LOCAL_KEY")
        self._state = _HandshakeState(local_static_priv, local.public_key.format(), ephemeral_priv)
        self._re: coincurve.PublicKey | None = None

    def read_act_one(self, act_one: bytes) -> bytes:
        """Consume Act One (``-> e, es``) and return Act Two (50 bytes, ``<- e, ee``)."""
        st = self._state
        st.guard(0, "read_act_one")
        try:
            message = _read_act(act_one, ACT_ONE_SIZE, "ACT1")
            re = _public_key(message[1:34], "ACT1_BAD_PUBKEY")
            st.h = _sha256(st.h, message[1:34])
            temp_k1 = st.mix_key(_ecdh(st.s, re))
            st.decrypt_and_hash(temp_k1, 0, message[34:], "ACT1_BAD_TAG")
        except NoiseError:
            st.failed = True
            raise
        self._re = re
        e_pub = st.e.public_key.format()
        st.h = _sha256(st.h, e_pub)
        st.temp_k2 = st.mix_key(_ecdh(st.e, re))
        c = st.encrypt_and_hash(st.temp_k2, 0, _EMPTY)
        st.step = 1
        return bytes((HANDSHAKE_VERSION,)) + e_pub + c

    def read_act_three(self, act_three: bytes) -> NoiseTransport:
        """Consume Act Three (``-> s, se``); return the transport, whose ``remote_static_pub`` is the peer."""
        st = self._state
        st.guard(1, "read_act_three")
        try:
            message = _read_act(act_three, ACT_THREE_SIZE, "ACT3")
            c, t = message[1:50], message[50:]
            rs_bytes = st.decrypt_and_hash(st.temp_k2, 1, c, "ACT3_BAD_CIPHERTEXT")
            rs = _public_key(rs_bytes, "ACT3_BAD_PUBKEY")
            temp_k3 = st.mix_key(_ecdh(st.e, rs))
            st.decrypt_and_hash(temp_k3, 0, t, "ACT3_BAD_TAG")
        except NoiseError:
            st.failed = True
            raise
        initiator_send, initiator_receive = st.split()
        st.step = 2
        return NoiseTransport(
            initiator_receive,
            initiator_send,
            local_static_pub=st.s.public_key.format(),
            remote_static_pub=rs.format(),
        )
