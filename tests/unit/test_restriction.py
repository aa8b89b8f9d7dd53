"""The rules of restriction and erasure on the aggregates alone: two agencies, one an auditor;
an act that changes nothing is refused; an erasure is due only after its cooling-off."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from uuid import uuid4

import pytest

from domain.restriction import (
    AlreadyRestricted,
    ApprovalBySameAgency,
    ApprovalNeedsAnAuditor,
    ErasureApproved,
    NotRestricted,
    ReasonRequired,
    RequestAlreadyDecided,
    Restriction,
    RestrictionAct,
    RestrictionRequest,
    SubjectKind,
    restriction_id,
)

NOW = datetime(2026, 11, 20, 12, tzinfo=UTC)
DAYS_30 = timedelta(days=30)


def filed(act: RestrictionAct = RestrictionAct.RESTRICT, kind: str = "health_center") -> RestrictionRequest:
    return RestrictionRequest.file(
        uuid4(), uuid4(), SubjectKind.PATIENT, act, "hc-north", kind, "k1", None, "family asked", NOW
    )


class TestTheApproval:
    def test_the_requesting_agency_cannot_approve_its_own_request(self) -> None:
        with pytest.raises(ApprovalBySameAgency):
            filed().approve("hc-north", "health_center", "k2", None, "ok", NOW)

    def test_one_of_the_two_agencies_must_be_an_auditor(self) -> None:
        with pytest.raises(ApprovalNeedsAnAuditor):
            filed().approve("police-east", "police", "k2", None, "ok", NOW)
        request = filed()
        request.approve("auditor-lantern-bay", "auditor", "k2", None, "ok", NOW)
        assert request.approved_by == "auditor-lantern-bay"

    def test_a_request_is_approved_once_and_every_act_states_its_reason(self) -> None:
        request = filed(kind="auditor")
        request.approve("hc-north-2", "health_center", "k2", None, "ok", NOW)
        with pytest.raises(RequestAlreadyDecided):
            request.approve("gov-willowbrook", "governance_center", "k3", None, "ok", NOW)
        with pytest.raises(ReasonRequired):
            RestrictionRequest.file(
                uuid4(), uuid4(), SubjectKind.PATIENT, RestrictionAct.RESTRICT, "a", "auditor", "k", None, " ", NOW
            )


class TestTheRestrictionState:
    def test_restricting_twice_or_lifting_what_is_not_restricted_is_refused(self) -> None:
        subject = uuid4()
        state = Restriction.open(subject, SubjectKind.PATIENT, NOW)
        assert state.id == restriction_id(subject) and not state.restricted
        with pytest.raises(NotRestricted):
            state.take(RestrictionAct.LIFT, uuid4(), NOW, DAYS_30)
        state.take(RestrictionAct.RESTRICT, uuid4(), NOW, DAYS_30)
        assert state.restricted
        with pytest.raises(AlreadyRestricted):
            state.take(RestrictionAct.RESTRICT, uuid4(), NOW, DAYS_30)
        state.take(RestrictionAct.LIFT, uuid4(), NOW, DAYS_30)
        assert not state.restricted

    def test_an_approved_erasure_restricts_at_once_and_is_due_only_after_the_cooling_off(self) -> None:
        state = Restriction.open(uuid4(), SubjectKind.SUSPECTED_CASE, NOW)
        state.take(RestrictionAct.ERASE, uuid4(), NOW, DAYS_30)
        assert state.restricted and state.erase_after == NOW + DAYS_30
        assert not state.erase_due(NOW + DAYS_30 - timedelta(seconds=1))
        assert state.erase_due(NOW + DAYS_30)
        with pytest.raises(ErasureApproved):
            state.take(RestrictionAct.LIFT, uuid4(), NOW, DAYS_30)
        state.record_erased(0, NOW + DAYS_30)
        assert state.erased_at == NOW + DAYS_30 and not state.erase_due(NOW + DAYS_30 * 2)
