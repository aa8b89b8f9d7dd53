"""C2SP signed notes, checkpoints and cosignatures: what a signature covers, and what breaks it."""

from __future__ import annotations

import pytest

from core.audit.notes import (
    COSIGNATURE_V1,
    Checkpoint,
    NoteError,
    SignedNote,
    Signer,
    Verifier,
    check_cosignature,
    cosign,
    cosignature_line,
    open_note,
    sign,
)

LOG = Signer.from_seed("smd.example/990101", bytes(range(32)))
WITNESS = Signer.from_seed("witness.example/w1", bytes(range(1, 33)), COSIGNATURE_V1)


def checkpoint() -> Checkpoint:
    return Checkpoint("smd.example/990101", 7, bytes(32), ("smd-apikeys 3 AAAA",))


class TestSignedCheckpoints:
    def test_a_checkpoint_is_origin_size_root_and_extensions_each_on_its_line(self) -> None:
        body = checkpoint().body()
        assert body == "smd.example/990101\n7\n" + "A" * 43 + "=\nsmd-apikeys 3 AAAA\n"
        assert Checkpoint.parse(body) == checkpoint()

    def test_a_signed_note_verifies_with_the_verifier_key_alone(self) -> None:
        text = sign(checkpoint().body(), LOG).text()
        assert text.endswith("\n") and "\n\n\u2014 smd.example/990101 " in text
        verifier = Verifier.decode(LOG.verifier.encode())
        note, good = open_note(text, [verifier])
        assert Checkpoint.parse(note.body).size == 7 and good == [verifier]

    @pytest.mark.parametrize("position", [0, 20, 25, 60])
    def test_one_byte_changed_anywhere_in_the_body_fails(self, position: int) -> None:
        text = sign(checkpoint().body(), LOG).text()
        changed = text[:position] + ("x" if text[position] != "x" else "y") + text[position + 1 :]
        with pytest.raises(NoteError):
            open_note(changed, [LOG.verifier])

    def test_another_key_or_a_rotated_key_does_not_verify(self) -> None:
        text = sign(checkpoint().body(), LOG).text()
        other = Signer.from_seed("smd.example/990101", bytes(32))
        assert other.verifier.key_id != LOG.verifier.key_id  # same name, new key id
        with pytest.raises(NoteError, match="no signature by a known key"):
            open_note(text, [other.verifier])

    def test_a_witness_cosignature_covers_the_checkpoint_and_its_time(self) -> None:
        note = sign(checkpoint().body(), LOG)
        name, kid, payload = cosign(note.body, WITNESS, 1_790_000_000)
        cosigned = SignedNote.parse(note.text() + cosignature_line(name, kid, payload))
        assert check_cosignature(cosigned, WITNESS.verifier) == 1_790_000_000
        forged = SignedNote(note.body.replace("\n7\n", "\n8\n"), cosigned.signatures)
        with pytest.raises(NoteError):
            check_cosignature(forged, WITNESS.verifier)
        assert Verifier.decode(WITNESS.verifier.encode()).kind == COSIGNATURE_V1
