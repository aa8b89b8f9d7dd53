"""R1 — a patient at risk level 3 or more is taken under management by the police (列管).

Seed: Qingyang Q-1 and Jiaobei 派出所 1 (high-risk patients under police management); owner:
the police station covering the residence; deadline: ``RuleSettings.r1_take_under_management``
(24 hours from when the service learned it: the seeds say "promptly", 及时).

- *Episode*: the latest assessment (by occurred time) is level 3 or more. It opens with the
  fact after which that first held; its key is that fact's message id.
- *Opens*: the police station → ``take_under_management`` (no station on record: the
  governance center → ``assign_police_station``, same deadline); the governance center →
  ``high_risk_patient_notice``. A patient already under police management has nothing left to
  do: the obligation is completed at once by the latest management fact.
- *Completed by*: the police record the patient under management.
- *Cancelled by*: the level falls below 3, or the patient leaves the register.
- *Per station* (列管 is the station's): when a move inside the region is accepted
  (``ResidenceChanged``) during the episode, the station covering the new residence takes the
  patient under management unless the latest management fact is its own: the obligation moves
  to it (still open: same deadline) or is reopened for it (done by the old station: due
  ``r1_take_under_management`` from the change). Its completion and cancellation follow the
  chain of moved ids (docs/decisions/042).
"""

from __future__ import annotations

from domain.obligation import ObligationKind, obligation_id
from domain.registry import AgencyKind
from domain.rules.engine import (
    IMPORTED,
    Assignment,
    Condition,
    Decisions,
    History,
    Moved,
    Responsible,
    Trigger,
    owner_or_fallback,
)
from domain.rules.entries import REREGISTRATION, Known, fact_of, latest, order
from domain.rules.settings import RuleSettings
from domain.values import HIGH_RISK_LEVEL

RULE = "R1"
POLICE_MANAGEMENT = "smd.PoliceManagementRecorded"
DEREGISTERED = "smd.PatientDeregistered"
REREGISTERED = "smd.PatientReregistered"
RESIDENCE_CHANGED = "smd.ResidenceChanged"


def high_risk(known: Known) -> bool:
    """The latest assessment is level 3 or more."""
    a = latest(known, "assessment")
    return a is not None and a["level"] >= HIGH_RISK_LEVEL


HIGH_RISK = Condition("R1", ("assessment", REREGISTRATION), high_risk)


def entered_high_risk(level_before: int | None, level_after: int | None) -> bool:
    """The patient's current level went from below 3 (or unknown) to 3 or more."""
    before_high = level_before is not None and level_before >= HIGH_RISK_LEVEL
    after_high = level_after is not None and level_after >= HIGH_RISK_LEVEL
    return after_high and not before_high


def r1_high_risk_management(
    trigger: Trigger,
    level_before: int | None,
    level_after: int | None,
    responsible: Responsible,
    settings: RuleSettings,
    episode: str | None = None,
) -> list[Assignment]:
    """What entering level ≥ 3 opens: the police station's "take under management" (列管) with a
    deadline, and the governance center's notice. The episode key is the fact that entered."""
    if not entered_high_risk(level_before, level_after):
        return []
    episode = episode or trigger.message_id
    decided: list[Assignment] = []
    police = responsible(AgencyKind.POLICE_STATION)
    governance = responsible(AgencyKind.GOVERNANCE_CENTER)
    due = trigger.recorded_at + settings.r1_take_under_management
    oid = obligation_id(trigger.patient_id, RULE, episode, "police")
    if police is None and governance is not None:
        # Nobody may fall between agencies: without a responsible station on record, the
        # governance center must find one, under the same deadline.
        decided.append(
            Assignment(
                oid, ObligationKind.OBLIGATION, RULE, "assign_police_station", governance, episode, due, level_after
            )
        )
    if police is not None:
        decided.append(
            Assignment(oid, ObligationKind.OBLIGATION, RULE, "take_under_management", police, episode, due, level_after)
        )
    if governance is not None:
        notice = obligation_id(trigger.patient_id, RULE, episode, "governance-notice")
        decided.append(
            Assignment(
                notice, ObligationKind.NOTICE, RULE, "high_risk_patient_notice", governance, episode, None, level_after
            )
        )
    return decided


class HighRiskManagement:
    """R1 over the episode (module docstring)."""

    rule = RULE
    owner = AgencyKind.POLICE_STATION

    def conditions(self, settings: RuleSettings) -> tuple[Condition, ...]:
        return (HIGH_RISK,)

    def __call__(self, t: Trigger, h: History, responsible: Responsible, settings: RuleSettings) -> Decisions:
        d = Decisions()
        if t.topic == REREGISTERED:  # the file begins again: what the deregistration cancelled stays so
            return d
        spans = h.spans(HIGH_RISK, t)
        after = spans[-1] if spans and spans[-1].is_open else None
        before = h.open_before(HIGH_RISK, t)
        patient = h.patient
        if after is not None and (before is None or before.key != after.key):
            # the span opened with this fact (or is open after a backfill): the level was below 3 before it
            d.opened += r1_high_risk_management(t, None, h.risk_level, responsible, settings, episode=after.key)
            if patient.under_police_management:  # already under management: nothing left to do
                done = max(patient.facts.get("police_management", []), key=order)
                d.completed.append((obligation_id(t.patient_id, RULE, after.key, "police"), done["key"]))
        if before is not None and after is None and t.topic != IMPORTED:
            reason = "the risk level fell below 3"
            d.cancelled.append((obligation_id(t.patient_id, RULE, before.key, "police"), reason, t.message_id))
        if after is not None and t.topic == POLICE_MANAGEMENT and patient.under_police_management:
            d.completed.append((obligation_id(t.patient_id, RULE, after.key, "police"), t.message_id))
        if after is not None and t.topic == DEREGISTERED:
            reason = f"the patient left the register ({patient.deregistration_reason})"
            d.cancelled.append((obligation_id(t.patient_id, RULE, after.key, "police"), reason, t.message_id))
        if after is not None and t.topic == RESIDENCE_CHANGED:
            d.moved += _to_the_new_station(t, h, after.key, responsible, settings)
        return d


def _to_the_new_station(
    t: Trigger, h: History, key: str, responsible: Responsible, settings: RuleSettings
) -> list[Moved]:
    """The new residence's station takes the patient under management, unless the latest
    management fact is its own (``responsible`` answers for the new residence)."""
    change = fact_of(h.patient, "residence", t.message_id)
    if change is None:
        return []
    station, action = owner_or_fallback(responsible, AgencyKind.POLICE_STATION, "take_under_management")
    managed = h.patient.facts.get("police_management", [])
    if station is None or (managed and max(managed, key=order)["by"] == station):
        return []
    return [
        Moved(
            old=obligation_id(t.patient_id, RULE, key, "police"),
            move_id=str(change["move_id"]),
            assignee=station,
            action=action,
            residence=change["residence"],
            due_at=t.recorded_at + settings.r1_take_under_management,
            risk_level=h.risk_level,
        )
    ]


R1 = HighRiskManagement()
