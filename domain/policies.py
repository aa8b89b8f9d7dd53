"""Coordination rules as pure policies: a trigger and what was known then → obligations.

A policy sees the triggering fact, the patient's state by occurred time just before and just
after that fact (as known at the fact's log position), and a ``responsible`` function that
answers from the registry as recorded up to that position. "Now" is the trigger's
``recorded_at``. So a replay decides exactly the same, and a policy is one small test.

Episodes: a rule fires when a patient *enters* a condition, not on every event. The episode
key is the message id of the first recorded fact that opened the episode; a late fact that
extends the episode backwards (an older level-4 assessment arriving after a newer one) does
not change the current level, so it opens nothing and the key stays put.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any
from uuid import UUID

from domain.episodes import declared_unknown, episodes, high_risk, lost_by_misses, open_episode
from domain.obligation import ObligationKind, obligation_id
from domain.registry import AgencyKind
from domain.values import HIGH_RISK_LEVEL


@dataclass(frozen=True, slots=True)
class Trigger:
    """The fact a policy reacts to, with its place in the global log."""

    patient_id: UUID
    message_id: str
    position: int
    recorded_at: datetime
    residence: str
    topic: str = ""
    version: int = 0


@dataclass(frozen=True, slots=True)
class Assignment:
    """An obligation or notice a policy decided to open."""

    id: UUID
    kind: ObligationKind
    rule: str
    action: str
    assignee: str
    episode_key: str
    due_at: datetime | None
    risk_level: int | None


@dataclass(frozen=True, slots=True)
class RuleSettings:
    """Deadlines and thresholds of the rules (the seeds say "promptly" (及时) for R1 and R5:
    these are our defaults, docs/decisions/008)."""

    r1_take_under_management: timedelta = timedelta(hours=24)
    r5_misses_that_mean_lost: int = 3
    r5_locate: timedelta = timedelta(days=3)
    # Care and safety rules (sources and choices in docs/decisions/010).
    r2_joint_visit_every: timedelta = timedelta(days=14)  # Q-4, J 卫生院 1: 至少每两周共同面访一次
    r3_mobilise_guardian: timedelta = timedelta(days=7)  # Q-4 "及时送医": our default
    r4_first_visit: timedelta = timedelta(days=14)  # no class known yet: our default
    r4_unstable: timedelta = timedelta(days=14)  # national norm
    r4_basically_stable: timedelta = timedelta(days=30)  # norm: monthly (14 days after a treatment change: not tracked)
    r4_stable: timedelta = timedelta(days=90)  # norm: every 3 months
    r9_designate_social_guardian: timedelta = timedelta(days=30)  # our default
    r10_sign_agreement: timedelta = timedelta(days=7)  # J 村居 6: our default
    r11_first_follow_up: timedelta = timedelta(days=7)  # Q-26 (出院即失管): our default
    r13_aid_review: timedelta = timedelta(days=30)  # J 社会事务 1 "及时": our default
    r14_police_response: timedelta = timedelta(hours=24)  # J 派出所 3 "迅速派警": our default
    r14_review: timedelta = timedelta(days=7)  # our default
    r17_township_review: timedelta = timedelta(days=7)  # DESIGN.md R17
    r17_city_review: timedelta = timedelta(days=15)  # DESIGN.md R17
    r18_assess_working_days: int = 10  # J 村居 2, J 措施 (三): 10 working days
    r16_contact_every: timedelta = timedelta(days=30)  # DESIGN.md R16: monthly care-team contact (key patients)


@dataclass
class Decisions:
    """What the policies decided for one trigger."""

    opened: list[Assignment] = field(default_factory=list)
    completed: list[tuple[UUID, str]] = field(default_factory=list)  # (obligation id, fulfilling message id)
    cancelled: list[tuple[UUID, str, str]] = field(default_factory=list)  # (id, reason, because of message id)
    lost: list[tuple[str, UUID, str]] = field(default_factory=list)  # ("derived"|"withdrawn"|"ended", id, key)

    def extend(self, other: Decisions) -> Decisions:
        self.opened += other.opened
        self.completed += other.completed
        self.cancelled += other.cancelled
        self.lost += other.lost
        return self


#: ``responsible(kind)`` → the agency id responsible for the trigger's residence, or None.
Responsible = Callable[[AgencyKind], str | None]


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
    """R1: entering risk level ≥ 3 gives the police station "take under management" (列管)
    with a deadline, and the governance center a notice. The episode key is the fact that
    entered (the trigger, except after a backfill: then the imported fact that entered)."""
    if not entered_high_risk(level_before, level_after):
        return []
    episode = episode or trigger.message_id
    decided: list[Assignment] = []
    police = responsible(AgencyKind.POLICE_STATION)
    governance = responsible(AgencyKind.GOVERNANCE_CENTER)
    if police is None and governance is not None:
        # Nobody may fall between agencies: without a responsible station on record, the
        # governance center must find one, under the same deadline.
        decided.append(
            Assignment(
                id=obligation_id(trigger.patient_id, "R1", episode, "police"),
                kind=ObligationKind.OBLIGATION,
                rule="R1",
                action="assign_police_station",
                assignee=governance,
                episode_key=episode,
                due_at=trigger.recorded_at + settings.r1_take_under_management,
                risk_level=level_after,
            )
        )
    if police is not None:
        decided.append(
            Assignment(
                id=obligation_id(trigger.patient_id, "R1", episode, "police"),
                kind=ObligationKind.OBLIGATION,
                rule="R1",
                action="take_under_management",
                assignee=police,
                episode_key=episode,
                due_at=trigger.recorded_at + settings.r1_take_under_management,
                risk_level=level_after,
            )
        )
    if governance is not None:
        decided.append(
            Assignment(
                id=obligation_id(trigger.patient_id, "R1", episode, "governance-notice"),
                kind=ObligationKind.NOTICE,
                rule="R1",
                action="high_risk_patient_notice",
                assignee=governance,
                episode_key=episode,
                due_at=None,
                risk_level=level_after,
            )
        )
    return decided


# -- the rules over a patient's history (R1 lifecycle, R5) -------------------------------------------

POLICE_MANAGEMENT = "smd.PoliceManagementRecorded"
WHEREABOUTS = "smd.WhereaboutsDeclared"
VISIT = "smd.VisitRecorded"
DEREGISTERED = "smd.PatientDeregistered"
IMPORTED = "smd.HistoryImported"
IMPORTED_PREFIX = "ledger:"


def is_imported(message_id: str) -> bool:
    """A fact from an agency's ledger (a backfill): it opens nothing for the past."""
    return message_id.startswith(IMPORTED_PREFIX)


