"""R3 — an unstable or basically stable patient at home: the care team mobilises the guardian
to seek treatment.

Seed: Qingyang Q-4 (及时送医); owner: the committee covering the residence (it runs the care
team; none on record: the governance center, ``assign_committee``); deadline:
``RuleSettings.r3_mobilise_guardian`` (7 days, our default).

- *Episode*: on the register, not in hospital or institutional care, and the latest assessment's class is unstable
  or basically stable.
- *Opens*: the committee → ``mobilise_guardian_for_treatment``.
- *Completed by*: the care team reaching the patient or the family (a care-team contact with
  outcome ``reached``, dated at or after the episode opened), or an admission to hospital or a
  placement in institutional care.
- *Cancelled by*: the patient is stable again, or leaves the register.
"""

from __future__ import annotations

from domain.patient_care import CareTeamContactRecorded, ContactOutcome
from domain.registry import AgencyKind
from domain.rules.engine import (
    Assignment,
    Closing,
    Condition,
    EpisodeRule,
    Fulfil,
    History,
    Responsible,
    Span,
    Trigger,
    left_register,
    obligation,
)
from domain.rules.entries import (
    CARED_FOR_KINDS,
    REREGISTRATION,
    Entry,
    cared_for,
    deregistration,
    in_hospital,
    latest,
    risk_class,
)
from domain.rules.settings import RuleSettings
from domain.values import RiskClass

_MOBILISE = (RiskClass.BASICALLY_STABLE, RiskClass.UNSTABLE)


def _needs_treatment_at_home(known: list[Entry]) -> bool:
    return deregistration(known) is None and not cared_for(known) and risk_class(known) in _MOBILISE


def _ended(known: list[Entry], fact: Entry) -> Closing:
    if (gone := left_register(known)) is not None:
        return gone
    if cared_for(known):
        stay = latest(known, "hospital" if in_hospital(known) else "institution")
        return Closing(completed_by=stay["key"])  # type: ignore[index]
    return Closing(reason="the patient is stable")


def _reached_since_opening(e: Entry, span: Span) -> bool:
    return e["outcome"] == ContactOutcome.REACHED and e["at"] >= span.opened_at


def _assign(t: Trigger, s: Span, h: History, responsible: Responsible, settings: RuleSettings) -> list[Assignment]:
    return obligation(
        t,
        responsible,
        AgencyKind.COMMITTEE,
        rule="R3",
        key=s.key,
        role="committee",
        action="mobilise_guardian_for_treatment",
        due_at=t.recorded_at + settings.r3_mobilise_guardian,
        risk_level=h.risk_level,
    )


R3 = EpisodeRule(
    "R3",
    AgencyKind.COMMITTEE,
    Condition(
        "R3", ("assessment", *CARED_FOR_KINDS, "deregistration", REREGISTRATION), _needs_treatment_at_home, _ended
    ),
    _assign,
    closes=("committee",),
    fulfil=Fulfil("care_team_contact", _reached_since_opening, frozenset({CareTeamContactRecorded.TOPIC})),
)
