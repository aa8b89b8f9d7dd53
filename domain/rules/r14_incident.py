"""R14 — an incident: the governance center reviews it and the police respond.

Seed: Jiaobei 派出所 3 (迅速派警) and Qingyang Q-8 (incidents reviewed); owners: the police
station (``respond_to_incident``, ``RuleSettings.r14_police_response``, 24 hours) and the
governance center (``review_incident``, ``RuleSettings.r14_review``, 7 days) covering the
residence (none on record: the governance center assigns one).

- *Keyed by* the incident id the reporter chose, one pair of obligations per incident.
- *Completed by*: the review and the police response of that incident.
- Nothing cancels them: the incident happened, and its review outlives the register. Imported
  incidents and the backfill open nothing: the past's reviews are the past's.
"""

from __future__ import annotations

from domain.obligation import obligation_id
from domain.patient_file import IncidentReported, IncidentReviewed, PoliceRespondedToIncident
from domain.registry import AgencyKind
from domain.rules.engine import Condition, Decisions, History, Responsible, Trigger, obligation
from domain.rules.settings import RuleSettings

RULE = "R14"
_KIND = {
    IncidentReported.TOPIC: "incident",
    IncidentReviewed.TOPIC: "incident_review",
    PoliceRespondedToIncident.TOPIC: "incident_response",
}


class Incident:
    """R14 (module docstring)."""

    rule = RULE
    owner = AgencyKind.POLICE_STATION

    def conditions(self, settings: RuleSettings) -> tuple[Condition, ...]:
        return ()

    def __call__(self, t: Trigger, h: History, responsible: Responsible, settings: RuleSettings) -> Decisions:
        d = Decisions()
        kind = _KIND.get(t.topic)
        if kind is None:
            return d
        fact = next((e for e in reversed(h.patient.facts.get(kind, [])) if e["key"] == t.message_id), None)
        if fact is None:
            return d
        key = str(fact["incident_id"])
        if t.topic == IncidentReported.TOPIC:
            level = h.risk_level
            d.opened += obligation(
                t,
                responsible,
                AgencyKind.GOVERNANCE_CENTER,
                rule=RULE,
                key=key,
                role="governance",
                action="review_incident",
                due_at=t.recorded_at + settings.r14_review,
                risk_level=level,
            )
            d.opened += obligation(
                t,
                responsible,
                AgencyKind.POLICE_STATION,
                rule=RULE,
                key=key,
                role="police",
                action="respond_to_incident",
                due_at=t.recorded_at + settings.r14_police_response,
                risk_level=level,
            )
        else:
            role = "governance" if t.topic == IncidentReviewed.TOPIC else "police"
            d.completed.append((obligation_id(t.patient_id, RULE, key, role), t.message_id))
        return d


R14 = Incident()