def _before(entries: list[dict[str, Any]], trigger: Trigger) -> list[dict[str, Any]]:
    if trigger.topic == IMPORTED:
        return []  # after a backfill the rules assess the current state as if just learned
    return [e for e in entries if e.get("v", 0) < trigger.version]


def r1_lifecycle(trigger: Trigger, patient: Any, responsible: Responsible, settings: RuleSettings) -> Decisions:
    """R1 over the episode: open on entry; complete when the police take the patient under
    management (列管); cancel when the level falls below 3 or the patient leaves the register."""
    d = Decisions()
    after = open_episode(episodes(patient.assessments, high_risk))
    before = open_episode(episodes(_before(patient.assessments, trigger), high_risk))
    if after is not None and (before is None or before.key != after.key):
        level_before = None if trigger.topic == IMPORTED else patient.risk_level_before(trigger.message_id)
        d.opened += r1_high_risk_management(
            trigger, level_before, patient.risk_level, responsible, settings, episode=after.key
        )
        if patient.under_police_management:  # already under management: nothing left to do
            latest = max(patient.facts.get("police_management", []), key=lambda e: (e["at"], e["key"]))
            d.completed.append((obligation_id(trigger.patient_id, "R1", after.key, "police"), latest["key"]))
    if before is not None and after is None:
        d.cancelled.append(
            (
                obligation_id(trigger.patient_id, "R1", before.key, "police"),
                "the risk level fell below 3",
                trigger.message_id,
            )
        )
    if after is not None and trigger.topic == POLICE_MANAGEMENT and patient.under_police_management:
        d.completed.append((obligation_id(trigger.patient_id, "R1", after.key, "police"), trigger.message_id))
    if after is not None and trigger.topic == DEREGISTERED:
        d.cancelled.append(
            (
                obligation_id(trigger.patient_id, "R1", after.key, "police"),
                f"the patient left the register ({patient.deregistration_reason})",
                trigger.message_id,
            )
        )
    return d


