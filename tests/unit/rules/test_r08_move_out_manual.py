"""R8 to a region without this system told as stories: the contact opens the origin's obligation
to obtain the answer; the relayed answer completes it; an acceptance deregisters the patient as
moved out, a rejection tells the governance center (docs/decisions/042)."""

from __future__ import annotations

import dataclasses
from datetime import date, timedelta
from uuid import uuid4

import pytest

from domain.patient_file import HandoverAnswered, NoHandoverContact, NotAManualHandover
from domain.registry import AgencyKind
from domain.rules.engine import FALLBACK_ACTION
from domain.rules.r08_move_out_manual import OBTAIN, REJECTED, obtain_id, r08_move_out_manual
from tests.unit.rules.story import NOW, Story, without

REGION = "990101"


def decide(s: Story, key: str | None = None, topic: str | None = None):
    t = s.trigger()
    if key is not None:
        t = dataclasses.replace(t, message_id=key, topic=topic or t.topic)
    return r08_move_out_manual(t, s.patient, s.responsible, s.settings)


def contacted(s: Story | None = None, region: str = "990303") -> tuple[Story, object]:
    s = s or Story()
    move_id = uuid4()
    s.record(
        "report_move", 5, move_id=move_id, destination_region=region, destination_unit=None, moving_on=date(2026, 12, 1)
    )
    s.record(
        "record_handover_contact",
        4,
        move_id=move_id,
        contacted_on=date(2026, 11, 16),
        channel="phone",
        reference="call with the commission's office",
        region=REGION,
    )
    return s, move_id


def relay(s: Story, move_id, accepted: bool) -> str:
    return s.record(
        "record_relayed_answer",
        1,
        move_id=move_id,
        accepted=accepted,
        answered_on=date(2026, 11, 19),
        evidence="letter 7/2026",
        reason=None,
        region=REGION,
    )


class TestR8ToARegionWithoutTheSystem:
    def test_the_contact_opens_the_origins_obligation_to_obtain_the_answer(self) -> None:
        s, move_id = contacted()
        (a,) = decide(s).opened
        assert (a.id, a.assignee, a.action, a.due_at) == (
            obtain_id(s.patient.id, move_id),
            "hc",
            OBTAIN,
            NOW + timedelta(days=30),
        )

    def test_without_a_health_center_the_governance_center_assigns_one(self) -> None:
        s, _ = contacted(Story(agencies=without(AgencyKind.HEALTH_CENTER)))
        (a,) = decide(s).opened
        assert (a.assignee, a.action) == ("gov", FALLBACK_ACTION[AgencyKind.HEALTH_CENTER])

    def test_the_relayed_acceptance_completes_it_and_deregisters_as_moved_out(self) -> None:
        s, move_id = contacted()
        key = relay(s, move_id, True)
        d = decide(s, key, HandoverAnswered.TOPIC)
        assert (d.completed, d.opened) == ([(obtain_id(s.patient.id, move_id), key)], [])
        assert s.patient.deregistered_at is not None
        assert s.patient.facts["deregistration"][-1]["reason"] == "moved_out"

    def test_a_rejection_tells_the_governance_center_and_keeps_the_patient(self) -> None:
        s, move_id = contacted()
        key = relay(s, move_id, False)
        d = decide(s, key, HandoverAnswered.TOPIC)
        assert [(a.assignee, a.action) for a in d.opened] == [("gov", REJECTED)]
        assert s.patient.deregistered_at is None

    def test_leaving_the_register_otherwise_cancels_it(self) -> None:
        s, move_id = contacted()
        s.record("deregister", 1, reason="death")
        assert [i for i, _, _ in decide(s).cancelled] == [obtain_id(s.patient.id, move_id)]

    def test_an_answer_inside_the_region_is_not_this_rules(self) -> None:
        s = Story()
        move_id = uuid4()
        s.record(
            "report_move",
            2,
            move_id=move_id,
            destination_region=REGION,
            destination_unit="v-02",
            moving_on=date(2026, 12, 1),
        )
        with pytest.raises(NotAManualHandover):
            s.record(
                "record_handover_contact",
                1,
                move_id=move_id,
                contacted_on=date(2026, 11, 19),
                channel="letter",
                reference=None,
                region=REGION,
            )
        s.record("answer_handover", 1, move_id=move_id, accepted=True, region=REGION)
        assert decide(s, s.patient.facts["handover"][-1]["key"], HandoverAnswered.TOPIC).completed == []

    def test_an_answer_without_a_contact_is_refused(self) -> None:
        s = Story()
        move_id = uuid4()
        s.record(
            "report_move",
            2,
            move_id=move_id,
            destination_region="990303",
            destination_unit=None,
            moving_on=date(2026, 12, 1),
        )
        with pytest.raises(NoHandoverContact):
            relay(s, move_id, True)
