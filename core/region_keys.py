"""A region's keys for cross-region messages, and the peers' public halves (DESIGN.md section 6).

Two keys per region, each for one thing only:

- an **Ed25519 signing key** (purpose ``crossregion`` of ``core.audit.signing_keys``: it never
  signs a checkpoint, the checkpoint key never signs a message); a message names the key id
  (the signed-note id: name and public key), so a rotated key has a new id and the retired
  public halves still verify what was signed before;
- an **X25519 sealing key**: personal fields of a message are sealed *to the receiving region*
  (ephemeral-static X25519, HKDF-SHA256, AES-256-GCM with the message's header as associated
  data), so neither the link, nor the sender's NATS store, nor a region other than the receiver
  can read them; the sender keeps no key that opens them.

``seal``/``open_sealed`` and ``sign``/``verify`` are the only places these keys are used.
"""

from __future__ import annotations

import base64
import secrets
from dataclasses import dataclass, field

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey, X25519PublicKey
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from core.audit.notes import Signer, Verifier

CROSSREGION = "crossregion"
SEAL_ALG = "X25519-HKDF-SHA256-AES256GCM/v1"  # stored beside every sealed part: never change its meaning
_INFO = b"smd/crossregion/seal/v1"
_RAW = {"encoding": serialization.Encoding.Raw, "format": serialization.PublicFormat.Raw}


class SealError(Exception):
    """A sealed part does not open with this region's key (not for us, or altered)."""


def _raw_public(key: X25519PublicKey) -> bytes:
    return key.public_bytes(**_RAW)


def _derive(shared: bytes, ephemeral: bytes, recipient: bytes) -> bytes:
    return HKDF(algorithm=hashes.SHA256(), length=32, salt=None, info=_INFO + ephemeral + recipient).derive(shared)


def seal(recipient: X25519PublicKey, plaintext: bytes, aad: bytes) -> str:
    """``base64(ephemeral public (32) | nonce (12) | AES-GCM ciphertext)`` for the recipient only."""
    ephemeral = X25519PrivateKey.generate()
    eph_raw = _raw_public(ephemeral.public_key())
    key = _derive(ephemeral.exchange(recipient), eph_raw, _raw_public(recipient))
    nonce = secrets.token_bytes(12)
    return base64.b64encode(eph_raw + nonce + AESGCM(key).encrypt(nonce, plaintext, aad)).decode()


def open_sealed(private: X25519PrivateKey, sealed: str, aad: bytes) -> bytes:
    """The plaintext of a part sealed to ``private``'s public key (SealError otherwise)."""
    try:
        raw = base64.b64decode(sealed, validate=True)
        eph_raw, nonce, body = raw[:32], raw[32:44], raw[44:]
        shared = private.exchange(X25519PublicKey.from_public_bytes(eph_raw))
        key = _derive(shared, eph_raw, _raw_public(private.public_key()))
        return AESGCM(key).decrypt(nonce, body, aad)
    except Exception:
        raise SealError("the sealed part does not open with this region's key") from None


def peer_from(region: str, verifiers: list[str] | tuple[str, ...], seal_public: str) -> Peer:
    """A peer from its configured public keys (verifier strings, base64 X25519 public key)."""
    return Peer(
        region,
        tuple(Verifier.decode(v) for v in verifiers),
        X25519PublicKey.from_public_bytes(base64.b64decode(seal_public, validate=True)),
    )


@dataclass(frozen=True)
class Peer:
    """What a region knows of another: its code, the public keys that may sign its messages (the
    current one first), and the key personal fields are sealed to."""

    region: str
    verifiers: tuple[Verifier, ...]
    seal_public: X25519PublicKey

    def verifier(self, key_id: str) -> Verifier | None:
        """The peer's verifier with this key id (hex), current or retired."""
        return next((v for v in self.verifiers if v.key_id.hex() == key_id), None)


@dataclass
class CrossRegionKeys:
    """This region's signing and sealing keys, and its peers."""

    region: str
    signer: Signer
    seal_private: X25519PrivateKey
    peers: dict[str, Peer] = field(default_factory=dict)
    #: sealing keys rotated out: a message sealed to one before the peer learnt the new key opens
    seal_retired: tuple[X25519PrivateKey, ...] = ()

    @classmethod
    def generate(cls, region: str) -> CrossRegionKeys:
        """Fresh keys (tests and the development demo; production reads them from settings)."""
        return cls.from_seeds(region, secrets.token_bytes(32), secrets.token_bytes(32))

    @classmethod
    def from_seeds(cls, region: str, signing_seed: bytes, seal_seed: bytes) -> CrossRegionKeys:
        """From the 32-byte Ed25519 seed and the 32-byte X25519 private key."""
        return cls(
            region,
            Signer.from_seed(f"smd-xr/{region}", signing_seed),
            X25519PrivateKey.from_private_bytes(seal_seed),
        )

    @property
    def key_id(self) -> str:
        """The current signing key's id (hex), carried by every message this region sends."""
        return self.signer.verifier.key_id.hex()

    def as_peer(self) -> Peer:
        """What the other region must be given of ours (public halves only)."""
        return Peer(self.region, (self.signer.verifier,), self.seal_private.public_key())

    def link(self, peer: Peer) -> None:
        """Know ``peer`` (its verifiers and sealing key)."""
        self.peers[peer.region] = peer

    def sign(self, message: bytes) -> str:
        """Base64 Ed25519 signature by this region's current key."""
        return base64.b64encode(self.signer.private.sign(message)).decode()

    def seal_to(self, region: str, plaintext: bytes, aad: bytes) -> str:
        """Seal to a peer's key."""
        return seal(self.peers[region].seal_public, plaintext, aad)

    def open(self, sealed: str, aad: bytes) -> bytes:
        """Open a part sealed to this region (its current sealing key, then the retired ones)."""
        for private in (self.seal_private, *self.seal_retired):
            try:
                return open_sealed(private, sealed, aad)
            except SealError:
                continue
        raise SealError("the sealed part does not open with this region's keys")

    def peer_entry(self) -> dict[str, object]:
        """This region's public halves as the other region's SMD_CROSSREGION_PEERS lists them."""
        return {
            "region": self.region,
            "verifiers": [self.signer.verifier.encode()],
            "seal_public": base64.b64encode(_raw_public(self.seal_private.public_key())).decode(),
        }

    def __repr__(self) -> str:  # never print key material
        return f"CrossRegionKeys({self.region!r}, key_id={self.key_id!r})"


def signature_valid(verifier: Verifier, message: bytes, signature: str) -> bool:
    """Whether ``signature`` (base64) is ``verifier``'s over ``message``."""
    try:
        verifier.public.verify(base64.b64decode(signature, validate=True), message)
    except (InvalidSignature, ValueError):
        return False
    return True
