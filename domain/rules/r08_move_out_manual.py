"""R8 to a region without this system — a handover with a manual counterpart: the origin contacts
that region's health commission and relays its answer by hand (docs/decisions/042).

Seed: Jiaobei 卫生院 4(2) (对接市卫健局) and DESIGN.md R8 (never "accepted by nobody": the origin
stays responsible until the answer); owner: the origin's health center (the residence's); deadline
``RuleSettings.r8_manual_answer`` (30 days, our default) from the first contact recorded.

- *Opens* on ``HandoverContactRecorded`` (the move's ``destination_region`` is another region):
  ``obtain_handover_answer`` for the residence's health center, keyed by the move id (a second
  contact about the same move — a reminder — opens nothing more: the deadline stays).
- *Completed by* the relayed answer (``HandoverAnswered`` with its evidence). An acceptance is
  recorded with the deregistration, reason moved out (``PatientFile.record_relayed_answer``).
- *Rejected*: the patient stays registered here; the governance center of the residence gets
  ``manual_move_rejected`` (a notice).
- *Unanswered by the deadline*: R15 escalates it to the governance center, as any other.
- *Cancelled by* leaving the register for another reason.
"""

from __future__ import annotations

from typing import Any
from uuid import UUID

from domain.obligation import ObligationKind, obligation_id
from domain.patient_file import HandoverAnswered, HandoverContactRecorded, PatientDeregistered
from domain.registry import AgencyKind
from domain.rules.engine import Assignment, Decisions, Responsible, Trigger, owner_or_fallback
from domain.rules.entries import fact_of
from domain.rules.settings import RuleSettings

RULE = "R8"
OBTAIN = "obtain_handover_answer"
REJECTED = "manual_move_rejected"
R8_MANUAL_TOPICS = frozenset({HandoverContactRecorded.TOPIC, HandoverAnswered.TOPIC, PatientDeregistered.TOPIC})


def obtain_id(patient_id: UUID, move_id: Any) -> UUID:
    """The origin's obligation to obtain the answer of a region without this system (one per move)."""
    return obligation_id(patient_id, RULE, str(move_id), "manual")


def _contacted(patient: Any) -> set[Any]:
    return {e["move_id"] for e in patient.facts.get("handover_contact", ())}


def r08_move_out_manual(t: Trigger, patient: Any, responsible: Responsible, settings: RuleSettings) -> Decisions:
    """R8's decisions for one fact of a handover with a manual counterpart (module docstring)."""
    d = Decisions()
    if t.topic == HandoverContactRecorded.TOPIC:
        contact = fact_of(patient, "handover_contact", t.message_id)
        if contact is None:
            return d
        owner, action = owner_or_fallback(responsible, AgencyKind.HEALTH_CENTER, OBTAIN)
        if owner is None:
            return d
        d.opened.append(
            Assignment(
                id=obtain_id(t.patient_id, contact["move_id"]),
                kind=ObligationKind.OBLIGATION,
                rule=RULE,
                action=action,
                assignee=owner,
                episode_key=str(contact["move_id"]),
                due_at=t.recorded_at + settings.r8_manual_answer,
                risk_level=patient.risk_level,
            )
        )
    elif t.topic == HandoverAnswered.TOPIC:
        answer = fact_of(patient, "handover", t.message_id)
        if answer is None or answer.get("answered_on") is None or answer["move_id"] not in _contacted(patient):
            return d  # the destination's own answer (a move inside the region, 042) is R8 in the region's
        move_id = answer["move_id"]
        d.completed.append((obtain_id(t.patient_id, move_id), t.message_id))
        governance = responsible(AgencyKind.GOVERNANCE_CENTER)
        if not answer["accepted"] and governance is not None:
            d.opened.append(
                Assignment(
                    id=obligation_id(t.patient_id, RULE, f"{move_id}:{REJECTED}", "origin"),
                    kind=ObligationKind.NOTICE,
                    rule=RULE,
                    action=REJECTED,
                    assignee=governance,
                    episode_key=str(move_id),
                    due_at=None,
                    risk_level=None,
                )
            )
    elif t.topic == PatientDeregistered.TOPIC:
        for move_id in _contacted(patient):
            d.cancelled.append((obtain_id(t.patient_id, move_id), "the patient left the register", t.message_id))
    return d
