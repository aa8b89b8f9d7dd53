"""R10 — the family refuses admission of a level ≥ 3 patient: a guardianship agreement is signed.

Seed: Jiaobei 卫生院 3(2) and 村居 6 (reported to the governance center; the village, the
guardian and the care team sign the agreement; visits become more frequent); owner: the
committee covering the residence (it works with the guardian; none on record: the governance
center, ``assign_committee``); deadline: ``RuleSettings.r10_sign_agreement`` (7 days, our
default).

- *Episode*: on the register, the family's refusal of admission holds (the latest report of it
  is not an end), the latest assessment is level 3 or more, and no agreement was signed on or
  after the day the refusal began.
- *Opens*: the committee → ``sign_guardianship_agreement``; the governance center →
  ``family_refuses_admission_notice``; the health center → ``visit_more_often_notice``.
- *Completed by*: the agreement signed. *Cancelled by*: the family no longer refuses, the level
  falls below 3, or the patient leaves the register.
"""

from __future__ import annotations

from datetime import datetime

from domain.identity import CHINA_TZ
from domain.patient_file import RefusalKind
from domain.registry import AgencyKind
from domain.rules.engine import (
    Assignment,
    Closing,
    Condition,
    EpisodeRule,
    History,
    Responsible,
    Span,
    Trigger,
    left_register,
    notice,
    obligation,
)
from domain.rules.entries import REREGISTRATION, Entry, deregistration, earliest, of, refusal_since, risk_level
from domain.rules.settings import RuleSettings
from domain.values import HIGH_RISK_LEVEL


def _agreement_since(known: list[Entry], since: datetime) -> Entry | None:
    day = since.astimezone(CHINA_TZ).date()
    return earliest(e for e in of(known, "agreement") if e["signed_on"] >= day)


def _family_refuses_high_risk(known: list[Entry]) -> bool:
    since = refusal_since(known, RefusalKind.ADMISSION_BY_FAMILY)
    level = risk_level(known)
    return (
        deregistration(known) is None
        and since is not None
        and level is not None
        and level >= HIGH_RISK_LEVEL
        and _agreement_since(known, since) is None
    )


def _ended(known: list[Entry], fact: Entry) -> Closing:
    if (gone := left_register(known)) is not None:
        return gone
    since = refusal_since(known, RefusalKind.ADMISSION_BY_FAMILY)
    signed = None if since is None else _agreement_since(known, since)
    if signed is not None:
        return Closing(completed_by=signed["key"])
    if since is None:
        return Closing(reason="the family no longer refuses admission")
    return Closing(reason="the risk level fell below 3")


def _assign(t: Trigger, s: Span, h: History, responsible: Responsible, settings: RuleSettings) -> list[Assignment]:
    level = h.risk_level
    return (
        obligation(
            t,
            responsible,
            AgencyKind.COMMITTEE,
            rule="R10",
            key=s.key,
            role="committee",
            action="sign_guardianship_agreement",
            due_at=t.recorded_at + settings.r10_sign_agreement,
            risk_level=level,
        )
        + notice(
            t,
            responsible,
            AgencyKind.GOVERNANCE_CENTER,
            rule="R10",
            key=s.key,
            role="governance-notice",
            action="family_refuses_admission_notice",
            risk_level=level,
        )
        + notice(
            t,
            responsible,
            AgencyKind.HEALTH_CENTER,
            rule="R10",
            key=s.key,
            role="health-center-notice",
            action="visit_more_often_notice",
            risk_level=level,
        )
    )


R10 = EpisodeRule(
    "R10",
    AgencyKind.COMMITTEE,
    Condition(
        "R10",
        ("refusal", "assessment", "agreement", "deregistration", REREGISTRATION),
        _family_refuses_high_risk,
        _ended,
    ),
    _assign,
    closes=("committee",),
)
