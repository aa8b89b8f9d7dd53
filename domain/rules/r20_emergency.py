"""R20 — a patient dangerous to self or others now: the police respond within minutes, the
governance center coordinates, the care team is told.

Seed: Jiaobei 措施 (三) ③ (a patient found dangerous is reported straight to the governance
center and the police are dispatched at once; ② the agencies consult and decide the measures,
会商确定具体措施); owners: the police station and the governance center covering the residence;
deadlines: ``RuleSettings.r20_police_response`` (30 minutes) and ``r20_coordinate`` (2 hours, our
default), from when the report was recorded. R15 marks a missed deadline overdue and escalates
it: the scheduler runs every second, so within a minute of the deadline.

- *Opens* on an emergency: a ``cn.smd.risk.escalated.v1`` report (committee, health center,
  police), or an assessment at level 4 or 5 while the patient is at home (not in hospital or
  institutional care) and on the register → the police: ``respond_to_emergency``; the
  governance center: ``coordinate_emergency``; the committee and the health center (the care
  team): ``emergency_notice``. Keyed by the emergency's message id.
- *The same emergency*: a second report or assessment dated within
  ``r20_same_emergency_within`` (2 hours) after an earlier one opens nothing; nor does one
  recorded more than ``r20_too_late`` (6 hours) after it occurred (a late batch or a visit
  recorded the next day tells of an emergency that is over: the record keeps it, nobody is
  dispatched for the past).
- *Completed by*: the police's ``cn.smd.emergency.responded.v1`` (the police's part) and the
  governance center's ``cn.smd.emergency.coordinated.v1`` (its part), dated at or after the
  emergency and within ``ANSWER_WITHIN`` (7 days) of it. *Cancelled by*: leaving the register.

The rule reads the patient's file as of the fact (the minute deadlines do not fit the episode
walk's day-scale conditions): the policy process asks it beside the patient rules, like R19.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from domain.obligation import obligation_id
from domain.patient import Patient
from domain.patient_file import (
    EmergencyCoordinated,
    EmergencyResponded,
    PatientDeregistered,
    RiskEscalationReported,
)
from domain.registry import AgencyKind
from domain.rules.engine import Decisions, Responsible, Trigger, notice, obligation
from domain.rules.settings import RuleSettings
from domain.values import by_occurred

RULE = "R20"
REPORTED = RiskEscalationReported.TOPIC
ASSESSED = frozenset({Patient.VisitRecorded.TOPIC, Patient.RiskAssessed.TOPIC})
RESPONDED, COORDINATED = EmergencyResponded.TOPIC, EmergencyCoordinated.TOPIC
DEREGISTERED = PatientDeregistered.TOPIC

#: An answer completes the emergencies dated at most this long before it.
ANSWER_WITHIN = timedelta(days=7)

#: The patient facts R20 reacts to.
R20_TOPICS = frozenset({REPORTED, RESPONDED, COORDINATED, DEREGISTERED}) | ASSESSED

#: Which obligation each answer completes.
_ANSWERS = {RESPONDED: ("emergency_response", "police"), COORDINATED: ("emergency_coordination", "governance")}


def emergency_id(patient_id: Any, key: str, role: str) -> Any:
    """The obligation of ``role`` (``police``, ``governance``) for the emergency ``key``."""
    return obligation_id(patient_id, RULE, key, role)


def emergencies(patient: Any) -> list[dict[str, Any]]:
    """Every emergency on file, by occurred time: danger reports and level 4-5 assessments (an
    assessment made in hospital or institutional care is an emergency only for the rule's opening
    check, which the trigger answers; listing it here lets an answer complete what it opened)."""
    found = [e for e in patient.facts.get("danger", [])]
    found += [a for a in patient.assessments if a["level"] >= 4]
    return sorted(found, key=by_occurred)


def r20_emergency(trigger: Trigger, patient: Any, responsible: Responsible, settings: RuleSettings) -> Decisions:
    """R20's decisions for one patient fact (module docstring); ``patient`` as of the trigger."""
    d = Decisions()
    if trigger.topic not in R20_TOPICS:
        return d
    if trigger.topic == DEREGISTERED:  # whatever is still open of any emergency is moot
        for e in emergencies(patient):
            for role in ("police", "governance"):
                oid = emergency_id(patient.id, e["key"], role)
                d.cancelled.append((oid, "the patient left the register", trigger.message_id))
        return d
    if trigger.topic in _ANSWERS:
        kind, role = _ANSWERS[trigger.topic]
        answer = next(e for e in patient.facts[kind] if e["key"] == trigger.message_id)
        for e in emergencies(patient):
            if e["at"] <= answer["at"] <= e["at"] + ANSWER_WITHIN:
                d.completed.append((emergency_id(patient.id, e["key"], role), trigger.message_id))
        return d
    this = next((e for e in emergencies(patient) if e["key"] == trigger.message_id), None)
    if this is None or not _opens(this, patient, trigger, settings):
        return d
    key, level = this["key"], patient.risk_level
    common = {"rule": RULE, "key": key, "risk_level": level}
    d.opened += obligation(
        trigger,
        responsible,
        AgencyKind.POLICE_STATION,
        role="police",
        action="respond_to_emergency",
        due_at=trigger.recorded_at + settings.r20_police_response,
        **common,
    )
    d.opened += obligation(
        trigger,
        responsible,
        AgencyKind.GOVERNANCE_CENTER,
        role="governance",
        action="coordinate_emergency",
        due_at=trigger.recorded_at + settings.r20_coordinate,
        **common,
    )
    for kind, role in ((AgencyKind.COMMITTEE, "committee-notice"), (AgencyKind.HEALTH_CENTER, "health-center-notice")):
        d.opened += notice(trigger, responsible, kind, role=role, action="emergency_notice", **common)
    return d


def _opens(this: dict[str, Any], patient: Any, trigger: Trigger, settings: RuleSettings) -> bool:
    at: datetime = this["at"]
    if patient.deregistered_at is not None or trigger.recorded_at - at > settings.r20_too_late:
        return False
    if trigger.topic in ASSESSED and (patient.in_hospital or patient.in_institutional_care):
        return False  # assessed while cared for away from home: the ward or institution acts
    earlier = [e for e in emergencies(patient) if e is not this and by_occurred(e) < by_occurred(this)]
    return not any(at - e["at"] <= settings.r20_same_emergency_within for e in earlier)