def _lost_assignments(
    trigger: Trigger, key: str, responsible: Responsible, settings: RuleSettings, action: str
) -> list[Assignment]:
    police, governance = responsible(AgencyKind.POLICE_STATION), responsible(AgencyKind.GOVERNANCE_CENTER)
    out = []
    locate_owner = police or governance
    if locate_owner is not None:
        out.append(
            Assignment(
                id=obligation_id(trigger.patient_id, "R5", key, "police"),
                kind=ObligationKind.OBLIGATION,
                rule="R5",
                action=action if police else "assign_police_station",
                assignee=locate_owner,
                episode_key=key,
                due_at=trigger.recorded_at + settings.r5_locate,
                risk_level=None,
            )
        )
    if governance is not None:
        out.append(
            Assignment(
                id=obligation_id(trigger.patient_id, "R5", key, "governance-notice"),
                kind=ObligationKind.NOTICE,
                rule="R5",
                action="lost_to_follow_up_notice",
                assignee=governance,
                episode_key=key,
                due_at=None,
                risk_level=None,
            )
        )
    return out


def r5_lost_to_follow_up(trigger: Trigger, patient: Any, responsible: Responsible, settings: RuleSettings) -> Decisions:
    """R5: consecutive misses (derived lost) or a declaration of unknown whereabouts → police
    locate, governance notice. A late visit that breaks the run withdraws the derived status
    and cancels; a visit after the misses, or a located declaration, completes."""
    d = Decisions()
    pid = trigger.patient_id
    contacts = patient.visits + patient.missed
    holds = lost_by_misses(settings.r5_misses_that_mean_lost)
    after = open_episode(episodes(contacts, holds))
    before = open_episode(episodes(_before(contacts, trigger), holds))
    if after is not None and (before is None or before.key != after.key):
        d.lost.append(("derived", obligation_id(pid, "R5", after.key, "lost"), after.key))
        d.opened += _lost_assignments(trigger, after.key, responsible, settings, "locate_patient")
    if before is not None and after is None:
        locate = obligation_id(pid, "R5", before.key, "police")
        last_miss = max((m["scheduled_on"] for m in patient.missed if m.get("v", 0) < trigger.version), default=None)
        visit = next((v for v in patient.visits if v["key"] == trigger.message_id), None)
        if visit is not None and last_miss is not None and visit["at"].date() >= last_miss:
            d.lost.append(("ended", obligation_id(pid, "R5", before.key, "lost"), trigger.message_id))
            d.completed.append((locate, trigger.message_id))
        else:
            d.lost.append(("withdrawn", obligation_id(pid, "R5", before.key, "lost"), trigger.message_id))
            d.cancelled.append(
                (locate, "a late report shows the missed visits were not consecutive", trigger.message_id)
            )
    whereabouts = patient.facts.get("whereabouts", [])
    w_after = open_episode(episodes(whereabouts, declared_unknown))
    w_before = open_episode(episodes(_before(whereabouts, trigger), declared_unknown))
    if w_after is not None and (w_before is None or w_before.key != w_after.key):
        d.opened += _lost_assignments(trigger, w_after.key, responsible, settings, "locate_patient")
    if w_before is not None and w_after is None:
        d.completed.append((obligation_id(pid, "R5", w_before.key, "police"), trigger.message_id))
    if trigger.topic == WHEREABOUTS and after is not None and not patient.declared_whereabouts_unknown:
        d.completed.append((obligation_id(pid, "R5", after.key, "police"), trigger.message_id))
    if trigger.topic == DEREGISTERED:
        for ep in (after, w_after):
            if ep is not None:
                d.cancelled.append(
                    (
                        obligation_id(pid, "R5", ep.key, "police"),
                        f"the patient left the register ({patient.deregistration_reason})",
                        trigger.message_id,
                    )
                )
    return d


#: Every rule that reacts to a patient's facts, in a fixed order (replays decide the same).
PATIENT_RULES = (r1_lifecycle, r5_lost_to_follow_up)


def decide(trigger: Trigger, patient: Any, responsible: Responsible, settings: RuleSettings) -> Decisions:
    """All rules' decisions for one patient fact (none for a fact imported from a ledger)."""
    d = Decisions()
    if is_imported(trigger.message_id):
        return d
    for rule in PATIENT_RULES:
        d.extend(rule(trigger, patient, responsible, settings))
    return d


# The care and safety rules live in their own modules, which import this one's helpers
# and append themselves to PATIENT_RULES (imported last: no import cycle in either order).
import domain.rules_care  # noqa: E402,F401
