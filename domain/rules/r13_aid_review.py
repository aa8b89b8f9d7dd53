"""R13 — hardship is stated, or aid applied for: civil affairs reviews aid eligibility.

Seed: Jiaobei 社会事务 1 (及时 review of minimum living allowance and extreme-poverty
support); owner: civil affairs covering the residence (none on record: the governance center,
``assign_civil_affairs``); deadline: ``RuleSettings.r13_aid_review`` (30 days, our default).

- *Episode*: on the register and either an application for a hardship aid is pending (its
  latest step is the application), or the current run of economic statements says hardship and
  no hardship aid was granted or found ineligible since that run began.
- *Opens*: civil affairs → ``review_aid_eligibility``.
- *Completed by*: a grant or a finding of ineligibility. *Cancelled by*: hardship no longer
  stated, or the patient leaves the register.
"""

from __future__ import annotations

from datetime import datetime

from domain.patient_care import HARDSHIP_AID, HARDSHIP_ECONOMIC_STATUSES
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
    obligation,
)
from domain.rules.entries import REREGISTRATION, Entry, deregistration, latest, of, order
from domain.rules.settings import RuleSettings

_AID_KINDS = ("aid_applied", "aid_granted", "aid_found_ineligible", "aid_revoked")
_DECISIONS = ("aid_granted", "aid_found_ineligible")


def _hardship_stated_since(known: list[Entry]) -> datetime | None:
    """Start of the current run of economic statements that say hardship (None: not stated)."""
    since = None
    for e in sorted((e for e in of(known, "circumstances") if e["economic_status"] is not None), key=order):
        since = (since or e["at"]) if e["economic_status"] in HARDSHIP_ECONOMIC_STATUSES else None
    return since


def _aid_pending(known: list[Entry]) -> bool:
    for aid in HARDSHIP_AID:
        step = latest(e for k in _AID_KINDS for e in of(known, k) if e["aid_type"] == aid)
        if step is not None and step["kind"] == "aid_applied":
            return True
    return False


def _needs_aid_review(known: list[Entry]) -> bool:
    if deregistration(known) is not None:
        return False
    if _aid_pending(known):
        return True
    since = _hardship_stated_since(known)
    return since is not None and not any(
        e["aid_type"] in HARDSHIP_AID and e["at"] >= since for k in _DECISIONS for e in of(known, k)
    )


def _ended(known: list[Entry], fact: Entry) -> Closing:
    if (gone := left_register(known)) is not None:
        return gone
    if fact["kind"] in _DECISIONS:
        return Closing(completed_by=fact["key"])
    return Closing(reason="hardship is no longer stated")


def _assign(t: Trigger, s: Span, h: History, responsible: Responsible, settings: RuleSettings) -> list[Assignment]:
    return obligation(
        t,
        responsible,
        AgencyKind.CIVIL_AFFAIRS,
        rule="R13",
        key=s.key,
        role="civil-affairs",
        action="review_aid_eligibility",
        due_at=t.recorded_at + settings.r13_aid_review,
    )


R13 = EpisodeRule(
    "R13",
    AgencyKind.CIVIL_AFFAIRS,
    Condition("R13", ("circumstances", *_AID_KINDS, "deregistration", REREGISTRATION), _needs_aid_review, _ended),
    _assign,
    closes=("civil-affairs",),
)
