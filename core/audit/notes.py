"""C2SP signed notes, tlog checkpoints and cosignatures, with Ed25519 (``cryptography``).

- A *checkpoint* (c2sp.org/tlog-checkpoint) is the note body ``<origin>\\n<size>\\n<base64 root>\\n``
  followed by optional extension lines; ours carry the heads of the other chains
  (``smd-apikeys <count> <base64 head>``), which a witness ignores and an auditor checks.
- A *signed note* (c2sp.org/signed-note) is the body, an empty line, and one line per signature:
  ``— <key name> <base64(4-byte key id || signature)>``. An Ed25519 key's id is the first four
  bytes of SHA-256(name || "\\n" || 0x01 || public key); its *verifier key* string is
  ``<name>+<hex key id>+<base64(0x01 || public key)>``, which is all an auditor needs.
- A *cosignature* (c2sp.org/tlog-cosignature, v1) is a witness's signature over
  ``cosignature/v1\\ntime <unix seconds>\\n`` + the checkpoint body; its key id uses type byte 0x04
  and its line carries ``base64(key id || 8-byte big-endian time || signature)``.

Pure functions: no I/O, the clock passed in.
"""

from __future__ import annotations

import base64
import hashlib
import struct
from dataclasses import dataclass, field

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

ED25519 = 0x01
COSIGNATURE_V1 = 0x04
DASH = "\u2014"  # the em dash that starts a signature line


class NoteError(ValueError):
    """A note or checkpoint is malformed, or no signature by a known key verifies."""


def _raw(public: Ed25519PublicKey) -> bytes:
    return public.public_bytes(Encoding.Raw, PublicFormat.Raw)


def key_id(name: str, public: Ed25519PublicKey, kind: int = ED25519) -> bytes:
    """The 4-byte key id of a signed-note key (Ed25519: 0x01; cosignature/v1: 0x04)."""
    return hashlib.sha256(name.encode() + b"\n" + bytes([kind]) + _raw(public)).digest()[:4]


@dataclass(frozen=True)
class Verifier:
    """A public key with its name, as an auditor or a witness holds it."""

    name: str
    public: Ed25519PublicKey
    kind: int = ED25519

    @property
    def key_id(self) -> bytes:
        return key_id(self.name, self.public, self.kind)

    def encode(self) -> str:
        """``<name>+<hex key id>+<base64(type || public key)>`` (the signed-note verifier key)."""
        raw = base64.b64encode(bytes([self.kind]) + _raw(self.public)).decode()
        return f"{self.name}+{self.key_id.hex()}+{raw}"

    @classmethod
    def decode(cls, text: str) -> Verifier:
        """Parse a verifier key string (NoteError when malformed or its id does not match)."""
        try:
            name, hex_id, b64 = text.strip().split("+", 2)  # base64 may hold "+", a name may not
            raw = base64.b64decode(b64, validate=True)
            v = cls(name, Ed25519PublicKey.from_public_bytes(raw[1:]), raw[0])
        except (ValueError, IndexError) as e:
            raise NoteError(f"not a verifier key: {text[:40]!r}") from e
        if v.key_id.hex() != hex_id or v.kind not in (ED25519, COSIGNATURE_V1):
            raise NoteError(f"verifier key {name}: the key id does not match the key")
        return v


@dataclass(frozen=True)
class Signer:
    """A private key with its name (the region's checkpoint key, a witness's key)."""

    name: str
    private: Ed25519PrivateKey
    kind: int = ED25519

    @classmethod
    def from_seed(cls, name: str, seed: bytes, kind: int = ED25519) -> Signer:
        """From the 32-byte Ed25519 seed kept in the key file or the environment."""
        return cls(name, Ed25519PrivateKey.from_private_bytes(seed), kind)

    @property
    def verifier(self) -> Verifier:
        return Verifier(self.name, self.private.public_key(), self.kind)


