"""A patient's proof bundle: the patient's stored rows, their inclusion proofs and a cosigned
checkpoint, in one file that verifies with no database and no service, only public keys.

The file is canonical JSON (``smd-proof-bundle/v1``, the fields in the order of ``Bundle``,
base64 in its one canonical form): ``verify_bundle`` re-encodes what it read and refuses any
difference, and checks every value, so one byte changed anywhere fails:

- the checkpoint note's signature (by a key the auditor trusts, or the bundle's own keys, said
  so), every witness cosignature in it against the witness keys listed, and the tree size;
- every row: its leaf hash recomputed from the stored bytes (ciphertext as stored: no key needed)
  and its audit path to the checkpoint's root;
- the stream: versions 1, 2, 3 … in log order, and the stream's hash chain up to the head given.

What it does not prove: that the patient has no later rows in the tree than the bundle holds
(the tree is ordered by log position, not by patient; a per-patient map would be needed).
"""

from __future__ import annotations

import base64
import binascii
from dataclasses import dataclass, field
from typing import Any
from uuid import UUID

import msgspec

from core.audit import merkle
from core.audit.leaves import leaf_data, stream_start
from core.audit.notes import (
    COSIGNATURE_V1,
    Checkpoint,
    NoteError,
    SignedNote,
    Verifier,
    check_cosignature,
    open_note,
)
from core.audit.store import ChainStore

FORMAT = "smd-proof-bundle/v1"


class BundleRow(msgspec.Struct):
    """One stored row as it is in the events table, with where it is in the tree."""

    notification_id: int
    leaf_index: int
    originator_id: str
    originator_version: int
    topic: str
    state: str  # base64 of the stored bytes
    proof: list[str]  # the audit path, base64, bottom-up


class Bundle(msgspec.Struct):
    """The file (canonical JSON: fields in this order)."""

    format: str
    algorithm: str
    patient_id: str
    tree_size: int
    checkpoint: str  # the signed note, with the witnesses' cosignature lines
    verifier_keys: list[str]  # the log's checkpoint keys (current, then retired)
    witness_keys: list[str]
    stream_head: str  # base64: the stream's chain head after its last row in the bundle
    rows: list[BundleRow]


_encoder = msgspec.json.Encoder()
_decoder = msgspec.json.Decoder(Bundle)


class BundleError(Exception):
    """The bundle does not verify; the message says where."""


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


def _unb64(text: str, what: str) -> bytes:
    try:
        data = base64.b64decode(text, validate=True)
    except (binascii.Error, ValueError):
        raise BundleError(f"{what} is not base64") from None
    if _b64(data) != text:  # only the canonical form: another spelling of the same bytes is a change
        raise BundleError(f"{what} is not in canonical base64")
    return data


class PatientNotInTree(LookupError):
    """The tree holds no row of that stream (unknown patient, or not chained yet)."""


def build_bundle(
    store: ChainStore,
    recorder: Any,
    patient_id: UUID,
    checkpoint_note: str,
    tree_size: int,
    verifier_keys: list[str],
    witness_keys: list[str],
) -> bytes:
    """The canonical bundle of one patient's stream up to the tree of ``tree_size`` leaves."""
    leaves = [lf for lf in store.leaves_of(str(patient_id)) if lf.leaf_index < tree_size]
    if not leaves:
        raise PatientNotInTree(str(patient_id))
    stored = {e.originator_version: e for e in recorder.select_events(patient_id)}
    state = store.tree(merkle.DEFAULT_ALGORITHM)
    hasher = merkle.Hasher(state.algorithm)

    def all_proofs(source: merkle.NodeSource) -> list[list[bytes]]:
        return [merkle.inclusion_proof(source, hasher, lf.leaf_index, tree_size) for lf in leaves]

    wanted = merkle.needed_nodes(hasher, all_proofs)
    proofs = all_proofs(merkle.DictSource(store.nodes(wanted)))
    rows = []
    for lf, proof in zip(leaves, proofs, strict=True):
        event = stored.get(lf.originator_version)
        raw = bytes(event.state) if event is not None else b""  # a deleted row: the bundle will not verify
        rows.append(
            BundleRow(
                notification_id=lf.notification_id,
                leaf_index=lf.leaf_index,
                originator_id=lf.originator_id,
                originator_version=lf.originator_version,
                topic=event.topic if event is not None else lf.topic,
                state=_b64(raw),
                proof=[_b64(p) for p in proof],
            )
        )
    bundle = Bundle(
        format=FORMAT,
        algorithm=hasher.algorithm,
        patient_id=str(patient_id),
        tree_size=tree_size,
        checkpoint=checkpoint_note,
        verifier_keys=verifier_keys,
        witness_keys=witness_keys,
        stream_head=_b64(leaves[-1].stream_hash),
        rows=rows,
    )
    return _encoder.encode(bundle)


