"""R17 — the three-tier review (三级三评): a community review calls for the township's, and an
unstable finding for the city's.

Seed: DESIGN.md R17 (Jiaobei 卫生院 3, Qingyang Q-4 牵头单位 卫生服务中心); owners: the health
center for the township review (``RuleSettings.r17_township_review``, 7 days) and the
psychiatric hospital for the city review (``RuleSettings.r17_city_review``, 15 days), covering
the residence (none on record: the governance center assigns one).

- *Township episode*: on the register, a community review is recorded and no township review
  dated at or after it.
- *City episode*: on the register, the latest community or township review since the latest
  community review finds the patient unstable, and no city review dated at or after it.
- *Opens*: ``township_review`` / ``city_review``. *Completed by*: that tier's review.
  *Cancelled by*: the latest review no longer finds the patient unstable (city), or the patient
  leaves the register.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime

from domain.patient_file import ReviewTier
from domain.registry import AgencyKind
from domain.rules.engine import (
    Assign,
    Assignment,
    Closing,
    Condition,
    EpisodeRule,
    History,
    Responsible,
    Span,
    Trigger,
    left_register,
    obligation,
)
from domain.rules.entries import REREGISTRATION, Entry, deregistration, earliest, latest, of
from domain.rules.settings import RuleSettings
from domain.values import RiskClass


def _community_review(known: list[Entry]) -> Entry | None:
    return latest(e for e in of(known, "review") if e["tier"] == ReviewTier.COMMUNITY)


def _tier_since(known: list[Entry], tier: ReviewTier, since: datetime) -> Entry | None:
    return earliest(e for e in of(known, "review") if e["tier"] == tier and e["at"] >= since)


def _township_review_due(known: list[Entry]) -> bool:
    c = _community_review(known)
    return deregistration(known) is None and c is not None and _tier_since(known, ReviewTier.TOWNSHIP, c["at"]) is None


def _city_review_due(known: list[Entry]) -> bool:
    c = _community_review(known)
    if deregistration(known) is not None or c is None or _tier_since(known, ReviewTier.CITY, c["at"]) is not None:
        return False
    found = latest(e for e in of(known, "review") if e["tier"] != ReviewTier.CITY and e["at"] >= c["at"])
    return found is not None and found["risk_class"] == RiskClass.UNSTABLE


def _ended(tier: ReviewTier) -> Callable[[list[Entry], Entry], Closing]:
    def ended(known: list[Entry], fact: Entry) -> Closing:
        if (gone := left_register(known)) is not None:
            return gone
        c = _community_review(known)
        done = None if c is None else _tier_since(known, tier, c["at"])
        if done is not None:
            return Closing(completed_by=done["key"])
        return Closing(reason="the latest review finds the patient not unstable")

    return ended


def _assign(tier: ReviewTier, kind: AgencyKind, deadline: str) -> Assign:
    def assign(t: Trigger, s: Span, h: History, responsible: Responsible, settings: RuleSettings) -> list[Assignment]:
        return obligation(
            t,
            responsible,
            kind,
            rule="R17",
            key=s.key,
            role=tier.value,
            action=f"{tier.value}_review",
            due_at=t.recorded_at + getattr(settings, deadline),
            risk_level=h.risk_level,
        )

    return assign


R17_TOWNSHIP = EpisodeRule(
    "R17",
    AgencyKind.HEALTH_CENTER,
    Condition(
        "R17-township", ("review", "deregistration", REREGISTRATION), _township_review_due, _ended(ReviewTier.TOWNSHIP)
    ),
    _assign(ReviewTier.TOWNSHIP, AgencyKind.HEALTH_CENTER, "r17_township_review"),
    closes=(ReviewTier.TOWNSHIP.value,),
)
R17_CITY = EpisodeRule(
    "R17",
    AgencyKind.PSYCHIATRIC_HOSPITAL,
    Condition("R17-city", ("review", "deregistration", REREGISTRATION), _city_review_due, _ended(ReviewTier.CITY)),
    _assign(ReviewTier.CITY, AgencyKind.PSYCHIATRIC_HOSPITAL, "r17_city_review"),
    closes=(ReviewTier.CITY.value,),
)
