"""R2 — an unstable patient at home is visited jointly at least every 14 days.

Seed: Qingyang Q-4 and Jiaobei 卫生院 1 (至少每两周共同面访一次: health staff, care team and
community police together); owner: the health center covering the residence (none on record:
the governance center, ``assign_health_center``); interval: ``RuleSettings.r2_joint_visit_every``.

- *Episode*: on the register, not in hospital or institutional care, and the latest assessment's class is unstable.
- *Cycles*: each a ``joint_visit`` obligation due 14 days after its anchor: the latest joint
  visit dated at or after the episode opened (else the fact that opened it). The next joint
  visit completes the cycle and opens the next; a missed fortnight is marked overdue by R15.
- *Once per episode*: the committee and the police station are told
  (``joint_visits_every_14_days_notice``), and the committee tells the guardian of the legal
  duty (``tell_guardian_of_legal_duty``, due in 14 days), completed by a legal-duty notice
  given on or after the day the episode began.
- *Cancelled by*: the patient is admitted (or placed in institutional care), is no longer
  unstable, or leaves the register (a joint visit that ends the episode completes its cycle
  instead).
"""

from __future__ import annotations

from domain.identity import CHINA_TZ
from domain.patient_file import LegalDutyNoticeGiven
from domain.registry import AgencyKind
from domain.rules.engine import (
    Assignment,
    Closing,
    Condition,
    CycleRule,
    Fulfil,
    History,
    Responsible,
    Span,
    Trigger,
    left_register,
    notice,
    obligation,
)
from domain.rules.entries import (
    CARED_FOR_KINDS,
    REREGISTRATION,
    Entry,
    cared_for,
    cared_for_reason,
    deregistration,
    risk_class,
)
from domain.rules.settings import RuleSettings
from domain.values import RiskClass


def _unstable_at_home(known: list[Entry]) -> bool:
    return deregistration(known) is None and not cared_for(known) and risk_class(known) == RiskClass.UNSTABLE


def _ended(known: list[Entry], fact: Entry) -> Closing:
    if (gone := left_register(known)) is not None:
        return gone
    if cared_for(known):
        return Closing(reason=cared_for_reason(known))
    return Closing(reason="the patient is no longer unstable")


def _once(t: Trigger, s: Span, h: History, responsible: Responsible, settings: RuleSettings) -> list[Assignment]:
    level = h.risk_level
    told = {"rule": "R2", "key": s.key, "action": "joint_visits_every_14_days_notice", "risk_level": level}
    return (
        notice(t, responsible, AgencyKind.COMMITTEE, role="committee-notice", **told)
        + notice(t, responsible, AgencyKind.POLICE_STATION, role="police-notice", **told)
        + obligation(
            t,
            responsible,
            AgencyKind.COMMITTEE,
            rule="R2",
            key=s.key,
            role="legal-duty",
            action="tell_guardian_of_legal_duty",
            due_at=t.recorded_at + settings.r2_joint_visit_every,
            risk_level=level,
        )
    )


def _told_since_opening(e: Entry, span: Span) -> bool:
    return e["given_on"] >= span.opened_at.astimezone(CHINA_TZ).date()


R2 = CycleRule(
    "R2",
    "joint-visit",
    AgencyKind.HEALTH_CENTER,
    "joint_visit",
    Condition("R2", ("assessment", *CARED_FOR_KINDS, "deregistration", REREGISTRATION), _unstable_at_home, _ended),
    anchor_kind="visit",
    anchors=lambda e: e["joint"],
    due=lambda h, anchor, upto, s: anchor["at"] + s.r2_joint_visit_every,
    once=_once,
    once_closes=("legal-duty",),
    fulfil=Fulfil("legal_duty_notice", _told_since_opening, frozenset({LegalDutyNoticeGiven.TOPIC})),
)