@dataclass
class BundleReport:
    """What a bundle proved."""

    patient_id: str = ""
    rows: int = 0
    tree_size: int = 0
    root: str = ""
    signed_by: list[str] = field(default_factory=list)
    cosigned_by: list[str] = field(default_factory=list)
    keys_from_bundle: bool = False


def verify_bundle(raw: bytes, trusted_keys: list[str] | None = None) -> BundleReport:
    """Check a bundle offline (BundleError naming the first problem). ``trusted_keys``: the log's
    verifier keys as the auditor holds them; without them the bundle's own keys are used (only
    as good as where the bundle came from: the report says so)."""
    try:
        bundle = _decoder.decode(raw)
    except (msgspec.DecodeError, UnicodeDecodeError, RecursionError) as e:
        raise BundleError(f"not a proof bundle: {e}") from None
    if _encoder.encode(bundle) != raw:
        raise BundleError("the file is not the canonical encoding of its content (changed after it was made)")
    if bundle.format != FORMAT:
        raise BundleError(f"unknown format {bundle.format!r}")
    try:
        hasher = merkle.Hasher(bundle.algorithm)
        listed = [Verifier.decode(k) for k in bundle.verifier_keys]
        witnesses = [Verifier.decode(k) for k in bundle.witness_keys]
        trusted = [Verifier.decode(k) for k in trusted_keys] if trusted_keys else listed
        note, signed_by = open_note(bundle.checkpoint, trusted)
        if trusted_keys:
            open_note(bundle.checkpoint, listed)  # the keys it lists must verify it too
        checkpoint = Checkpoint.parse(note.body)
        cosigned = [check_cosignature(SignedNote.parse(bundle.checkpoint), w) and w.name for w in witnesses]
    except (NoteError, merkle.UnknownAlgorithm) as e:
        raise BundleError(f"checkpoint: {e}") from None
    if any(w.kind != COSIGNATURE_V1 for w in witnesses):
        raise BundleError("a witness key is not a cosignature key")
    known = {(v.name, v.key_id) for v in listed} | {(w.name, w.key_id) for w in witnesses}
    for name, kid, _ in note.signatures:
        if (name, kid) not in known:
            raise BundleError(f"checkpoint: a signature by {name}, a key the bundle does not list")
    if checkpoint.size != bundle.tree_size:
        raise BundleError(f"the checkpoint signs {checkpoint.size} leaves, the bundle says {bundle.tree_size}")
    if not bundle.rows:
        raise BundleError("the bundle holds no row")
    head = stream_start(hasher)
    previous_leaf = -1
    for i, row in enumerate(bundle.rows, start=1):
        where = f"row {i} (notification id {row.notification_id}, version {row.originator_version})"
        if row.originator_id != bundle.patient_id:
            raise BundleError(f"{where}: belongs to stream {row.originator_id}, not to patient {bundle.patient_id}")
        if row.originator_version != i:
            raise BundleError(f"{where}: expected version {i} (a row of the stream is missing or out of order)")
        if row.leaf_index <= previous_leaf:
            raise BundleError(f"{where}: not after the previous row in the log")
        previous_leaf = row.leaf_index
        try:
            state = _unb64(row.state, f"{where}: the stored bytes")
            proof = [_unb64(p, f"{where}: the proof") for p in row.proof]
            data = leaf_data(row.notification_id, UUID(row.originator_id), row.originator_version, row.topic, state)
        except (ValueError, OverflowError) as e:  # a bad UUID, a number out of range
            raise BundleError(f"{where}: {e}") from None
        leaf_hash = hasher.leaf(data)
        try:
            merkle.verify_inclusion(hasher, row.leaf_index, checkpoint.size, leaf_hash, proof, checkpoint.root)
        except merkle.InvalidProof as e:
            raise BundleError(f"{where}: not in the signed tree: {e}") from None
        head = hasher.chain(head, leaf_hash)
    if _unb64(bundle.stream_head, "the stream head") != head:
        raise BundleError("the stream's hash chain does not end at the head given")
    return BundleReport(
        patient_id=bundle.patient_id,
        rows=len(bundle.rows),
        tree_size=checkpoint.size,
        root=_b64(checkpoint.root),
        signed_by=[v.encode() for v in signed_by],
        cosigned_by=[c for c in cosigned if c],
        keys_from_bundle=not trusted_keys,
    )
