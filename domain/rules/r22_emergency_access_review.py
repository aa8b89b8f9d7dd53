"""R22 — emergency access granted (break the glass): the governance center reviews the grant
within 5 working days.

Seed: DESIGN.md section 4 ("an agency outside the jurisdiction may request time-limited
emergency access with a reason; … gives the governance center an obligation to review it";
精神卫生法 art. 4: identifying and medical information is confidential except as a legal duty
requires, so every access beyond the jurisdiction is questioned by a person). Owner: the
governance center covering the patient's residence; deadline: the end (24:00 China time) of the
``RuleSettings.r22_review_working_days``-th working day after the grant was recorded, by the
region's working-day calendar (as R18 and R19). R15 marks it overdue and escalates it when late.

- *Opens* on ``EmergencyAccessGranted`` → the governance center: ``review_emergency_access``,
  one per grant (keyed by the grant id).
- *Completed by*: the governance center's ``cn.smd.emergency-access.reviewed.v1`` naming the
  grant (justified or not: either outcome is a review done).
- *Never cancelled*: leaving the register does not undo a read made while the patient was on it.

Asked beside ``decide`` by ``core.beside_policies`` (it needs the working-day calendar).
"""

from __future__ import annotations

from datetime import datetime, time, timedelta
from typing import Any

from domain.emergency_access import EmergencyAccessGranted, EmergencyAccessReviewed, grant_message_id
from domain.identity import CHINA_TZ
from domain.obligation import obligation_id
from domain.registry import AgencyKind
from domain.rules.engine import Decisions, Responsible, Trigger, obligation
from domain.rules.r18_suspected_case import WorkingDays, weekdays
from domain.rules.settings import RuleSettings

RULE = "R22"
ACTION = "review_emergency_access"
ROLE = "governance"
GRANTED, REVIEWED = EmergencyAccessGranted.TOPIC, EmergencyAccessReviewed.TOPIC

#: The patient facts R22 reacts to.
R22_TOPICS = frozenset({GRANTED, REVIEWED})


def review_id(patient_id: Any, grant: Any) -> Any:
    """The governance center's obligation to review one grant."""
    return obligation_id(patient_id, RULE, str(grant), ROLE)


def r22_emergency_access_review(
    trigger: Trigger,
    patient: Any,
    responsible: Responsible,
    settings: RuleSettings,
    working_days: WorkingDays = weekdays,
) -> Decisions:
    """R22's decisions for one patient fact (module docstring); ``patient`` as of the trigger."""
    d = Decisions()
    if trigger.topic == GRANTED:
        grant = next(
            (e for e in patient.emergency_grants() if grant_message_id(e["grant_id"]) == trigger.message_id), None
        )
        if grant is None:
            return d
        day = working_days(trigger.recorded_at.astimezone(CHINA_TZ).date(), settings.r22_review_working_days)
        due = datetime.combine(day + timedelta(days=1), time(0), CHINA_TZ)  # the end of that working day
        d.opened += obligation(
            trigger,
            responsible,
            AgencyKind.GOVERNANCE_CENTER,
            rule=RULE,
            key=str(grant["grant_id"]),
            role=ROLE,
            action=ACTION,
            due_at=due,
        )
    elif trigger.topic == REVIEWED:
        review = next(
            (
                e
                for e in patient.__dict__.get("facts", {}).get("emergency_access_review", [])
                if e["key"] == trigger.message_id
            ),
            None,
        )
        if review is not None:
            d.completed.append((review_id(patient.id, review["grant_id"]), trigger.message_id))
    return d