@dataclass(frozen=True)
class Checkpoint:
    """A checkpoint's body: origin, tree size, root hash and extension lines."""

    origin: str
    size: int
    root: bytes
    extensions: tuple[str, ...] = field(default=())

    def body(self) -> str:
        lines = [self.origin, str(self.size), base64.b64encode(self.root).decode(), *self.extensions]
        return "".join(line + "\n" for line in lines)

    @classmethod
    def parse(cls, body: str) -> Checkpoint:
        lines = body.split("\n")
        if len(lines) < 4 or lines[-1] != "" or any(not line for line in lines[:-1]):
            raise NoteError("a checkpoint is origin, size, root and extension lines, each ending in a newline")
        origin, size, root = lines[0], lines[1], lines[2]
        if not size.isdigit() or (size != "0" and size.startswith("0")):
            raise NoteError(f"the tree size {size!r} is not a decimal number")
        try:
            root_bytes = base64.b64decode(root, validate=True)
        except ValueError:
            raise NoteError("the root hash is not base64") from None
        return cls(origin, int(size), root_bytes, tuple(lines[3:-1]))


@dataclass(frozen=True)
class SignedNote:
    """A note's text and its signature lines (name, key id, signature bytes)."""

    body: str
    signatures: tuple[tuple[str, bytes, bytes], ...]

    def text(self) -> str:
        sig_lines = "".join(
            f"{DASH} {name} {base64.b64encode(kid + sig).decode()}\n" for name, kid, sig in self.signatures
        )
        return self.body + "\n" + sig_lines

    @classmethod
    def parse(cls, text: str) -> SignedNote:
        head, sep, tail = text.rpartition("\n\n")
        if not sep or not tail.endswith("\n"):
            raise NoteError("a signed note is its text, an empty line, and signature lines")
        body = head + "\n"
        sigs = []
        for line in tail[:-1].split("\n"):
            parts = line.split(" ")
            if len(parts) != 3 or parts[0] != DASH:
                raise NoteError("a signature line is '— <name> <base64 signature>'")
            try:
                raw = base64.b64decode(parts[2], validate=True)
            except ValueError:
                raise NoteError("a signature is not base64") from None
            if len(raw) < 5:
                raise NoteError("a signature is too short")
            sigs.append((parts[1], raw[:4], raw[4:]))
        return cls(body, tuple(sigs))

    def with_signature(self, name: str, kid: bytes, sig: bytes) -> SignedNote:
        return SignedNote(self.body, (*self.signatures, (name, kid, sig)))


def sign(body: str, signer: Signer) -> SignedNote:
    """A note signed by ``signer`` (Ed25519 over the note text)."""
    return SignedNote(body, ((signer.name, signer.verifier.key_id, signer.private.sign(body.encode())),))


def open_note(text: str, verifiers: list[Verifier]) -> tuple[SignedNote, list[Verifier]]:
    """Parse a signed note and check its signatures: returns the note and the known verifiers
    whose Ed25519 signature verifies; NoteError when none does."""
    note = SignedNote.parse(text)
    good = []
    for v in verifiers:
        if v.kind != ED25519:
            continue
        for name, kid, sig in note.signatures:
            if name == v.name and kid == v.key_id:
                try:
                    v.public.verify(sig, note.body.encode())
                except InvalidSignature:
                    raise NoteError(f"the signature of {name} does not verify") from None
                good.append(v)
    if not good:
        raise NoteError("no signature by a known key (check the verifier key given)")
    return note, good


def _cosigned_message(body: str, timestamp: int) -> bytes:
    return f"cosignature/v1\ntime {timestamp}\n".encode() + body.encode()


def cosign(body: str, witness: Signer, timestamp: int) -> tuple[str, bytes, bytes]:
    """A witness's cosignature of a checkpoint body: (name, key id, time || signature)."""
    assert witness.kind == COSIGNATURE_V1
    sig = witness.private.sign(_cosigned_message(body, timestamp))
    return witness.name, witness.verifier.key_id, struct.pack(">Q", timestamp) + sig


def cosignature_line(name: str, kid: bytes, payload: bytes) -> str:
    """The signature line a cosignature adds to the note."""
    return f"{DASH} {name} {base64.b64encode(kid + payload).decode()}\n"


def check_cosignature(note: SignedNote, witness: Verifier) -> int:
    """The time the witness cosigned the note's checkpoint; NoteError if it did not."""
    for name, kid, payload in note.signatures:
        if name == witness.name and kid == witness.key_id and len(payload) == 8 + 64:
            (timestamp,) = struct.unpack(">Q", payload[:8])
            try:
                witness.public.verify(payload[8:], _cosigned_message(note.body, timestamp))
            except InvalidSignature:
                raise NoteError(f"the cosignature of {name} does not verify") from None
            return timestamp
    raise NoteError(f"no cosignature by witness {witness.name}")
