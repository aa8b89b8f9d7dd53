"""R9 — a patient with no guardian, or a guardian unable to act, gets a social guardian.

Seed: Qingyang Q-17 (牵头单位 民政办); owner: civil affairs covering the residence (none on
record: the governance center, ``assign_civil_affairs``); deadline:
``RuleSettings.r9_designate_social_guardian`` (30 days, our default). The committee may be
designated instead, so it is told.

- *Episode*: on the register and the latest guardian fact (by occurred time; at the same
  occurred time, the one recorded later) says none or weak.
- *Opens*: civil affairs → ``designate_social_guardian``; the committee →
  ``no_or_weak_guardian_notice``.
- *Completed by*: a social guardian designated. *Cancelled by*: a capable guardian assigned,
  or the patient leaves the register.
"""

from __future__ import annotations

from domain.patient_file import GuardianStatus
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
from domain.rules.entries import REREGISTRATION, Entry, deregistration, latest
from domain.rules.settings import RuleSettings

_NO_OR_WEAK = (GuardianStatus.NONE, GuardianStatus.WEAK)


def _no_or_weak_guardian(known: list[Entry]) -> bool:
    g = latest(known, "guardian")
    return deregistration(known) is None and g is not None and g["status"] in _NO_OR_WEAK


def _ended(known: list[Entry], fact: Entry) -> Closing:
    if (gone := left_register(known)) is not None:
        return gone
    g = latest(known, "guardian")
    if g is not None and g["status"] == GuardianStatus.SOCIAL:
        return Closing(completed_by=g["key"])
    return Closing(reason="a capable guardian was assigned")


def _assign(t: Trigger, s: Span, h: History, responsible: Responsible, settings: RuleSettings) -> list[Assignment]:
    return obligation(
        t,
        responsible,
        AgencyKind.CIVIL_AFFAIRS,
        rule="R9",
        key=s.key,
        role="civil-affairs",
        action="designate_social_guardian",
        due_at=t.recorded_at + settings.r9_designate_social_guardian,
    ) + notice(
        t,
        responsible,
        AgencyKind.COMMITTEE,
        rule="R9",
        key=s.key,
        role="committee-notice",
        action="no_or_weak_guardian_notice",
    )


R9 = EpisodeRule(
    "R9",
    AgencyKind.CIVIL_AFFAIRS,
    Condition("R9", ("guardian", "deregistration", REREGISTRATION), _no_or_weak_guardian, _ended),
    _assign,
    closes=("civil-affairs",),
)
