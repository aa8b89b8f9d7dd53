"""R19 — a patient the psychiatric hospital registers or diagnoses is taken over by the health
center: a first follow-up within 10 working days.

Seed: Jiaobei 卫生院 3(1) (the psychiatric hospital pushes new diagnoses; the health center
takes the patient into management, 纳入管理); owner: the health center covering the residence
(none on record: the governance center, ``assign_health_center``); deadline: the end (24:00
China time) of the ``RuleSettings.r19_take_over_working_days``-th working day after the
hospital's fact was recorded, by the region's working-day calendar (as R18).

- *Opens* (once per patient: the obligation's key is fixed, so a second push opens nothing):
  a registration, or a diagnosis (not a revocation), recorded by an agency of the psychiatric
  hospital kind, for a patient on the register whom no visit has reached yet → the health center:
  ``take_over_from_hospital``; the governance center is told (``hospital_new_patient_notice``),
  and the police station too when the latest assessment is level 3 or more.
- *Completed by*: the first visit dated at or after the hospital's first such fact.
- *Cancelled by*: the diagnosis is revoked, or the patient leaves the register.

The agency kind of a fact's recorder is the registry's, as recorded at the trigger (``kind_of``):
the policy process asks it, like ``responsible``; the rule stays pure.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime, time, timedelta
from typing import Any

from domain.identity import CHINA_TZ
from domain.obligation import obligation_id
from domain.patient import Patient
from domain.patient_file import DiagnosisRecorded, PatientDeregistered
from domain.registry import AgencyKind
from domain.rules.engine import Decisions, Responsible, Trigger, notice, obligation
from domain.rules.r18_suspected_case import WorkingDays, weekdays
from domain.rules.settings import RuleSettings

RULE = "R19"
KEY = "hospital-new-patient"  # once per patient
REGISTERED, DIAGNOSED = Patient.Registered.TOPIC, DiagnosisRecorded.TOPIC
VISITED, DEREGISTERED = Patient.VisitRecorded.TOPIC, PatientDeregistered.TOPIC

#: The patient facts R19 reacts to.
R19_TOPICS = frozenset({REGISTERED, DIAGNOSED, VISITED, DEREGISTERED})

#: ``kind_of(agency_id)`` → the agency's kind in the registry (None: not on record).
KindOf = Callable[[str], str | None]


def take_over_id(patient_id: Any) -> Any:
    """The health center's obligation (one per patient)."""
    return obligation_id(patient_id, RULE, KEY, "health-center")


def _hospital_facts(patient: Any, kind_of: KindOf) -> list[tuple[datetime, str]]:
    """The registration and diagnoses the psychiatric hospital recorded: (occurred, message id)."""
    hospital = str(AgencyKind.PSYCHIATRIC_HOSPITAL)
    found = []
    if kind_of(patient.registered_by) == hospital:
        found.append((patient.registered_at, "registration"))
    for e in patient.facts.get("diagnosis", []):
        if not e["revoked"] and kind_of(e["by"]) == hospital:
            found.append((e["at"], e["key"]))
    return sorted(found)


def r19_hospital_new_patient(
    trigger: Trigger,
    patient: Any,
    kind_of: KindOf,
    responsible: Responsible,
    settings: RuleSettings,
    working_days: WorkingDays = weekdays,
) -> Decisions:
    """R19's decisions for one patient fact (module docstring); ``patient`` as of the trigger."""
    d = Decisions()
    if trigger.topic not in R19_TOPICS:
        return d
    facts = _hospital_facts(patient, kind_of)
    if not facts:
        return d
    first_at = facts[0][0]
    after = sorted((v for v in patient.visits if v["at"] >= first_at), key=lambda v: (v["at"], v["v"]))
    hospital = str(AgencyKind.PSYCHIATRIC_HOSPITAL)
    if trigger.topic in (REGISTERED, DIAGNOSED):
        if trigger.topic == DIAGNOSED:
            entry = next(e for e in patient.facts["diagnosis"] if e["key"] == trigger.message_id)
            if entry["revoked"]:
                d.cancelled.append((take_over_id(patient.id), "the diagnosis was revoked", trigger.message_id))
                return d
            if kind_of(entry["by"]) != hospital:
                return d
        if patient.deregistered_at is not None or patient.visits:
            return d  # not new to the health center: a visit already reached the patient
        day = working_days(trigger.recorded_at.astimezone(CHINA_TZ).date(), settings.r19_take_over_working_days)
        due = datetime.combine(day + timedelta(days=1), time(0), CHINA_TZ)  # the end of that working day
        level = patient.risk_level
        told = {"rule": RULE, "key": KEY, "action": "hospital_new_patient_notice", "risk_level": level}
        d.opened += obligation(
            trigger,
            responsible,
            AgencyKind.HEALTH_CENTER,
            rule=RULE,
            key=KEY,
            role="health-center",
            action="take_over_from_hospital",
            due_at=due,
            risk_level=level,
        )
        d.opened += notice(trigger, responsible, AgencyKind.GOVERNANCE_CENTER, role="governance-notice", **told)
        if level is not None and level >= 3:
            d.opened += notice(trigger, responsible, AgencyKind.POLICE_STATION, role="police-notice", **told)
    elif trigger.topic == VISITED:
        if after and after[0]["key"] == trigger.message_id:  # the first visit since the hospital's fact
            d.completed.append((take_over_id(patient.id), trigger.message_id))
    elif trigger.topic == DEREGISTERED and not after:
        d.cancelled.append((take_over_id(patient.id), "the patient left the register", trigger.message_id))
    return d
