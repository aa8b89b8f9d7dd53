"""`/v1/audit/…`: the verifiable log for auditors: checkpoints, inclusion and consistency proofs.

Auditors only (DESIGN.md section 4: the auditor reads everything, read-only). The controller
depends on the ``AuditPort`` (api.ports), not on the whole service.
"""

from __future__ import annotations

import asyncio
from typing import Annotated
from uuid import UUID

import msgspec
from litestar import Controller, Response, get
from litestar.di import NamedDependency, Provide
from litestar.exceptions import PermissionDeniedException
from litestar.params import FromPath, QueryParameter

from api.auth import Caller, agency_guard, provide_caller
from api.obligations import StaffId
from api.ports import AuditBundlePort, AuditPort, Port
from api.reads import Purpose, Revealed, default_purpose, recorded


class CheckpointOut(msgspec.Struct):
    """A signed checkpoint (C2SP tlog-checkpoint in a signed note, with witnesses' cosignatures)."""

    origin: str
    size: int
    root: str
    algorithm: str
    signed_at: str
    note: str
    key_id: str
    verifier_key: str
    witnesses: list[str]


class InclusionOut(msgspec.Struct):
    """RFC 9162 audit path of one stored row (base64 hashes, bottom-up)."""

    notification_id: int
    leaf_index: int
    tree_size: int
    algorithm: str
    leaf_hash: str
    proof: list[str]


class ConsistencyOut(msgspec.Struct):
    """RFC 9162 consistency proof between two tree sizes (base64 hashes)."""

    first: int
    second: int
    algorithm: str
    proof: list[str]


Size = Annotated[
    int | None, QueryParameter(name="size", ge=1, description="tree size (default: the latest checkpoint's)")
]


def _auditor_only(caller: Caller) -> None:
    if caller.kind != "auditor":
        raise PermissionDeniedException(
            detail=f"the verifiable log is served to auditors; {caller.agency_id} is a {caller.kind}"
        )


class AuditController(Controller):
    """Checkpoints and proofs of the verifiable log."""

    path = "/v1/audit"
    tags = ["audit"]  # noqa: RUF012
    guards = [agency_guard]  # noqa: RUF012
    dependencies = {"caller": Provide(provide_caller)}  # noqa: RUF012

    @get(
        "/checkpoints/latest",
        operation_id="latestCheckpoint",
        summary="The latest signed checkpoint",
        description=(
            "The C2SP tlog-checkpoint of the verifiable log (origin, tree size, base64 root) in a signed "
            "note (Ed25519), with each witness's cosignature line; `verifier_key` checks it offline. "
            "404 `no-checkpoint-yet` before the first one. Auditors only."
        ),
    )
    async def latest(self, caller: NamedDependency[Caller], services: Port[AuditPort]) -> CheckpointOut:
        _auditor_only(caller)
        view = await asyncio.to_thread(services.audit.latest)
        return CheckpointOut(**{f: getattr(view, f) for f in CheckpointOut.__struct_fields__})

    @get(
        "/checkpoints/{size:int}",
        operation_id="checkpointOfSize",
        summary="The checkpoint signed at one tree size",
    )
    async def of_size(
        self, size: FromPath[int], caller: NamedDependency[Caller], services: Port[AuditPort]
    ) -> CheckpointOut:
        _auditor_only(caller)
        view = await asyncio.to_thread(services.audit.checkpoint, size)
        return CheckpointOut(**{f: getattr(view, f) for f in CheckpointOut.__struct_fields__})

    @get(
        "/proofs/inclusion",
        operation_id="inclusionProof",
        summary="Inclusion proof of one stored row",
        description=(
            "`notification_id`: the row's log position; `size`: the tree (default: the latest checkpoint's). "
            "404 `not-in-tree` when the row is not in that tree yet. Auditors only."
        ),
    )
    async def inclusion(
        self,
        caller: NamedDependency[Caller],
        services: Port[AuditPort],
        notification_id: Annotated[int, QueryParameter(name="notification_id", ge=1)],
        size: Size = None,
    ) -> InclusionOut:
        _auditor_only(caller)
        return InclusionOut(**await asyncio.to_thread(services.audit.inclusion, notification_id, size))

    @get(
        "/proofs/consistency",
        operation_id="consistencyProof",
        summary="Consistency proof between two tree sizes",
        description="`first` and `second` (default: the latest checkpoint's size). Auditors only.",
    )
    async def consistency(
        self,
        caller: NamedDependency[Caller],
        services: Port[AuditPort],
        first: Annotated[int, QueryParameter(name="first", ge=0)],
        second: Size = None,
    ) -> ConsistencyOut:
        _auditor_only(caller)
        return ConsistencyOut(**await asyncio.to_thread(services.audit.consistency, first, second))

    @get(
        "/patients/{patient_id:uuid}/bundle",
        operation_id="patientProofBundle",
        summary="A patient's proof bundle, to check offline",
        description=(
            "One file (canonical JSON, `smd-proof-bundle/v1`): the patient's stored rows as stored (sealed "
            "fields as ciphertext; never a key), each with its inclusion proof, the latest cosigned "
            "checkpoint (`size`: another signed one) and the public keys. `smd verify-bundle FILE` checks it "
            "with no database; one byte changed anywhere fails. 404 `not-in-tree` when no row of the patient "
            "is in that tree. Auditors only; recorded in the access log (the patient, the field "
            "`proof_bundle`), refusals too."
        ),
        media_type="application/json",
    )
    async def bundle(
        self,
        patient_id: FromPath[UUID],
        caller: NamedDependency[Caller],
        services: Port[AuditBundlePort],
        size: Size = None,
        purpose: Purpose = None,
        staff_id: StaffId = None,
    ) -> Response[bytes]:
        async def read() -> tuple[Response[bytes], Revealed]:
            body = await asyncio.to_thread(services.audit.bundle, patient_id, size)
            answer = Response(
                body,
                media_type="application/json",
                headers={"Content-Disposition": f'attachment; filename="bundle-{patient_id}.json"'},
            )
            return answer, Revealed.of([patient_id], ["proof_bundle"])

        endpoint = "GET /v1/audit/patients/{patient_id}/bundle"
        stated = default_purpose(caller, purpose)
        return await recorded(services, caller, endpoint, stated, staff_id, read, check=lambda: _auditor_only(caller))
