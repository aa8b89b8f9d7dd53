"""R19, R20 and R22 in the policy process, asked beside ``domain.rules.decide`` for the same fact.

R20 (the emergency flow) reads the patient's file as of the fact: its deadlines are minutes.
R19 needs what a patient rule's ``History`` does not carry: the agency kind of a fact's
recorder (the registry as recorded at the fact's log position) and the region's working-day
calendar (as R18). So the policy process asks it beside ``domain.rules.decide``, for the same
fact, in the same batch and transaction, from the same patient state as of the fact.
"""

from __future__ import annotations

from datetime import date
from typing import Any

from core.calendar_view import CalendarView, open_calendar
from domain.patient import Patient
from domain.registry import AgencyKind
from domain.risk_escalation import RiskEscalation, escalation_id, worsened
from domain.rules.engine import Decisions, Responsible, Trigger
from domain.rules.open_work import open_after
from domain.rules.r07_police_notice import R7_TOPICS, r07_police_notice
from domain.rules.r08_move_in_region import (
    R8_MOVE_TOPICS,
    RESIDENCE_CHANGED,
    moved_with_the_patient,
    r08_move_in_region,
)
from domain.rules.r08_move_out_manual import R8_MANUAL_TOPICS, r08_move_out_manual
from domain.rules.r19_hospital_new_patient import R19_TOPICS, r19_hospital_new_patient
from domain.rules.r20_emergency import R20_TOPICS, r20_emergency
from domain.rules.r22_emergency_access_review import R22_TOPICS, r22_emergency_access_review
from domain.rules.settings import RuleSettings

__all__ = [
    "R7_TOPICS",
    "R8_MANUAL_TOPICS",
    "R8_MOVE_TOPICS",
    "R19_TOPICS",
    "R20_TOPICS",
    "R22_TOPICS",
    "decide_beside",
    "record_risk_escalation",
]

#: The facts that carry an assessment (a visit's, or one outside a visit).
ASSESSMENT_TOPICS = frozenset({Patient.VisitRecorded.TOPIC, Patient.RiskAssessed.TOPIC})
#: The kinds that may see risk levels (DESIGN.md section 4) and so are told of an escalation.
SEE_RISK_LEVELS = (AgencyKind.HEALTH_CENTER, AgencyKind.POLICE_STATION, AgencyKind.GOVERNANCE_CENTER)


def record_risk_escalation(work: Any, trigger: Trigger, patient: Any, responsible: Responsible) -> None:
    """Derive ``RiskEscalated`` when the trigger's assessment is worse than the one before it by
    occurred time (once per assessment: the id is the patient's and the assessment's)."""
    if trigger.topic not in ASSESSMENT_TOPICS:
        return
    found = worsened(patient.assessments, trigger.message_id)
    if found is None or work.get(escalation_id(patient.id, trigger.message_id)) is not None:
        return
    recipients = sorted({a for kind in SEE_RISK_LEVELS if (a := responsible(kind)) is not None})
    work.add(RiskEscalation.derive(patient.id, *found, patient.residence, recipients, trigger.recorded_at))


def _calendar(process: Any) -> CalendarView:
    # the process's own view when it was given one; else one opened once, following the same log
    view = getattr(process, "calendar", None)
    if view is None:
        view = process.calendar = open_calendar(process.case_record)
    return view


def decide_beside(
    process: Any, trigger: Trigger, patient: Any, responsible: Responsible, settings: RuleSettings, on: date
) -> Decisions:
    """R20's, R22's, R7's, R8's (a move inside the region, the open work that moves with an
    accepted one, or a move to a region without this system) and R19's decisions for one patient
    fact (the registry and calendar as recorded then)."""
    d = Decisions()
    if trigger.topic in R20_TOPICS:
        d.extend(r20_emergency(trigger, patient, responsible, settings))

    def responsible_at(unit: str, kind: AgencyKind) -> str | None:
        return process.registry.responsible(unit, kind, on, as_of_position=trigger.position)

    if trigger.topic in R7_TOPICS or trigger.topic in R8_MOVE_TOPICS:  # about the destination too
        region = process.registry.region
        d.extend(r08_move_in_region(trigger, patient, region, responsible, responsible_at, settings))
        d.extend(r07_police_notice(trigger, patient, region, responsible, responsible_at, settings))
    if trigger.topic == RESIDENCE_CHANGED:  # the open work about the home moves with the patient
        before = process.case_record.events.get(patient.id, lte=trigger.version - 1)
        d.extend(moved_with_the_patient(trigger, patient, open_after(before, settings), responsible_at))

    if trigger.topic in R8_MANUAL_TOPICS:  # a move to a region without this system
        d.extend(r08_move_out_manual(trigger, patient, responsible, settings))

    def working_days(start: date, n: int) -> date:
        return _calendar(process).add_working_days(start, n, as_of_position=trigger.position).day

    if trigger.topic in R22_TOPICS:  # break the glass: the governance center reviews each grant
        d.extend(r22_emergency_access_review(trigger, patient, responsible, settings, working_days))
    if trigger.topic not in R19_TOPICS:
        return d

    def kind_of(agency_id: str) -> str | None:
        info = process.registry.agency(agency_id, as_of_position=trigger.position, on=on)
        return None if info is None else str(info.kind)

    return d.extend(r19_hospital_new_patient(trigger, patient, kind_of, responsible, settings, working_days))
