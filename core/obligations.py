"""An agency acting on its own obligations and notices: acknowledge, complete, mark read."""

from __future__ import annotations

from uuid import UUID

from eventsourcing.application import AggregateNotFoundError
from eventsourcing.persistence import IntegrityError

from core.case_record import CaseRecord, ConcurrentWriteConflict
from core.restrictions import is_restricted
from domain.obligation import Obligation, ObligationNotFound


def act(
    case_record: CaseRecord,
    obligation_id: UUID,
    agency_id: str,
    staff_id: str | None,
    action: str,
    note: str | None = None,
) -> tuple[Obligation, bool]:
    """Load, act as the owner, save (retrying on a concurrent change); returns (obligation, changed)."""
    for _ in range(10):
        try:
            obligation = case_record.repository.get(obligation_id)
        except AggregateNotFoundError:
            raise ObligationNotFound(obligation_id) from None
        if not isinstance(obligation, Obligation) or is_restricted(case_record, obligation.patient_id):
            raise ObligationNotFound(obligation_id)  # a restricted patient's obligations are out of every list
        now = case_record.clock()
        if action == "acknowledge":
            changed = obligation.acknowledge(agency_id, staff_id, now)
        elif action == "read":
            changed = obligation.mark_read(agency_id, staff_id, now)
        else:
            changed = obligation.complete(now, fulfilled_by=None, by_agency=agency_id, note=note)
        if not changed:
            return obligation, False
        try:
            case_record.save(obligation)
        except IntegrityError:
            continue  # the policy or the scheduler changed it first: look again
        return obligation, True
    raise ConcurrentWriteConflict(f"obligation {obligation_id}", 10)
